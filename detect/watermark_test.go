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
	for _, handOver := range []bool{true, false} {
		t.Run(map[bool]string{true: "hand-over", false: "dark-partition"}[handOver], func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Fleet.Enabled = false
			s := newSim(t, cfg, twoGroups, 9, nil)
			s.partition = func(i int) int32 { return int32(i % 3) }
			victim, late := 4, 9 // partitions 1 and 0
			moved := func(i int) bool { return i%3 == 2 }
			s.run(0, lag, func(_, i int, _ *simDevice, _ *ingest.Row) bool { return i%3 == 0 })
			runSkewed(s, 0, 170, lag, func(m, i int) bool { return i != victim || m < 130 || m >= 160 })
			al := s.sink.find(DetectorSilence, behaviorSilence, "", StateAlarm)
			if len(al) != 1 || al[0].Device != s.devices[victim].name {
				t.Fatalf("want one silence alarm on %s:\n%s", s.devices[victim].name, s.sink.dump())
			}
			if al[0].EventTime.Before(at(134)) || al[0].EventTime.After(at(135)) {
				t.Fatalf("silence at %v, want about minute 134", al[0].EventTime)
			}
			// Partition 2 moves to another instance (its devices are
			// forgotten) or goes dark (every device of it stops). Either way
			// it no longer holds the watermark back; only dark devices are
			// silent.
			if handOver {
				for i := range s.devices {
					if moved(i) {
						s.eng.ForgetDevice(s.devices[i].name)
					}
				}
			}
			before := len(s.sink.alerts)
			runSkewed(s, 170, 230, lag, func(m, i int) bool { return !moved(i) && (i != late || m < 200) })
			want := map[string]bool{s.devices[late].name: true}
			if !handOver {
				for i := range s.devices {
					if moved(i) {
						want[s.devices[i].name] = true
					}
				}
			}
			got := map[string]bool{}
			for _, a := range s.sink.alerts[before:] {
				if a.Detector != DetectorSilence || a.State != StateAlarm || !want[a.Device] || got[a.Device] {
					t.Fatalf("unexpected alert %s %s %s:\n%s", a.State, a.Detector, a.Device, s.sink.dump())
				}
				got[a.Device] = true
			}
			if len(got) != len(want) {
				t.Fatalf("want silence of %v, got %v:\n%s", want, got, s.sink.dump())
			}
			if wm := time.Unix(0, s.eng.Watermark()); wm.Before(at(229)) {
				t.Fatalf("watermark %v held back by a partition without devices or rows", wm)
			}
		})
	}
}

// Fleet windows close on the watermark: while two of three partitions
// stall for ten minutes and then catch up, the group's windows wait for
// them instead of closing with a third of the devices reporting.
func TestFleetWindowsWaitForStalledPartitions(t *testing.T) {
	cfg := DefaultConfig()
	s := newSim(t, cfg, twoGroups, 9, nil)
	s.partition = func(i int) int32 { return int32(i % 3) }
	only := func(p0 bool) mutator {
		return func(_, i int, _ *simDevice, _ *ingest.Row) bool { return (i%3 == 0) == p0 }
	}
	s.warm(150)
	// minutes 150-160: partition 0 goes on, partitions 1 and 2 deliver nothing
	s.run(150, 160, only(true))
	// then they catch up, two minutes a batch, while partition 0 goes on
	for m := 150; m < 170; m += 2 {
		s.run(m, m+2, only(false))
		s.run(m+10, m+12, only(true))
	}
	s.run(170, 200, nil)
	if n := len(s.sink.find(DetectorFleet, "", "", "")); n != 0 {
		t.Fatalf("a stalled partition raised %d fleet alerts:\n%s", n, s.sink.dump())
	}
	if n := len(s.sink.alerts); n != 0 {
		t.Fatalf("clean fleet behind a stalled partition raised %d alerts:\n%s", n, s.sink.dump())
	}
}

