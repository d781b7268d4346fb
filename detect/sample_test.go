package detect

import (
	"context"
	"encoding/csv"
	"errors"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/inventory"
	"github.com/vigil-ot/vigil/ingest/jsonl"
)

// TestFleetSample runs the engine with default settings (plus one static
// rule) over the bundled fleet sample (ingest/simulate/fleetgen): every
// labelled incident must raise an alarm of its detector on its device
// within its window, and no alarm may name a device or group without an
// incident.
func TestFleetSample(t *testing.T) {
	const dir = "../testdata/fleet/"
	if _, err := os.Stat(dir + "telemetry.jsonl.gz"); err != nil {
		t.Skip("fleet sample not present:", err)
	}
	if testing.Short() {
		t.Skip("replays 172k reports")
	}
	reg := ingest.NewRegistry()
	icfg := ingest.DefaultInventoryConfig()
	icfg.Path, icfg.ReloadInterval = dir+"inventory.csv", 0
	inv, err := inventory.Open(icfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	src, err := jsonl.Open([]string{dir + "telemetry.jsonl.gz"}, jsonl.Options{
		Telemetry: ingest.DefaultTelemetryConfig(), Registry: reg, Grouper: inv, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	cfg := DefaultConfig()
	cfg.Rules = []RuleConfig{{Name: "auth_failures", Metric: "auth_failures", ComparisonOperator: OpGreaterThan, Value: fptr(20), Duration: 5 * time.Minute}}
	sink := &collectSink{}
	eng, err := NewEngine(cfg, Deps{Registry: reg, Baseline: baseline.NewStore(baseline.DefaultConfig(), reg), Assets: inv, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for {
		b, err := src.ReadBatch(ctx)
		if errors.Is(err, io.EOF) {
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

	f, err := os.Open(dir + "labels.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	labels, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	incident := map[string]bool{}
	for _, l := range labels[1:] {
		detector, device := l[1], l[2]
		start, _ := time.Parse(time.RFC3339, l[3])
		end, _ := time.Parse(time.RFC3339, l[4])
		incident[device] = true
		found := false
		for _, a := range sink.find(detector, "", device, StateAlarm) {
			if !a.EventTime.Before(start) && a.EventTime.Before(end.Add(10*time.Minute)) {
				found = true
				t.Logf("%s: %s/%s at %s sev %d: %s", l[0], a.Detector, a.Behavior, a.EventTime.Format("15:04:05"), a.Severity, a.Message)
			}
		}
		if !found {
			t.Errorf("incident %s (%s on %s from %s) raised no alarm", l[0], detector, device, l[3])
		}
	}
	for _, a := range sink.alerts {
		if !incident[a.Device] && !incident[a.Group] && a.State == StateAlarm {
			t.Errorf("alarm on a clean device: %s %s/%s %s: %s", a.EventTime.Format(time.RFC3339), a.Detector, a.Behavior, a.Device, a.Message)
		}
	}
	st := eng.Stats()
	t.Logf("rows %d, alarms %v, cleared %d, not learned %d, rate-limited %d", st.Rows, st.Alerts, st.Cleared, st.NotLearned, st.RateLimited)
}
