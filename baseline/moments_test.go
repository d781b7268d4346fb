package baseline

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// direct computes the decayed mean and variance at time T from the
// definition: weights 2^-((T-t_i)/h).
func direct(ts []int64, xs []float64, T int64, h time.Duration) (w, mean, variance float64) {
	for i, x := range xs {
		a := math.Exp2(-float64(T-ts[i]) / float64(h))
		w += a
		mean += a * x
	}
	mean /= w
	for i, x := range xs {
		a := math.Exp2(-float64(T-ts[i]) / float64(h))
		variance += a * (x - mean) * (x - mean)
	}
	return w, mean, variance / w
}

func randomSeries(n int, seed uint64) ([]int64, []float64) {
	rng := rand.New(rand.NewPCG(seed, seed))
	ts := make([]int64, n)
	xs := make([]float64, n)
	t := t0
	for i := range ts {
		t += int64(rng.IntN(120)) * int64(time.Second)
		ts[i] = t
		xs[i] = 50 + 20*rng.NormFloat64()
	}
	return ts, xs
}

func TestMomentsDecayMatchesDefinition(t *testing.T) {
	ts, xs := randomSeries(2000, 1)
	m := NewMoments(time.Hour)
	for i := range ts {
		m.Add(ts[i], xs[i])
	}
	T := ts[len(ts)-1]
	w, mean, v := direct(ts, xs, T, time.Hour)
	if !near(m.Weight(T), w, 1e-8) || !near(m.Mean(), mean, 1e-9) || !near(m.Var(), v, 1e-8) {
		t.Fatalf("got w %g mean %g var %g, definition gives %g %g %g", m.Weight(T), m.Mean(), m.Var(), w, mean, v)
	}
	// weight keeps decaying after the last sample; mean and variance do not change
	later := T + int64(2*time.Hour)
	if !near(m.Weight(later), w/4, 1e-9) {
		t.Errorf("weight two half-lives later %g, want %g", m.Weight(later), w/4)
	}
}

func TestMomentsOutOfOrderEqualsInOrder(t *testing.T) {
	ts, xs := randomSeries(500, 2)
	in := NewMoments(30 * time.Minute)
	for i := range ts {
		in.Add(ts[i], xs[i])
	}
	out := NewMoments(30 * time.Minute)
	perm := rand.New(rand.NewPCG(3, 3)).Perm(len(ts))
	for _, i := range perm {
		out.Add(ts[i], xs[i])
	}
	T := ts[len(ts)-1]
	if !near(in.Weight(T), out.Weight(T), 1e-9) || !near(in.Mean(), out.Mean(), 1e-9) || !near(in.Var(), out.Var(), 1e-8) {
		t.Fatalf("in order %g/%g/%g, shuffled %g/%g/%g", in.Weight(T), in.Mean(), in.Var(), out.Weight(T), out.Mean(), out.Var())
	}
}

func TestMomentsMergeHalvesEqualsWhole(t *testing.T) {
	for _, hl := range []time.Duration{0, time.Hour, 24 * time.Hour} {
		ts, xs := randomSeries(3000, 4)
		whole, a, b := NewMoments(hl), NewMoments(hl), NewMoments(hl)
		for i := range ts {
			whole.Add(ts[i], xs[i])
			// interleaved halves: each shard sees every other sample, as
			// two instances sharing a group do
			if i%2 == 0 {
				a.Add(ts[i], xs[i])
			} else {
				b.Add(ts[i], xs[i])
			}
		}
		a.Merge(&b)
		T := ts[len(ts)-1]
		if !near(a.Weight(T), whole.Weight(T), 1e-9) || !near(a.Mean(), whole.Mean(), 1e-9) || !near(a.Var(), whole.Var(), 1e-8) {
			t.Errorf("half-life %s: merged %g/%g/%g, whole %g/%g/%g", hl, a.Weight(T), a.Mean(), a.Var(), whole.Weight(T), whole.Mean(), whole.Var())
		}
	}
}

func TestMomentsIgnoresNonFinite(t *testing.T) {
	m := NewMoments(time.Hour)
	m.Add(t0, 1)
	m.Add(t0+1, math.NaN())
	m.Add(t0+2, math.Inf(1))
	m.Add(t0+3, 3)
	if !near(m.Mean(), 2, 1e-9) || !near(m.Var(), 1, 1e-9) {
		t.Fatalf("mean %g var %g after 1, NaN, Inf, 3; want 2 and 1", m.Mean(), m.Var())
	}
}
