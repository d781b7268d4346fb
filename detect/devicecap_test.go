package detect

import (
	"bytes"
	"context"
	"fmt"
	"slices"
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

// TestDeviceCapEvictCheckpoint: a checkpoint written after evictions holds
// the devices tracked and none evicted, so a restore brings back no
// ghost. A checkpoint with more devices than max_devices is restored
// whole; with evict_idle the first new device then evicts the longest
// idle down to the cap (and takes a place), with refuse it is refused.
func TestDeviceCapEvictCheckpoint(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxDevices = 30
	cfg.WhenFull = WhenFullEvictIdle
	s := newSim(t, cfg, []string{"plant-a/line-0"}, 40, nil)
	// devices 0-29 for an hour, then 10-39: 0-9 make room for 30-39
	s.run(0, 120, func(m, i int, d *simDevice, r *ingest.Row) bool { return m < 60 && i < 30 || m >= 60 && i >= 10 })
	if st := s.eng.Stats(); st.DevicesEvicted != 10 {
		t.Fatalf("%d devices evicted, want 10", st.DevicesEvicted)
	}
	var buf bytes.Buffer
	if err := s.store.Checkpoint(&buf, nil); err != nil {
		t.Fatal(err)
	}
	restore := func(cfg Config) *sim {
		r := newSim(t, cfg, []string{"plant-a/line-0"}, 41, nil)
		if _, err := r.store.Restore(bytes.NewReader(buf.Bytes())); err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := restore(cfg)
	for i := range 40 {
		if _, ok := r.reg.LookupDevice(s.devices[i].name); ok != (i >= 10) {
			t.Errorf("restored registry has %s: %v, want %v", s.devices[i].name, ok, i >= 10)
		}
	}

	small := cfg
	small.MaxDevices = 20
	r = restore(small)
	if n := r.reg.NumDevices(); n != 30 {
		t.Fatalf("%d devices restored under max_devices 20, want all 30", n)
	}
	// devices 10-39 last reported at minute 119; 20-39 report at 120, then
	// a new device, 40, comes at 121
	r.run(120, 122, func(m, i int, d *simDevice, r *ingest.Row) bool {
		return m == 120 && i >= 20 && i < 40 || m == 121 && i == 40
	})
	if n, st := r.reg.NumDevices(), r.eng.Stats(); n != 20 || st.DevicesEvicted != 11 || st.DeviceCapRows != 0 {
		t.Errorf("%d devices tracked, %d evicted, %d rows refused; want 20, 11 and 0", n, st.DevicesEvicted, st.DeviceCapRows)
	}
	// the ten quiet since minute 119 and one of those of minute 120 (the
	// earliest there) are evicted
	gone := 0
	for i := 10; i <= 40; i++ {
		_, ok := r.reg.LookupDevice(r.devices[i].name)
		switch {
		case i < 20 || i == 40:
			if ok != (i == 40) {
				t.Errorf("%s tracked: %v, want %v", r.devices[i].name, ok, i == 40)
			}
		case !ok:
			gone++
		}
	}
	if gone != 1 {
		t.Errorf("%d of the devices of minute 120 evicted, want 1", gone)
	}

	small.WhenFull = WhenFullRefuse
	r = restore(small)
	r.run(120, 122, func(m, i int, d *simDevice, r *ingest.Row) bool {
		return m == 120 && i >= 20 && i < 40 || m == 121 && i == 40
	})
	if n, st := r.reg.NumDevices(), r.eng.Stats(); n != 30 || st.DevicesEvicted != 0 || st.DeviceCapRows != 1 {
		t.Errorf("refuse: %d devices tracked, %d evicted, %d rows refused; want 30, 0 and 1", n, st.DevicesEvicted, st.DeviceCapRows)
	}
}

// TestDeviceCapEvictKeepsAlarmed: with evict_idle, when every device
// tracked has an open alarm (a quarantine would hold it the same way), a
// new device is refused as with refuse, and said why.
func TestDeviceCapEvictKeepsAlarmed(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxDevices = 3
	cfg.WhenFull = WhenFullEvictIdle
	s := newSim(t, cfg, []string{"plant-a/line-0"}, 4, nil)
	s.run(0, 200, func(m, i int, d *simDevice, r *ingest.Row) bool {
		if m >= 170 {
			r.Metrics[0].Value *= 12 // alarms that stay open
		}
		return i < 3 || m == 199
	})
	for i := range 3 {
		if len(s.sink.find(DetectorSelf, "bytes_out", s.devices[i].name, StateAlarm)) != 1 {
			t.Fatalf("no self alarm on %s:\n%s", s.devices[i].name, s.sink.dump())
		}
	}
	if st := s.eng.Stats(); st.DevicesEvicted != 0 || st.DeviceCapRows != 1 {
		t.Errorf("%d devices evicted, %d rows refused; want 0 and 1", st.DevicesEvicted, st.DeviceCapRows)
	}
	if len(s.rejected) != 1 || !strings.Contains(s.rejected[0].Detail, "have open alarms or quarantines") {
		t.Errorf("rejected %+v, want the new device's row, explained", s.rejected)
	}
}

// TestDeviceCapEvictIndependentOfBatches: with evict_idle, how the input
// is cut into batches changes no alert, not even a baseline version:
// devices are evicted and admitted row by row, against the state as of
// that row.
func TestDeviceCapEvictIndependentOfBatches(t *testing.T) {
	run := func(batchMinutes int) (string, Stats) {
		cfg := DefaultConfig()
		cfg.MaxDevices = 50
		cfg.WhenFull = WhenFullEvictIdle
		s := newSim(t, cfg, []string{"plant-a/line-0"}, 70, nil)
		s.batchMinutes = batchMinutes
		s.run(0, 300, func(m, i int, d *simDevice, r *ingest.Row) bool {
			if (i == 1 && m >= 170 && m < 180) || (i == 55 && m >= 290) {
				r.Metrics[0].Value *= 12
			}
			switch {
			case i < 10:
				return m < 180 || i == 3 && m >= 250
			case i < 50:
				return true
			}
			return i < 60 && m >= 200 && m < 280+i%5
		})
		var b strings.Builder
		for _, a := range s.sink.alerts {
			fmt.Fprintf(&b, "%+v\n", a)
		}
		return b.String(), s.eng.Stats()
	}
	one, st := run(1)
	if st.DevicesEvicted < 10 {
		t.Fatalf("%d devices evicted, want 10 or more", st.DevicesEvicted)
	}
	if !strings.Contains(one, "evicted to make room") {
		t.Fatalf("no eviction's clear in the output:\n%s", one)
	}
	for _, minutes := range []int{7, 60} {
		if got, gst := run(minutes); got != one || gst.DevicesEvicted != st.DevicesEvicted {
			t.Errorf("batches of %d minutes: %d evicted, output\n%s\nwant (1-minute batches, %d evicted)\n%s", minutes, gst.DevicesEvicted, got, st.DevicesEvicted, one)
		}
	}
}

// TestDeviceCapEvictKeepsQuarantined: with evict_idle, a device whose
// alarm has cleared but whose quarantine is not released yet is not
// evicted, though it is idle the longest: the quarantine stays until its
// release. The device idle the longest after it makes room.
func TestDeviceCapEvictKeepsQuarantined(t *testing.T) {
	cfg := quarantineConfig()
	cfg.MaxDevices = 10
	cfg.WhenFull = WhenFullEvictIdle
	s := newSim(t, cfg, twoGroups[:1], 11, nil)
	quarantined := s.devices[2].name
	s.run(0, 40, func(m, i int, d *simDevice, r *ingest.Row) bool {
		if i == 2 && m >= 10 && m < 13 {
			r.Metrics[3].Value = 99
		}
		switch i {
		case 2:
			return m < 15 // two clean reports clear the alarm; four would release it
		case 7:
			return m < 20
		case 10:
			return m >= 30
		}
		return true
	})
	if len(s.sink.quarantine) != 1 || s.sink.quarantine[0].Device != quarantined || s.sink.quarantine[0].Action != ActionQuarantine {
		t.Fatalf("quarantine events:\n%s", s.sink.dump())
	}
	if len(s.sink.find(DetectorRule, "", quarantined, StateCleared)) != 1 {
		t.Fatalf("the alarm of %s did not clear:\n%s", quarantined, s.sink.dump())
	}
	if _, ok := s.reg.LookupDevice(quarantined); !ok {
		t.Errorf("the quarantined %s was evicted", quarantined)
	}
	if st := s.eng.Stats(); st.DevicesEvicted != 1 || st.DeviceCapRows != 0 {
		t.Errorf("%d devices evicted, %d rows refused; want 1 and 0", st.DevicesEvicted, st.DeviceCapRows)
	}
	if _, ok := s.reg.LookupDevice(s.devices[7].name); ok {
		t.Errorf("%s, idle the longest but for the quarantined one, was not evicted", s.devices[7].name)
	}
	if _, ok := s.reg.LookupDevice(s.devices[10].name); !ok {
		t.Errorf("the new device %s is not tracked", s.devices[10].name)
	}
}

// TestDeviceCapEvictedInStatus: the status update after an eviction names
// the evicted device (the shared console's topic gets a tombstone for it),
// once.
func TestDeviceCapEvictedInStatus(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxDevices = 10
	cfg.WhenFull = WhenFullEvictIdle
	s := newSim(t, cfg, twoGroups[:1], 11, nil)
	rec := &statusRecorder{}
	s.eng.PublishStatus(rec, 0, 0, 0) // every batch
	s.run(0, 40, func(m, i int, d *simDevice, r *ingest.Row) bool {
		switch i {
		case 7:
			return m < 20
		case 10:
			return m >= 30
		}
		return true
	})
	if want := []string{s.devices[7].name}; !slices.Equal(rec.evicted, want) {
		t.Fatalf("status updates named %v evicted, want %v", rec.evicted, want)
	}
}

// TestDeviceCapRejectedNameOutlivesRecord: a refused row's device name,
// reported with the rejected row, stays its own after the record is
// released and its buffers, recycled, hold the next record's names.
func TestDeviceCapRejectedNameOutlivesRecord(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxDevices = 1
	s := newSim(t, cfg, nil, 0, nil)
	builder := ingest.NewObservationBuilder(ingest.NewRecyclingAllocator(), s.reg, nil)
	var rejected []ingest.RejectedRow
	for k, forged := range []string{"forged-A", "forged-B"} {
		for i, name := range []string{"plc-1", forged} {
			builder.Append(&ingest.Row{TimeNanos: simEpoch.UnixNano() + int64(k), Device: name, Group: "plant-a",
				Offset: int64(2*k + i + 1), Metrics: []ingest.Metric{{Name: "bytes_out", Value: 1}}})
		}
		rec, _ := builder.NewRecord()
		b := ingest.NewBatch(rec, nil)
		if err := s.eng.Process(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		rejected = append(rejected, b.Rejected...) // Process released the record
	}
	if len(rejected) != 2 || rejected[0].Device != "forged-A" || rejected[1].Device != "forged-B" {
		t.Errorf("rejected rows %+v, want forged-A's then forged-B's", rejected)
	}
}
