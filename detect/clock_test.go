package detect

import (
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/ingest"
)

// sendRow judges one row of device i at ts, with temp (the spike rule's
// metric) as given, in a batch of its own.
func (s *sim) sendRow(i int, ts time.Time, temp float64) {
	s.t.Helper()
	r := &s.row
	r.Reset()
	d := &s.devices[i]
	r.TimeNanos, r.Device, r.Group, r.Partition = ts.UnixNano(), d.name, d.group, -1
	r.Metrics = append(r.Metrics, ingest.Metric{Name: "temp", Value: temp})
	s.builder.Append(r)
	s.flush()
}

// groupRows returns the rows each group has learned.
func (s *sim) groupRows() map[string]int64 {
	rows := map[string]int64{}
	for _, g := range s.store.GroupInfos() {
		rows[g.Name] = g.Rows
	}
	return rows
}

// runWith runs a clean fleet with the spike rule for minutes [0, 180) and
// calls inject before minute at (at < 0: never).
func runWith(t *testing.T, cfg Config, at int, inject func(s *sim)) *sim {
	s := newSim(t, cfg, twoGroups, 10, nil)
	for m := 0; m < 180; m++ {
		if m == at {
			inject(s)
		}
		s.run(m, m+1, spike(map[int]bool{3: true}, 150, 160))
	}
	return s
}

// sameOutput asserts two sims raised the same alerts and learned the same.
func sameOutput(t *testing.T, got, want *sim) {
	t.Helper()
	if g, w := got.sink.dump(), want.sink.dump(); g != w {
		t.Fatalf("output differs:\n%s\n--- want\n%s", g, w)
	}
	if g, w := fmt.Sprint(got.groupRows()), fmt.Sprint(want.groupRows()); g != w {
		t.Fatalf("learned rows %s, want %s", g, w)
	}
	if got.eng.Watermark() != want.eng.Watermark() {
		t.Fatalf("watermark %v, want %v", time.Unix(0, got.eng.Watermark()), time.Unix(0, want.eng.Watermark()))
	}
}

// TestFutureRowIsRejected: one record dated years ahead, mid-stream, at
// the start, or from a device that keeps reporting with its clock a day
// ahead, changes nothing: not judged (its breaching value raises no
// alarm), not learned, the clock and the watermark stay, and it is counted.
func TestFutureRowIsRejected(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Rules = spikeRuleConfig().Rules
	clean := runWith(t, cfg, -1, nil)
	if len(clean.sink.find(DetectorRule, "overheat", clean.devices[3].name, StateAlarm)) != 1 {
		t.Fatalf("the spike raised no alarm:\n%s", clean.sink.dump())
	}
	year2031 := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	for name, c := range map[string]struct {
		at                int
		inject            func(s *sim)
		future, unclocked int64
	}{
		"mid-stream": {100, func(s *sim) { s.sendRow(5, year2031, 99) }, 1, 0},
		"first row":  {0, func(s *sim) { s.sendRow(5, year2031, 99) }, 0, 1},
		"two alike": {100, func(s *sim) { // the same device twice in a row: one device does not move the clock
			s.sendRow(5, year2031, 99)
			s.sendRow(5, year2031.Add(time.Minute), 99)
		}, 2, 0},
	} {
		t.Run(name, func(t *testing.T) {
			s := runWith(t, cfg, c.at, c.inject)
			sameOutput(t, s, clean)
			st, cst := s.eng.Stats(), clean.eng.Stats()
			if st.FutureRows != c.future || st.UnclockedRows != c.unclocked || st.Rows != cst.Rows || st.LateRows != 0 {
				t.Fatalf("future %d, unclocked %d, rows %d, late %d; want %d, %d, %d, 0",
					st.FutureRows, st.UnclockedRows, st.Rows, st.LateRows, c.future, c.unclocked, cst.Rows)
			}
		})
	}
	t.Run("drifting device", func(t *testing.T) {
		// device 5 reports a day ahead throughout: its rows never move the
		// clock (the others report between them), it is not judged, and the
		// fleet is otherwise as clean as without it
		s := newSim(t, cfg, twoGroups, 10, nil)
		ahead := func(m, i int, _ *simDevice, r *ingest.Row) bool {
			if i == 5 {
				r.TimeNanos += int64(24 * time.Hour)
			}
			return true
		}
		s.run(0, 180, ahead)
		st := s.eng.Stats()
		if st.FutureRows != 180 || st.Rows != 180*19 {
			t.Fatalf("future %d, rows %d; want 180 and %d", st.FutureRows, st.Rows, 180*19)
		}
		if wm := time.Unix(0, s.eng.Watermark()); wm.After(at(181)) {
			t.Fatalf("watermark %v: the drifting device moved the clock", wm)
		}
		for _, a := range s.sink.alerts {
			if a.Device != s.devices[5].name && a.Group != s.devices[5].group {
				t.Fatalf("alert on another device:\n%s", s.sink.dump())
			}
		}
	})
}

