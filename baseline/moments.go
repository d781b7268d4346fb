package baseline

import (
	"math"
	"time"
)

// Moments is an exponentially decayed mean and variance on event time: a
// sample's weight halves every half-life. It is mergeable with Chan's
// parallel formulas, so summaries built on shards combine into the summary
// of the whole. The zero value with HalfLife 0 never decays (plain running
// mean and variance). Moments is a value type of 40 bytes; it allocates
// nothing.
type Moments struct {
	halfLife int64   // ns; 0: no decay
	last     int64   // event time (ns) the weights refer to
	w        float64 // decayed weight (sum of sample weights)
	mean     float64
	m2       float64 // decayed sum of squared deviations
}

// NewMoments returns empty moments with the given half-life (0: no decay).
func NewMoments(halfLife time.Duration) Moments { return Moments{halfLife: int64(halfLife)} }

// Add folds value x observed at event time tNanos. A sample older than the
// newest one seen is weighted by its age instead of rewinding the state,
// so out-of-order arrival gives the same result as in-order.
func (m *Moments) Add(tNanos int64, x float64) {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return
	}
	a := 1.0
	if m.w == 0 {
		m.last = tNanos
	} else if m.halfLife > 0 {
		if dt := tNanos - m.last; dt > 0 {
			d := decayFactor(dt, m.halfLife)
			m.w *= d
			m.m2 *= d
			m.last = tNanos
		} else if dt < 0 {
			a = decayFactor(-dt, m.halfLife)
		}
	} else if tNanos > m.last {
		m.last = tNanos
	}
	m.w, m.mean, m.m2 = welford(m.w, m.mean, m.m2, x, a)
}

// Merge folds o into m (Chan et al.): both are brought to the later of
// their times, then combined. Half-lives must match; a mismatch is a bug.
func (m *Moments) Merge(o *Moments) {
	if m.halfLife != o.halfLife {
		panic("BUG: merging Moments with different half-lives")
	}
	if o.w == 0 {
		return
	}
	ow, om2 := o.w, o.m2
	switch {
	case m.w == 0:
		*m = *o
		return
	case m.halfLife == 0:
		m.last = max(m.last, o.last)
	case o.last > m.last:
		d := decayFactor(o.last-m.last, m.halfLife)
		m.w *= d
		m.m2 *= d
		m.last = o.last
	case o.last < m.last:
		d := decayFactor(m.last-o.last, m.halfLife)
		ow *= d
		om2 *= d
	}
	m.w, m.mean, m.m2 = chan3(m.w, m.mean, m.m2, ow, o.mean, om2)
}

// Mean returns the decayed mean (0 when empty).
func (m *Moments) Mean() float64 { return m.mean }

// Var returns the decayed population variance (0 when empty).
func (m *Moments) Var() float64 {
	if m.w <= 0 {
		return 0
	}
	return clampVar(m.m2 / m.w)
}

// Std returns the square root of Var.
func (m *Moments) Std() float64 { return math.Sqrt(m.Var()) }

// Weight returns the decayed weight as of event time tNanos: the effective
// number of samples behind Mean and Var.
func (m *Moments) Weight(tNanos int64) float64 {
	if m.halfLife > 0 && tNanos > m.last {
		return m.w * decayFactor(tNanos-m.last, m.halfLife)
	}
	return m.w
}

// Last returns the event time of the newest sample.
func (m *Moments) Last() int64 { return m.last }

// HalfLife returns the half-life the moments decay with.
func (m *Moments) HalfLife() time.Duration { return time.Duration(m.halfLife) }

// decayFactor returns 2^(-dt/halfLife) for dt >= 0.
func decayFactor(dt, halfLife int64) float64 {
	return exp2(-float64(dt) / float64(halfLife))
}

// welford folds x with weight a into (w, mean, m2) (West's weighted
// incremental update).
func welford(w, mean, m2, x, a float64) (float64, float64, float64) {
	if w == 0 {
		// fully decayed (or new): start at x exactly, rather than through
		// a cancellation against a stale mean far away
		return a, x, 0
	}
	w += a
	delta := x - mean
	if a == 1 {
		// Samples in time order, nearly every call: the same sums without
		// the multiplications by a, which are exact, so the same bits, and
		// a multiplication less on the way to the division.
		mean += delta / w
		m2 += delta * (x - mean)
	} else {
		mean += delta * a / w
		m2 += a * delta * (x - mean)
	}
	if m2 < 0 { // rounding when a tiny weight meets a far mean
		m2 = 0
	}
	return w, mean, m2
}

// chan3 combines two summaries taken at the same time (Chan, Golub and
// LeVeque's parallel formula).
func chan3(wa, ma, m2a, wb, mb, m2b float64) (float64, float64, float64) {
	w := wa + wb
	if w == 0 {
		return 0, 0, 0
	}
	delta := mb - ma
	return w, ma + delta*wb/w, m2a + m2b + delta*delta*wa*wb/w
}

// clampVar hides the tiny negative variances rounding can leave.
func clampVar(v float64) float64 {
	if v < 0 || math.IsNaN(v) {
		return 0
	}
	return v
}
