package detect

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/ingest"
)

// alarmScenario: device 7 reports from two alternating addresses from
// minute 30 to 40 (an identity alarm that clears ten minutes later),
// device 3 stops reporting from minute 35 to 50 (a silence alarm that
// clears when it is back). At minute 45 both alarms are open.
func alarmScenario(s *sim) mutator {
	return func(m, i int, d *simDevice, r *ingest.Row) bool {
		r.SrcIP = s.stable("10.0.0." + itoa(i))
		if i == 7 && m >= 30 && m < 40 && m%2 == 1 {
			r.SrcIP = "10.9.9.9"
		}
		return !(i == 3 && m >= 35 && m < 50)
	}
}

func alarmScenarioConfig() Config {
	cfg := DefaultConfig()
	cfg.Quarantine.Enabled = true
	cfg.Quarantine.RecommendMinSeverity = 1
	return cfg
}

// moveDevices hands every device of s to a new engine and baseline store,
// as a partition moving to another instance does through the changelog:
// the baseline state of each device and group and, when alarms is set, the
// engine's alarm state of each device.
func moveDevices(t *testing.T, s *sim, alarms bool) {
	t.Helper()
	store := baseline.NewStore(testBaselineConfig(), s.reg)
	var groups []string
	for _, g := range s.store.Groups(groups) {
		data, err := s.store.MarshalGroup(nil, g)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.AbsorbGroup(g, data); err != nil {
			t.Fatal(err)
		}
	}
	for i := range s.devices {
		data, err := s.store.MarshalDevice(nil, s.devices[i].name)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.UnmarshalDevice(s.devices[i].name, data); err != nil {
			t.Fatal(err)
		}
	}
	eng, err := NewEngine(alarmScenarioConfig(), Deps{Registry: s.reg, Baseline: store, Sink: s.sink})
	if err != nil {
		t.Fatal(err)
	}
	if alarms {
		for i := range s.devices {
			data, err := s.eng.MarshalDeviceAlarms(nil, s.devices[i].name)
			if err != nil {
				t.Fatal(err)
			}
			if err := eng.UnmarshalDeviceAlarms(s.devices[i].name, data); err != nil {
				t.Fatal(err)
			}
			d := s.reg.DeviceID(s.devices[i].name)
			if got, want := eng.devices.At(d).alarms, s.eng.devices.At(d).alarms; got != want {
				t.Errorf("%s: %d active alarms after the move, %d before", s.devices[i].name, got, want)
			}
		}
	}
	s.store, s.eng = store, eng
}

// alarmLedger checks that every alarm of alerts has exactly one clear
// (alarms of behaviors in open may stay open) and returns the set of ids.
func alarmLedger(alerts []Alert) (ids []string, problems []string) {
	raised, clears := map[string]int{}, map[string]int{}
	for _, a := range alerts {
		ids = append(ids, a.ID)
		key := a.Detector + "/" + a.Behavior + "/" + a.Device + "@" + a.AlarmStart.String()
		if a.State == StateCleared {
			clears[key]++
		} else {
			raised[key]++
		}
	}
	for k, n := range raised {
		if n != 1 {
			problems = append(problems, fmt.Sprintf("%s raised %d times", k, n))
		}
		if clears[k] != 1 {
			problems = append(problems, fmt.Sprintf("%s cleared %d times", k, clears[k]))
		}
	}
	for k, n := range clears {
		if raised[k] == 0 {
			problems = append(problems, fmt.Sprintf("%s cleared %d times, never raised", k, n))
		}
	}
	slices.Sort(ids)
	slices.Sort(problems)
	return ids, problems
}

