package detect

import (
	"math"

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
	minSpread, ratio     float64
	peerUpper, peerLower int // indices into Expectation.GroupQuantiles
	upperName, lowerName string
	technique            string
}

func newMetricParams(cfg *Config, name string) metricParams {
	m := cfg.Metrics[name]
	p := metricParams{
		name: name, self: cfg.Self.Enabled && !m.DisableSelf, peer: cfg.Peer.Enabled && !m.DisablePeer,
		threshold: cfg.Self.Threshold, minSpread: cfg.Self.MinSpread, ratio: cfg.Self.MinSpreadRatio,
		technique: m.Technique,
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
// deviation, floored relative to the center and absolutely, so a metric
// that never varied does not turn a small change into an infinite score.
func (p *metricParams) spread(std, center float64) float64 {
	return max(std, p.ratio*math.Abs(center), p.minSpread)
}

// withinHalfBand reports whether |diff| is below half the band
// halfThreshold×2×spread. Nearly every value is, and then the rounded
// quotient diff/spread is no further from 0 than the threshold (the
// product rounds up by half an ulp at most, and rounding is monotonic), so
// it cannot breach: judgeSelf skips the division. NaN, a zero spread or
// an infinite diff fail the test and take the division as before.
func withinHalfBand(diff, spread, halfThreshold float64) bool {
	return math.Abs(diff) < halfThreshold*spread
}

// judgeMetrics runs the self and peer detectors over the current row's
// expectations. It reports whether any datapoint breached.
func (e *Engine) judgeMetrics(d int32, ds *deviceState, g int32, t int64) bool {
	anomalous := false
	for j, slot := range e.colSlot {
		ex := &e.exp[j]
		if slot < 0 || !ex.Present || ex.Learning {
			continue
		}
		p := &e.metrics[slot]
		if p.self && e.judgeSelf(p, ex, slot, d, ds, g, t) {
			anomalous = true
		}
		if p.peer && e.judgePeer(p, ex, slot, d, ds, g, t) {
			anomalous = true
		}
	}
	return anomalous
}

// judgeSelf judges one metric against the device's own baseline (its
// hour-of-week expectation once trusted).
func (e *Engine) judgeSelf(p *metricParams, ex *baseline.Expectation, slot int, d int32, ds *deviceState, g int32, t int64) bool {
	sc := &e.cfg.Self
	if ex.Samples < sc.MinSamples && !(ex.FromGroup && ex.GroupSamples >= sc.MinSamples) {
		return false
	}
	mean, std := ex.Mean, ex.Std
	if ex.Seasonal {
		mean, std = ex.SeasonalMean, ex.SeasonalStd
	}
	spread := p.spread(std, mean)
	diff := ex.Value - mean
	noState := ds.more == nil || ds.more.metric == nil
	if noState && withinHalfBand(diff, spread, p.halfThreshold) {
		return false // no breach, and no state to step: z is not needed
	}
	z := diff / spread
	breach := p.up && z > p.threshold || p.down && z < -p.threshold
	if !breach && noState {
		return false
	}
	st := e.metricState(ds, 2*slot)
	switch st.step(t, breach, sc.ToAlarm, sc.ToClear) {
	case raised:
		st.setLow(z < 0)
		a := e.metricAlert(DetectorSelf, p, ex, d, g, t, mean, mean-p.threshold*spread, mean+p.threshold*spread, z, z < 0)
		e.raise(a, st, d, g, math.Abs(z)/p.threshold, 0)
	case cleared:
		a := e.metricAlert(DetectorSelf, p, ex, d, g, t, mean, mean-p.threshold*spread, mean+p.threshold*spread, z, st.low())
		e.clear(a, st, d)
	}
	return breach
}

// judgePeer judges one metric against the group's percentiles: beyond the
// statistic (Device Defender semantics) and at least min_score times the
// statistic's distance from the median.
func (e *Engine) judgePeer(p *metricParams, ex *baseline.Expectation, slot int, d int32, ds *deviceState, g int32, t int64) bool {
	pc := &e.cfg.Peer
	if ex.GroupSamples < pc.MinGroupSamples {
		return false
	}
	q := &ex.GroupQuantiles
	med, hi, lo := q[baseline.QP50], q[p.peerUpper], q[p.peerLower]
	var score float64
	breach := false
	if p.up && ex.Value > hi {
		score = (ex.Value - med) / p.spread(hi-med, med)
		breach = score >= pc.MinScore
	}
	if !breach && p.down && ex.Value < lo {
		score = -(med - ex.Value) / p.spread(med-lo, med)
		breach = -score >= pc.MinScore
	}
	if !breach && (ds.more == nil || ds.more.metric == nil) {
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
