package baseline

import (
	"math"
	"testing"
)

func TestExp2MatchesMath(t *testing.T) {
	for x := -1100.0; x <= 1030; x += 0.0137 {
		got, want := exp2(x), math.Exp2(x)
		if want < 1e-300 {
			if got > 1e-300 {
				t.Fatalf("exp2(%g) = %g, want about %g", x, got, want)
			}
			continue
		}
		if math.IsInf(want, 1) {
			if !math.IsInf(got, 1) {
				t.Fatalf("exp2(%g) = %g, want +Inf", x, got)
			}
			continue
		}
		if rel := math.Abs(got-want) / want; rel > 1e-9 {
			t.Fatalf("exp2(%g) = %g, want %g (relative error %g)", x, got, want, rel)
		}
	}
	if !math.IsNaN(exp2(math.NaN())) {
		t.Fatal("exp2(NaN) is not NaN")
	}
}
