package detect

import (
	"math"
	"strconv"
	"time"
)

// silenceState is a device's learned cadence and its silence deadline.
//
// The cadence is two numbers learned from the gaps between reports: the
// period (interval: a running mean of the gaps, then an exponential one
// with weight 0.05) and how irregular it is (spread2: with the same
// weights, the mean of ln²(gap/period), each gap against the period
// learned before it). Its root √spread2, the irregularity, is scale-free
// (a 1 s and a 1 h reporter with the same relative jitter score the same)
// and, for small jitter, the gaps' coefficient of variation: 60 s ± 2 s
// scores 0.02. A log is used rather than the gap itself because traffic
// without a cadence has gaps spread over orders of magnitude (seconds to
// an hour): on a log scale its spread is measured, not swamped by the
// longest gap. Each gap's term is capped at ±irregularityCap ×
// max_irregularity (√10), so one wild gap (an outage, a duplicate report)
// moves a steady device's irregularity to at most max_irregularity/√2:
// one outage never ends a device's judgement, repeated ones do. Poisson
// arrivals (no cadence at all) score about 1.0 (under 0.8 one report in a
// hundred), log-uniform gaps between 5 s and 1 h about 1.3; a 60 s
// reporter that drops every tenth report about 0.2.
//
// Only a device with a cadence can miss it: a device is judged once it
// has learned min_reports gaps and while its irregularity is at most
// max_irregularity; otherwise it is out of its group's deadline heap and
// never declared silent, whatever the gap (a host seen only when it sends
// a NetBIOS, mDNS or DHCP broadcast). A judged device may stay quiet
// missed_reports periods, or e^(5 × irregularity) periods when that is
// longer (see deadlineFactor).
//
// Silence is judged per row, not per batch: each group keeps a min-heap of
// its judged devices' deadlines (last report + the periods it may miss),
// and a report of the group at time t declares every device whose deadline
// lies before t silent, at its deadline. So the result does not depend on
// how the input was cut into batches, and "while its group keeps
// reporting" is literal: some device of the group reported after the
// deadline.
//
// The device's newest report is deviceState.last. The state is 48 bytes.
type silenceState struct {
	interval float64 // learned report interval (the period), ns
	spread2  float64 // learned mean of ln²(gap/interval): the irregularity squared
	n        int32   // intervals learned
	heapIdx  int32   // position in the group's heap; -1: not in it
	deadline int64
	alarm    alarmState
}

const (
	// irregularityCap × max_irregularity bounds one gap's |ln(gap/period)|
	// in spread2: with the steady weight 0.05, one capped gap adds at most
	// 0.05 × 10 × max_irregularity² = max_irregularity²/2.
	irregularityCap = 3.1622776601683795 // √10
	// deadlineSpreads: a judged device may be quiet e^(deadlineSpreads ×
	// irregularity) periods when that is more than missed_reports. For
	// gaps log-normal around the period, a gap that long has odds under
	// 3 in 10⁷ per report (five standard deviations): a device near
	// max_irregularity that reports every minute is declared silent by
	// chance about once in seven years. Below an irregularity of
	// ln(missed_reports)/5 (0.32 by default) missed_reports decides.
	deadlineSpreads = 5
	// maxIrregularityLimit bounds silence.max_irregularity: e^(5 × 2)
	// periods (22026) is already no deadline, and a larger one would
	// overflow a long period's deadline.
	maxIrregularityLimit = 2
)

// judged reports whether the device has a learned cadence to miss.
func (s *silenceState) judged(cfg *SilenceConfig) bool {
	return s.n >= int32(cfg.MinReports) && s.spread2 <= cfg.MaxIrregularity*cfg.MaxIrregularity
}

// deadlineFactor is how many periods a judged device may stay quiet:
// missed_reports, or more for a device with a looser cadence (see
// deadlineSpreads).
func (s *silenceState) deadlineFactor(cfg *SilenceConfig) float64 {
	// the builtin max: math.Max's semantics (NaN, ±0), but inlined, not an assembly call per row
	return max(cfg.MissedReports, math.Exp(deadlineSpreads*math.Sqrt(s.spread2)))
}

// learnGap folds the gap (ns, positive) that ended with the device's
// current report into its cadence. A gap beyond the deadline of a judged
// device is a missed report, not its period: it counts toward the
// irregularity (capped) but leaves the period alone.
func (s *silenceState) learnGap(gap float64, cfg *SilenceConfig) {
	if s.n == 0 {
		s.interval, s.n = gap, 1
		return
	}
	period := gap <= cfg.MissedReports*s.interval || !s.judged(cfg) || gap <= s.deadlineFactor(cfg)*s.interval
	s.learnSpread(gap, cfg)
	if !period {
		return
	}
	// a running mean at first, then an exponential one that follows a
	// changed report interval within ~20 reports (from the 20th on,
	// 1/(n+1) < 0.05: no division needed)
	alpha := 0.05
	if s.n < 20 {
		alpha = max(1/float64(s.n+1), 0.05)
	}
	s.interval += alpha * (gap - s.interval)
	if s.n < math.MaxInt32 {
		s.n++
	}
}

