package kafka_test

import (
	"bytes"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/vigil-ot/vigil/ingest/kafka"
	"github.com/vigil-ot/vigil/ingest/pcap"
	"github.com/vigil-ot/vigil/ingest/simulate/attackgen"
)

// FlowBalancer puts both directions of every host pair of the attack
// capture in one partition, the same one each time, and spreads the pairs
// over the partitions.
func TestFlowBalancer(t *testing.T) {
	var capture bytes.Buffer
	if _, err := attackgen.Generate(&capture, attackgen.DefaultScenario()); err != nil {
		t.Fatal(err)
	}
	r, err := pcap.NewReader(&capture, "attack")
	if err != nil {
		t.Fatal(err)
	}
	b, err := kafka.NewFlowBalancer("ethernet")
	if err != nil {
		t.Fatal(err)
	}
	partitions := []int{0, 1, 2}
	byPair := map[[2]string]int{}
	used := map[int]bool{}
	var p pcap.Packet
	for r.Next(&p) == nil {
		pkt := gopacket.NewPacket(p.Data, layers.LayerTypeEthernet, gopacket.NoCopy)
		ip, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if !ok {
			continue
		}
		pair := [2]string{ip.SrcIP.String(), ip.DstIP.String()}
		if pair[0] > pair[1] {
			pair[0], pair[1] = pair[1], pair[0]
		}
		got := b.Balance(kafkago.Message{Value: p.Data}, partitions...)
		if want, seen := byPair[pair]; seen && got != want {
			t.Fatalf("%s -> %s went to partition %d, earlier packets between them to %d", ip.SrcIP, ip.DstIP, got, want)
		}
		byPair[pair] = got
		used[got] = true
	}
	if len(byPair) < 10 || len(used) != len(partitions) {
		t.Fatalf("%d host pairs over partitions %v; want many pairs over all %d", len(byPair), used, len(partitions))
	}
	if _, err := kafka.NewFlowBalancer("token-ring"); err == nil {
		t.Fatal("unknown link type accepted")
	}
}
