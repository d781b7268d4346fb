package baseline

import (
	"math"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"

	"github.com/vigil-ot/vigil/ingest"
)

// obs is one test observation; a NaN value is a null.
type obs struct {
	t    int64
	dev  string
	grp  string
	vals []float64
}

// buildRecord builds an observation record with the real ingest builder.
func buildRecord(t testing.TB, reg *ingest.Registry, metrics []string, rows []obs) arrow.Record {
	t.Helper()
	b := ingest.NewObservationBuilder(nil, reg, nil)
	var r ingest.Row
	for _, o := range rows {
		r.Reset()
		r.TimeNanos, r.Device, r.Group, r.Partition = o.t, o.dev, o.grp, -1
		for j, v := range o.vals {
			if !math.IsNaN(v) {
				r.Metrics = append(r.Metrics, ingest.Metric{Name: metrics[j], Value: v})
			}
		}
		b.Append(&r)
	}
	rec, _ := b.NewRecord()
	return rec
}

// feed runs Expect then Learn over every row of rec, as the engine does,
// and returns the expectations.
func feed(s *Store, rec arrow.Record) [][]Expectation {
	f := s.Bind(rec)
	out := make([][]Expectation, f.NumRows())
	for i := 0; i < f.NumRows(); i++ {
		out[i] = make([]Expectation, f.NumMetrics())
		f.Expect(i, out[i])
		f.Learn(i)
	}
	return out
}

func testConfig() Config {
	c := DefaultConfig()
	c.MinSamples = 100
	c.MinDuration = time.Hour
	return c
}

var t0 = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC).UnixNano() // a Monday

func near(a, b, tol float64) bool {
	if a == b {
		return true
	}
	return math.Abs(a-b) <= tol*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func arrowRecord(fields []arrow.Field, cols []arrow.Array) arrow.Record {
	return array.NewRecord(arrow.NewSchema(fields, nil), cols, int64(cols[0].Len()))
}
