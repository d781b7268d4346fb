package detect

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/ingest"
)

// TestEngineHoldsOnlyDevicesItJudges: the engine keeps per-device state
// (device state, level-shift charts) for the devices it judges, in pages
// by a dense local id, however their registry ids are spread: an engine
// shard judges the devices of its own groups among every device of the
// registry. State by registry id would fill a page for each of them here
// (50 devices, 2,000 ids apart).
func TestEngineHoldsOnlyDevicesItJudges(t *testing.T) {
	reg := ingest.NewRegistry()
	for d := range 100_000 {
		reg.DeviceID(fmt.Sprintf("dev-%06d", d))
	}
	eng, err := NewEngine(DefaultConfig(), Deps{Registry: reg, Baseline: baseline.NewStore(testBaselineConfig(), reg), Sink: &discardSink{}})
	if err != nil {
		t.Fatal(err)
	}
	builder := ingest.NewObservationBuilder(nil, reg, nil)
	var row ingest.Row
	for m := range 80 { // 50 devices spread over the ids, a report a minute
		for k := range 50 {
			row.Reset()
			row.TimeNanos = simEpoch.Add(time.Duration(m)*time.Minute + time.Duration(k)*time.Second).UnixNano()
			row.Device, row.Group = fmt.Sprintf("dev-%06d", 2000*k), "g"
			row.Metrics = append(row.Metrics, ingest.Metric{Name: "bytes_out", Value: float64(1000 + (m+k)%7)})
			builder.Append(&row)
		}
	}
	rec, _ := builder.NewRecord()
	if err := eng.Process(context.Background(), ingest.NewBatch(rec, nil)); err != nil {
		t.Fatal(err)
	}
	if n := eng.devices.n; n != 50 {
		t.Errorf("the engine holds %d devices, want 50", n)
	}
	if b := eng.devices.states.Bytes(); b > 2*ingest.DevicePage*200 {
		t.Errorf("50 devices' states take %d bytes, want one page", b)
	}
	if len(eng.shift) == 0 {
		t.Fatal("no level-shift charts: the test judges nothing of them")
	}
	for slot := range eng.shift {
		if b := eng.shift[slot].Bytes(); b > 2*ingest.DevicePage*20 {
			t.Errorf("50 devices' level-shift charts of metric slot %d take %d bytes, want one page", slot, b)
		}
	}
	if ds := eng.knownState(reg.DeviceID("dev-098000")); ds == nil || ds.last == 0 {
		t.Error("a judged device has no state")
	}
	if eng.knownState(reg.DeviceID("dev-000001")) != nil {
		t.Error("a device never judged has state")
	}
}
