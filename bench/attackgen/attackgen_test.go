package attackgen

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/ingest"
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
	pcfg := ingest.DefaultPacketConfig()
	pcfg.MaxFlows = 4096 // the flood's 20000 spoofed flows must be evicted, not kept
	pcfg.MaxHosts = 4096
	src, err := packet.OpenReplay(pcfg, packet.ReplayOptions{}, path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	reg := ingest.NewRegistry()
	ncfg := detect.DefaultNetworkConfig()
	ncfg.Learning = 10 * time.Minute
	det, err := detect.NewNetworkDetector(ncfg, reg, nil)
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
	sum := src.Summary()
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
