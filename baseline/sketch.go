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
	neg      *sketchStore // allocated on the first negative value
	// ranks are the values at the ranks of Quantiles (see RankedQuantiles),
	// next to the fields every value reads rather than past the counts.
	ranks rankCache
	pos   sketchStore
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
	var ord int64 // the bucket's place in the order Quantiles walks them
	var cnt float64
	switch key, ok := sketchKey(x); {
	case !ok:
		q.zero += w
		cnt = q.zero
	case x > 0:
		c, in := q.pos.addInWindow(key, w)
		if !in {
			q.pos.add(key, w) // may slide the window and collapse buckets
			q.ranks.ok = false
		}
		ord, cnt = int64(key)+ordBias, float64(c)
	default:
		if q.neg == nil {
			q.neg = &sketchStore{}
			q.neg.reset()
		}
		c, in := q.neg.addInWindow(key, w)
		if !in {
			q.neg.add(key, w)
			q.ranks.ok = false
		}
		ord, cnt = -(int64(key) + ordBias), float64(c)
	}
	if c := &q.ranks; c.ok {
		// Charge the value's share of the ranks' room (see rankCache): r
		// is its region, found by a binary search over the ranks' buckets
		// whose steps are sign bits, not branches (where a value lands
		// among the ranks is as unpredictable as the value).
		o := &c.ords
		i := int(uint64(o[3]-ord)>>63) << 2 // 4 when o[3] < ord
		i += int(uint64(o[(i+1)&7]-ord)>>63) << 1
		i += int(uint64(o[i&7]-ord) >> 63)
		d := o[i&7] - ord
		r := 2*i + int(uint64(d|-d)>>63^1) // +1 in rank i's bucket (d == 0)
		c.t += w
		c.used += c.cost[r&15]*w + c.errCount*cnt + c.errTotal*c.t
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
	q.ranks.ok = false
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

// SketchBucketWidth returns the width of the sketch's bucket holding x (0
// for what counts as zero): a quantile read near x stands for any value
// within half of it. A narrow distribution far from zero (a temperature of
// 78 ± 0.3) fits in one or two buckets, so its percentiles cannot be told
// apart more finely than this.
func SketchBucketWidth(x float64) float64 {
	k, ok := sketchKey(x)
	if !ok {
		return 0
	}
	return math.Ldexp(1, int(k>>sketchSubBits)-sketchSubBits)
}

// sketchValue returns the midpoint of the bucket with key k.
func sketchValue(k int32) float64 {
	exp := int(k >> sketchSubBits)
	mant := uint64(k & (sketchSub - 1))
	if exp < -1022 || exp > 1023 { // only from a corrupt summary: not a normal number
		return math.Ldexp(1+(float64(mant)+0.5)/sketchSub, exp)
	}
	// (1 + (mant+0.5)/sketchSub) × 2^exp from its bits, as Ldexp returns
	// it for a normal result, without Ldexp's cost: walks emit it per rank.
	return math.Float64frombits(uint64(exp+1023)<<52 | mant<<(52-sketchSubBits) | 1<<(51-sketchSubBits))
}

// addInWindow adds w at key and reports true, with the bucket's new
// count, when key falls in the store's window, as it does for nearly
// every value, taking the path add takes then; it does nothing and
// reports false for an empty store or a key outside the window. Unlike
// add it is small enough to inline.
func (s *sketchStore) addInWindow(key int32, w float64) (float32, bool) {
	i := key - s.offset
	if uint32(i) >= sketchBuckets || s.lo > s.hi { // i < 0 wraps
		return 0, false
	}
	c := s.counts[i] + float32(w)
	s.counts[i] = c
	s.total += w
	s.lo, s.hi = min(s.lo, i), max(s.hi, i)
	return c, true
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
	q.ranks = o.ranks // it describes the same counts
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
	q.ranks.ok = false
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
func (q *QuantileSketch) Quantiles(dst, ps []float64) { q.walk(dst, ps, nil) }

// rankMarks are where a walk placed each rank: the order of its bucket
// (see ordBias) and the cumulative weight before and through the bucket.
type rankMarks struct {
	ord             [NumQuantiles]int64
	before, through [NumQuantiles]float64
	placed          int // ranks placed by a bucket; the others got the maximum
}

// walk is Quantiles, also noting in marks (when not nil; then len(ps) is
// at most NumQuantiles) where each rank was placed. A rank is placed in
// the first non-empty bucket whose cumulative weight exceeds rank×total.
func (q *QuantileSketch) walk(dst, ps []float64, marks *rankMarks) {
	total := q.Count()
	if total <= 0 {
		for i := range ps {
			dst[i] = math.NaN()
		}
		return
	}
	k := 0
	var cum float64
	// emit assigns value v to every pending rank whose target lies within
	// cum, the weight through the bucket of order ord holding c.
	emit := func(v float64, ord int64, c float64) {
		for k < len(ps) && ps[k]*total < cum {
			dst[k] = v
			if marks != nil {
				marks.ord[k], marks.before[k], marks.through[k] = ord, cum-c, cum
				marks.placed = k + 1
			}
			k++
		}
	}
	if n := q.neg; n != nil && n.lo <= n.hi {
		for i := n.hi; i >= n.lo && k < len(ps); i-- {
			if c := n.counts[i]; c != 0 {
				cum += float64(c)
				emit(-sketchValue(n.offset+i), -(int64(n.offset+i) + ordBias), float64(c))
			}
		}
	}
	if q.zero > 0 && k < len(ps) {
		cum += q.zero
		emit(0, 0, q.zero)
	}
	if p := &q.pos; p.lo <= p.hi {
		for i := p.lo; i <= p.hi && k < len(ps); i++ {
			if c := p.counts[i]; c != 0 {
				cum += float64(c)
				emit(sketchValue(p.offset+i), int64(p.offset+i)+ordBias, float64(c))
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

// ordBias orders buckets as Quantiles walks them: a positive value's bucket
// with key k is ordBias+k, a negative one's -(ordBias+k), zero 0; keys are
// int32, so the three never meet.
const ordBias = int64(1) << 32

// RankedQuantiles returns the sketch's values at the ranks of Quantiles
// (p0.1 … p99.9), exactly what Quantiles(dst, Quantiles[:]) would return
// now, or NaNs while the sketch is empty. The result is valid until the
// sketch changes.
//
// Quantiles walks every bucket; a group sketch learns a value per row and
// is read per row, and nearly every value leaves every rank in its bucket.
// So the last walk's result is kept with how far each rank lies from the
// edges of its bucket, in weight, and each value added uses up a share of
// that room; only when the room may be used up is the sketch walked again.
// TestRankedQuantilesMatchWalk and FuzzRankedQuantiles prove the two
// agree bit for bit.
func (q *QuantileSketch) RankedQuantiles() *[NumQuantiles]float64 {
	if c := &q.ranks; c.ok && c.used < 1 {
		return &c.q
	}
	return q.rerank()
}

// rankCache is the last walk's values at the ranks of Quantiles and what
// the weight added since may have done to them.
//
// A rank p stays in its bucket b while
//
//	before(b) <= p×total < through(b)
//
// (the walk's placing rule). Weight w added below b raises before, through
// and total by w, so the room below, lo = p×total - before, shrinks by
// (1-p)×w; added above b it raises only total, so the room above,
// hi = through - p×total, shrinks by p×w; added in b it shrinks neither.
// The buckets of the seven ranks cut the buckets into 15 regions (below
// the first, the first, between the first and the second, …), and for a
// value in each region the walk computes the largest share of any rank's
// room a unit of its weight can use (cost). While the shares used add up
// to less than one, no rank has left its bucket, and since counts only
// grow between walks (scaling, sliding the window and merging drop the
// cache), no earlier bucket has come to hold it: the walk would return
// the same values.
//
// Rounding: a count is a float32 sum, so a bucket grows by w within 2^-24
// of its count; totals and the walk's running sums are float64. Each
// value charges 2^-23 of its bucket's count and 2^-40 of the total weight
// against the smallest room, and the rooms start 1e-9 of the total short
// of the walk's: far more than sums of at most 4097 buckets can be off.
type rankCache struct {
	ok   bool
	used float64 // share used since the walk; the values hold while it is below 1
	q    [NumQuantiles]float64
	t    float64 // the sketch's total weight as of the walk, plus what was added since
	// ords are the orders of the ranks' buckets, ascending, and
	// ordSentinel.
	ords [NumQuantiles + 1]int64
	// cost[r]: share of room one unit of weight added in region r may
	// use; region 2i lies between ords[i-1] and ords[i], 2i+1 is ords[i].
	cost [2*NumQuantiles + 2]float64 // the last one unused: a power of two to index without a bounds check
	// errCount and errTotal: share of the smallest room one unit of the
	// bucket's count and of the total weight may cost in rounding.
	errCount, errTotal float64
}

// ordSentinel is above the order of every bucket (|key| < 2^31, so orders
// lie within ±2^33), and differences with it cannot overflow.
const ordSentinel = int64(1) << 40

// rerank walks the sketch and sets its rank cache.
func (q *QuantileSketch) rerank() *[NumQuantiles]float64 {
	var m rankMarks
	c := &q.ranks
	q.walk(c.q[:], Quantiles[:], &m)
	total := q.Count()
	inf := math.Inf(1)
	c.ok, c.used, c.t = true, 0, total
	copy(c.ords[:], m.ord[:])
	c.ords[NumQuantiles] = ordSentinel
	c.cost[len(c.cost)-1] = inf
	if !(total > 0) || m.placed < NumQuantiles {
		// empty, or a rank the walk could not place: walk again after any change
		for r := range c.cost {
			c.cost[r] = inf
		}
		c.errCount, c.errTotal = inf, inf
		return &c.q
	}
	// room below and above each rank, as the share one unit of weight uses
	var below, above [NumQuantiles]float64
	errInv := 0.0 // 1 / the smallest room
	slack := 1e-9 * total
	for i, p := range Quantiles {
		invLo, invHi := inf, inf
		if lo := p*total - m.before[i] - slack; lo > 0 {
			invLo = 1 / lo
		}
		if hi := m.through[i] - p*total - slack; hi > 0 {
			invHi = 1 / hi
		}
		below[i], above[i] = (1-p)*invLo, p*invHi
		errInv = max(errInv, invLo, invHi)
	}
	c.errCount, c.errTotal = 0x1p-23*errInv, 0x1p-40*errInv
	// A value in region 2i lies above the buckets of ranks 0…i-1 and
	// below those of i…6; in region 2i+1, the bucket of rank i, it lies
	// above the lower buckets and below the higher ones. So the cost of a
	// region is the largest above-share of the ranks below it and the
	// largest below-share of the ranks above it.
	var aboveMax [NumQuantiles + 1]float64 // aboveMax[i]: largest above[j], j < i
	var belowMax [NumQuantiles + 1]float64 // belowMax[i]: largest below[j], j >= i
	for i := range NumQuantiles {
		aboveMax[i+1] = max(aboveMax[i], above[i])
		belowMax[NumQuantiles-1-i] = max(belowMax[NumQuantiles-i], below[NumQuantiles-1-i])
	}
	for i := range NumQuantiles + 1 {
		c.cost[2*i] = max(aboveMax[i], belowMax[i])
		if i == NumQuantiles {
			break
		}
		lo, hi := i, i // the ranks in rank i's bucket
		for lo > 0 && c.ords[lo-1] == c.ords[i] {
			lo--
		}
		for hi+1 < NumQuantiles && c.ords[hi+1] == c.ords[i] {
			hi++
		}
		c.cost[2*i+1] = max(aboveMax[lo], belowMax[hi+1])
	}
	return &c.q
}
