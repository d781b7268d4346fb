package detect

import (
	"math"
	"strconv"

	"github.com/vigil-ot/vigil/baseline"
)

var nan = math.NaN()

func (s *alarmState) setLow(low bool) {
	if low {
		s.flags |= alarmLow
	} else {
		s.flags &^= alarmLow
	}
}

func (s *alarmState) low() bool { return s.flags&alarmLow != 0 }

// metricParams is the resolved configuration of one metric for the self
// and peer detectors.
type metricParams struct {
	name                 string
	up, down             bool
	self, peer           bool
	threshold            float64
	halfThreshold        float64 // threshold/2, exactly: see judgeSelf
	immediate            float64 // |score| that alarms at once (self.immediate_factor × threshold); 0: none
	minSpread, ratio     float64
	longRatio            float64
	peerUpper, peerLower int // indices into Expectation.GroupQuantiles
	upperName, lowerName string
	technique            string
	// res is the metric's resolution, learned from its values: the finest
	// resolution of any non-zero value spread has judged (1 until then, 0
	// once a value finer than 1e-9 or not decimal came).
	res float64
}

func newMetricParams(cfg *Config, name string) metricParams {
	m := cfg.Metrics[name]
	p := metricParams{
		name: name, self: cfg.Self.Enabled && !m.DisableSelf, peer: cfg.Peer.Enabled && !m.DisablePeer,
		threshold: cfg.Self.Threshold, minSpread: cfg.Self.MinSpread, ratio: cfg.Self.MinSpreadRatio,
		longRatio: cfg.Self.LongSpreadRatio,
		technique: m.Technique, res: 1,
	}
	dir := cfg.Self.Direction
	if m.Direction != "" {
		dir = m.Direction
	}
	p.up = dir == DirectionUp || dir == DirectionBoth
	p.down = dir == DirectionDown || dir == DirectionBoth
	if m.Threshold > 0 {
		p.threshold = m.Threshold
	}
	p.halfThreshold = p.threshold / 2
	p.immediate = cfg.Self.ImmediateFactor * p.threshold
	if m.MinSpread > 0 {
		p.minSpread = m.MinSpread
	}
	stat := cfg.Peer.Statistic
	if m.Statistic != "" {
		stat = m.Statistic
	}
	p.peerUpper, p.peerLower, _ = peerQuantiles(stat)
	if p.peerUpper < p.peerLower {
		p.peerUpper, p.peerLower = p.peerLower, p.peerUpper
	}
	p.upperName, p.lowerName = quantileName(p.peerUpper), quantileName(p.peerLower)
	if p.technique == "" {
		p.technique = metricTechnique(name)
	}
	return p
}

func quantileName(i int) string {
	return [...]string{"p0.1", "p1", "p5", "p50", "p95", "p99", "p99.9"}[i]
}

// spread is the robust spread of a metric around center: the standard
// deviation, floored by the metric's resolution and by the configured
// absolute floors, so a metric that never varied does not turn a small
// change into an infinite score.
//
// The resolution is the metric's, learned from its values (p.res), not
// the judged value's own: a flow meter reading 32.0035, 31.9966, … that
// reads exactly 30 once is still read in ten-thousandths, and a floor of 1
// taken from "30" made a drop of five of its σ a score of two (SKAB). It
// is learned lazily, from the values judged while the spread is below it
// (the only time it matters), and only ever gets finer.
func (p *metricParams) spread(std, center, x float64) float64 {
	s := max(std, p.ratio*math.Abs(center), p.minSpread)
	if s >= p.res {
		return s
	}
	if x != 0 { // 0 is a multiple of any resolution: it says nothing
		p.res = min(p.res, resolution(x))
	}
	return max(s, p.res)
}

// resolution returns the coarsest of 1, 0.1, …, 1e-9 that x is a multiple
// of (to the rounding of a decimal reading in binary), or 0 for 0 and for
// values finer than that: one step of the instrument that measured x, so a
// count changing by one, or a reading in thousandths by one thousandth, is
// a score of one whatever the metric's units.
func resolution(x float64) float64 {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	for k, p := range pow10 {
		r := x * p // powers of ten up to 1e9 are exact
		if math.Abs(r-math.Round(r)) <= 1e-6+4e-16*math.Abs(r) {
			return 1 / pow10[k]
		}
	}
	return 0
}

var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

// withinHalfBand reports whether |diff| is below half the band
// halfThreshold×2×spread. Nearly every value is, and then the rounded
// quotient diff/spread is no further from 0 than the threshold (the
// product rounds up by half an ulp at most, and rounding is monotonic), so
// it cannot breach: judgeMetrics skips judgeSelf and its division. NaN, a zero spread or
// an infinite diff fail the test and take the division as before.
func withinHalfBand(diff, spread, halfThreshold float64) bool {
	return math.Abs(diff) < halfThreshold*spread
}

