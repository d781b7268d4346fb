package baseline

import (
	"math"
	"time"
)

// Quantile sketch: a DDSketch-style log-bucket histogram. A value's bucket
// is its binary exponent and the top sketchSubBits bits of its mantissa, so
// the key costs two shifts (no logarithm) and every value within a bucket
// is within SketchRelativeAccuracy of the bucket's midpoint. Buckets have
// absolute keys, so two sketches merge by adding counts. Memory is fixed:
// a dense window of sketchBuckets counts per sign that slides with the
// data and, when the values span more than the window, collapses the
// lowest buckets (high quantiles are the ones detectors judge by).
const (
	sketchSubBits = 6
	sketchSub     = 1 << sketchSubBits // buckets per power of two
	sketchBuckets = 2048               // 32 powers of two (9.6 decades) per sign
	// sketchMinExp: magnitudes below 2^sketchMinExp count as zero.
	sketchMinExp = -60

	// SketchRelativeAccuracy bounds the relative error of
	// QuantileSketch.Quantile for values inside the window.
	SketchRelativeAccuracy = 1.0 / (2*sketchSub + 1)
)

// QuantileSketch is a mergeable, fixed-memory quantile sketch with
// exponential decay on event time (forward decay: a sample's weight is
// 2^((t-landmark)/halfLife), the landmark moves in whole half-lives, so
// sketches of shards stay aligned and merge exactly). Add allocates nothing
// once the sketch has seen a value of each sign. It is not safe for
// concurrent use.
type QuantileSketch struct {
	halfLife int64 // ns; 0: no decay
	landmark int64 // ns; a multiple of halfLife
	started  bool
	zero     float64
	pos      sketchStore
	neg      *sketchStore // allocated on the first negative value
}

type sketchStore struct {
	total  float64
	offset int32 // key of counts[0]
	lo, hi int32 // used index range within counts; lo > hi when empty
	counts [sketchBuckets]float32
}

// NewQuantileSketch returns an empty sketch whose weights halve every
// halfLife of event time (0: no decay).
func NewQuantileSketch(halfLife time.Duration) *QuantileSketch {
	q := &QuantileSketch{}
	q.Reset(halfLife)
	return q
}

// Reset empties q and sets its half-life, keeping its memory.
func (q *QuantileSketch) Reset(halfLife time.Duration) {
	neg := q.neg
	*q = QuantileSketch{halfLife: int64(halfLife), neg: neg}
	q.pos.reset()
	if neg != nil {
		neg.reset()
	}
}

func (s *sketchStore) reset() {
	s.total = 0
	s.offset = 0
	s.lo, s.hi = 1, 0
	clear(s.counts[:])
}

// Count returns the decayed weight of all values, in units of the sample
// weight at the current landmark.
func (q *QuantileSketch) Count() float64 {
	c := q.zero + q.pos.total
	if q.neg != nil {
		c += q.neg.total
	}
	return c
}

// Add inserts value x observed at event time tNanos. NaN and infinities
// are ignored.
func (q *QuantileSketch) Add(tNanos int64, x float64) {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return
	}
	w := q.weight(tNanos)
	q.addWeighted(x, w)
}

func (q *QuantileSketch) addWeighted(x, w float64) {
	switch key, ok := sketchKey(x); {
	case !ok:
		q.zero += w
	case x > 0:
		if !q.pos.addInWindow(key, w) {
			q.pos.add(key, w)
		}
	default:
		if q.neg == nil {
			q.neg = &sketchStore{}
			q.neg.reset()
		}
		q.neg.add(key, w)
	}
}

// weight returns the forward-decay weight of a sample at tNanos, moving the
// landmark (and scaling the counts down) once per half-life.
func (q *QuantileSketch) weight(tNanos int64) float64 {
	if q.halfLife <= 0 {
		return 1
	}
	if !q.started {
		q.started = true
		q.landmark = floorDiv(tNanos, q.halfLife) * q.halfLife
	}
	dt := tNanos - q.landmark
	if dt >= q.halfLife {
		q.moveLandmark(q.landmark + (dt/q.halfLife)*q.halfLife)
		dt = tNanos - q.landmark
	}
	return exp2(float64(dt) / float64(q.halfLife))
}