// learnSpread folds ln(gap/interval), capped, into spread2. After n gaps
// (the first has no period to deviate from) this is the n-th deviation:
// a running mean's weight 1/n, then 0.05.
func (s *silenceState) learnSpread(gap float64, cfg *SilenceConfig) {
	c := irregularityCap * cfg.MaxIrregularity
	r := min(max(math.Log(gap/s.interval), -c), c)
	w := 0.05
	if s.n < 20 {
		w = max(1/float64(s.n), 0.05)
	}
	s.spread2 += w * (r*r - s.spread2)
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
	key   int64
	dev   int32
	local int32 // the device's local id (deviceStates): sifting reaches its state without the registry id's
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
			// The silence is not the period, but a device silent again
			// and again (three times within a few reports) has no
			// cadence to keep: it turns irregular, and its period is
			// learned anew.
			s.learnSpread(float64(t-ds.last), cfg)
		}
	} else if ds.last != 0 && t > ds.last {
		s.learnGap(float64(t-ds.last), cfg)
	}
	last := max(ds.last, t) // judgeRow moves ds.last after the detectors
	switch {
	case s.judged(cfg):
		dl := last + int64(s.deadlineFactor(cfg)*max(s.interval, float64(cfg.MinInterval)))
		s.deadline = dl - dl%int64(time.Millisecond) // readable alarm times
		switch i := s.heapIdx; {
		case i < 0:
			e.heapPush(gs, d)
		case s.deadline < gs.heap[i].key: // an earlier deadline (the interval shrank) must be seen now
			gs.heap[i].key = s.deadline
			e.heapUp(gs, i)
		}
	case s.heapIdx >= 0: // irregular now: no cadence to miss
		e.silenceLeave(gs, d, ds)
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
		tds := e.devices.states.At(gs.heap[0].local)
		ts := &tds.sil
		if gs.heap[0].key < ts.deadline { // out of date: see silenceEntry
			gs.heap[0].key = ts.deadline
			e.heapDown(gs, 0)
			continue
		}
		if p := tds.part; p > 0 {
			if pm := &e.parts[p-1]; pm.high < ts.deadline && (now-pm.high <= int64(cfg.PartitionIdle) || e.behind(pm)) {
				// Its own partition has not been read past the deadline
				// and lags by less than partition_idle, or has a backlog
				// at its source: the device's reports may just be behind
				// there (a lagging partition is not a silent device).
				// Look again once the stream has moved on by as much as
				// the partition lags; a caught-up partition that falls
				// further behind is dark, and its devices are judged.
				high := pm.high
				gs.heap[0].key = ts.deadline + (now - high)
				e.heapDown(gs, 0)
				continue
			}
		}
		e.heapPop(gs)
		threshold := ts.deadline - tds.last
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
	factor := s.deadlineFactor(cfg)
	a.Technique = TechniqueDenialOfView
	last := e.devices.At(d).last
	a.Observed = float64(now-last) / 1e9
	a.Expected = interval / 1e9
	a.Upper = factor * interval / 1e9
	a.Score = float64(now-last) / interval
	a.SampleCount = int64(s.n)
	a.Message = who(a.Device, a.Group) + " stopped reporting: no report since " +
		time.Unix(0, last).UTC().Format(time.RFC3339) + ", " + strconv.FormatFloat(math.Round(factor*10)/10, 'f', -1, 64) +
		" expected reports (every " + time.Duration(interval).Round(time.Second).String() + " ± " +
		strconv.FormatFloat(100*math.Sqrt(s.spread2), 'f', 0, 64) + "%) missed while its group keeps reporting"
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
	l := e.devices.localOf(d)
	s := &e.devices.states.At(l).sil
	s.heapIdx = int32(len(gs.heap))
	gs.heap = append(gs.heap, silenceEntry{key: s.deadline, dev: d, local: l})
	e.heapUp(gs, s.heapIdx)
}

func (e *Engine) heapPop(gs *groupState) {
	e.silenceLeave(gs, gs.heap[0].dev, e.devices.states.At(gs.heap[0].local))
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
	e.devices.states.At(gs.heap[i].local).sil.heapIdx = i
	e.devices.states.At(gs.heap[j].local).sil.heapIdx = j
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