// TestClockResumesAfterGap: when the whole stream resumes hours later, the
// first row waits and the second, agreeing, moves the clock: both and the
// rest are judged and learned, nothing is lost.
func TestClockResumesAfterGap(t *testing.T) {
	cfg := spikeRuleConfig()
	s := newSim(t, cfg, twoGroups, 10, nil)
	s.run(0, 60, nil)
	before := s.eng.Stats()
	s.run(240, 300, spike(map[int]bool{3: true}, 250, 251))
	st := s.eng.Stats()
	if st.FutureRows != 0 || st.Rows-before.Rows != 60*20 {
		t.Fatalf("after the gap: %d future, %d rows judged; want 0 and %d", st.FutureRows, st.Rows-before.Rows, 60*20)
	}
	if len(s.sink.find(DetectorRule, "overheat", s.devices[3].name, StateAlarm)) != 1 {
		t.Fatalf("the spike after the gap raised no alarm:\n%s", s.sink.dump())
	}
	// Again, one row a batch: the first row after the gap is held until the
	// next batch's row agrees, then judged, before it.
	s.sendRow(5, at(600), 99)
	if n := len(s.sink.find(DetectorRule, "overheat", s.devices[5].name, StateAlarm)); n != 0 {
		t.Fatalf("a row ahead was judged before another agreed:\n%s", s.sink.dump())
	}
	s.sendRow(6, at(600).Add(time.Second), 40)
	if a := s.sink.find(DetectorRule, "overheat", s.devices[5].name, StateAlarm); len(a) != 1 || !a[0].EventTime.Equal(at(600)) {
		t.Fatalf("the held row was not judged once confirmed:\n%s", s.sink.dump())
	}
	if st := s.eng.Stats(); st.FutureRows != 0 || st.Rows-before.Rows != 60*20+2 {
		t.Fatalf("%d future, %d rows judged; want 0 and %d", st.FutureRows, st.Rows-before.Rows, 60*20+2)
	}
}

// TestLateRowJudgedNotLearned: a row further behind its partition than
// clock.max_lateness is judged (its breach alarms) but not learned; one
// within it is learned.
func TestLateRowJudgedNotLearned(t *testing.T) {
	cfg := spikeRuleConfig()
	s := newSim(t, cfg, twoGroups, 10, nil)
	s.run(0, 180, nil)
	g := s.devices[3].group
	rows := s.groupRows()[g]
	s.sendRow(3, at(179).Add(-2*time.Hour), 99) // two hours behind: late
	if n := s.groupRows()[g]; n != rows {
		t.Fatalf("the late row was learned: %d rows, want %d", n, rows)
	}
	if a := s.sink.find(DetectorRule, "overheat", s.devices[3].name, StateAlarm); len(a) != 1 || !a[0].EventTime.Equal(at(179).Add(-2*time.Hour)) {
		t.Fatalf("the late row was not judged:\n%s", s.sink.dump())
	}
	s.sendRow(4, at(179).Add(-30*time.Minute), 40) // half an hour behind: learned
	if n := s.groupRows()[s.devices[4].group]; n != rows+1 && s.devices[4].group == g {
		t.Fatalf("the row within max_lateness was not learned: %d rows, want %d", n, rows+1)
	}
	if st := s.eng.Stats(); st.LateRows != 1 || st.FutureRows != 0 {
		t.Fatalf("late %d, future %d; want 1, 0", st.LateRows, st.FutureRows)
	}
}

