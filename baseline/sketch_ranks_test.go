package baseline

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// checkRanked asserts RankedQuantiles returns, bit for bit, what a walk of
// the sketch returns now, and reports whether it had to walk.
func checkRanked(t testing.TB, q *QuantileSketch, step int) (walked bool) {
	t.Helper()
	walked = !(q.ranks.ok && q.ranks.used < 1)
	got := *q.RankedQuantiles()
	var want [NumQuantiles]float64
	q.Quantiles(want[:], Quantiles[:])
	for i := range want {
		if math.Float64bits(got[i]) != math.Float64bits(want[i]) && !(math.IsNaN(got[i]) && math.IsNaN(want[i])) {
			t.Fatalf("step %d: p%g is %v from the cache, %v from a walk (cache %+v)", step, Quantiles[i]*100, got[i], want[i], q.ranks)
		}
	}
	return walked
}

// TestRankedQuantilesMatchWalk is the differential test of the rank
// cache: after every value, with decay moving the landmark, negative
// values, zeros, a window that slides and collapses, and merges, the
// cached ranks equal a fresh walk. For a steady stream the cache spares
// nearly every walk.
func TestRankedQuantilesMatchWalk(t *testing.T) {
	for name, c := range map[string]struct {
		gen      func(r *rand.Rand, i int) float64
		halfLife time.Duration
		// maxWalks is the share of values after which the sketch may be
		// walked: where ranks lie in thin buckets (values around zero
		// spread over many magnitudes, a drifting level) they leave them
		// often, and a walk must follow.
		maxWalks float64
	}{
		"bytes":    {func(r *rand.Rand, _ int) float64 { return 80_000 * (1 + 0.05*r.NormFloat64()) }, 24 * time.Hour, 0.05},
		"counts":   {func(r *rand.Rand, _ int) float64 { return float64(r.IntN(4)) }, time.Hour, 0.1},
		"no decay": {func(r *rand.Rand, _ int) float64 { return 60 + 3*r.NormFloat64() }, 0, 0.05},
		"signed":   {func(r *rand.Rand, _ int) float64 { return 2 * r.NormFloat64() }, 24 * time.Hour, 1},
		"zeros":    {func(r *rand.Rand, _ int) float64 { return float64(r.IntN(2)) * r.Float64() }, time.Hour, 1},
		"drift":    {func(r *rand.Rand, i int) float64 { return math.Exp(float64(i)/2000) * (1 + r.Float64()) }, time.Hour, 1},
		"wide":     {func(r *rand.Rand, _ int) float64 { return math.Exp(30 * r.NormFloat64()) }, 24 * time.Hour, 1},
	} {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(7, 8))
			q := NewQuantileSketch(c.halfLife)
			other := NewQuantileSketch(c.halfLife)
			ts := t0
			const n = 40000
			walks := 0
			for i := 0; i < n; i++ {
				ts += int64(r.IntN(200)) * int64(time.Millisecond) * 60 // a fleet of ~100 devices a minute, several hours
				q.Add(ts, c.gen(r, i))
				if i%9000 == 8999 {
					other.Add(ts, c.gen(r, i))
					q.Merge(other)
				}
				if checkRanked(t, q, i) {
					walks++
				}
			}
			t.Logf("%d walks for %d values (%.2f%%)", walks, n, 100*float64(walks)/n)
			if float64(walks) > c.maxWalks*n {
				t.Errorf("%d walks for %d values: the rank cache spares too few", walks, n)
			}
		})
	}
}

// FuzzRankedQuantiles drives a sketch with values, weights and time steps
// from the input and checks the rank cache against a walk after each.
func FuzzRankedQuantiles(f *testing.F) {
	f.Add([]byte("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"))
	f.Add([]byte("\x40\x59\x00\x00\x00\x00\x00\x00\x01\xc0\x59\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x03"))
	f.Fuzz(func(t *testing.T, data []byte) {
		q := NewQuantileSketch(time.Hour)
		ts := t0
		for i := 0; len(data) >= 9; i++ {
			x := math.Float64frombits(binary.BigEndian.Uint64(data))
			step := data[8]
			data = data[9:]
			if math.IsNaN(x) || math.IsInf(x, 0) || math.Abs(x) > MaxLearnedValue {
				x = float64(step) - 128
			}
			ts += int64(step) * int64(time.Minute)
			switch {
			case step%31 == 0:
				o := NewQuantileSketch(time.Hour)
				o.Add(ts, -x)
				q.Merge(o)
			case step%17 == 0:
				q.addWeighted(x, float64(step)/64) // weights the landmark does not give
			default:
				q.Add(ts, x)
			}
			checkRanked(t, q, i)
		}
	})
}

// BenchmarkSketchAddRanked is what a group sketch does per row: add a
// value, then read the seven ranks. A walk per row (the reference,
// BenchmarkSketchAddWalk) costs many times as much.
func BenchmarkSketchAddRanked(b *testing.B) {
	benchmarkAddThenRanks(b, func(q *QuantileSketch) float64 { return q.RankedQuantiles()[QP999] })
}

func BenchmarkSketchAddWalk(b *testing.B) {
	var dst [NumQuantiles]float64
	benchmarkAddThenRanks(b, func(q *QuantileSketch) float64 { q.Quantiles(dst[:], Quantiles[:]); return dst[QP999] })
}

func benchmarkAddThenRanks(b *testing.B, ranks func(*QuantileSketch) float64) {
	q := NewQuantileSketch(24 * time.Hour)
	rng := rand.New(rand.NewPCG(1, 1))
	vals := make([]float64, 1<<16)
	for i := range vals {
		vals[i] = 80_000 * (1 + 0.05*rng.NormFloat64())
	}
	ts := t0
	for i := range 100_000 { // a day and more of a 64-device group
		ts += int64(time.Minute) / 64
		q.Add(ts, vals[i&(len(vals)-1)])
	}
	b.ReportAllocs()
	var sum float64
	for i := 0; i < b.N; i++ {
		ts += int64(time.Minute) / 64
		q.Add(ts, vals[i&(len(vals)-1)])
		sum += ranks(q)
	}
	if sum == 0 {
		b.Fatal("no ranks")
	}
}
