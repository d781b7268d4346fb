package drill

import (
	"testing"
	"time"

	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/sinks"
)

// TestParseAlertBothLayouts: the drill reads device, detector, state and
// the drill flag from the Kafka sink's JSON and ECS layouts alike, and a
// real alert is not a drill.
func TestParseAlertBothLayouts(t *testing.T) {
	a := detect.Alert{ID: "x", Device: "vigil-drill-r-0", Group: "drill/vigil-drill-r/unknown", Detector: detect.DetectorSelf,
		Behavior: metric, State: detect.StateAlarm, EventTime: time.Unix(1, 0)}
	real := a
	real.Group = "plant-a/s7"
	c := Canary{Name: "spike", Device: a.Device, Detector: detect.DetectorSelf}
	for name, enc := range map[string]func([]byte, *detect.Alert) []byte{"json": sinks.AppendAlertJSON, "ecs": sinks.AppendAlertECS} {
		got, ok := parseAlert(enc(nil, &a))
		if !ok || !got.matches(&c) {
			t.Errorf("%s: parsed %+v (%v); want the spike canary's drill alarm", name, got, ok)
		}
		if got, _ := parseAlert(enc(nil, &real)); got.Drill || got.matches(&c) {
			t.Errorf("%s: a real alert parsed as a drill: %+v", name, got)
		}
	}
	if _, ok := parseAlert([]byte(`{"schema_version":1,"action":"quarantine","device":"d"}`)); ok {
		t.Error("a quarantine event parsed as an alert")
	}
}