// alignLandmark moves q's landmark to l (a multiple of the half-life),
// rescaling its counts, so that weights computed against l apply.
func (q *QuantileSketch) alignLandmark(l int64) {
	if !q.started {
		q.started = true
		q.landmark = l
		return
	}
	if l >= q.landmark {
		q.moveLandmark(l)
		return
	}
	// a sketch ahead of its group (the Store syncs landmarks after restores
	// and merges, so this is rare): scale up, but never past float32 range
	steps := min((q.landmark-l)/q.halfLife, 64)
	q.landmark = l
	q.scale(exp2(float64(steps)))
}

func (q *QuantileSketch) moveLandmark(to int64) {
	steps := (to - q.landmark) / q.halfLife
	q.landmark = to
	f := exp2(-float64(steps))
	q.scale(f)
}

func (q *QuantileSketch) scale(f float64) {
	q.zero *= f
	q.pos.scale(f)
	if q.neg != nil {
		q.neg.scale(f)
	}
}

func (s *sketchStore) scale(f float64) {
	if s.lo > s.hi {
		return
	}
	s.total *= f
	f32 := float32(f)
	for i := s.lo; i <= s.hi; i++ {
		s.counts[i] *= f32
	}
}

// sketchKey returns the bucket key of |x|, or false when |x| counts as zero.
func sketchKey(x float64) (int32, bool) {
	bits := math.Float64bits(x)
	exp := int32(bits>>52&0x7ff) - 1023
	if exp < sketchMinExp {
		return 0, false
	}
	mant := int32(bits>>(52-sketchSubBits)) & (sketchSub - 1)
	return exp<<sketchSubBits | mant, true
}

// sketchValue returns the midpoint of the bucket with key k.
func sketchValue(k int32) float64 {
	exp := int(k >> sketchSubBits)
	mant := float64(k & (sketchSub - 1))
	return math.Ldexp(1+(mant+0.5)/sketchSub, exp)
}

// addInWindow adds w at key and reports true when key falls in the
// store's window, as it does for nearly every value, taking the path add
// takes then; it does nothing and reports false for an empty store or a
// key outside the window. Unlike add it is small enough to inline.
func (s *sketchStore) addInWindow(key int32, w float64) bool {
	i := key - s.offset
	if uint32(i) >= sketchBuckets || s.lo > s.hi { // i < 0 wraps
		return false
	}
	s.counts[i] += float32(w)
	s.total += w
	s.lo, s.hi = min(s.lo, i), max(s.hi, i)
	return true
}

func (s *sketchStore) add(key int32, w float64) {
	i := key - s.offset
	if s.lo > s.hi {
		// empty: place the first key in the middle of the window
		s.offset = key - sketchBuckets/2
		i = sketchBuckets / 2
		s.lo, s.hi = i, i
	} else if i < 0 || i >= sketchBuckets {
		i = s.extend(key)
	}
	s.counts[i] += float32(w)
	s.total += w
	if i < s.lo {
		s.lo = i
	}
	if i > s.hi {
		s.hi = i
	}
}

// extend slides the window so that key fits, collapsing the lowest keys
// into the lowest bucket when the span is too wide; it returns key's index.
func (s *sketchStore) extend(key int32) int32 {
	lo, hi := s.offset+s.lo, s.offset+s.hi
	lo, hi = min(lo, key), max(hi, key)
	var newOffset int32
	if hi-lo < sketchBuckets {
		newOffset = lo - (sketchBuckets-(hi-lo+1))/2
	} else {
		newOffset = hi - sketchBuckets + 1
	}
	s.shift(newOffset)
	i := key - s.offset
	if i < 0 {
		i = 0
	}
	return i
}

// shift re-bases the window at newOffset, folding counts that fall below
// it into index 0 (the window never moves down past data above it).
func (s *sketchStore) shift(newOffset int32) {
	d := newOffset - s.offset
	if d == 0 {
		return
	}
	var counts [sketchBuckets]float32
	var collapsed float32
	for i := s.lo; i <= s.hi; i++ {
		c := s.counts[i]
		if c == 0 {
			continue
		}
		j := i - d
		if j < 0 {
			collapsed += c
			continue
		}
		counts[j] += c
	}
	counts[0] += collapsed
	s.counts = counts
	s.offset = newOffset
	lo, hi := s.lo-d, s.hi-d
	if lo < 0 {
		lo = 0
	}
	if hi < lo {
		hi = lo
	}
	s.lo, s.hi = lo, hi
}

