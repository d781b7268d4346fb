package detect

import (
	"testing"
	"time"

	"github.com/vigil-ot/vigil/ingest"
)

// runSkewed simulates minutes [from, to) read from three partitions
// (device i in partition i%3), partition 0 lag minutes ahead of the other
// two, the way one instance reads partitions with different backlogs.
// Devices for which keep is false do not report.
func runSkewed(s *sim, from, to, lag int, keep func(m, i int) bool) {
	only := func(p0 bool) mutator {
		return func(m, i int, _ *simDevice, _ *ingest.Row) bool {
			return (i%3 == 0) == p0 && keep(m, i)
		}
	}
	for m := from; m < to; m++ {
		s.run(m+lag, m+lag+1, only(true))
		s.run(m, m+1, only(false))
	}
}

func TestSilenceAcrossSkewedPartitions(t *testing.T) {
	const lag = 15 // minutes: three times the five missed reports
	for _, tc := range []struct {
		name string
		idle time.Duration
	}{{"watermark", time.Hour}, {"idle", time.Second}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Fleet.Enabled = false
			cfg.Silence.PartitionIdle = tc.idle
			s := newSim(t, cfg, twoGroups, 9, nil)
			s.partition = func(i int) int32 { return int32(i % 3) }
			victim, late := 4, 9 // partitions 1 and 0
			moved := func(i int) bool { return i%3 == 2 }
			s.run(0, lag, func(_, i int, _ *simDevice, _ *ingest.Row) bool { return i%3 == 0 })
			runSkewed(s, 0, 170, lag, func(m, i int) bool { return i != victim || m < 130 || m >= 160 })
			if tc.idle == time.Second {
				// With every lagging partition idle, the watermark is the
				// newest event time of any partition: the lagging devices
				// all look silent. This is what the watermark prevents.
				if n := len(s.sink.find(DetectorSilence, "", "", StateAlarm)); n < 6 {
					t.Fatalf("want spurious silence without the watermark, got %d:\n%s", n, s.sink.dump())
				}
				return
			}
			al := s.sink.find(DetectorSilence, behaviorSilence, "", StateAlarm)
			if len(al) != 1 || al[0].Device != s.devices[victim].name {
				t.Fatalf("want one silence alarm on %s:\n%s", s.devices[victim].name, s.sink.dump())
			}
			if al[0].EventTime.Before(at(134)) || al[0].EventTime.After(at(135)) {
				t.Fatalf("silence at %v, want about minute 134", al[0].EventTime)
			}
			// Partition 2 moves to another instance: its devices are
			// forgotten and no longer report here. They are not silent, and
			// partition 2 no longer holds the watermark back.
			for i := range s.devices {
				if moved(i) {
					s.eng.ForgetDevice(s.devices[i].name)
				}
			}
			before := len(s.sink.alerts)
			runSkewed(s, 170, 230, lag, func(m, i int) bool { return !moved(i) && (i != late || m < 200) })
			got := s.sink.alerts[before:]
			if len(got) != 1 || got[0].Detector != DetectorSilence || got[0].Device != s.devices[late].name || got[0].State != StateAlarm {
				t.Fatalf("after the hand-over want only the silence of %s:\n%s", s.devices[late].name, s.sink.dump())
			}
			if wm := time.Unix(0, s.eng.Watermark()); wm.Before(at(229)) {
				t.Fatalf("watermark %v held back by a forgotten partition", wm)
			}
		})
	}
}
