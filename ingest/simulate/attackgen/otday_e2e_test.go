package attackgen

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/detect/pipeline"
	"github.com/vigil-ot/vigil/detect/score"
	"github.com/vigil-ot/vigil/ingest"
)

// otDaySlack widens each attack's window when alarms are matched to it:
// window findings are stamped with the end of their window, and the slow
// scan, sweep and reconnaissance rules count over a long window
// (packets.scan_window_long, 15 minutes by default), so their alarm may
// come up to that long after the attack's last packet. Every label names
// a device of its own, so a widened window cannot take a neighbour's
// alarm.
const otDaySlack = 15 * time.Minute

// TestOTDayDetections replays the OT day (3 hours clean) through the
// engine as vigil replay does (detect/pipeline, default config) and
// scores the alerts against the labels with detect/score, as vigil score
// does: every attack is one incident, detected by an alarm of its label's
// detector and behavior about its device, and after the network
// detectors' learning period no alarm falls outside an attack.
func TestOTDayDetections(t *testing.T) {
	c := otDayTestCapture(t)
	s := testOTDay()
	path := filepath.Join(t.TempDir(), "otday.pcap")
	if err := os.WriteFile(path, c.data, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := pipeline.Config{Inventory: ingest.DefaultInventoryConfig(), Telemetry: ingest.DefaultTelemetryConfig(),
		Packets: ingest.DefaultPacketConfig(), Baseline: baseline.DefaultConfig(), Detect: detect.DefaultConfig()}
	sink := &collectSink{}
	p, err := pipeline.New(cfg, pipeline.Deps{Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	files, err := p.OpenFiles(cfg, nil, []string{path}, pipeline.FileOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer files.Close()
	if err := p.Run(context.Background(), files.Merged); err != nil {
		t.Fatal(err)
	}

	var labels bytes.Buffer
	if err := WriteLabels(&labels, c.labels); err != nil {
		t.Fatal(err)
	}
	incidents, err := score.ParseIncidents("otday.labels.csv", &labels)
	if err != nil {
		t.Fatal(err)
	}
	learned := s.Start.Add(cfg.Detect.Network.Learning)
	rep := score.Score(sink.alerts, incidents, nil, score.Options{Slack: otDaySlack, LearnUntil: func(string) time.Time { return learned }})
	alarms := score.Alarms(sink.alerts)
	for _, res := range rep.Incidents {
		if !res.Detected {
			t.Errorf("%s (%s/%s about %s) missed", res.Kind, res.Detector, res.Behavior, res.Device)
			continue
		}
		if !raisedBy(alarms, res.Incident) {
			t.Errorf("%s: detected by %s/%s, but no %s/%s alarm about %s", res.Kind, res.By.Detector, res.By.Behavior, res.Detector, res.Behavior, res.Device)
		}
	}
	// The clean day raises nothing after learning. During the attacks,
	// the victims' own traffic changes (they answer the sweeps, the flood,
	// the enumeration): their self and peer alarms are the attacks'
	// collateral, not false, but a network finding about anything the
	// labels do not name is.
	attacksFrom := c.labels[0].Start
	collateral := 0
	for _, a := range rep.FalseAlarmList {
		switch a.Detector {
		case detect.DetectorSelf, detect.DetectorPeer, detect.DetectorJoint, detect.DetectorFleet:
			if !a.Raised.Before(attacksFrom) {
				collateral++
				continue
			}
		}
		t.Errorf("false alarm at %v: %s/%s about %s: %s", a.Raised.Format(time.TimeOnly), a.Detector, a.Behavior, a.Device, a.Message)
	}
	t.Logf("%d of %d attacks detected; %d statistical alarms on the attacks' victims", rep.IncidentsDetected, rep.IncidentsTotal, collateral)
	if testing.Verbose() {
		for _, a := range alarms {
			t.Logf("%v %s/%s %s: %s", a.Raised.Format(time.TimeOnly), a.Detector, a.Behavior, a.Device, a.Message)
		}
	}
}

// raisedBy reports whether an alarm of the incident's detector and
// behavior about its device was raised in its window widened by the slack.
func raisedBy(alarms []score.Alarm, inc score.Incident) bool {
	for _, a := range alarms {
		if a.Device == inc.Device && a.Detector == inc.Detector && a.Behavior == inc.Behavior &&
			!a.Raised.Before(inc.Start.Add(-otDaySlack)) && !a.Raised.After(inc.End.Add(otDaySlack)) {
			return true
		}
	}
	return false
}
