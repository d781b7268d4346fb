package attackgen

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/inventory"
	"github.com/vigil-ot/vigil/ingest/packet"
)

// writeCapture generates the default scenario into a temporary file.
func writeCapture(t *testing.T) (string, Scenario, []Label) {
	t.Helper()
	s := DefaultScenario()
	var buf bytes.Buffer
	labels, err := Generate(&buf, s)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "attack.pcap")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, s, labels
}

// TestAttackCaptureRaisesEachAlert replays the crafted capture through the
// packet source and the network detectors: every labelled attack raises
// its alert with its technique and 5-tuple, and the clean period (learning
// included) raises none.
func TestAttackCaptureRaisesEachAlert(t *testing.T) {
	path, s, labels := writeCapture(t)
	pcfg := testPacketConfig()
	alerts, sum := runCapture(t, path, packet.Options{})
	attacksStart := s.Start.Add(s.Clean)
	for _, a := range alerts {
		if a.EventTime.Before(attacksStart) {
			t.Errorf("alert in the clean period: %s %s %s at %v: %s", a.Detector, a.Behavior, a.Device, a.EventTime, a.Message)
		}
	}
	for _, l := range labels {
		found := false
		for _, a := range alerts {
			if a.Detector != l.Detector || a.Behavior != l.Behavior || a.Device != l.Device {
				continue
			}
			// Window findings are stamped with the end of their window.
			if a.EventTime.Before(l.Start) || a.EventTime.After(l.End.Add(pcfg.Windows[0])) {
				continue
			}
			found = true
			if a.Technique != l.Technique {
				t.Errorf("%s: technique %q, want %q", l.Attack, a.Technique, l.Technique)
			}
			if l.Dst != "" && a.DstIP != l.Dst || l.Src != "" && a.SrcIP != l.Src {
				t.Errorf("%s: 5-tuple %s:%d -> %s:%d %s, want %s -> %s", l.Attack, a.SrcIP, a.SrcPort, a.DstIP, a.DstPort, a.Transport, l.Src, l.Dst)
			}
			if a.Transport != "tcp" {
				t.Errorf("%s: transport %q", l.Attack, a.Transport)
			}
		}
		if !found {
			t.Errorf("attack %s raised no %s/%s alert for %s", l.Attack, l.Detector, l.Behavior, l.Device)
		}
	}
	if sum.Stats.FlowsEvicted == 0 {
		t.Errorf("the flood evicted no flows: %+v", sum.Stats)
	}
	if sum.Malformed != 0 {
		t.Errorf("%d malformed packets in a clean crafted capture", sum.Malformed)
	}
	if testing.Verbose() {
		for _, a := range alerts {
			t.Logf("%v %s/%s %s %s %s:%d->%s:%d %s", a.EventTime.Format(time.TimeOnly), a.Detector, a.Behavior, a.Device, a.Technique, a.SrcIP, a.SrcPort, a.DstIP, a.DstPort, a.Message)
		}
		t.Logf("summary: %d packets, decoded %d, unknown %d, malformed %d; evicted flows %d hosts %d; assets %d edges %d",
			sum.Packets, sum.Decoded, sum.UnknownProtocol, sum.Malformed, sum.Stats.FlowsEvicted, sum.Stats.HostsEvicted, len(sum.Assets), len(sum.Edges))
	}
}

func testPacketConfig() ingest.PacketConfig {
	pcfg := ingest.DefaultPacketConfig()
	pcfg.MaxFlows = 4096 // the flood's 20000 spoofed flows must be evicted, not kept
	pcfg.MaxHosts = 4096
	return pcfg
}

