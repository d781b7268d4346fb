package detect

import (
	"math"
	"strconv"
	"time"
)

// silenceState is a device's learned report interval and its deadline.
//
// Silence is judged per row, not per batch: each group keeps a min-heap of
// its devices' deadlines (last report + missed_reports × interval), and a
// report of the group at time t declares every device whose deadline lies
// before t silent, at its deadline. So the result does not depend on how
// the input was cut into batches, and "while its group keeps reporting" is
// literal: some device of the group reported after the deadline.
//
// The device's newest report is deviceState.last.
type silenceState struct {
	interval float64 // learned report interval, ns
	n        int32   // intervals learned
	heapIdx  int32   // position in the group's heap; -1: not in it
	deadline int64
	alarm    alarmState
}

// silenceEntry is a device in its group's deadline heap, ordered by key,
// then device id. Each report moves a device's deadline later; re-sifting
// its entry every time would cost a walk of the heap per row, so the entry
// keeps the deadline it had (key <= deadline always holds) and is moved
// down only once it reaches the top of the heap and is found out of date.
// The heap's top is then still the device with the earliest deadline
// (ties to the lower id), so devices are declared silent in the same order
// and at the same rows as with a heap kept exact.
type silenceEntry struct {
	key int64
	dev int32
}

// judgeSilence folds the current report of device d, then declares the
// group's overdue devices silent.
func (e *Engine) judgeSilence(d int32, ds *deviceState, g int32, gs *groupState, t int64) {
	cfg := &e.cfg.Silence
	s := &ds.sil
	if s.alarm.active() {
		if s.alarm.step(t, false, 1, 1) == cleared {
			a := e.newAlert(DetectorSilence, behaviorSilence, d, g, t)
			a.Technique = TechniqueDenialOfView
			a.Observed, a.Expected = float64(t-ds.last)/1e9, s.interval/1e9
			a.Message = who(a.Device, a.Group) + " reports again after " + time.Duration(t-ds.last).Round(time.Second).String() + " of silence"
			e.clear(a, &s.alarm, d)
		}
	} else if ds.last != 0 && t > ds.last {
		gap := float64(t - ds.last)
		if s.n < int32(cfg.MinReports) || gap <= cfg.MissedReports*s.interval {
			if s.n == 0 {
				s.interval = gap
			} else {
				// a running mean at first, then an exponential one that
				// follows a changed report interval within ~20 reports
				// (from the 20th on, 1/(n+1) < 0.05: no division needed)
				alpha := 0.05
				if s.n < 20 {
					alpha = max(1/float64(s.n+1), 0.05)
				}
				s.interval += alpha * (gap - s.interval)
			}
			if s.n < math.MaxInt32 {
				s.n++
			}
		}
	}
	last := max(ds.last, t) // judgeRow moves ds.last after the detectors
	if s.n >= int32(cfg.MinReports) {
		// the builtin max: math.Max's semantics (NaN, ±0), but inlined, not an assembly call per row
		dl := last + int64(cfg.MissedReports*max(s.interval, float64(cfg.MinInterval)))
		s.deadline = dl - dl%int64(time.Millisecond) // readable alarm times
		switch i := s.heapIdx; {
		case i < 0:
			e.heapPush(gs, d)
		case s.deadline < gs.heap[i].key: // an earlier deadline (the interval shrank) must be seen now
			gs.heap[i].key = s.deadline
			e.heapUp(gs, i)
		}
	}
	if gs.lastReport != 0 && t-gs.lastReport > int64(cfg.MissedReports*float64(cfg.MinInterval)) {
		gs.gapStart, gs.gapEnd = gs.lastReport, t
	}
	// A device is overdue once the group reported after its deadline (this
	// row), every active partition has passed it (the watermark), and its
	// own partition has been read past it: a report of the device before
	// the deadline would have been read by then.
	now := min(t, e.wm)
	for len(gs.heap) > 0 {
		top := gs.heap[0].dev
		if gs.heap[0].key >= now {
			break
		}
		ts := &e.devices[top].sil
		if gs.heap[0].key < ts.deadline { // out of date: see silenceEntry
			gs.heap[0].key = ts.deadline
			e.heapDown(gs, 0)
			continue
		}
		if p := e.devices[top].part; p > 0 {
			if high := e.parts[p-1].high; high < ts.deadline && now-high <= int64(cfg.PartitionIdle) {
				// Its own partition has not been read past the deadline
				// and lags by less than partition_idle: the device's
				// reports may just be behind there (a lagging partition
				// is not a silent device). Look again once the stream has
				// moved on by as much as the partition lags; a partition
				// that falls further behind is dark, and its devices are
				// judged.
				gs.heap[0].key = ts.deadline + (now - high)
				e.heapDown(gs, 0)
				continue
			}
		}
		e.heapPop(gs)
		threshold := ts.deadline - e.devices[top].last
		if ts.deadline > gs.gapStart && ts.deadline <= gs.gapEnd && gs.gapEnd-gs.gapStart > threshold {
			// The group itself was silent over the deadline: not this
			// device's silence. Start its grace again from the group's return.
			ts.deadline = gs.gapEnd + threshold
			e.heapPush(gs, top)
			continue
		}
		if ts.alarm.step(ts.deadline, true, 1, 1) == raised {
			e.raise(e.silenceAlert(top, g, ts, t), &ts.alarm, top, g, 1, cfg.Severity)
		}
	}
	if t > gs.lastReport {
		gs.lastReport = t
	}
}

