package detect

import (
	"math"
	"strconv"

	"github.com/vigil-ot/vigil/ingest"
)

// The level-shift test of the self detector (self.shift_threshold): an
// EWMA control chart (Roberts, 1959) on the metric's self scores. The
// band test sees one datapoint at a time, so a shift of three standard
// deviations that lasts six hours never crosses a threshold of six; the
// EWMA of the scores, e_t = (1-λ)e_{t-1} + λ·z_t, averages about 2/λ
// datapoints and moves by the whole shift.
//
// What e "normally" does is learned, not assumed: its mean and variance
// on the rows where the device was quiet. So a bias of the scores (a
// baseline that lags a daily ramp) and their autocorrelation (a slow
// sensor, whose EWMA wanders far more than an independent series'
// would) widen the chart by what they really do, and the test is right
// for any metric without a per-metric setting. The spread is floored at
// an independent series' (√(λ/(2-λ)) score units), since the scores are
// in units of the band already and a chart narrower than that would make
// a single step of a constant metric a shift. Scores are clipped at half
// the threshold before averaging, so one spike (alarmed by the band test
// on its own) moves e by λ·threshold/2 at most.

// shiftState is one device metric's chart: the EWMA of its clipped
// scores and the decayed mean and second moment of the EWMA on quiet
// rows (n of them, counting up to shiftWarmup then saturating).
type shiftState struct {
	ewma, mean, m2 float32
	n              uint32
	seasonal       bool // the scores were against the hour-of-week expectation
}

// shiftWarmup is how many quiet rows the chart learns before it judges,
// and the inverse of its learning rate afterwards (a half-life of ~350
// rows).
const shiftWarmup = 500

// shiftPrior is the weight, in rows, of the chart's prior spread.
const shiftPrior = 50

// shiftReach sets how far a score may move the chart. Scores are clipped
// at half the band's threshold, so that one spike moves the chart by
// λ·threshold/2 at most; but a chart whose normal spread is wide (a slow,
// autocorrelated sensor) could then never reach its own threshold, however
// large and lasting the shift: an EWMA of scores clipped at 3 stays below
// 3, and on a chart of spread 0.7 from a normal of −0.6 that is never 4.5
// spreads (SKAB's valve1/0, temperature 79 → 75 °C for 400 s, 4.6 σ: no
// alarm). So the clip is at least the chart's normal plus shiftReach
// times its threshold in its spreads — the chart then crosses its threshold
// within ln 2/λ rows of a lasting shift at the clip, while one clipped
// spike still moves it by λ·shiftReach·threshold (0.9 at the defaults)
// spreads only — and never beyond the band's threshold, where the band
// test takes over.
const shiftReach = 2

// shiftWarning is the chart's warning limit, as a fraction of its
// threshold: a row on which the chart lies beyond it does not teach the
// chart its normal. A chart that learned the rows of its own excursion
// widened with a shift while building up to it, and fell back before it
// crossed (SKAB's valve1/1, a flow meter falling from 32 to 30.6, 3.6 σ of
// its readings: the chart reached −3.5 of its spreads, then its spread grew
// from 0.38 to 0.99 in 45 rows and nothing alarmed). The limit sits in the
// middle of where SKAB's figures are flat (outlier F1 0.80–0.82 for limits
// from 2/3, the warning limit of Shewhart's charts, to 0.85), not at the
// best of them.
const shiftWarning = 0.75

// shiftOf returns the chart of device d's metric slot. Charts live in
// one table per metric, by the engine's local device id (deviceStates),
// in pages never copied as the fleet grows, so devices cost no pointers.
func (e *Engine) shiftOf(slot int, d int32) *shiftState {
	for len(e.shift) <= slot {
		e.shift = append(e.shift, ingest.DeviceTable[shiftState]{})
	}
	return e.shift[slot].At(e.devices.localOf(d))
}

// knownShift returns the chart of device d's metric slot, or nil when the
// device has none.
func (e *Engine) knownShift(slot int, d int32) *shiftState {
	if l, ok := e.devices.lookup(d); ok {
		return e.shift[slot].Get(l)
	}
	return nil
}