// TestSilenceAcrossTopics: partition 0 of one topic and partition 0 of
// another are two partitions: devices of the topic read 15 minutes behind
// are not judged against the other's event time, and one that stops
// reporting is still found.
func TestSilenceAcrossTopics(t *testing.T) {
	const lag = 15
	cfg := DefaultConfig()
	cfg.Fleet.Enabled = false
	s := newSim(t, cfg, twoGroups, 9, nil)
	s.partition = func(int) int32 { return 0 }
	victim := 4 // in topic b
	inA := func(i int) bool { return i%3 == 0 }
	only := func(a bool) mutator {
		return func(m, i int, _ *simDevice, _ *ingest.Row) bool {
			return inA(i) == a && (i != victim || m < 130 || m >= 160)
		}
	}
	s.source = "a"
	s.run(0, lag, only(true))
	for m := 0; m < 170; m++ {
		s.source = "a"
		s.run(m+lag, m+lag+1, only(true))
		s.source = "b"
		s.run(m, m+1, only(false))
	}
	al := s.sink.find(DetectorSilence, behaviorSilence, "", StateAlarm)
	if len(al) != 1 || al[0].Device != s.devices[victim].name {
		t.Fatalf("want one silence alarm, on %s:\n%s", s.devices[victim].name, s.sink.dump())
	}
}

// TestSilenceNotFromALaggingPartition: a partition that delivers its rows
// in bursts half an hour apart (a backlog, a slow consumer) falls behind
// and counts as idle for the watermark, but its devices are not silent:
// their own partition has not been read past their deadlines yet. A device
// that does stop, in a partition that keeps up, still is.
func TestSilenceNotFromALaggingPartition(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Fleet.Enabled = false
	cfg.Silence.PartitionIdle = time.Hour
	s := newSim(t, cfg, twoGroups, 9, nil)
	// Group B (devices 9-17) is partition 0 and a day ahead, so the other
	// partitions are never within partition_idle of the newest; group A's
	// devices alternate between partitions 1 and 2.
	s.partition = func(i int) int32 {
		if i >= 9 {
			return 0
		}
		return int32(1 + i%2)
	}
	const victim = 0 // partition 1
	shift := func(keep func(m, i int) bool) mutator {
		return func(m, i int, _ *simDevice, r *ingest.Row) bool {
			if i >= 9 {
				r.TimeNanos += int64(24 * time.Hour)
			}
			return keep(m, i)
		}
	}
	all := func(int, int) bool { return true }
	s.run(0, 60, shift(all))
	for m := 60; m < 180; m++ {
		s.run(m, m+1, shift(func(m, i int) bool { return s.partition(i) != 2 && (i != victim || m < 120) }))
		if (m+1)%30 == 0 { // partition 2's burst: the half hour just gone
			s.run(m-29, m+1, shift(func(_, i int) bool { return s.partition(i) == 2 }))
		}
	}
	al := s.sink.find(DetectorSilence, behaviorSilence, "", StateAlarm)
	if len(al) != 1 || al[0].Device != s.devices[victim].name {
		t.Fatalf("want one silence alarm, on %s (the device that stopped):\n%s", s.devices[victim].name, s.sink.dump())
	}
}

// TestSilenceNotFromAPartitionWithABacklog: partition 2 delivers nothing
// for 40 minutes of event time while the others go on (its records all
// come later, in one burst), far past partition_idle. As long as its source
// says it has a backlog, it holds the watermark and none of its devices is
// silent; judged by event time alone, every one of them would be.
func TestSilenceNotFromAPartitionWithABacklog(t *testing.T) {
	for _, withBacklog := range []bool{true, false} {
		t.Run(map[bool]string{true: "backlog", false: "event-time"}[withBacklog], func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Fleet.Enabled = false
			s := newSim(t, cfg, twoGroups, 9, nil)
			s.partition = func(i int) int32 { return int32(i % 3) }
			behind := false
			if withBacklog {
				s.eng.SetPartitionBacklog(func(source string, p int32) bool { return behind && p == 2 })
			}
			every := func(int, int, *simDevice, *ingest.Row) bool { return true }
			s.run(0, 60, every)
			behind = true
			s.run(60, 100, func(_, i int, _ *simDevice, _ *ingest.Row) bool { return i%3 != 2 })
			s.run(60, 100, func(_, i int, _ *simDevice, _ *ingest.Row) bool { return i%3 == 2 })
			behind = false
			s.run(100, 120, every)
			al := s.sink.find(DetectorSilence, behaviorSilence, "", StateAlarm)
			if withBacklog && len(al) != 0 {
				t.Fatalf("devices of a partition with a backlog taken for silent:\n%s", s.sink.dump())
			}
			if !withBacklog && len(al) == 0 {
				t.Fatal("without the backlog, no device of the late partition looked silent: the test no longer exercises it")
			}
		})
	}
}