// copyFrom makes q a copy of o, keeping q's memory.
func (q *QuantileSketch) copyFrom(o *QuantileSketch) {
	neg := q.neg
	q.halfLife, q.landmark, q.started, q.zero = o.halfLife, o.landmark, o.started, o.zero
	q.pos = o.pos
	if o.neg == nil {
		if neg != nil {
			neg.reset()
		}
		q.neg = neg
		return
	}
	if neg == nil {
		neg = &sketchStore{}
	}
	*neg = *o.neg
	q.neg = neg
}

// Merge adds o's values into q. Half-lives must match; a mismatch is a bug.
func (q *QuantileSketch) Merge(o *QuantileSketch) {
	if q.halfLife != o.halfLife {
		panic("BUG: merging QuantileSketches with different half-lives")
	}
	if !o.started && o.Count() == 0 {
		return
	}
	f := 1.0
	if q.halfLife > 0 {
		switch {
		case !q.started:
			q.started = true
			q.landmark = o.landmark
		case o.landmark > q.landmark:
			q.moveLandmark(o.landmark)
		case o.landmark < q.landmark:
			f = exp2(-float64((q.landmark - o.landmark) / q.halfLife))
		}
	}
	q.zero += o.zero * f
	q.mergeStore(&o.pos, 1, f)
	if o.neg != nil {
		q.mergeStore(o.neg, -1, f)
	}
}

func (q *QuantileSketch) mergeStore(o *sketchStore, sign float64, f float64) {
	for i := o.lo; i <= o.hi; i++ {
		if c := o.counts[i]; c != 0 {
			key := o.offset + i
			if sign > 0 {
				q.pos.add(key, float64(c)*f)
			} else {
				if q.neg == nil {
					q.neg = &sketchStore{}
					q.neg.reset()
				}
				q.neg.add(key, float64(c)*f)
			}
		}
	}
}

// Quantile returns the value at rank p (0 ≤ p ≤ 1), or NaN when empty.
func (q *QuantileSketch) Quantile(p float64) float64 {
	var out [1]float64
	q.Quantiles(out[:], []float64{p})
	return out[0]
}

// Quantiles fills dst[i] with the value at rank ps[i]; ps must be sorted
// ascending. It makes one pass over the buckets and allocates nothing.
func (q *QuantileSketch) Quantiles(dst, ps []float64) {
	total := q.Count()
	if total <= 0 {
		for i := range ps {
			dst[i] = math.NaN()
		}
		return
	}
	k := 0
	var cum float64
	// emit assigns value v to every pending rank whose target lies within cum.
	emit := func(v float64) {
		for k < len(ps) && ps[k]*total < cum {
			dst[k] = v
			k++
		}
	}
	if n := q.neg; n != nil && n.lo <= n.hi {
		for i := n.hi; i >= n.lo && k < len(ps); i-- {
			if c := n.counts[i]; c != 0 {
				cum += float64(c)
				emit(-sketchValue(n.offset + i))
			}
		}
	}
	if q.zero > 0 && k < len(ps) {
		cum += q.zero
		emit(0)
	}
	if p := &q.pos; p.lo <= p.hi {
		for i := p.lo; i <= p.hi && k < len(ps); i++ {
			if c := p.counts[i]; c != 0 {
				cum += float64(c)
				emit(sketchValue(p.offset + i))
			}
		}
	}
	// rounding can leave the top ranks unassigned: they get the maximum
	for ; k < len(ps); k++ {
		dst[k] = q.max()
	}
}

func (q *QuantileSketch) max() float64 {
	if p := &q.pos; p.lo <= p.hi {
		for i := p.hi; i >= p.lo; i-- {
			if p.counts[i] != 0 {
				return sketchValue(p.offset + i)
			}
		}
	}
	if q.zero > 0 {
		return 0
	}
	if n := q.neg; n != nil {
		for i := n.lo; i <= n.hi; i++ {
			if n.counts[i] != 0 {
				return -sketchValue(n.offset + i)
			}
		}
	}
	return math.NaN()
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
