package baseline

import "math"

// exp2 returns 2^x to a relative error below 1e-9, about five times faster
// than math.Exp2: decay factors and sketch weights are computed several
// times per row, and their accuracy needs are statistical, not exact.
// Range reduction to x = k + f with |f| <= 1/2, then a degree-8 Taylor
// polynomial of e^(f·ln 2), then k is added to the exponent bits.
func exp2(x float64) float64 {
	if !(x >= -1021 && x <= 1022) { // NaN, and the ends of the range
		return math.Exp2(x)
	}
	k := math.Floor(x + 0.5)
	t := (x - k) * math.Ln2
	p := 1 + t*(1+t*(1.0/2+t*(1.0/6+t*(1.0/24+t*(1.0/120+t*(1.0/720+t*(1.0/5040+t*(1.0/40320))))))))
	return math.Float64frombits(math.Float64bits(p) + uint64(int64(k))<<52)
}
