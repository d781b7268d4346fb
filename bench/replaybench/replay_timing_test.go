package replaybench

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/packet"
	"github.com/vigil-ot/vigil/ingest/pcap"
	"github.com/vigil-ot/vigil/ingest/pcap/pcaptest"
	"github.com/vigil-ot/vigil/ingest/simulate/attackgen"
)

// benchCaptures are the Modbus captures the performance budget is quoted
// on (from ../shared/captures); without that folder the crafted attack
// capture (Modbus and S7 polling, a scan, a flood) stands in.
var benchCaptures = []string{
	"ITI-ICS-Security-Tools/ModbusTCP/ModbusTCP.pcap",
	"ITI-ICS-Security-Tools/bro/modbus/modbusBig.pcap",
}

// BenchmarkReplay measures on the same in-memory capture, in one run:
//
//   - bare_parser: a bare gopacket DecodingLayerParser loop (pcapgo
//     zero-copy reader; Ethernet, IPv4, IPv6, TCP, UDP), the reference;
//   - extractor: Vigil's capture reader, L2–L4 decode, flows, TCP
//     reassembly, OT decoding, window features, observation rows,
//     communications and findings;
//   - full_path: the extractor plus baseline, every detector of the engine
//     (network detectors included) and the alarm lifecycle, to a sink that
//     discards.
//
// Each reports pkt/s (wall clock) and pkt/cpu-s (packets per second of
// process CPU time, GC included): on a shared machine the second is the
// one that compares runs. The budget is full_path >= bare_parser/2 and
// >= 1M pkt/s per core on the Modbus captures.
func BenchmarkReplay(b *testing.B) {
	for _, c := range benchInputs(b) {
		b.Run(c.name+"/bare_parser", func(b *testing.B) { benchBare(b, c.data) })
		b.Run(c.name+"/extractor", func(b *testing.B) { benchPath(b, c.data, false) })
		b.Run(c.name+"/full_path", func(b *testing.B) { benchPath(b, c.data, true) })
	}
}

type benchInput struct {
	name string
	data []byte
}

func benchInputs(b *testing.B) []benchInput {
	in := []benchInput{sparseInput(b)}
	if dir := pcaptest.Dir(); dir != "" {
		for _, name := range benchCaptures {
			data, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				b.Fatal(err)
			}
			in = append(in, benchInput{filepath.Base(name), data})
		}
		return in
	}
	var buf bytes.Buffer
	if _, err := attackgen.Generate(&buf, attackgen.DefaultScenario()); err != nil {
		b.Fatal(err)
	}
	return append(in, benchInput{"attackgen.pcap", buf.Bytes()})
}

// sparseInput is sparse real-looking OT traffic: an hour of attackgen's OT
// day (DNP3 and Modbus polling, irregular chatter; about 4 packets a
// second, so 360 windows of 10 s hold some 40 packets each), then its
// attacks. On such traffic the cost per window, not per packet, decides.
func sparseInput(b *testing.B) benchInput {
	s := attackgen.DefaultOTDayScenario()
	s.Clean = time.Hour
	var buf bytes.Buffer
	if _, err := attackgen.GenerateOTDay(&buf, s); err != nil {
		b.Fatal(err)
	}
	return benchInput{"otday_sparse", buf.Bytes()}
}

func benchBare(b *testing.B, data []byte) { benchPasses(b, data, newBarePass(b, data)) }

func benchPath(b *testing.B, data []byte, engine bool) {
	benchPasses(b, data, newPathPass(b, data, engine))
}

// benchPasses runs pass, one pass over data, once per iteration and
// reports the packet rates.
func benchPasses(b *testing.B, data []byte, pass func() int) {
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	packets := 0
	cpu0 := cpuTime()
	for b.Loop() {
		packets += pass()
	}
	reportRates(b, packets, cpu0)
}

// cpuTime returns the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportRates(b *testing.B, packets int, cpu0 time.Duration) {
	b.ReportMetric(float64(packets)/b.Elapsed().Seconds(), "pkt/s")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(packets)/cpu.Seconds(), "pkt/cpu-s")
	}
}

type discardSink struct{ alerts int }

func (d *discardSink) Write(_ context.Context, out *detect.Output) error {
	d.alerts += len(out.Alerts)
	return nil
}
func (d *discardSink) Close() error { return nil }