// judgeMetrics runs the self and peer detectors over the current row's
// expectations. It reports whether any datapoint breached.
//
// Nearly every datapoint is quiet: too few samples to judge, or no breach
// and no alarm state to step. That is decided here, inline, from the same
// band and tests the detectors use; judgeSelf and judgePeer, calls that
// are too large to inline, run only for the others.
func (e *Engine) judgeMetrics(d int32, ds *deviceState, g int32, t int64) bool {
	anomalous := false
	var recent pendingRow // the console's plots, by column
	far := false          // a value the console's plots note lies beyond half its band
	if e.recent != nil {
		recent = e.recent.row(d, t)
	}
	for j, slot := range e.colSlot {
		ex := &e.exp[j]
		if slot < 0 || !ex.Present {
			if e.recent != nil {
				recent.absent(j)
			}
			continue
		}
		p := &e.metrics[slot]
		if ex.Learning {
			if e.recent != nil {
				recent.note(j, ex, nan32, nan32)
			}
			continue
		}
		now := p.peer && e.cfg.Peer.Now.Enabled // the peers-now test judges residuals against the self band
		var mean, spread float64
		band := false
		if p.self || now {
			mean, spread, band = p.selfBand(&e.cfg.Self, ex)
		}
		if e.recent != nil { // with the band the self detector judges against
			if p.self && band {
				recent.note(j, ex, float32(mean), float32(p.threshold*spread))
				far = far || !withinHalfBand(ex.Value-mean, spread, p.halfThreshold)
			} else {
				recent.note(j, ex, nan32, nan32)
			}
		}
		shift := 0.0
		if p.self && band && e.cfg.Self.ShiftThreshold > 0 {
			z := (ex.Value - mean) / spread
			shift = e.shiftScore(p, z, ex.Seasonal, slot, d, ds)
			if p.shiftBreach(shift, e.cfg.Self.ShiftThreshold) && e.peersShiftedToo(p, g, slot, shift) {
				shift = 0
			}
		}
		recurring := p.self && band && p.recurringBurst(ex, mean, spread)
		if p.self && band &&
			!(ds.noMetricState() && !p.shiftBreach(shift, e.cfg.Self.ShiftThreshold) && (recurring || withinHalfBand(ex.Value-mean, spread, p.halfThreshold))) &&
			e.judgeSelf(p, ex, mean, spread, shift, recurring, slot, d, ds, g, t) {
			anomalous = true
		}
		// asked again: judgeSelf may have just created the state
		if p.peer && ex.GroupSamples >= e.cfg.Peer.MinGroupSamples && (!ds.noMetricState() || p.beyondPeers(ex)) &&
			e.judgePeer(p, ex, slot, d, ds, g, t) {
			anomalous = true
		}
		if now && band && e.judgePeerNow(p, ex, mean, spread, slot, d, ds, g, t) {
			anomalous = true
		}
	}
	if e.recent != nil {
		e.recent.settle(recent, t, &ds.recent, far)
	}
	return anomalous
}

// metricAlarm returns the device's alarm state at index k (2×slot for
// self, +1 for peer), or nil when it has none.
func (ds *deviceState) metricAlarm(k int) *alarmState {
	if ds.more == nil || k >= len(ds.more.metric) {
		return nil
	}
	return &ds.more.metric[k]
}

// noMetricState reports whether the device has no self or peer alarm
// state yet: then a datapoint that does not breach changes nothing.
func (ds *deviceState) noMetricState() bool { return ds.more == nil || ds.more.metric == nil }

// selfBand returns the center and spread the self detector judges ex's
// value against (the hour-of-week expectation once trusted), and false
// while the device's baseline (or its group's, for a new device) has too
// few samples to judge.
func (p *metricParams) selfBand(sc *SelfConfig, ex *baseline.Expectation) (mean, spread float64, ok bool) {
	if ex.Samples < sc.MinSamples && !(ex.FromGroup && ex.GroupSamples >= sc.MinSamples) {
		return 0, 0, false
	}
	// The long-run std floors the primary spread after a quiet spell. The
	// hour-of-week spread is long-run already (the seasonal half-life),
	// and the long-run std of a seasonal metric holds its daily swing, a
	// floor that would hide what the profile is there to see.
	mean, std := ex.Mean, max(ex.Std, p.longRatio*ex.LongStd)
	if ex.Seasonal {
		mean, std = ex.SeasonalMean, ex.SeasonalStd
	}
	return mean, p.spread(std, mean, ex.Value), true
}

