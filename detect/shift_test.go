package detect

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// A shift of three standard deviations never crosses the band (threshold
// 6) but is a self alarm from the shift test, which says so; with the test
// off (shift_threshold 0) nothing alarms.
func TestShiftInsideTheBandAlarms(t *testing.T) {
	for _, on := range []bool{true, false} {
		cfg := DefaultConfig()
		if !on {
			cfg.Self.ShiftThreshold = 0
		}
		rng := rand.New(rand.NewPCG(21, 22))
		s := newSensor(t, cfg, time.Second)
		s.feed(noisy(rng, 1500, []float64{50, 30}, []float64{1, 1})...)
		if len(s.sink.alerts) != 0 {
			t.Fatalf("shift test %v: clean readings alerted:\n%s", on, s.sink.dump())
		}
		s.feed(noisy(rng, 120, []float64{53, 30}, []float64{1, 1})...)
		a := s.sink.find(DetectorSelf, "pressure", "bench-1", StateAlarm)
		switch {
		case on && (len(a) != 1 || !strings.Contains(a[0].Message, "; shift: ")):
			t.Fatalf("a +3σ shift for two minutes: %v\n%s", a, s.sink.dump())
		case !on && len(s.sink.alerts) != 0:
			t.Fatalf("with shift_threshold 0, the shift alarmed (the band alone cannot see it):\n%s", s.sink.dump())
		}
	}
}

// A slow, strongly autocorrelated sensor wanders far more than independent
// noise would: the chart learns how far its EWMA normally wanders, so an
// hour of such readings raises nothing.
func TestShiftChartLearnsAutocorrelation(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	s := newSensor(t, DefaultConfig(), time.Second)
	rows := make([][]float64, 3600)
	x := 0.0
	for i := range rows {
		x = 0.98*x + math.Sqrt(1-0.98*0.98)*rng.NormFloat64() // AR(1), unit variance
		rows[i] = []float64{50 + x, 30 + rng.NormFloat64()}
	}
	s.feed(rows...)
	if a := s.sink.find(DetectorSelf, "", "", ""); len(a) != 0 {
		t.Fatalf("an autocorrelated clean hour alarmed:\n%s", s.sink.dump())
	}
}

// When the expectation changes basis (the hour-of-week profile becomes
// trusted), the scores' normal is another one: the chart learns it again
// instead of reporting the change of basis as a shift.
func TestShiftChartRelearnsOnBasisChange(t *testing.T) {
	e := &Engine{cfg: DefaultConfig()}
	p := newMetricParams(&e.cfg, "pressure")
	ds := &deviceState{}
	rng := rand.New(rand.NewPCG(25, 26))
	for range 600 { // a narrow chart on the device's own expectation
		e.shiftScore(&p, 0.1*rng.NormFloat64(), false, 0, 0, ds)
	}
	for i := range 200 { // against the profile, the scores sit 2.5 higher
		if s := e.shiftScore(&p, 2.5+0.1*rng.NormFloat64(), true, 0, 0, ds); math.Abs(s) > e.cfg.Self.ShiftThreshold {
			t.Fatalf("row %d after the change of basis: shift score %.2f", i, s)
		}
	}
}