func (e *Engine) silenceAlert(d, g int32, s *silenceState, now int64) *Alert {
	cfg := &e.cfg.Silence
	a := e.newAlert(DetectorSilence, behaviorSilence, d, g, s.deadline)
	interval := math.Max(s.interval, float64(cfg.MinInterval))
	a.Technique = TechniqueDenialOfView
	last := e.devices[d].last
	a.Observed = float64(now-last) / 1e9
	a.Expected = interval / 1e9
	a.Upper = cfg.MissedReports * interval / 1e9
	a.Score = float64(now-last) / interval
	a.SampleCount = int64(s.n)
	a.Message = who(a.Device, a.Group) + " stopped reporting: no report since " +
		time.Unix(0, last).UTC().Format(time.RFC3339) + ", " + strconv.FormatFloat(cfg.MissedReports, 'f', -1, 64) +
		" expected reports (every " + time.Duration(interval).Round(time.Second).String() + ") missed while its group keeps reporting"
	return a
}

// silenceLeave takes d out of gs's deadline heap.
func (e *Engine) silenceLeave(gs *groupState, d int32, ds *deviceState) {
	i := ds.sil.heapIdx
	if i < 0 {
		return
	}
	last := int32(len(gs.heap) - 1)
	if i != last {
		e.heapSwap(gs, i, last)
	}
	gs.heap = gs.heap[:last]
	ds.sil.heapIdx = -1
	if i != last {
		e.heapDown(gs, i)
		e.heapUp(gs, i)
	}
}

// heapPush adds d to gs's heap at its current deadline.
func (e *Engine) heapPush(gs *groupState, d int32) {
	s := &e.devices[d].sil
	s.heapIdx = int32(len(gs.heap))
	gs.heap = append(gs.heap, silenceEntry{key: s.deadline, dev: d})
	e.heapUp(gs, s.heapIdx)
}

func (e *Engine) heapPop(gs *groupState) {
	top := gs.heap[0].dev
	e.silenceLeave(gs, top, &e.devices[top])
}

func (e *Engine) heapLess(gs *groupState, i, j int32) bool {
	a, b := &gs.heap[i], &gs.heap[j]
	if a.key != b.key {
		return a.key < b.key
	}
	return a.dev < b.dev // ties in device order: deterministic
}

func (e *Engine) heapSwap(gs *groupState, i, j int32) {
	gs.heap[i], gs.heap[j] = gs.heap[j], gs.heap[i]
	e.devices[gs.heap[i].dev].sil.heapIdx = i
	e.devices[gs.heap[j].dev].sil.heapIdx = j
}

func (e *Engine) heapUp(gs *groupState, i int32) {
	for i > 0 {
		p := (i - 1) / 2
		if !e.heapLess(gs, i, p) {
			return
		}
		e.heapSwap(gs, i, p)
		i = p
	}
}

func (e *Engine) heapDown(gs *groupState, i int32) {
	n := int32(len(gs.heap))
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && e.heapLess(gs, r, l) {
			m = r
		}
		if !e.heapLess(gs, m, i) {
			return
		}
		e.heapSwap(gs, i, m)
		i = m
	}
}
