package detect_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/detect/pipeline"
	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/simulate/fleetgen"
	"github.com/vigil-ot/vigil/sinks"
)

type collectSink struct{ alerts []detect.Alert }

func (c *collectSink) Write(_ context.Context, out *detect.Output) error {
	c.alerts = append(c.alerts, out.Alerts...)
	return nil
}
func (c *collectSink) Close() error { return nil }

// replayRollout generates the rollout variant and replays it through the
// pipeline vigil replay builds, with the default config and the rollout
// guard on, in batches of batchRows rows (0: the default).
func replayRollout(t *testing.T, variant string, batchRows int) (fleetgen.RolloutConfig, []detect.Alert) {
	t.Helper()
	c := fleetgen.DefaultRolloutConfig(variant)
	path := filepath.Join(t.TempDir(), "rollout.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fleetgen.GenerateRollout(c, f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := pipeline.Config{Inventory: ingest.DefaultInventoryConfig(), Telemetry: ingest.DefaultTelemetryConfig(),
		Packets: ingest.DefaultPacketConfig(), Baseline: baseline.DefaultConfig(), Detect: detect.DefaultConfig()}
	cfg.Detect.Rollout.Enabled = true
	if batchRows > 0 {
		cfg.Telemetry.BatchRows = batchRows
	}
	sink := &collectSink{}
	p, err := pipeline.New(cfg, pipeline.Deps{Sink: sink, NoNetwork: true})
	if err != nil {
		t.Fatal(err)
	}
	files, err := p.OpenFiles(cfg, []string{path}, nil, pipeline.FileOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer files.Close()
	if err := p.Run(context.Background(), files.Merged); err != nil {
		t.Fatal(err)
	}
	return c, sink.alerts
}

// TestRolloutBadAborts replays the bad rollout: the first wave's devices
// fail to authenticate, send fewer messages, and two go silent. The guard
// recommends the abort before the second wave starts, names both KPIs
// with the versions and cohorts, and names each silent device.
func TestRolloutBadAborts(t *testing.T) {
	c, alerts := replayRollout(t, fleetgen.RolloutBad, 0)
	waves := c.Waves()
	var abort *detect.Alert
	kpis := map[string]*detect.Alert{}
	silent := map[string]bool{}
	for i := range alerts {
		a := &alerts[i]
		if a.Detector != detect.DetectorRollout || a.State != detect.StateAlarm {
			continue
		}
		if a.Rollout == nil || a.Rollout.From != c.From() || a.Rollout.To != c.To() || a.Group != c.GroupName() {
			t.Errorf("rollout alert without the rollout's context: %+v", a)
			continue
		}
		t.Logf("%s %s %s %s: %s", a.EventTime.Format(time.TimeOnly), a.Behavior, a.Device, a.Rollout.KPI, a.Message)
		switch a.Behavior {
		case detect.BehaviorAbortRecommended:
			if abort == nil {
				abort = a
			}
		case detect.BehaviorKPIRegression:
			if kpis[a.Rollout.KPI] == nil {
				kpis[a.Rollout.KPI] = a
			}
		case detect.BehaviorUpgradedSilent:
			silent[a.Device] = true
		case detect.BehaviorRolloutHealthy:
			t.Errorf("a regressed rollout reported healthy: %s", a.Message)
		}
	}
	if abort == nil {
		t.Fatal("no abort_recommended")
	}
	if !abort.EventTime.Before(waves[1].Start) {
		t.Errorf("abort_recommended at %v, after the second wave started at %v", abort.EventTime, waves[1].Start)
	}
	for _, kpi := range []string{"auth_failures", "msgs_sent"} {
		a := kpis[kpi]
		if a == nil {
			t.Errorf("no kpi_regression on %s", kpi)
			continue
		}
		if a.EventTime.After(waves[1].Start) {
			t.Errorf("kpi_regression on %s at %v, after the second wave", kpi, a.EventTime)
		}
		bad := a.Rollout.EffectPercent >= 20
		if kpi == "msgs_sent" {
			bad = a.Rollout.EffectPercent <= -20
		}
		if !bad || !(a.Rollout.PValue < 0.01) || a.Rollout.Upgraded < 5 || a.Rollout.NotUpgraded < 5 {
			t.Errorf("kpi_regression on %s: effect %g%%, p %g, cohorts %d/%d", kpi, a.Rollout.EffectPercent, a.Rollout.PValue, a.Rollout.Upgraded, a.Rollout.NotUpgraded)
		}
	}
	for _, d := range c.SilentDevices() {
		if !silent[d] {
			t.Errorf("no upgraded_silent about %s", d)
		}
	}
	if len(silent) != len(c.SilentDevices()) {
		t.Errorf("upgraded_silent about %v, want only %v", silent, c.SilentDevices())
	}
}

// TestRolloutHealthyIsQuiet replays the healthy rollout (+10% traffic on
// the new firmware): no rollout alarm but healthy once it completes, and
// no self or peer alarm on an upgraded device (TestUpgradeIsNotAnAnomaly
// shows a change the self baseline would alarm on).
func TestRolloutHealthyIsQuiet(t *testing.T) {
	c, alerts := replayRollout(t, fleetgen.RolloutHealthy, 0)
	firstUpgrade := c.Waves()[0].Start
	healthy := 0
	for _, a := range alerts {
		if a.State != detect.StateAlarm {
			continue
		}
		switch {
		case a.Detector == detect.DetectorRollout && a.Behavior == detect.BehaviorRolloutHealthy:
			healthy++
			if a.EventTime.Before(c.Waves()[2].Start) {
				t.Errorf("healthy at %v, before the last wave", a.EventTime)
			}
			t.Logf("%s", a.Message)
		case a.Detector == detect.DetectorRollout:
			t.Errorf("rollout alarm on a healthy rollout: %s", a.Message)
		case (a.Detector == detect.DetectorSelf || a.Detector == detect.DetectorPeer) && !a.EventTime.Before(firstUpgrade):
			t.Errorf("%s alarm on %s after the rollout began: %s", a.Detector, a.Device, a.Message)
		}
	}
	if healthy != 1 {
		t.Errorf("%d healthy events, want 1", healthy)
	}
}

// TestRolloutBatchIndependent: the bad rollout cut into 1-row batches (a
// live stream) and into 4096-row batches (a replay) gives byte-identical
// alerts.
func TestRolloutBatchIndependent(t *testing.T) {
	encode := func(alerts []detect.Alert) []string {
		var lines []string
		for i := range alerts {
			lines = append(lines, string(sinks.AppendAlertJSON(nil, &alerts[i])))
		}
		return lines
	}
	_, one := replayRollout(t, fleetgen.RolloutBad, 1)
	_, many := replayRollout(t, fleetgen.RolloutBad, 4096)
	a, b := encode(one), encode(many)
	if !slices.Equal(a, b) {
		t.Fatalf("1-row batches gave %d alerts, 4096-row batches %d; first difference:\n%s", len(a), len(b), firstDifference(a, b))
	}
	rollouts := 0
	for _, x := range many {
		if x.Detector == detect.DetectorRollout {
			rollouts++
		}
	}
	if rollouts == 0 {
		t.Fatal("no rollout alert to compare")
	}
}

func firstDifference(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return a[i] + "\n" + b[i]
		}
	}
	return "(one is a prefix of the other)"
}
