package baseline

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func exactQuantile(sorted []float64, p float64) float64 {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

// checkQuantiles asserts each sketch quantile lies within the relative
// accuracy of the exact values at ranks p±rankTol.
func checkQuantiles(t *testing.T, q *QuantileSketch, vals []float64, rankTol float64) {
	t.Helper()
	sorted := slices.Clone(vals)
	slices.Sort(sorted)
	for _, p := range Quantiles {
		got := q.Quantile(p)
		lo := exactQuantile(sorted, math.Max(p-rankTol, 0))
		hi := exactQuantile(sorted, math.Min(p+rankTol, 1))
		acc := SketchRelativeAccuracy * 1.01
		lo, hi = lo-acc*math.Abs(lo), hi+acc*math.Abs(hi)
		if got < lo || got > hi {
			t.Errorf("p%g = %g, want within [%g, %g] (exact %g)", p*100, got, lo, hi, exactQuantile(sorted, p))
		}
	}
}

func TestSketchAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for name, gen := range map[string]func() float64{
		"lognormal":  func() float64 { return math.Exp(rng.NormFloat64() * 2) },
		"normal":     func() float64 { return 100 + 30*rng.NormFloat64() }, // some negatives
		"zero-heavy": func() float64 { return float64(rng.IntN(3)) * rng.Float64() },
		"bytes":      func() float64 { return 1e9 + 1e6*rng.NormFloat64() },
	} {
		t.Run(name, func(t *testing.T) {
			q := NewQuantileSketch(0)
			vals := make([]float64, 20000)
			for i := range vals {
				vals[i] = gen()
				q.Add(t0, vals[i])
			}
			checkQuantiles(t, q, vals, 1e-6)
		})
	}
}

func TestSketchMergeHalvesEqualsWhole(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	whole, a, b := NewQuantileSketch(time.Hour), NewQuantileSketch(time.Hour), NewQuantileSketch(time.Hour)
	tm := t0
	for i := 0; i < 50000; i++ {
		tm += int64(rng.IntN(1000)) * int64(time.Millisecond)
		x := math.Exp(rng.NormFloat64()) - 0.3
		whole.Add(tm, x)
		if i < 20000 || i%3 == 0 {
			a.Add(tm, x)
		} else {
			b.Add(tm, x)
		}
	}
	a.Merge(b)
	if !near(a.Count(), whole.Count(), 1e-5) {
		t.Fatalf("merged count %g, whole %g", a.Count(), whole.Count())
	}
	var qa, qw [NumQuantiles]float64
	a.Quantiles(qa[:], Quantiles[:])
	whole.Quantiles(qw[:], Quantiles[:])
	for i := range qa {
		// same buckets, counts equal up to float32 rounding: the same
		// bucket midpoint, or a neighbour when a rank sits on a boundary
		if !near(qa[i], qw[i], 2*SketchRelativeAccuracy) {
			t.Errorf("p%g: merged %g, whole %g", Quantiles[i]*100, qa[i], qw[i])
		}
	}
}

func TestSketchDecayForgetsOldDistribution(t *testing.T) {
	q := NewQuantileSketch(time.Hour)
	for i := 0; i < 10000; i++ {
		q.Add(t0+int64(i)*int64(time.Second/10), 10)
	}
	// ten half-lives later the fleet sends 1000s
	t1 := t0 + int64(10*time.Hour)
	for i := 0; i < 10000; i++ {
		q.Add(t1+int64(i)*int64(time.Second/10), 1000)
	}
	if p := q.Quantile(0.05); !near(p, 1000, SketchRelativeAccuracy) {
		t.Fatalf("p5 %g after the shift, want about 1000: old values should weigh 2^-10", p)
	}
}