// TestWallClockBoundsTheFuture: with a wall clock, rows ahead of it by more
// than max_skew are rejected however many devices agree.
func TestWallClockBoundsTheFuture(t *testing.T) {
	cfg := spikeRuleConfig()
	s := newSim(t, cfg, twoGroups, 10, nil)
	now := at(60)
	s.eng.deps.Clock = func() time.Time { return now }
	s.run(0, 60, nil)
	rows := s.eng.Stats().Rows
	for i := range 5 {
		s.sendRow(i, now.Add(time.Hour), 99)
	}
	st := s.eng.Stats()
	if st.FutureRows != 5 || st.Rows != rows || len(s.sink.alerts) != 0 {
		t.Fatalf("future %d, rows %d (want %d), alerts:\n%s", st.FutureRows, st.Rows, rows, s.sink.dump())
	}
	if wm := time.Unix(0, s.eng.Watermark()); wm.After(now) {
		t.Fatalf("watermark %v past the wall clock", wm)
	}
}

// TestRejectedRowsGoWithABatch: the rows the clock refuses are listed in
// Batch.Rejected with their source position and an explanation, so that a
// Kafka consumer can dead-letter their records before it commits past
// them: a row held back goes with the batch whose row drops it, a row
// ahead of the wall clock with its own batch. Rows without a position
// (files) are only counted.
func TestRejectedRowsGoWithABatch(t *testing.T) {
	s := newSim(t, DefaultConfig(), twoGroups, 10, nil)
	s.source, s.partition = "telemetry", func(int) int32 { return 3 }
	s.run(0, 30, nil)
	send := func(ts time.Time, off int64) {
		r := &s.row
		r.Reset()
		d := &s.devices[5]
		r.TimeNanos, r.Device, r.Group, r.Partition, r.Offset = ts.UnixNano(), d.name, d.group, 3, off
		r.Metrics = append(r.Metrics, ingest.Metric{Name: "temp", Value: 45})
		s.builder.Append(r)
		s.flush()
	}
	year2031 := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	check := func(what string, want ingest.RejectedRow, detail string) {
		t.Helper()
		if len(s.rejected) != 1 {
			t.Fatalf("%s: rejected %+v, want the one row", what, s.rejected)
		}
		got := s.rejected[0]
		if got.Source != want.Source || got.Partition != want.Partition || got.Offset != want.Offset || got.Reason != want.Reason {
			t.Errorf("%s: rejected %s/%d@%d %s, want %s/%d@%d %s", what, got.Source, got.Partition, got.Offset, got.Reason,
				want.Source, want.Partition, want.Offset, want.Reason)
		}
		if !regexp.MustCompile(detail).MatchString(got.Detail) {
			t.Errorf("%s: explained as %q, want it to match %q", what, got.Detail, detail)
		}
		s.rejected = nil
	}

	send(year2031, 1000)
	if len(s.rejected) != 0 {
		t.Fatalf("a row held for confirmation was reported rejected at once: %+v", s.rejected)
	}
	s.run(30, 31, nil)
	check("held, then dropped", ingest.RejectedRow{Source: "telemetry", Partition: 3, Offset: 1000, Reason: ingest.RejectFutureTime},
		`^event time 2031-01-01T00:00:00Z is 4y4[67]d ahead of the stream \(clock.max_skew 5m0s\), and fewer than clock.confirm_rows \d+ rows agreed with it$`)

	s.eng.deps.Clock = func() time.Time { return at(40) }
	send(year2031, 2000)
	check("ahead of the wall clock", ingest.RejectedRow{Source: "telemetry", Partition: 3, Offset: 2000, Reason: ingest.RejectFutureTime},
		`^event time 2031-01-01T00:00:00Z is 4y4[67]d ahead of the wall clock \(clock.max_skew 5m0s\)$`)

	send(year2031, -1)
	if len(s.rejected) != 0 {
		t.Fatalf("a row without a source position was reported: %+v", s.rejected)
	}
	if st := s.eng.Stats(); st.FutureRows != 3 {
		t.Errorf("FutureRows %d, want 3", st.FutureRows)
	}
}
