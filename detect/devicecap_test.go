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

// TestDeviceCapEvictsIdle: max_devices 50 with when_full evict_idle. 50
// devices report for three hours; then 10 of them go quiet (one, dev-01,
// with a self alarm still open) and 9 new devices come: each takes the
// place of the device idle the longest that may be evicted, twenty
// minutes later (when the quiet ones are judged silent). The 9 quiet
// devices with only a silence alarm are evicted (their silence alarm is
// cleared, saying why), dev-01 keeps its place and its open alarm, the
// registry and the baseline stay at 50 devices, and the new devices are
// judged (a spike alarms). Then dev-03 returns, in the place of a new
// device that went quiet: it learns from scratch, so its spike is judged
// on its new samples only.
func TestDeviceCapEvictsIdle(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxDevices = 50
	cfg.WhenFull = WhenFullEvictIdle
	s := newSim(t, cfg, []string{"plant-a/line-0"}, 70, nil)
	name := func(i int) string { return s.devices[i].name }
	s.run(0, 180, func(m, i int, d *simDevice, r *ingest.Row) bool {
		if i == 1 && m >= 170 {
			r.Metrics[0].Value *= 12
		}
		return i < 50
	})
	if len(s.sink.find(DetectorSelf, "bytes_out", name(1), StateAlarm)) != 1 {
		t.Fatalf("no self alarm on %s's spike:\n%s", name(1), s.sink.dump())
	}
	s.run(180, 300, func(m, i int, d *simDevice, r *ingest.Row) bool {
		if i == 55 && m >= 290 {
			r.Metrics[0].Value *= 12
		}
		return i >= 10 && i < 50 || i >= 50 && i < 59 && m >= 200
	})
	st := s.eng.Stats()
	if st.DevicesEvicted != 9 || st.DeviceCapRows != 0 {
		t.Errorf("%d devices evicted, %d rows refused; want 9 and 0", st.DevicesEvicted, st.DeviceCapRows)
	}
	if n, slots := s.reg.NumDevices(), s.store.NumDevices(); n != 50 || slots != 50 {
		t.Errorf("registry holds %d devices, baseline %d; want 50 and 50", n, slots)
	}
	for i := range 59 {
		_, ok := s.reg.LookupDevice(name(i))
		if want := i == 1 || i >= 10; ok != want {
			t.Errorf("%s tracked: %v, want %v", name(i), ok, want)
		}
	}
	for i := range 10 {
		clears := s.sink.find(DetectorSilence, behaviorSilence, name(i), StateCleared)
		if i == 1 {
			if len(clears) != 0 || len(s.sink.find(DetectorSelf, "", name(i), StateCleared)) != 0 {
				t.Errorf("%s, tracked with an open alarm, had an alarm cleared:\n%s", name(i), s.sink.dump())
			}
			continue
		}
		if len(clears) != 1 || !strings.Contains(clears[0].Message, "evicted to make room for a new device") {
			t.Errorf("%s's silence alarm was not cleared as it was evicted: %+v", name(i), clears)
		}
	}
	if len(s.sink.find(DetectorSelf, "bytes_out", name(55), StateAlarm)) != 1 {
		t.Errorf("no self alarm on the new device %s's spike:\n%s", name(55), s.sink.dump())
	}

	before := len(s.sink.alerts)
	s.run(300, 400, func(m, i int, d *simDevice, r *ingest.Row) bool {
		if i == 3 && m >= 390 {
			r.Metrics[0].Value *= 12
		}
		switch {
		case i == 3:
			return m >= 310
		case i == 58:
			return m < 300
		}
		return i >= 10 && i < 58
	})
	if st := s.eng.Stats(); st.DevicesEvicted != 10 {
		t.Errorf("%d devices evicted, want 10 (%s for the returning %s)", st.DevicesEvicted, name(58), name(3))
	}
	if _, ok := s.reg.LookupDevice(name(58)); ok {
		t.Errorf("%s, the longest idle, was not evicted for %s", name(58), name(3))
	}
	var got []Alert
	for _, a := range s.sink.alerts[before:] {
		if a.Device == name(3) && a.Detector != DetectorPeer {
			got = append(got, a)
		}
	}
	// 80 reports since its return (310 to 390): a baseline kept from
	// before its eviction would have 260. (Its peers judge the spike too.)
	if len(got) != 1 || got[0].Detector != DetectorSelf || got[0].State != StateAlarm || got[0].SampleCount != 80 {
		t.Errorf("the returning %s: alerts %+v, want one self alarm judged on its 80 new samples", name(3), got)
	}
}