// TestDeviceAlarmsMoveWithTheDevice: devices that move to another engine
// with their alarm state while an identity and a silence alarm are open
// raise the alerts one engine raises, under the same ids: the open alarms
// are cleared once, by the new engine, and not raised again.
func TestDeviceAlarmsMoveWithTheDevice(t *testing.T) {
	ref := newSim(t, alarmScenarioConfig(), twoGroups[:1], 16, nil)
	ref.run(0, 80, alarmScenario(ref))
	wantIDs, problems := alarmLedger(ref.sink.alerts)
	if len(problems) > 0 {
		t.Fatalf("one engine: %s\n%s", strings.Join(problems, "\n"), ref.sink.dump())
	}
	for _, det := range []string{DetectorIdentity, DetectorSilence} {
		if len(ref.sink.find(det, "", "", StateAlarm)) != 1 || len(ref.sink.find(det, "", "", StateCleared)) != 1 {
			t.Fatalf("the scenario wants one %s alarm and its clear:\n%s", det, ref.sink.dump())
		}
	}
	if len(ref.sink.quarantine) == 0 {
		t.Fatalf("the scenario wants a quarantine recommendation:\n%s", ref.sink.dump())
	}

	s := newSim(t, alarmScenarioConfig(), twoGroups[:1], 16, nil)
	s.run(0, 45, alarmScenario(s))
	for _, det := range []string{DetectorIdentity, DetectorSilence} {
		if len(s.sink.find(det, "", "", StateAlarm)) != 1 || len(s.sink.find(det, "", "", StateCleared)) != 0 {
			t.Fatalf("the %s alarm should be open at the move:\n%s", det, s.sink.dump())
		}
	}
	moveDevices(t, s, true)
	s.run(45, 80, alarmScenario(s))
	ids, problems := alarmLedger(s.sink.alerts)
	for _, p := range problems {
		t.Errorf("moved: %s", p)
	}
	if !slices.Equal(ids, wantIDs) {
		t.Errorf("moved: alert ids differ from one engine's\n got %v\nwant %v\n%s", ids, wantIDs, s.sink.dump())
	}
	if got, want := len(s.sink.quarantine), len(ref.sink.quarantine); got != want {
		t.Errorf("moved: %d quarantine events, one engine %d:\n%s", got, want, s.sink.dump())
	}
}

// TestDeviceAlarmsEncoding: the encoding round-trips (the same bytes
// again), an unknown device is an empty state, and every truncation or a
// wrong version is an error that leaves the device as new.
func TestDeviceAlarmsEncoding(t *testing.T) {
	s := newSim(t, alarmScenarioConfig(), twoGroups[:1], 16, nil)
	s.run(0, 45, alarmScenario(s))
	for _, i := range []int{3, 7} {
		name := s.devices[i].name
		data, err := s.eng.MarshalDeviceAlarms(nil, name)
		if err != nil {
			t.Fatal(err)
		}
		other, err := NewEngine(alarmScenarioConfig(), Deps{Registry: s.reg, Baseline: s.store, Sink: &collectSink{}})
		if err != nil {
			t.Fatal(err)
		}
		if err := other.UnmarshalDeviceAlarms(name, data); err != nil {
			t.Fatal(err)
		}
		again, _ := other.MarshalDeviceAlarms(nil, name)
		if string(again) != string(data) {
			t.Errorf("%s: round trip changed the encoding:\n%x\n%x", name, data, again)
		}
		for n := 0; n < len(data); n++ {
			if err := other.UnmarshalDeviceAlarms(name, data[:n]); err == nil {
				t.Errorf("%s: %d of %d bytes accepted", name, n, len(data))
			}
			if other.knownState(s.reg.DeviceID(name)) != nil {
				t.Fatalf("%s: a refused record left state behind", name)
			}
		}
		bad := append([]byte{deviceAlarmsVersion + 1}, data[1:]...)
		if err := other.UnmarshalDeviceAlarms(name, bad); err == nil {
			t.Errorf("%s: another version accepted", name)
		}
	}
	empty, _ := s.eng.MarshalDeviceAlarms(nil, "never-seen")
	if len(empty) != 2 {
		t.Errorf("unknown device encodes as %x", empty)
	}
}

// FuzzDeviceAlarms: any record is refused or restored without a panic,
// and what is restored encodes to a record that restores to itself.
func FuzzDeviceAlarms(f *testing.F) {
	s := newSim(f, alarmScenarioConfig(), twoGroups[:1], 16, nil)
	s.run(0, 45, alarmScenario(s))
	for _, i := range []int{0, 3, 7} {
		data, err := s.eng.MarshalDeviceAlarms(nil, s.devices[i].name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte{deviceAlarmsVersion, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		eng, err := NewEngine(alarmScenarioConfig(), Deps{Registry: s.reg, Baseline: s.store, Sink: &collectSink{}})
		if err != nil {
			t.Fatal(err)
		}
		const name = "fuzzed-device"
		if eng.UnmarshalDeviceAlarms(name, data) != nil {
			return
		}
		once, err := eng.MarshalDeviceAlarms(nil, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.UnmarshalDeviceAlarms(name, once); err != nil {
			t.Fatalf("a restored state does not restore again: %v", err)
		}
		if twice, _ := eng.MarshalDeviceAlarms(nil, name); string(twice) != string(once) {
			t.Fatalf("restoring changed the state:\n%x\n%x", once, twice)
		}
	})
}
