package packet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/vigil-ot/vigil/ingest"
)

// writePcap writes Ethernet frames at the given offsets from t0.
func writePcap(t *testing.T, frames [][]byte, offsets []time.Duration) string {
	t.Helper()
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for i, f := range frames {
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, t0).Add(offsets[i]), CaptureLength: len(f), Length: len(f)}
		if err := w.WritePacket(ci, f); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "c.pcap")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReplayRowsAndProgress: a short Modbus exchange becomes rows per host
// and, with group_rows (off by default), per group for both windows, with
// the expected counters, and the progress reaches the file size.
func TestReplayRowsAndProgress(t *testing.T) {
	req := ether(ipTCP(t, "10.0.0.1", "10.0.0.2", 40000, 502, 1, "AP", modbusRead(1)))
	resp := ether(ipTCP(t, "10.0.0.2", "10.0.0.1", 502, 40000, 1, "AP", []byte{0, 1, 0, 0, 0, 5, 1, 3, 2, 0, 7}))
	path := writePcap(t, [][]byte{req, resp}, []time.Duration{0, time.Millisecond})
	cfg := ingest.DefaultPacketConfig()
	cfg.GroupRows = true
	src, err := OpenReplay(cfg, ReplayOptions{}, path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	type key struct{ device, metric string }
	got := map[key]float64{}
	members := map[string]bool{}
	for {
		b, err := src.ReadBatch(context.Background())
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rec := b.Record
		dev := rec.Column(1).(*array.String)
		for _, m := range b.Sets {
			members[dev.Value(int(m.Row))+" "+m.Set+"="+m.Value] = true
		}
		for c := ingest.NumFixedCols; c < int(rec.NumCols()); c++ {
			col := rec.Column(c).(*array.Float64)
			for r := 0; r < int(rec.NumRows()); r++ {
				if col.IsValid(r) {
					got[key{dev.Value(r), rec.ColumnName(c)}] = col.Value(r)
				}
			}
		}
		b.Release()
	}
	want := map[key]float64{
		{"10.0.0.1", "net_packets_out_10s"}:                1,
		{"10.0.0.1", "net_packets_in_1m"}:                  1,
		{"10.0.0.1", "net_ot_reads_10s"}:                   1,
		{"10.0.0.2", "net_ot_reads_1m"}:                    1,
		{"10.0.0.1", "net_dst_ports_10s"}:                  1,
		{"10.0.0.2", "net_packets_modbus_10s"}:             2,
		{"10.0.0.1", "net_flows_started_1m"}:               1,
		{"10.0.0.2", "net_flows_started_1m"}:               0,
		{"unmanaged/10.0.0.0/24/*", "net_packets_out_10s"}: 2,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s %s = %v (present %v), want %v", k.device, k.metric, g, ok, v)
		}
	}
	// Set members, as Device Defender reports carry them, for set rules.
	if len(members) != 2 || !members["10.0.0.1 remote_addrs=10.0.0.2"] || !members["10.0.0.2 listening_tcp_ports=502"] {
		t.Errorf("set members %v", members)
	}
	p := src.Progress()
	if p.BytesRead != p.TotalBytes || p.TotalBytes == 0 || p.Packets != 2 {
		t.Errorf("progress %+v", p)
	}
	sum := src.Summary()
	if len(sum.Edges) != 1 || sum.Edges[0].Protocol != "modbus" || len(sum.Edges[0].Functions) != 1 || sum.Edges[0].Functions[0] != "read_holding_registers" {
		t.Errorf("edges %+v", sum.Edges)
	}
}

// TestReplaySpeed paces a capture spanning one second at 10x: it takes
// about 100ms, and a cancelled context stops the wait.
func TestReplaySpeed(t *testing.T) {
	f := ether(ipTCP(t, "10.0.0.1", "10.0.0.2", 40000, 502, 1, "S", nil))
	path := writePcap(t, [][]byte{f, f}, []time.Duration{0, time.Second})
	src, err := OpenReplay(ingest.DefaultPacketConfig(), ReplayOptions{Speed: 10}, path)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		b, err := src.ReadBatch(context.Background())
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b.Release()
	}
	if d := time.Since(start); d < 90*time.Millisecond || d > 5*time.Second {
		t.Errorf("replay at 10x of 1s took %v", d)
	}
	src.Close()

	src, err = OpenReplay(ingest.DefaultPacketConfig(), ReplayOptions{Speed: 0.001}, path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := src.ReadBatch(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled paced replay returned %v", err)
	}
	if _, err := OpenReplay(ingest.DefaultPacketConfig(), ReplayOptions{Speed: -1}, path); err == nil {
		t.Error("negative speed accepted")
	}
}

// TestMetrics: the Prometheus counters add up to the summary after a
// replay, and two extractors on one set add up.
func TestMetrics(t *testing.T) {
	set := metrics.NewSet()
	var total int64
	for range 2 {
		src, err := OpenReplay(ingest.DefaultPacketConfig(), ReplayOptions{}, "../../testdata/pcap/dnp3_null_loopback.pcap")
		if err != nil {
			t.Fatal(err)
		}
		src.Extractor().RegisterMetrics(set, "test")
		for {
			b, err := src.ReadBatch(context.Background())
			if err != nil {
				break
			}
			b.Release()
		}
		total += src.Summary().Decoded
		src.Close()
	}
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	want := fmt.Sprintf(`vigil_packets_total{source="test",outcome="decoded"} %d`, total)
	if !strings.Contains(buf.String(), want) {
		t.Errorf("metrics lack %q:\n%s", want, buf.String())
	}
}
