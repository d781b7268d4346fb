package telemetrybench

import (
	"context"
	"sync"
	"testing"

	"github.com/vigil-ot/vigil/ingest/simulate/fleetgen"
)

var (
	sampleOnce sync.Once
	sample     [][]byte
	sampleErr  error
)

// sampleMessages is the committed fleet sample (60 devices, 2 days,
// 172k messages of 5 metrics) in memory.
func sampleMessages(tb testing.TB) [][]byte {
	sampleOnce.Do(func() { sample, sampleErr = Messages(fleetgen.SampleConfig()) })
	if sampleErr != nil {
		tb.Fatal(sampleErr)
	}
	return sample
}

// TestPipelineRaisesAlerts guards the benchmark: the path it times is a
// working one, which finds the sample's incidents and little else.
func TestPipelineRaisesAlerts(t *testing.T) {
	msgs := sampleMessages(t)
	p, err := NewPipeline()
	if err != nil {
		t.Fatal(err)
	}
	n, err := p.Run(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	// 9 labelled incidents, each an alarm and its clear, some seen by two
	// detectors; a noisy path would write hundreds.
	if n < 18 || n > 40 {
		t.Fatalf("the sample gave %d alert lines; want the incidents' 18 to 40", n)
	}
}

// BenchmarkJSONToAlerts measures JSON bytes → alerts: decode, build Arrow
// batches, judge and learn with every telemetry detector, encode alerts as
// JSON. One op is one message (5 metrics); b.N is rounded up to whole
// replays of the sample, each from an empty baseline (day 1 learns).
func BenchmarkJSONToAlerts(b *testing.B) {
	msgs := sampleMessages(b)
	var size int64
	for _, m := range msgs {
		size += int64(len(m)) + 1
	}
	b.SetBytes(size / int64(len(msgs)))
	b.ReportAllocs()
	b.ResetTimer()
	var cpu, done int64
	for done < int64(b.N) {
		b.StopTimer()
		p, err := NewPipeline()
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		c0 := CPUTime()
		if _, err := p.Run(context.Background(), msgs); err != nil {
			b.Fatal(err)
		}
		cpu += int64(CPUTime() - c0)
		done += int64(len(msgs))
	}
	b.StopTimer()
	b.ReportMetric(float64(done)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(done)/(float64(cpu)/1e9), "msgs/cpu-s")
}

// BenchmarkArrowToExpectations measures the baseline's share: Arrow
// records (4096 rows, 5 metrics) → Bind, Expect and Learn per row. One op
// is one metric value.
func BenchmarkArrowToExpectations(b *testing.B) {
	recs, reg, err := Records(sampleMessages(b), 4096)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	b.SetBytes(8)
	b.ReportAllocs()
	b.ResetTimer()
	var cpu, done int64
	for done < int64(b.N) {
		b.StopTimer()
		e, err := NewExpecter(reg)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		c0 := CPUTime()
		n, err := e.Run(recs)
		if err != nil {
			b.Fatal(err)
		}
		cpu += int64(CPUTime() - c0)
		done += n
	}
	b.StopTimer()
	b.ReportMetric(float64(done)/b.Elapsed().Seconds(), "values/s")
	b.ReportMetric(float64(done)/(float64(cpu)/1e9), "values/cpu-s")
}
