package baseline

import (
	"math"
	"testing"
)

// TestPeakMemory: the peak covers the current and the previous epoch,
// forgets what is older, takes late rows into their own epoch, and merges
// by max after aligning epochs.
func TestPeakMemory(t *testing.T) {
	var p peakMemory
	if v := p.at(10); !math.IsNaN(v) {
		t.Fatalf("empty memory: %g, want NaN", v)
	}
	p.learn(5, 10)
	p.learn(3, 10)
	if v := p.at(10); v != 5 {
		t.Fatalf("epoch 10: %g, want 5", v)
	}
	p.learn(2, 11)
	if v := p.at(11); v != 5 {
		t.Fatalf("epoch 11 remembers epoch 10: %g, want 5", v)
	}
	if v := p.at(12); v != 2 {
		t.Fatalf("epoch 12 remembers epoch 11 only: %g, want 2", v)
	}
	if v := p.at(13); !math.IsNaN(v) {
		t.Fatalf("epoch 13: %g, want NaN (all forgotten)", v)
	}
	p.learn(9, 10) // late, into the previous epoch
	if v := p.at(11); v != 9 {
		t.Fatalf("a late row of epoch 10: %g, want 9", v)
	}
	p.learn(100, 8) // older than both: gone already
	if v := p.at(11); v != 9 {
		t.Fatalf("a row of a forgotten epoch was kept: %g", v)
	}
	p.learn(1, 14) // more than one epoch later: both forgotten
	if v := p.at(14); v != 1 {
		t.Fatalf("after a gap: %g, want 1", v)
	}

	var a, b peakMemory
	a.learn(4, 20)
	a.learn(7, 21)
	b.learn(6, 20)
	b.learn(3, 22)
	a.merge(&b) // at epoch 22: a's 21 (7) is previous, b's 22 (3) current; 20 is gone
	if v := a.at(22); v != 7 || a.epoch != 22 {
		t.Fatalf("merged: %g at epoch %d, want 7 at 22", v, a.epoch)
	}
	var empty peakMemory
	empty.merge(&b)
	if empty != b {
		t.Fatalf("merge into empty: %+v, want %+v", empty, b)
	}
}
