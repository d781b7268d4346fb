package packet

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/pcap"
)

// benchCaptures are the Modbus captures the performance budget is quoted
// on (from ../shared/captures).
var benchCaptures = []string{
	"ITI-ICS-Security-Tools/ModbusTCP/ModbusTCP.pcap",
	"ITI-ICS-Security-Tools/bro/modbus/modbusBig.pcap",
}

// BenchmarkReplay measures, on the same in-memory capture, a bare
// gopacket DecodingLayerParser loop (pcapgo zero-copy reader, Ethernet,
// IPv4, IPv6, TCP, UDP) and Vigil's full packet path (capture reader,
// L2–L4 decode, flows, TCP reassembly, OT decoding, window features,
// observation rows, communications). Each reports pkt/s.
func BenchmarkReplay(b *testing.B) {
	dir := sharedCaptures(b)
	for _, name := range benchCaptures {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			b.Fatal(err)
		}
		base := filepath.Base(name)
		b.Run(base+"/bare_parser", func(b *testing.B) { benchBare(b, data) })
		b.Run(base+"/full_path", func(b *testing.B) { benchFull(b, data) })
	}
}

func benchBare(b *testing.B, data []byte) {
	var (
		eth     layers.Ethernet
		ip4     layers.IPv4
		ip6     layers.IPv6
		tcp     layers.TCP
		udp     layers.UDP
		decoded = make([]gopacket.LayerType, 0, 8)
	)
	parser := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet)
	parser.SetDecodingLayerContainer(gopacket.DecodingLayerSparse(nil))
	for _, l := range []gopacket.DecodingLayer{&eth, &ip4, &ip6, &tcp, &udp} {
		parser.AddDecodingLayer(l)
	}
	parser.IgnoreUnsupported = true
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var packets, ports int
	for b.Loop() {
		r, err := pcapgo.NewReader(bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		for {
			pkt, _, err := r.ZeroCopyReadPacketData()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			parser.DecodeLayers(pkt, &decoded)
			ports += int(tcp.DstPort) // use the result
			packets++
		}
	}
	b.ReportMetric(float64(packets)/b.Elapsed().Seconds(), "pkt/s")
	_ = ports
}

func benchFull(b *testing.B, data []byte) {
	cfg := ingest.DefaultPacketConfig()
	x, err := NewExtractor(cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	var p pcap.Packet
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	packets := 0
	var offset int64 // shift each pass later so windows keep closing
	for b.Loop() {
		r, err := pcap.NewReader(bytes.NewReader(data), "bench")
		if err != nil {
			b.Fatal(err)
		}
		var last int64
		for {
			if err := r.Next(&p); err != nil {
				break
			}
			p.TimeNanos += offset
			last = p.TimeNanos
			x.Add(&p)
			packets++
			for bt := x.TakeBatch(); bt != nil; bt = x.TakeBatch() {
				bt.Release()
			}
		}
		offset = last + int64(cfg.Windows[len(cfg.Windows)-1]) - p.TimeNanos + offset
	}
	b.ReportMetric(float64(packets)/b.Elapsed().Seconds(), "pkt/s")
}
