package kafka

import (
	"bytes"
	"hash/fnv"
	"io"
	"sync"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/vigil-ot/vigil/ingest/packet"
)

// FlowBalancer is the kafka-go Balancer a producer of packet records in
// Apache Metron's layout uses to partition them by flow: every frame
// between the same two hosts, in either direction, goes to one partition.
// A Metron record's key is its capture time, so the key cannot name the
// flow, and partitioning by the key (kafka-go's Hash) sprays one TCP
// stream, one scan, over every partition: each partition's feature
// extractor then sees a part of each, reassembles no stream and counts
// no scan whole.
//
// Hosts are IP addresses; frames without them (ARP, other link-layer
// traffic) go by their MAC addresses, and frames that do not decode by
// their key. Safe for concurrent use.
type FlowBalancer struct {
	linkType uint16

	mu    sync.Mutex
	dec   *packet.Decoder
	frame packet.Frame
	hash  kafkago.Hash
}

// NewFlowBalancer returns the balancer of frames of linkType (ethernet,
// raw, linux_sll, linux_sll2 or loopback, as kafka.packets.link_type).
func NewFlowBalancer(linkType string) (*FlowBalancer, error) {
	lt, err := linkTypeNumber(linkType)
	if err != nil {
		return nil, err
	}
	return &FlowBalancer{linkType: lt, dec: packet.NewDecoder()}, nil
}

// Balance returns the partition of msg's flow among partitions.
func (b *FlowBalancer) Balance(msg kafkago.Message, partitions ...int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := &b.frame
	b.dec.Decode(msg.Value, b.linkType, f)
	h := fnv.New64a()
	switch {
	case f.IsIP:
		hashPair(h, f.Src[:], f.Dst[:])
	case f.HasMAC:
		hashPair(h, f.SrcMAC[:], f.DstMAC[:])
	default:
		return b.hash.Balance(msg, partitions...)
	}
	return partitions[h.Sum64()%uint64(len(partitions))]
}

// hashPair hashes the two addresses of a packet in the same order
// whichever sent it, so both directions of a conversation go together.
func hashPair(h io.Writer, a, b []byte) {
	if bytes.Compare(a, b) > 0 {
		a, b = b, a
	}
	h.Write(a)
	h.Write(b)
}
