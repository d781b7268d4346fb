package detect

import (
	"context"
	"math/rand/v2"
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
