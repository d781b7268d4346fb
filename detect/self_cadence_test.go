package detect

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/ingest"
)

// sensor feeds one device's readings at a fixed cadence through an engine
// with the baseline and detect defaults: a bench sensor, not a fleet.
type sensor struct {
	t       *testing.T
	eng     *Engine
	sink    *collectSink
	builder *ingest.ObservationBuilder
	start   time.Time
	every   time.Duration
	n       int
}

func newSensor(t *testing.T, cfg Config, every time.Duration) *sensor {
	t.Helper()
	reg := ingest.NewRegistry()
	s := &sensor{
		t: t, sink: &collectSink{}, builder: ingest.NewObservationBuilder(nil, reg, nil),
		start: simEpoch, every: every,
	}
	eng, err := NewEngine(cfg, Deps{Registry: reg, Baseline: baseline.NewStore(baseline.DefaultConfig(), reg), Sink: s.sink})
	if err != nil {
		t.Fatal(err)
	}
	s.eng = eng
	return s
}

// feed sends one reading per metric value of each row of vals, one row per
// period, in one batch.
func (s *sensor) feed(vals ...[]float64) {
	s.t.Helper()
	var r ingest.Row
	for _, v := range vals {
		r.Reset()
		r.TimeNanos = s.start.Add(time.Duration(s.n) * s.every).UnixNano()
		r.Device, r.Group, r.Partition = "bench-1", "bench", -1
		s.n++
		for j, x := range v {
			r.Metrics = append(r.Metrics, ingest.Metric{Name: sensorMetrics[j], Value: x})
		}
		s.builder.Append(&r)
	}
	rec, sets := s.builder.NewRecord()
	b := ingest.NewBatch(rec, nil)
	b.Sets = sets
	if err := s.eng.Process(context.Background(), b); err != nil {
		s.t.Fatal(err)
	}
}

var sensorMetrics = []string{"pressure", "vibration"}

// noisy returns n readings around levels with Gaussian noise of the given
// standard deviations.
func noisy(rng *rand.Rand, n int, level, std []float64) [][]float64 {
	rows := make([][]float64, n)
	for i := range rows {
		rows[i] = make([]float64, len(level))
		for j := range level {
			rows[i][j] = level[j] + std[j]*rng.NormFloat64()
		}
	}
	return rows
}

// A 1 Hz sensor learns for min_samples seconds, not six hours of event
// time: a spike after seven minutes is judged and alarms.
func TestLearningEndsAtTheDevicesCadence(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	s := newSensor(t, DefaultConfig(), time.Second)
	s.feed(noisy(rng, 400, []float64{50, 30}, []float64{2, 1})...)
	if len(s.sink.alerts) != 0 {
		t.Fatalf("clean readings alerted:\n%s", s.sink.dump())
	}
	s.feed(noisy(rng, 5, []float64{120, 30}, []float64{2, 1})...)
	if a := s.sink.find(DetectorSelf, "pressure", "bench-1", StateAlarm); len(a) != 1 {
		t.Fatalf("pressure spike: %d alarms\n%s", len(a), s.sink.dump())
	}
}

// A deviation of ten standard deviations alarms whether the metric is
// measured in thousandths or in millions: the spread floor follows the
// metric's own variability and resolution, not absolute units.
func TestSpreadIsScaleFree(t *testing.T) {
	for _, scale := range []float64{1e-3, 1, 1e6} {
		rng := rand.New(rand.NewPCG(5, 6))
		s := newSensor(t, DefaultConfig(), time.Second)
		s.feed(noisy(rng, 400, []float64{30 * scale, 10 * scale}, []float64{scale, scale})...)
		if len(s.sink.alerts) != 0 {
			t.Fatalf("scale %g: clean readings alerted:\n%s", scale, s.sink.dump())
		}
		s.feed(noisy(rng, 3, []float64{30 * scale, 20 * scale}, []float64{scale, scale})...)
		a := s.sink.find(DetectorSelf, "vibration", "bench-1", StateAlarm)
		if len(a) != 1 || len(s.sink.find(DetectorSelf, "", "", "")) != 1 {
			t.Fatalf("scale %g: a shift of ten standard deviations: %d alarms\n%s", scale, len(a), s.sink.dump())
		}
	}
}

// A count that never changed is judged one step of its resolution at a
// time: one error is a score of one, not an infinite one.
func TestResolutionFloorsANeverChangingCount(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	s := newSensor(t, DefaultConfig(), time.Second)
	rows := noisy(rng, 400, []float64{50, 0}, []float64{1, 0})
	s.feed(rows...)
	s.feed([]float64{50, 1}, []float64{50, 1}, []float64{50, 1})
	if len(s.sink.alerts) != 0 {
		t.Fatalf("one error a second alarmed:\n%s", s.sink.dump())
	}
	s.feed([]float64{50, 10}, []float64{50, 10})
	if a := s.sink.find(DetectorSelf, "vibration", "bench-1", StateAlarm); len(a) != 1 {
		t.Fatalf("ten errors a second: %d alarms\n%s", len(a), s.sink.dump())
	}
}

func TestResolution(t *testing.T) {
	for _, c := range []struct{ x, want float64 }{
		{0, 0}, {7, 1}, {-120, 1}, {89.9, 0.1}, {0.0263, 1e-4}, {1e6, 1}, {math.Pi, 0}, {math.Inf(1), 0},
	} {
		if got := resolution(c.x); math.Abs(got-c.want) > 1e-15 {
			t.Errorf("resolution(%v) = %v, want %v", c.x, got, c.want)
		}
	}
}

// A datapoint far beyond the threshold (immediate_factor, 2× by default)
// alarms at once; a mild breach needs datapoints_to_alarm in a row. Each
// alert says which test fired.
func TestSpikeAlarmsAtOnceMildBreachConfirms(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	s := newSensor(t, DefaultConfig(), time.Second)
	s.feed(noisy(rng, 400, []float64{50, 30}, []float64{1, 1})...)
	s.feed([]float64{58.5, 30}, []float64{50, 30}, []float64{50, 30}, []float64{50, 30})
	if len(s.sink.find(DetectorSelf, "", "", "")) != 0 {
		t.Fatalf("one mild breach alarmed:\n%s", s.sink.dump())
	}
	s.feed([]float64{58.5, 30}, []float64{58.5, 30})
	a := s.sink.find(DetectorSelf, "pressure", "bench-1", StateAlarm)
	if len(a) != 1 || !a[0].AlarmStart.Before(a[0].EventTime) || !strings.Contains(a[0].Message, "; level: score ") {
		t.Fatalf("two mild breaches in a row: %v\n%s", a, s.sink.dump())
	}
	s.feed(noisy(rng, 5, []float64{50, 30}, []float64{1, 1})...)
	s.feed([]float64{50, 60})
	a = s.sink.find(DetectorSelf, "vibration", "bench-1", StateAlarm)
	if len(a) != 1 || !a[0].AlarmStart.Equal(a[0].EventTime) || !strings.Contains(a[0].Message, "; spike: score ") {
		t.Fatalf("one reading 30 standard deviations off: %v\n%s", a, s.sink.dump())
	}
}