// shiftScore folds the datapoint's self score z into its chart and
// returns how far the chart lies from its normal, in its own spreads (0
// while the chart is learning or held).
//
// While the device is in an alarm other than this chart's own, the chart
// is held at its normal: the scores of an alarm's rows, and the jump of a
// baseline that re-learned after one (alarm.relearn_after), are the other
// test's story, not a shift this chart should then report. Only quiet
// rows (no breach, no alarm, the chart within its warning limit) teach
// the chart what normal is; until it has seen shiftWarmup of them, a
// prior of one score unit of spread (a chart as wide as the band's unit)
// keeps a few hundred rows of a slow signal from making it narrow.
func (e *Engine) shiftScore(p *metricParams, z float64, seasonal bool, slot int, d int32, ds *deviceState) float64 {
	if math.IsNaN(z) {
		return 0
	}
	st := e.shiftOf(slot, d)
	if st.seasonal != seasonal {
		// The expectation changed basis (the hour-of-week profile became
		// trusted, or no longer is): the scores' normal is another one,
		// learned again from the prior.
		*st = shiftState{seasonal: seasonal}
	}
	if ds.alarms > 0 {
		if ms := ds.metricAlarm(2 * slot); ms == nil || ms.flags&alarmShift == 0 || !ms.active() {
			st.ewma = st.mean
			return 0
		}
	}
	if ms := ds.metricAlarm(2 * slot); ms != nil && ms.flags&alarmSettling != 0 {
		// After a self alarm of this metric the chart waits until the
		// value is back within one spread of its expectation: a baseline
		// that re-learned a new level (alarm.relearn_after) trails it for
		// hours, and that lag is the cleared alarm's story, not a shift.
		if math.Abs(z) > 1 {
			st.ewma = st.mean
			return 0
		}
		ms.flags &^= alarmSettling
	}

	lambda := e.cfg.Self.ShiftLambda
	// The chart's spread and the clip that lets it reach its threshold
	// matter only once it judges: no square roots for a learning chart.
	warm := st.n >= shiftWarmup/5
	clip, sd := p.halfThreshold, 0.0
	if warm {
		sd = max(math.Sqrt(float64(st.m2)), math.Sqrt(lambda/(2-lambda)))
		clip = min(p.threshold, max(clip, math.Abs(float64(st.mean))+shiftReach*e.cfg.Self.ShiftThreshold*sd))
	}
	c := max(-clip, min(z, clip))
	st.ewma += float32(lambda * (c - float64(st.ewma)))
	score := 0.0
	if warm {
		score = (float64(st.ewma) - float64(st.mean)) / sd
	}
	if ds.alarms == 0 && math.Abs(z) <= p.threshold && !p.shiftBreach(score, shiftWarning*e.cfg.Self.ShiftThreshold) {
		if st.n == 0 {
			st.m2 = float32(shiftPriorVar(lambda)) // the prior: see above
		}
		a := 1 / float64(min(st.n+shiftPrior, shiftWarmup))
		dev := float64(st.ewma) - float64(st.mean)
		st.mean += float32(a * dev)
		st.m2 = float32((1 - a) * (float64(st.m2) + a*dev*dev))
		if st.n < shiftWarmup {
			st.n++
		}
	}
	return score
}

// shiftTestText explains a shift alarm: the chart's value and its normal.
func shiftTestText(score, threshold, lambda float64) string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }
	return "; shift: the EWMA (λ " + f(lambda) + ") of its scores is " + f(score) +
		" of its own normal spreads from its normal, beyond " + f(threshold)
}

// shiftPriorVar is the chart's prior variance: that of the EWMA of an AR(1)
// series of unit variance with φ = 0.9, a slow sensor, whose chart
// wanders 9.5 times as far (in variance) as an independent series'
// λ/(2-λ). A series that is faster shows it as the chart learns; a prior
// as wide as the scores themselves (1) kept a profile that had just become
// trusted blind to a 3σ shift for a week of rows.
func shiftPriorVar(lambda float64) float64 {
	const phi = 0.9
	r := phi * (1 - lambda)
	return lambda / (2 - lambda) * (1 + r) / (1 - r)
}