// peersShiftedBy is how far, in the devices' own spreads, the median of a
// group's residuals now must lie in the direction of a device's level
// shift for the shift to count as the group's (peersShiftedToo).
const peersShiftedBy = 1

// peersShiftedToo reports whether the devices of group g, now, sit off
// their own expectations of metric slot in the direction of a level shift
// (the "peers now" summary as of the group's last refresh, with at least
// peer.now.min_devices devices): the shift is then the group's — a daily
// peak before the profile knows it, a new production plan — not the
// device's, and the chart's alarm is not raised. A whole group's change is
// the fleet detector's to judge; a device that leaves its peers is still
// the "peers now" test's and the band's.
func (e *Engine) peersShiftedToo(p *metricParams, g int32, slot int, shift float64) bool {
	if !p.peer || !e.cfg.Peer.Now.Enabled {
		return false
	}
	pn := &e.peersNow
	if int(g) >= len(pn.groups) || slot >= len(pn.groups[g]) {
		return false
	}
	r := &pn.groups[g][slot]
	if !r.summarized || r.devices < e.cfg.Peer.Now.MinDevices {
		return false
	}
	return shift > 0 && r.med >= peersShiftedBy || shift < 0 && r.med <= -peersShiftedBy
}

// shiftBreach reports whether a level-shift score lies beyond threshold
// in a judged direction (threshold 0: the test is off).
func (p *metricParams) shiftBreach(shift, threshold float64) bool {
	return threshold > 0 && (p.up && shift > threshold || p.down && shift < -threshold)
}

// beyondPeers reports whether ex's value lies beyond its group's
// statistic in a judged direction: only then can the peer detector breach.
func (p *metricParams) beyondPeers(ex *baseline.Expectation) bool {
	q := &ex.GroupQuantiles
	return p.up && ex.Value > q[p.peerUpper] || p.down && ex.Value < q[p.peerLower]
}

// recurringBurst reports whether ex's value, above its expectation, is a
// burst its group has as a matter of course: within the band above the most
// the group learned in the last week or two (Expectation.GroupPeak: as if
// the peak were expected, for a burst's size varies too), while that
// peak lies beyond twice the threshold in the group's own spread, where no
// value of a merely noisy metric gets. A weekly self-test's error count is
// then not new each week, which the day-long baselines would make it;
// what alarmed was never learned, so an attack's burst is not remembered
// as normal.
func (p *metricParams) recurringBurst(ex *baseline.Expectation, mean, spread float64) bool {
	return p.up && ex.Value > mean && ex.Value <= ex.GroupPeak+p.threshold*spread &&
		ex.GroupPeak-ex.GroupMean > 2*p.threshold*ex.GroupStd
}

// judgeSelf judges one metric against the device's own baseline, the
// band of selfBand. A recurring burst (recurringBurst) does not breach the
// band unless the metric is in alarm already.
func (e *Engine) judgeSelf(p *metricParams, ex *baseline.Expectation, mean, spread, shift float64, recurring bool, slot int, d int32, ds *deviceState, g int32, t int64) bool {
	sc := &e.cfg.Self
	z := (ex.Value - mean) / spread
	if recurring { // it raises nothing, but an open alarm stays open
		ms := ds.metricAlarm(2 * slot)
		recurring = ms == nil || !ms.active()
	}
	level := !recurring && (p.up && z > p.threshold || p.down && z < -p.threshold)
	shifted := !level && p.shiftBreach(shift, sc.ShiftThreshold)
	breach := level || shifted
	if !breach && ds.noMetricState() {
		return false
	}
	st := e.metricState(ds, 2*slot)
	if !breach && st.active() && st.flags&alarmShift != 0 {
		// An open shift alarm holds while its chart stays beyond its
		// warning limit: a chart hovering at its threshold is the same
		// shift, not one that ended and began again.
		shifted = p.shiftBreach(shift, shiftWarning*sc.ShiftThreshold)
		breach = shifted
	}
	toAlarm := sc.ToAlarm
	spike := level && p.immediate > 0 && math.Abs(z) >= p.immediate
	if spike || shifted { // a shift is many datapoints' evidence already
		toAlarm = 1
	}
	switch st.step(t, breach, toAlarm, sc.ToClear) {
	case raised:
		low := z < 0
		if shifted {
			low = shift < 0
		}
		st.setLow(low)
		st.flags &^= alarmShift
		a := e.metricAlert(DetectorSelf, p, ex, d, g, t, mean, mean-p.threshold*spread, mean+p.threshold*spread, z, low)
		if shifted {
			st.flags |= alarmShift
			a.Message += shiftTestText(shift, sc.ShiftThreshold, sc.ShiftLambda)
			e.raise(a, st, d, g, math.Abs(shift)/sc.ShiftThreshold, 0)
			break
		}
		a.Message += selfTestText(spike, z, mean, spread, p.threshold, p.immediate, toAlarm)
		e.raise(a, st, d, g, math.Abs(z)/p.threshold, 0)
	case cleared:
		a := e.metricAlert(DetectorSelf, p, ex, d, g, t, mean, mean-p.threshold*spread, mean+p.threshold*spread, z, st.low())
		e.clear(a, st, d)
		st.flags |= alarmSettling
	}
	return breach
}