func TestSketchWideRangeCollapsesLowest(t *testing.T) {
	q := NewQuantileSketch(0)
	var vals []float64
	for e := -15; e <= 30; e++ { // 45 decades, wider than the window
		for i := 0; i < 100; i++ {
			v := math.Pow(10, float64(e)) * (1 + float64(i)/100)
			vals = append(vals, v)
			q.Add(t0, v)
		}
	}
	slices.Sort(vals)
	// high quantiles stay accurate; low ones collapse upwards
	for _, p := range []float64{0.99, 0.999} {
		got, want := q.Quantile(p), exactQuantile(vals, p)
		if !near(got, want, 2*SketchRelativeAccuracy) {
			t.Errorf("p%g = %g, want %g", p*100, got, want)
		}
	}
	if q.Count() != float64(len(vals)) {
		t.Errorf("count %g, want %d: collapsing must not lose weight", q.Count(), len(vals))
	}
	if lo := q.Quantile(0.001); lo < exactQuantile(vals, 0.001) {
		t.Errorf("p0.1 %g below the exact %g: collapsed values may only move up", lo, exactQuantile(vals, 0.001))
	}
}

func TestSketchEmptyIsNaN(t *testing.T) {
	q := NewQuantileSketch(time.Hour)
	if !math.IsNaN(q.Quantile(0.5)) {
		t.Fatal("empty sketch quantile is not NaN")
	}
	q.Add(t0, math.NaN())
	if q.Count() != 0 {
		t.Fatal("NaN was counted")
	}
}

func TestSketchAddAllocatesNothing(t *testing.T) {
	q := NewQuantileSketch(time.Hour)
	q.Add(t0, -1)
	rng := rand.New(rand.NewPCG(1, 1))
	allocs := testing.AllocsPerRun(1000, func() {
		q.Add(t0+int64(rng.IntN(1e12)), math.Exp(rng.NormFloat64()*5)*float64(1-2*rng.IntN(2)))
	})
	if allocs != 0 {
		t.Fatalf("Add allocates %g times per call", allocs)
	}
}

// TestSketchValueIsLdexp: the bucket midpoint built from its bits is what
// math.Ldexp returns, for every key of a normal number.
func TestSketchValueIsLdexp(t *testing.T) {
	for k := int32(-1022 << sketchSubBits); k < 1024<<sketchSubBits; k++ {
		exp, mant := int(k>>sketchSubBits), float64(k&(sketchSub-1))
		if got, want := sketchValue(k), math.Ldexp(1+(mant+0.5)/sketchSub, exp); got != want {
			t.Fatalf("key %d: %v, want %v", k, got, want)
		}
	}
	if v := sketchValue(2000 << sketchSubBits); !math.IsInf(v, 1) {
		t.Errorf("key beyond float64 range: %v, want +Inf as Ldexp gives", v)
	}
}

func TestSketchBucketWidth(t *testing.T) {
	// Every value within half a bucket of a quantile the sketch reports is
	// in that quantile's bucket: the midpoint stands for the whole width.
	for _, x := range []float64{78.4, 0.0265, 1, 123456, -42.1} {
		w := SketchBucketWidth(x)
		k, _ := sketchKey(x)
		mid := sketchValue(k)
		if kl, _ := sketchKey(mid - w/2 + w*1e-9); kl != k {
			t.Errorf("%v: bucket [%v ± %v] starts above midpoint - width/2", x, mid, w/2)
		}
		if kh, _ := sketchKey(mid + w/2 - w*1e-9); kh != k {
			t.Errorf("%v: bucket [%v ± %v] ends below midpoint + width/2", x, mid, w/2)
		}
		if kn, _ := sketchKey(mid + w/2 + w*1e-9); kn == k {
			t.Errorf("%v: bucket wider than %v", x, w)
		}
	}
	if w := SketchBucketWidth(78.4); w != 1 {
		t.Errorf("width at 78.4: %v, want 1 (64 buckets per power of two, 64 ≤ 78.4 < 128)", w)
	}
	if w := SketchBucketWidth(0); w != 0 {
		t.Errorf("width at 0: %v", w)
	}
}
