package kafka

import (
	"bytes"
	"hash/fnv"
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
		lo, hi := f.Src[:], f.Dst[:]
		if bytes.Compare(lo, hi) > 0 {
			lo, hi = hi, lo
		}
		h.Write(lo)
		h.Write(hi)
	case f.HasMAC:
		lo, hi := f.SrcMAC[:], f.DstMAC[:]
		if bytes.Compare(lo, hi) > 0 {
			lo, hi = hi, lo
		}
		h.Write(lo)
		h.Write(hi)
	default:
		return b.hash.Balance(msg, partitions...)
	}
	return partitions[h.Sum64()%uint64(len(partitions))]
}
