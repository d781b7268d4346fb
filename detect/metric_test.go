package detect

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestWithinHalfBandNeverHidesABreach: whenever withinHalfBand lets
// judgeSelf skip the division, the quotient it skipped is within the
// threshold, for random and edge-case values, spreads and thresholds.
func TestWithinHalfBandNeverHidesABreach(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	edge := []float64{0, math.Copysign(0, -1), 1, -1, math.SmallestNonzeroFloat64, math.MaxFloat64, -math.MaxFloat64,
		math.Inf(1), math.Inf(-1), math.NaN(), 1e-300, 1e300, 0.1, 3}
	pick := func() float64 {
		switch rng.IntN(4) {
		case 0:
			return edge[rng.IntN(len(edge))]
		case 1:
			return rng.NormFloat64() * math.Pow(10, float64(rng.IntN(40)-20))
		default:
			return rng.NormFloat64()
		}
	}
	skipped := 0
	for i := 0; i < 2_000_000; i++ {
		diff, spread := pick(), math.Abs(pick())
		thr := math.Abs(pick())
		if rng.IntN(2) == 0 {
			// the hard case: |diff| just below half the band
			thr = float64(1 + rng.IntN(8))
			spread = math.Abs(rng.NormFloat64()) + 1e-3
			diff = math.Nextafter(thr/2*spread, 0) * float64(1-2*rng.IntN(2))
		}
		if !withinHalfBand(diff, spread, thr/2) {
			continue
		}
		skipped++
		if z := diff / spread; z > thr || z < -thr || math.IsNaN(z) {
			t.Fatalf("diff %g, spread %g, threshold %g: skipped, but z = %g", diff, spread, thr, z)
		}
	}
	if skipped == 0 {
		t.Fatal("no case took the shortcut")
	}
}