// BenchmarkReplayRatio alternates one pass of the bare parser loop and one
// pass of the full path over the same capture, b.N times each, and reports
// the best pass of each (the pass least disturbed by other processes on a
// shared machine) and their ratio: full_vs_bare >= 0.5 is the budget.
// Run it with a fixed count, e.g. -benchtime=30x.
func BenchmarkReplayRatio(b *testing.B) {
	for _, c := range benchInputs(b) {
		b.Run(c.name, func(b *testing.B) {
			bare := newBarePass(b, c.data)
			full := newPathPass(b, c.data, true)
			bestBare, bestFull := time.Duration(1<<62), time.Duration(1<<62)
			var n int
			for b.Loop() {
				start := time.Now()
				n = bare()
				bestBare = min(bestBare, time.Since(start))
				start = time.Now()
				if m := full(); m != n {
					b.Fatalf("full path read %d packets, bare loop %d", m, n)
				}
				bestFull = min(bestFull, time.Since(start))
			}
			b.ReportMetric(float64(n)/bestBare.Seconds(), "bare_pkt/s")
			b.ReportMetric(float64(n)/bestFull.Seconds(), "full_pkt/s")
			b.ReportMetric(bestBare.Seconds()/bestFull.Seconds(), "full_vs_bare")
		})
	}
}

// newBarePass returns one pass of the bare DecodingLayerParser loop; it
// returns the number of packets read.
func newBarePass(b *testing.B, data []byte) func() int {
	loop := newBareLoop()
	return func() int {
		n, err := loop(data)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
}

// newBareLoop returns the bare DecodingLayerParser loop (pcapgo zero-copy
// reader; Ethernet, IPv4, IPv6, TCP, UDP) over a capture in memory; it
// returns the number of packets read.
func newBareLoop() func(data []byte) (int, error) {
	var (
		eth     layers.Ethernet
		ip4     layers.IPv4
		ip6     layers.IPv6
		tcp     layers.TCP
		udp     layers.UDP
		decoded = make([]gopacket.LayerType, 0, 8)
		ports   int
	)
	parser := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet)
	parser.SetDecodingLayerContainer(gopacket.DecodingLayerSparse(nil))
	for _, l := range []gopacket.DecodingLayer{&eth, &ip4, &ip6, &tcp, &udp} {
		parser.AddDecodingLayer(l)
	}
	parser.IgnoreUnsupported = true
	return func(data []byte) (int, error) {
		r, err := pcapgo.NewReader(bytes.NewReader(data))
		if err != nil {
			return 0, err
		}
		n := 0
		for {
			pkt, _, err := r.ZeroCopyReadPacketData()
			if err == io.EOF {
				return n, nil
			}
			if err != nil {
				return n, err
			}
			parser.DecodeLayers(pkt, &decoded)
			ports += int(tcp.DstPort) // use the result
			n++
		}
	}
}

// newPathPass returns one pass of Vigil's path over data: reader,
// extractor and, with engine, baseline and engine with the network
// detectors. Each pass is shifted in time past the previous one, so
// windows keep closing in order; it returns the number of packets read.
func newPathPass(b *testing.B, data []byte, engine bool) func() int {
	reg := ingest.NewRegistry()
	x, err := packet.NewExtractor(ingest.DefaultPacketConfig(), packet.Options{Registry: reg})
	if err != nil {
		b.Fatal(err)
	}
	var eng *detect.Engine
	if engine {
		store := baseline.NewStore(baseline.DefaultConfig(), reg)
		dcfg := detect.DefaultConfig()
		net, err := detect.NewNetworkDetector(dcfg.Network, reg, store.CommSet("network", dcfg.Network.Learning))
		if err != nil {
			b.Fatal(err)
		}
		eng, err = detect.NewEngine(dcfg, detect.Deps{Registry: reg, Baseline: store, Sink: &discardSink{}, Extra: []detect.BatchDetector{net}})
		if err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	var p pcap.Packet
	var offset int64
	return func() int {
		r, err := pcap.NewReader(bytes.NewReader(data), "bench")
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		var last int64
		for r.Next(&p) == nil {
			p.TimeNanos += offset
			last = max(last, p.TimeNanos)
			x.Add(&p)
			n++
			for bt := x.TakeBatch(); bt != nil; bt = x.TakeBatch() {
				if eng == nil {
					bt.Release()
					continue
				}
				if err := eng.Process(ctx, bt); err != nil {
					b.Fatal(err)
				}
			}
		}
		offset = last + int64(time.Hour)
		return n
	}
}
