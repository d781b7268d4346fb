package detect

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/ingest"
)

// TestDeviceCapRefusesNewDevices: a stream of 1000 distinct devices under
// max_devices 100. The first 100 are tracked and judged as usual (a spike
// of one of them alarms); the other 900 are refused where their names are
// interned: the registry holds 100 devices and only their group, their
// rows are counted and reported rejected with reason device_cap, neither
// judged nor learned, and a spike of one of them raises nothing.
func TestDeviceCapRefusesNewDevices(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxDevices = 100
	groups := make([]string, 10)
	for i := range groups {
		groups[i] = fmt.Sprintf("plant-a/line-%d", i)
	}
	s := newSim(t, cfg, groups, 100, nil)
	s.source = "telemetry"
	const minutes = 200
	s.warm(180)
	tracked, refused := s.devices[3].name, s.devices[500].name
	s.run(180, minutes, func(m, i int, d *simDevice, r *ingest.Row) bool {
		if (i == 3 || i == 500) && m >= 190 {
			r.Metrics[0].Value *= 12
		}
		return true
	})

	if n := s.reg.NumDevices(); n != 100 {
		t.Errorf("registry holds %d devices, want 100", n)
	}
	if n := s.reg.NumGroups(); n != 1 {
		t.Errorf("registry holds %d groups, want the tracked devices' one", n)
	}
	st := s.eng.Stats()
	if st.Rows != 100*minutes || st.DeviceCapRows != 900*minutes {
		t.Errorf("rows judged %d, refused %d; want %d and %d", st.Rows, st.DeviceCapRows, 100*minutes, 900*minutes)
	}
	if got := s.store.NumDevices(); got != 100 {
		t.Errorf("baseline holds %d devices, want 100", got)
	}
	if len(s.sink.find(DetectorSelf, "bytes_out", tracked, StateAlarm)) != 1 {
		t.Errorf("no self alarm on the tracked device %s's spike:\n%s", tracked, s.sink.dump())
	}
	for _, a := range s.sink.alerts {
		if a.Device != tracked {
			t.Errorf("alert on %s, want only %s's:\n%s", a.Device, tracked, s.sink.dump())
			break
		}
	}
	if len(s.rejected) != 900*minutes {
		t.Fatalf("%d rows reported rejected, want %d", len(s.rejected), 900*minutes)
	}
	var sawRefused bool
	for _, r := range s.rejected {
		if r.Reason != ingest.RejectDeviceCap || r.Source != "telemetry" || r.Offset <= 0 {
			t.Fatalf("rejected row %+v, want reason %s with its position", r, ingest.RejectDeviceCap)
		}
		sawRefused = sawRefused || strings.HasPrefix(r.Detail, fmt.Sprintf("device %q is new", refused))
	}
	if want := `device "plant-a-line-1-dev-00" is new and detect.max_devices (100) devices are tracked already`; s.rejected[0].Detail != want {
		t.Errorf("rejected row explained as %q, want %q", s.rejected[0].Detail, want)
	}
	if !sawRefused {
		t.Errorf("no rejected row of %s", refused)
	}
}

// findingDetector reports one finding on a device, as a network detector
// does for a host it sees.
type findingDetector struct{ device string }

func (f findingDetector) DetectBatch(b *ingest.Batch, out *Output) {
	out.Alerts = append(out.Alerts, Alert{EventTime: time.Unix(0, 1).UTC(), Device: f.device, Group: "plant-a/net",
		Detector: DetectorNovelty, Behavior: "new_edge", Message: "new edge"})
}

// TestDeviceCapKeepsFindings: a batch detector's finding on a device past
// max_devices is still sent (an alert is never dropped), but the device
// is not interned for it.
func TestDeviceCapKeepsFindings(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxDevices = 1
	s := newSim(t, cfg, nil, 0, nil)
	eng, err := NewEngine(cfg, Deps{Registry: s.reg, Baseline: s.store, Sink: s.sink, Extra: []BatchDetector{findingDetector{"10.0.0.66"}}})
	if err != nil {
		t.Fatal(err)
	}
	s.reg.DeviceID("plc-1")
	if err := eng.Process(context.Background(), ingest.NewBatch(nil, nil)); err != nil {
		t.Fatal(err)
	}
	if len(s.sink.find(DetectorNovelty, "new_edge", "10.0.0.66", StateAlarm)) != 1 {
		t.Errorf("the finding on a device past the cap was not sent:\n%s", s.sink.dump())
	}
	if n := s.reg.NumDevices(); n != 1 {
		t.Errorf("registry holds %d devices, want 1: the finding's device was interned", n)
	}
}
