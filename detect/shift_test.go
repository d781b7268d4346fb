package detect

import (
	"github.com/vigil-ot/vigil/ingest"
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

// A reading that drops over a minute to 4σ below its normal and stays
// there (SKAB's valve1/3, a flow meter) is one shift alarm that stays
// open. Without the chart's warning limit on what it learns, the chart
// learned the drop's rows into its normal spread while building up, so the
// alarm flapped (raised and cleared twice within a minute).
func TestShiftAlarmOfADropThatStaysDoesNotFlap(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	s := newSensor(t, DefaultConfig(), time.Second)
	s.feed(noisy(rng, 600, []float64{50, 30}, []float64{1, 1})...)
	for i := range 60 {
		s.feed(noisy(rng, 1, []float64{50 - 4*float64(i)/60, 30}, []float64{1, 1})...)
	}
	s.feed(noisy(rng, 300, []float64{46, 30}, []float64{1, 1})...)
	a := s.sink.find(DetectorSelf, "pressure", "bench-1", StateAlarm)
	c := s.sink.find(DetectorSelf, "pressure", "bench-1", StateCleared)
	if len(a) != 1 || len(c) != 0 || !strings.Contains(a[0].Message, "; shift: ") {
		t.Fatalf("a drop to −4σ that lasts five minutes: want one shift alarm, still open, got:\n%s", s.sink.dump())
	}
}

// A shift of 3σ that builds up over a minute is a shift alarm. Without the
// chart's warning limit on what it learns, the chart learned its own
// excursion into its normal spread while building up (as SKAB's valve1/1
// did: 0.38 to 0.99 in 45 rows) and none of these three streams alarmed.
func TestShiftChartDoesNotLearnItsOwnExcursion(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		s := newSensor(t, DefaultConfig(), time.Second)
		s.feed(noisy(rng, 600, []float64{50, 30}, []float64{1, 1})...)
		for i := range 60 {
			s.feed(noisy(rng, 1, []float64{50 - 3*float64(i)/60, 30}, []float64{1, 1})...)
		}
		s.feed(noisy(rng, 300, []float64{47, 30}, []float64{1, 1})...)
		a := s.sink.find(DetectorSelf, "pressure", "bench-1", StateAlarm)
		if len(a) == 0 || !strings.Contains(a[0].Message, "; shift: ") {
			t.Errorf("seed %d: a −3σ shift built up over a minute raised no shift alarm:\n%s", seed, s.sink.dump())
		}
	}
}

// A 2σ shift for five minutes puts the chart about at its threshold, and
// the one shift alarm stays open until the readings are back: without the
// hold at the chart's warning limit it cleared mid-shift on five of these
// six streams (and was raised again on two).
func TestShiftAlarmHoldsWhileTheChartHoversAtItsThreshold(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		s := newSensor(t, DefaultConfig(), time.Second)
		s.feed(noisy(rng, 600, []float64{50, 30}, []float64{1, 1})...)
		s.feed(noisy(rng, 300, []float64{48, 30}, []float64{1, 1})...)
		back := s.start.Add(900 * time.Second)
		s.feed(noisy(rng, 300, []float64{50, 30}, []float64{1, 1})...)
		a := s.sink.find(DetectorSelf, "pressure", "bench-1", StateAlarm)
		c := s.sink.find(DetectorSelf, "pressure", "bench-1", StateCleared)
		if len(a) > 1 || len(c) != len(a) || len(c) == 1 && c[0].EventTime.Before(back) {
			t.Errorf("seed %d: a 2σ shift for five minutes: want at most one alarm, cleared once the readings are back at %s:\n%s",
				seed, back.Format(time.TimeOnly), s.sink.dump())
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

// A slow, autocorrelated sensor has a wide chart. Scores clipped at half
// the band's threshold (3) could never carry such a chart to its own
// threshold, however long a shift lasted: the clip reaches twice the
// threshold past the chart's normal (shiftReach), and scores of −5 (inside
// the band of 6) cross it within twenty rows.
func TestShiftChartOfASlowSensorCanAlarm(t *testing.T) {
	e := &Engine{cfg: DefaultConfig()}
	p := newMetricParams(&e.cfg, "temperature")
	ds := &deviceState{}
	rng := rand.New(rand.NewPCG(43, 44))
	x := 0.0
	for range 2000 { // AR(1) scores of unit variance: a chart about 0.7 wide
		x = 0.95*x + math.Sqrt(1-0.95*0.95)*rng.NormFloat64()
		e.shiftScore(&p, x, false, 0, 0, ds)
	}
	worst := 0.0
	for range 20 {
		worst = min(worst, e.shiftScore(&p, -5, false, 0, 0, ds))
	}
	if worst > -e.cfg.Self.ShiftThreshold {
		t.Fatalf("twenty scores of −5 moved the chart to %.2f of its spreads, not beyond −%v", worst, e.cfg.Self.ShiftThreshold)
	}
}

// A level shift the whole group makes together (every device's temperature
// +3σ, a change of the process) is the group's, not a device's: the chart
// raises nothing while its peers now sit as far off their own expectations
// (peersShiftedToo). One device making a shift alone alarms.
func TestShiftOfTheWholeGroupIsNotADevicesOwn(t *testing.T) {
	s := newSim(t, DefaultConfig(), twoGroups[:1], 10, nil)
	s.warm(600)
	s.run(600, 720, func(m, i int, d *simDevice, r *ingest.Row) bool {
		r.Metrics[3].Value += 3
		return true
	})
	if a := s.sink.find(DetectorSelf, "temp", "", StateAlarm); len(a) != 0 {
		t.Fatalf("the whole group's +3σ shift raised self alarms:\n%s", s.sink.dump())
	}
	s = newSim(t, DefaultConfig(), twoGroups[:1], 10, nil)
	s.warm(600)
	s.run(600, 720, func(m, i int, d *simDevice, r *ingest.Row) bool {
		if i == 4 {
			r.Metrics[3].Value += 3
		}
		return true
	})
	if a := s.sink.find(DetectorSelf, "temp", s.devices[4].name, StateAlarm); len(a) != 1 || !strings.Contains(a[0].Message, "; shift: ") {
		t.Fatalf("one device's +3σ shift alone: want its shift alarm, got:\n%s", s.sink.dump())
	}
}
