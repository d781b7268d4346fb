package detect

import (
	"strings"
	"testing"

	"github.com/vigil-ot/vigil/ingest"
)

// TestFleetRestartsWhenMembersMove: a rebalance moves the partition of
// half of a group's devices to another instance (the consumer forgets
// them here, ForgetDevice). This instance now counts half the messages of
// the group in every window: that is not the group sending less, and a
// fleet alarm raised on it could never clear while the devices stay away.
// The group's fleet KPIs start learning again from the devices this
// instance still judges, and nothing is raised.
func TestFleetRestartsWhenMembersMove(t *testing.T) {
	s := newSim(t, DefaultConfig(), twoGroups, 12, nil)
	s.partition = func(i int) int32 { return int32(i % 2) }
	s.warm(150)
	for i := range s.devices {
		if i%2 == 1 {
			s.eng.ForgetDevice(s.devices[i].name)
		}
	}
	s.run(150, 260, func(_, i int, _ *simDevice, _ *ingest.Row) bool { return i%2 == 0 })
	if n := len(s.sink.find(DetectorFleet, "", "", "")); n != 0 {
		t.Fatalf("moving half of each group to another instance raised %d fleet alerts:\n%s", n, s.sink.dump())
	}
}

// TestFleetAlarmClearedWhenMembersMove: half of each group stops, the
// fleet alarms open; then the partition of the silent half moves away.
// The alarms are cleared with the reason (the new owner judges those
// devices), never left open for good, and nothing is raised after.
func TestFleetAlarmClearedWhenMembersMove(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Silence.Enabled = false
	s := newSim(t, cfg, twoGroups, 12, nil)
	s.partition = func(i int) int32 { return int32(i % 2) }
	s.warm(150)
	even := func(_, i int, _ *simDevice, _ *ingest.Row) bool { return i%2 == 0 }
	s.run(150, 200, even)
	raised := s.sink.find(DetectorFleet, "", "", StateAlarm)
	if len(raised) == 0 {
		t.Fatalf("half of each group stopping raised no fleet alarm:\n%s", s.sink.dump())
	}
	for i := range s.devices {
		if i%2 == 1 {
			s.eng.ForgetDevice(s.devices[i].name)
		}
	}
	s.run(200, 300, even)
	cleared := s.sink.find(DetectorFleet, "", "", StateCleared)
	if len(cleared) != len(raised) || len(s.sink.find(DetectorFleet, "", "", StateAlarm)) != len(raised) {
		t.Fatalf("%d fleet alarms raised before the move, want each cleared once and none raised after:\n%s", len(raised), s.sink.dump())
	}
	for _, a := range cleared {
		if !strings.Contains(a.Message, "rebalance") {
			t.Errorf("clear without its reason: %s", a.Message)
		}
	}
}
