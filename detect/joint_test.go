package detect

import (
	"slices"
	"strings"
	"testing"

	"github.com/vigil-ot/vigil/ingest"
)

// pumpMetrics makes device reports pump-like: flow_lpm and motor_current_a
// follow one demand x (in σ of flow), the current tightly; breakFrom..breakTo
// on device 0 the relation breaks: flow 2σ low while the current says 2σ
// high, each well inside its own band.
func pumpMetrics(s *sim, breakFrom, breakTo int) mutator {
	return func(m, i int, d *simDevice, r *ingest.Row) bool {
		x := s.rng.NormFloat64()
		xf, xc := x, x
		if i == 0 && m >= breakFrom && m < breakTo {
			xf, xc = -2, 2
		}
		r.Metrics = append(r.Metrics[:2],
			ingest.Metric{Name: "flow_lpm", Value: 300 + 30*xf + 0.5*s.rng.NormFloat64()},
			ingest.Metric{Name: "motor_current_a", Value: 15 + 1.2*xc + 0.05*s.rng.NormFloat64()},
		)
		return true
	}
}

func TestJointAlarmsOnBrokenRelation(t *testing.T) {
	s := newSim(t, DefaultConfig(), []string{"plant/pumps"}, 10, nil)
	const from, to = 400, 440
	s.run(0, 600, pumpMetrics(s, from, to))
	alarms := s.sink.find(DetectorJoint, DetectorJoint, "", StateAlarm)
	if len(alarms) != 1 {
		t.Fatalf("want one joint alarm, got %d:\n%s", len(alarms), s.sink.dump())
	}
	a := alarms[0]
	if a.Device != s.devices[0].name || a.EventTime.Before(at(from)) || a.EventTime.After(at(from+5)) {
		t.Errorf("joint alarm on %s at %v, want %s within 5 minutes of %v", a.Device, a.EventTime, s.devices[0].name, at(from))
	}
	if !strings.Contains(a.Message, "flow_lpm") || !strings.Contains(a.Message, "motor_current_a") ||
		!strings.Contains(a.Message, "no longer move together") {
		t.Errorf("message does not name both metrics: %s", a.Message)
	}
	if a.Score <= 1 || !(a.Observed > a.Upper) {
		t.Errorf("alarm says Q %v, limit %v, score %v: want Q beyond the limit", a.Observed, a.Upper, a.Score)
	}
	if n := len(s.sink.find(DetectorJoint, "", "", StateCleared)); n != 1 {
		t.Errorf("want the alarm cleared once the relation holds again, got %d clears:\n%s", n, s.sink.dump())
	}
	for _, a := range s.sink.alerts {
		if a.Detector == DetectorSelf && (a.Behavior == "flow_lpm" || a.Behavior == "motor_current_a") {
			t.Errorf("each metric should stay inside its own band, but: %s", a.Message)
		}
	}
}

func TestJointQuietOnCleanDevices(t *testing.T) {
	s := newSim(t, DefaultConfig(), []string{"plant/pumps", "plant/other"}, 10, nil)
	s.run(0, 24*60, pumpMetrics(s, -1, -1))
	if n := len(s.sink.find(DetectorJoint, "", "", "")); n != 0 {
		t.Fatalf("clean day raised %d joint alerts:\n%s", n, s.sink.dump())
	}
	if jg := s.eng.joint.groups[0]; jg == nil || !jg.model.Ready() || jg.model.Count() < 10_000 {
		t.Fatalf("the group's joint model should be judging after a day")
	}
}

func TestJointIndependentOfBatches(t *testing.T) {
	var runs [][]string
	for _, minutes := range []int{1, 13} {
		s := newSim(t, DefaultConfig(), []string{"plant/pumps"}, 10, nil)
		s.batchMinutes = minutes
		s.run(0, 600, pumpMetrics(s, 400, 440))
		var ids []string
		for _, a := range s.sink.alerts {
			ids = append(ids, a.ID+" "+a.Message)
		}
		runs = append(runs, ids)
	}
	if len(runs[0]) == 0 || !slices.Equal(runs[0], runs[1]) {
		t.Fatalf("batches of 1 and 13 minutes differ:\n%v\n%v", runs[0], runs[1])
	}
}
