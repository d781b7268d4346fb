package detect

import (
	"testing"

	"github.com/vigil-ot/vigil/ingest"
)

// TestRecurringBurstIsRemembered: every device's msgs_sent bursts to 20×
// for 20 minutes once a week (a weekly self-test). The first burst comes
// while the group learns; a week later the day-long baselines have long
// forgotten it, but the group's peak memory has not, so the second burst
// raises nothing. A burst beyond anything the group had still alarms, and
// without the first burst the weekly one is new and alarms.
func TestRecurringBurstIsRemembered(t *testing.T) {
	const week = 7 * 24 * 60
	burst := func(m int) bool { return m%week >= 30 && m%week < 50 }
	spike := week + 6*60 // one device, 60× for one report
	for _, remembered := range []bool{true, false} {
		cfg := DefaultConfig()
		cfg.Silence.Enabled = false
		s := newSim(t, cfg, twoGroups[:1], 10, nil)
		s.run(0, week+7*60, func(m, i int, d *simDevice, r *ingest.Row) bool {
			if burst(m) && (remembered || m >= week) {
				r.Metrics[1].Value *= 20
			}
			if m == spike && i == 3 {
				r.Metrics[1].Value *= 60
			}
			return true
		})
		var weekly, beyond int
		for _, a := range s.sink.find(DetectorSelf, "msgs_sent", "", StateAlarm) {
			m := int(a.EventTime.Sub(simEpoch).Minutes())
			switch {
			case m < week:
				t.Errorf("remembered %v: alarm while learning or before the second burst:\n%s", remembered, s.sink.dump())
			case burst(m):
				weekly++
			case m == spike && a.Device == s.devices[3].name:
				beyond++
			}
		}
		if remembered && weekly != 0 {
			t.Errorf("the weekly burst seen a week before raised %d self alarms:\n%s", weekly, s.sink.dump())
		}
		if !remembered && weekly == 0 {
			t.Errorf("a burst never seen before raised no self alarm:\n%s", s.sink.dump())
		}
		if beyond != 1 {
			t.Errorf("remembered %v: a burst 3× beyond the group's peak raised %d self alarms, want 1:\n%s", remembered, beyond, s.sink.dump())
		}
	}
}