// runCapture replays path through the packet source and a network
// detector that learns for 10 minutes.
func runCapture(t *testing.T, path string, opts packet.Options) ([]detect.Alert, packet.Summary) {
	t.Helper()
	if opts.Registry == nil {
		opts.Registry = ingest.NewRegistry()
	}
	src, err := packet.OpenReplay(testPacketConfig(), packet.ReplayOptions{Options: opts}, path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ncfg := detect.DefaultNetworkConfig()
	ncfg.Learning = 10 * time.Minute
	det, err := detect.NewNetworkDetector(ncfg, opts.Registry, nil)
	if err != nil {
		t.Fatal(err)
	}
	var alerts []detect.Alert
	var out detect.Output
	for {
		b, err := src.ReadBatch(context.Background())
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out.Reset()
		det.DetectBatch(b, &out)
		alerts = append(alerts, out.Alerts...)
		b.Release()
		b.Ack(context.Background(), nil)
	}
	return alerts, src.Summary()
}

// TestAttackCaptureWithInventory names the plant's hosts in an inventory:
// alerts carry inventory device names and groups. The scanner, which the
// inventory does not list, only sends SYNs and RSTs (a forged source does
// as much): it completes no conversation, so it is no asset and raises no
// new_asset or unknown_asset alert; its scan alarm is the incident.
func TestAttackCaptureWithInventory(t *testing.T) {
	path, s, _ := writeCapture(t)
	invPath := filepath.Join(t.TempDir(), "inventory.csv")
	os.WriteFile(invPath, []byte("device,ip,site\nhmi-1,"+HMI.ip.String()+",plant-a\nplc-1,"+PLC1.ip.String()+",plant-a\n"+
		"plc-2,"+PLC2.ip.String()+",plant-a\news-1,"+EWS.ip.String()+",plant-a\n"), 0o644)
	icfg := ingest.DefaultInventoryConfig()
	icfg.Path, icfg.ReloadInterval = invPath, 0
	inv, err := inventory.Open(icfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	alerts, sum := runCapture(t, path, packet.Options{Assets: inv})
	want := map[string]bool{
		"novelty/new_function:plc_stop/ews-1/plant-a":              false,
		"novelty/new_function:write_single_register/ews-1/plant-a": false,
		"scan/scan_ports/10.0.1.99/unmanaged/10.0.1.0/24":          false,
		"flood/flood/plc-1/plant-a":                                false,
	}
	for _, a := range alerts {
		if a.EventTime.Before(s.Start.Add(s.Clean)) {
			t.Errorf("alert in the clean period: %s/%s %s", a.Detector, a.Behavior, a.Device)
		}
		k := a.Detector + "/" + a.Behavior + "/" + a.Device + "/" + a.Group
		if a.Device == Scanner.ip.String() && a.Detector == "novelty" {
			t.Errorf("the scanner raised %s: its scan alarm is the incident", k)
		}
		if _, ok := want[k]; ok {
			want[k] = true
		}
	}
	for k, seen := range want {
		if !seen {
			t.Errorf("no alert %s", k)
		}
	}
	inInv := 0
	for _, a := range sum.Assets {
		if a.InInventory {
			inInv++
		}
		if a.Device == "plc-1" && (a.Role != "server" || a.OTRole != "outstation" || a.MAC == "") {
			t.Errorf("plc-1 discovered as %+v", a)
		}
		if a.Device == "hmi-1" && (a.Role != "client" || a.OTRole != "master") {
			t.Errorf("hmi-1 discovered as %+v", a)
		}
	}
	if inInv != 4 || len(sum.Assets) != 4 {
		t.Errorf("assets %d, %d in the inventory; want the plant's 4, all in the inventory", len(sum.Assets), inInv)
	}
}

// TestAttackCaptureIsDeterministic replays the capture twice: the alerts
// are identical.
func TestAttackCaptureIsDeterministic(t *testing.T) {
	path, _, _ := writeCapture(t)
	a1, s1 := runCapture(t, path, packet.Options{})
	a2, s2 := runCapture(t, path, packet.Options{})
	if len(a1) != len(a2) {
		t.Fatalf("%d alerts, then %d", len(a1), len(a2))
	}
	for i := range a1 {
		x, y := a1[i], a2[i]
		if x.EventTime != y.EventTime || x.Device != y.Device || x.Behavior != y.Behavior || x.Message != y.Message ||
			x.SrcIP != y.SrcIP || x.DstPort != y.DstPort || x.Observed != y.Observed {
			t.Errorf("alert %d differs:\n%+v\n%+v", i, x, y)
		}
	}
	if s1.Packets != s2.Packets || len(s1.Edges) != len(s2.Edges) || len(s1.Assets) != len(s2.Assets) {
		t.Errorf("summaries differ: %+v vs %+v", s1, s2)
	}
}

// collectSink is a detect.Sink that keeps what it is given.
type collectSink struct{ alerts []detect.Alert }

func (c *collectSink) Write(_ context.Context, out *detect.Output) error {
	c.alerts = append(c.alerts, out.Alerts...)
	return nil
}
func (c *collectSink) Close() error { return nil }

// TestAttackCaptureThroughEngine runs the whole path — packet source,
// baseline, every detector of the engine and the alarm lifecycle — over
// the crafted capture: each attack's alert reaches the sink and the clean
// period raises nothing.
func TestAttackCaptureThroughEngine(t *testing.T) {
	path, s, labels := writeCapture(t)
	dcfg := detect.DefaultConfig()
	dcfg.Network.Learning = 10 * time.Minute
	if err := dcfg.Validate(); err != nil {
		t.Fatal(err)
	}
	alerts := replayThroughEngine(t, path, testPacketConfig(), dcfg, nil)
	for _, a := range alerts {
		if a.EventTime.Before(s.Start.Add(s.Clean)) {
			t.Errorf("alert in the clean period: %s/%s %s %v: %s", a.Detector, a.Behavior, a.Device, a.EventTime, a.Message)
		}
	}
	for _, l := range labels {
		found := false
		for _, a := range alerts {
			if a.Detector == l.Detector && a.Behavior == l.Behavior && a.Device == l.Device && a.Technique == l.Technique {
				found = true
			}
		}
		if !found {
			t.Errorf("attack %s: no %s/%s alert for %s reached the sink", l.Attack, l.Detector, l.Behavior, l.Device)
		}
	}
	if testing.Verbose() {
		for _, a := range alerts {
			t.Logf("%v %s/%s %s sev %d %s", a.EventTime.Format(time.TimeOnly), a.Detector, a.Behavior, a.Device, a.Severity, a.Message)
		}
	}
}

// replayThroughEngine replays the capture at path through the packet
// source (records allocated by mem; nil: the extractor's own), the
// baseline and every detector of the engine, and returns the alerts.
func replayThroughEngine(t *testing.T, path string, pcfg ingest.PacketConfig, dcfg detect.Config, mem memory.Allocator) []detect.Alert {
	t.Helper()
	reg := ingest.NewRegistry()
	store := baseline.NewStore(baseline.DefaultConfig(), reg)
	net, err := detect.NewNetworkDetector(dcfg.Network, reg, store.CommSet("network", dcfg.Network.Learning))
	if err != nil {
		t.Fatal(err)
	}
	sink := &collectSink{}
	eng, err := detect.NewEngine(dcfg, detect.Deps{Registry: reg, Baseline: store, Sink: sink, Extra: []detect.BatchDetector{net}})
	if err != nil {
		t.Fatal(err)
	}
	src, err := packet.OpenReplay(pcfg, packet.ReplayOptions{Options: packet.Options{Registry: reg, Mem: mem}}, path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx := context.Background()
	for {
		b, err := src.ReadBatch(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.Process(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := eng.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return sink.alerts
}
