package baseline

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

func TestHLLEstimate(t *testing.T) {
	for _, n := range []int{10, 1000, 100000} {
		h := NewHLL(DefaultHLLPrecision)
		for i := 0; i < n; i++ {
			h.AddString(fmt.Sprintf("10.0.%d.%d:502", i/256, i%256))
			h.AddString(fmt.Sprintf("10.0.%d.%d:502", i/256, i%256)) // duplicates do not count
		}
		// 4 standard errors of 1.04/sqrt(4096)
		if est := h.Estimate(); math.Abs(est-float64(n)) > 4*0.01625*float64(n)+1 {
			t.Errorf("n=%d: estimate %g", n, est)
		}
	}
}

func TestHLLMergeHalvesEqualsWhole(t *testing.T) {
	whole, a, b := NewHLL(12), NewHLL(12), NewHLL(12)
	for i := uint64(0); i < 50000; i++ {
		whole.AddUint64(i)
		if i%2 == 0 {
			a.AddUint64(i)
		} else {
			b.AddUint64(i)
		}
	}
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.regs, whole.regs) {
		t.Fatal("merged registers differ from the whole's")
	}
	if err := a.Merge(NewHLL(10)); err == nil {
		t.Fatal("merging different precisions did not fail")
	}
}

func TestHLLRoundTrip(t *testing.T) {
	h := NewHLL(10)
	for i := uint64(0); i < 3000; i++ {
		h.AddUint64(i)
	}
	g, err := UnmarshalHLL(h.AppendBinary(nil))
	if err != nil {
		t.Fatal(err)
	}
	if g.Estimate() != h.Estimate() || !slices.Equal(g.regs, h.regs) {
		t.Fatal("round trip changed the sketch")
	}
	for _, bad := range [][]byte{nil, {3}, {10, 1, 2}, append([]byte{4}, make([]byte, 15)...)} {
		if _, err := UnmarshalHLL(bad); err == nil {
			t.Errorf("UnmarshalHLL(%v) did not fail", bad)
		}
	}
}

func TestHashesAreStable(t *testing.T) {
	// pinned: other instances and older checkpoints must hash alike
	if got := HashString("10.1.2.3"); got != HashString("10.1.2.3") || got == HashString("10.1.2.4") {
		t.Fatal("HashString is not a function of its input")
	}
	if got, want := HashUint64(502), HashUint64(502); got != want {
		t.Fatal("HashUint64 unstable")
	}
}
