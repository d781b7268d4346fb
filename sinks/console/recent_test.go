package console

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/detect/pipeline"
	"github.com/vigil-ot/vigil/ingest"
)

// TestDevicePlotsAreTheJudgedValues: a device page's points are the last
// recent_values values the engine judged of each metric, oldest first,
// each with the band it was judged against (the engine's trace, to
// float32), read while the engine keeps ingesting beside the reader.
func TestDevicePlotsAreTheJudgedValues(t *testing.T) {
	const size, devices, hours = 50, 8, 3
	con := New(Options{Config: Config{RecentValues: size, PublishInterval: 0}})
	trace := map[string][]detect.TracePoint{} // by device and metric
	bcfg := baseline.DefaultConfig()
	bcfg.MinSamples = 60 // protecting after an hour
	p, err := pipeline.New(pipeline.Config{Inventory: ingest.DefaultInventoryConfig(), Baseline: bcfg, Detect: detect.DefaultConfig()},
		pipeline.Deps{Sink: discardSink{}, NoNetwork: true, Console: con, Trace: func(tp detect.TracePoint) {
			trace[tp.Device+"/"+tp.Metric] = append(trace[tp.Device+"/"+tp.Metric], tp)
		}})
	if err != nil {
		t.Fatal(err)
	}
	recs := ingestBatches(p.Registry, devices, hours*60)
	ctx := context.Background()
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() { // a reader beside the engine: go test -race checks the hand-over
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
				con.Device("dev-00003")
			}
		}
	}()
	for _, rec := range recs { // batches of a few rows: many hand-overs
		for i := int64(0); i < rec.NumRows(); i += 16 {
			if err := p.Engine.Process(ctx, ingest.NewBatch(rec.NewSlice(i, min(i+16, rec.NumRows())), nil)); err != nil {
				t.Fatal(err)
			}
		}
		rec.Release()
	}
	if err := p.Engine.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	close(done)
	wg.Wait()
	banded := 0
	for d := range devices {
		name := ingestDeviceName(d)
		s, ok := con.Device(name)
		if !ok || len(s.Metrics) != 5 {
			t.Fatalf("%s: %v, %+v", name, ok, s)
		}
		for _, m := range s.Metrics {
			want := trace[name+"/"+m.Name]
			want = want[len(want)-size:]
			if len(m.Points) != size {
				t.Fatalf("%s %s: %d points, want %d", name, m.Name, len(m.Points), size)
			}
			for i, pt := range m.Points {
				w := want[i]
				if *pt[0] != float64(w.Time/int64(time.Millisecond)) || *pt[1] != float64(float32(w.Value)) ||
					!near(pt[2], w.Expected) || !near(pt[3], w.Lower) || !near(pt[4], w.Upper) {
					t.Fatalf("%s %s point %d: %v, judged %+v", name, m.Name, i, deref(pt), w)
				}
				if pt[2] != nil {
					banded++
				}
			}
			if last := m.Points[size-1]; m.Expected != last[2] || m.Lower != last[3] || m.Upper != last[4] {
				t.Fatalf("%s %s: the latest band %v %v %v, the last point %v", name, m.Name, m.Expected, m.Lower, m.Upper, deref(last))
			}
		}
	}
	if banded < devices*4*size/2 {
		t.Fatalf("%d points with a band: the self detector judged too few", banded)
	}
}

// near reports whether a point's number is v to float32's precision (null
// for NaN).
func near(got *float64, v float64) bool {
	if math.IsNaN(v) {
		return got == nil
	}
	return got != nil && math.Abs(*got-v) <= 1e-6*math.Max(1, math.Abs(v))
}

func deref(pt [5]*float64) []float64 {
	out := make([]float64, len(pt))
	for i, v := range pt {
		out[i] = math.NaN()
		if v != nil {
			out[i] = *v
		}
	}
	return out
}