// selfTestText says which test of the self detector fired and with what
// numbers: a spike (one datapoint beyond immediate_factor thresholds) or a
// level (datapoints_to_alarm datapoints in a row beyond the threshold).
func selfTestText(spike bool, z, mean, spread, threshold, immediate float64, toAlarm int) string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }
	if spike {
		return "; spike: score " + f(z) + " (deviation over spread " + f(spread) + " from " + f(mean) +
			") beyond " + f(immediate) + ", alarmed at once"
	}
	return "; level: score " + f(z) + " (deviation over spread " + f(spread) + " from " + f(mean) +
		") beyond " + f(threshold) + " for " + strconv.Itoa(toAlarm) + " datapoints in a row"
}

// judgePeer judges one metric against the group's percentiles: beyond the
// statistic (Device Defender semantics) and at least min_score times the
// statistic's distance from the median. The caller has checked the
// group's samples (peer.min_group_samples).
func (e *Engine) judgePeer(p *metricParams, ex *baseline.Expectation, slot int, d int32, ds *deviceState, g int32, t int64) bool {
	pc := &e.cfg.Peer
	q := &ex.GroupQuantiles
	med, hi, lo := q[baseline.QP50], q[p.peerUpper], q[p.peerLower]
	// The percentiles are bucket midpoints: a value beyond the statistic by
	// less than half its bucket may lie inside it, and a statistic in the
	// median's bucket is no distance from it.
	w := baseline.SketchBucketWidth(med)
	var score float64
	breach := false
	if p.up && ex.Value > hi+baseline.SketchBucketWidth(hi)/2 {
		score = (ex.Value - med) / p.spread(max(hi-med, w), med, ex.Value)
		breach = score >= pc.MinScore
	}
	if !breach && p.down && ex.Value < lo-baseline.SketchBucketWidth(lo)/2 {
		score = -(med - ex.Value) / p.spread(max(med-lo, w), med, ex.Value)
		breach = -score >= pc.MinScore
	}
	if !breach && ds.noMetricState() {
		return false
	}
	st := e.metricState(ds, 2*slot+1)
	switch st.step(t, breach, pc.ToAlarm, pc.ToClear) {
	case raised:
		st.setLow(score < 0)
		a := e.metricAlert(DetectorPeer, p, ex, d, g, t, med, lo, hi, score, score < 0)
		e.raise(a, st, d, g, math.Abs(score)/pc.MinScore, 0)
	case cleared:
		a := e.metricAlert(DetectorPeer, p, ex, d, g, t, med, lo, hi, score, st.low())
		e.clear(a, st, d)
	}
	return breach
}

// metricAlert builds the alert of a self or peer transition on the
// current row. low is the alarm's direction: a value below normal. The
// peer statistic quoted follows it, not where the current value lies, so a
// cleared high alarm is explained against the upper statistic it crossed.
func (e *Engine) metricAlert(det string, p *metricParams, ex *baseline.Expectation, d, g int32, t int64, expected, lower, upper, score float64, low bool) *Alert {
	a := e.newAlert(det, p.name, d, g, t)
	a.Observed, a.Expected, a.Lower, a.Upper, a.Score = ex.Value, expected, lower, upper, score
	a.Technique = p.technique
	a.Baseline = ex.Version
	peerStat, peerValue := p.upperName, ex.GroupQuantiles[p.peerUpper]
	if low {
		peerStat, peerValue = p.lowerName, ex.GroupQuantiles[p.peerLower]
	}
	if ex.GroupSamples == 0 {
		peerStat = ""
	}
	if det == DetectorSelf {
		a.SampleCount = ex.Samples
		if ex.FromGroup {
			a.SampleCount = ex.GroupSamples
		}
		a.Message = deviationMessage(a.Device, a.Group, p.name, ex.Value, expected, peerStat, peerValue)
	} else {
		a.SampleCount = ex.GroupSamples
		a.Message = peerMessage(a.Device, a.Group, p.name, ex.Value, expected, peerStat, peerValue, ex.Mean)
	}
	return a
}
