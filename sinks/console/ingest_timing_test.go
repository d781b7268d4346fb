package console

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/detect/pipeline"
	"github.com/vigil-ot/vigil/ingest"
)

type discardSink struct{}

func (discardSink) Write(context.Context, *detect.Output) error { return nil }
func (discardSink) Close() error                                { return nil }

// ingestBatches builds hours of a fleet's reports over reg: devices in 8
// groups, one report a minute each with 5 metrics and identity fields, in
// batches of 4096 rows.
func ingestBatches(reg *ingest.Registry, devices, hours int) []arrow.Record {
	b := ingest.NewObservationBuilder(nil, reg, nil)
	rng := rand.New(rand.NewPCG(3, 4))
	start := time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC)
	var recs []arrow.Record
	var r ingest.Row
	for m := range hours * 60 {
		for i := range devices {
			r.Reset()
			r.TimeNanos = start.Add(time.Duration(m)*time.Minute + time.Duration(i%60)*time.Second).UnixNano()
			r.Device, r.Group = ingestDeviceName(i), fmt.Sprintf("site-%d/hw-%d", i%4, i%2)
			r.SrcIP, r.ClientID, r.Cert, r.Firmware = "10.0.0.1", r.Device, r.Device, "2.9.4"
			r.Metrics = append(r.Metrics,
				ingest.Metric{Name: "bytes_out", Value: 80_000 * (1 + 0.05*rng.NormFloat64())},
				ingest.Metric{Name: "msgs_sent", Value: 60 + 3*rng.NormFloat64()},
				ingest.Metric{Name: "cpu", Value: 30 + 2*rng.NormFloat64()},
				ingest.Metric{Name: "temp", Value: 45 + rng.NormFloat64()},
				ingest.Metric{Name: "auth_failures", Value: 0})
			b.Append(&r)
			if b.Len() == 4096 {
				rec, _ := b.NewRecord()
				recs = append(recs, rec)
			}
		}
	}
	if b.Len() > 0 {
		rec, _ := b.NewRecord()
		recs = append(recs, rec)
	}
	return recs
}

// phase is what ingesting part of the batches cost.
type phase struct {
	cpu, wall time.Duration
	rows      int64
}

// ingestDeviceName is the name of device i of ingestBatches.
func ingestDeviceName(i int) string { return fmt.Sprintf("dev-%05d", i) }

// ingestOnce feeds hours of a fleet to a new pipeline, with con when not
// nil, and returns what the first half of the hours cost (cold: every
// device's state, and its recent values, are allocated on the way) and
// what the second half cost (steady). CPU time counts the engine's
// goroutine, the console's and the garbage collector; wall time is the
// engine's goroutine's.
func ingestOnce(b *testing.B, devices, hours int, con *Console) (cold, steady phase) {
	deps := pipeline.Deps{Sink: discardSink{}, NoNetwork: true}
	if con != nil {
		deps.Console = con
	}
	p, err := pipeline.New(pipeline.Config{Inventory: ingest.DefaultInventoryConfig(), Baseline: baseline.DefaultConfig(), Detect: detect.DefaultConfig()}, deps)
	if err != nil {
		b.Fatal(err)
	}
	recs := ingestBatches(p.Registry, devices, hours)
	ctx := context.Background()
	run := func(recs []arrow.Record, last bool) (ph phase) {
		runtime.GC() // the batches' garbage, or the previous phase's, is not this one's
		start, began := cpuTime(), time.Now()
		for _, rec := range recs {
			ph.rows += rec.NumRows()
			if err := p.Engine.Process(ctx, ingest.NewBatch(rec, nil)); err != nil {
				b.Fatal(err)
			}
		}
		if last {
			if err := p.Engine.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
		ph.wall = time.Since(began)
		if con != nil { // the console's work is counted too
			if last {
				con.Close()
			} else {
				con.readLock() // applied
				con.mu.RUnlock()
			}
		}
		runtime.GC() // the engine's garbage is
		ph.cpu = cpuTime() - start
		return ph
	}
	half := len(recs) / 2
	return run(recs[:half], false), run(recs[half:], true)
}

// cpuTime returns the CPU time of the process: the engine's goroutine and
// the garbage collector's, and nothing of the other programs on the
// machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIngestWithConsole measures what the console costs the engine:
// the same fleet (512 devices, 5 metrics, 8 hours of minute reports) into
// a bare pipeline and into one with the console attached, one after the
// other in each iteration (in turn first). cpu-ratio is the console's CPU
// time over the bare one's (both goroutines, the engine's and the
// console's, and the garbage collector) in the last 4 hours, steady;
// cpu-ratio-cold is the same in the first 4 hours, from nothing, when
// every device's state and recent values are allocated on the way (a
// replay's case); engine-wall-ratio is the time the engine's goroutine
// took in the last 4 hours, its throughput, while the console's goroutine
// works beside it. Each is the median over the iterations of the pair's
// ratio: the machine is shared, and a pair measured back to back shares
// its load, which the median keeps out of the figure when another
// program's burst falls on one pair. The console keeps 120 recent values
// (the default) or none, and publishes once a second (the default) or, as
// the worst case, after every batch.
func BenchmarkIngestWithConsole(b *testing.B) {
	for _, cfg := range []Config{
		{RecentValues: 120, PublishInterval: time.Second},
		{RecentValues: 120, PublishInterval: 0},
		{RecentValues: 0, PublishInterval: time.Second},
	} {
		b.Run(fmt.Sprintf("values=%d/publish=%s", cfg.RecentValues, cfg.PublishInterval), func(b *testing.B) {
			var bare, with phase
			var steady, cold, wall []float64
			for i := 0; b.Loop(); i++ {
				con := New(Options{Config: cfg})
				var bareCold, bareSteady, withCold, withSteady phase
				for k := range 2 {
					if (i+k)%2 == 0 {
						bareCold, bareSteady = ingestOnce(b, 512, 8, nil)
					} else {
						withCold, withSteady = ingestOnce(b, 512, 8, con)
					}
				}
				steady = append(steady, float64(withSteady.cpu)/float64(bareSteady.cpu))
				cold = append(cold, float64(withCold.cpu)/float64(bareCold.cpu))
				wall = append(wall, float64(withSteady.wall)/float64(bareSteady.wall))
				bare.cpu, bare.rows = bare.cpu+bareSteady.cpu, bare.rows+bareSteady.rows
				with.cpu, with.rows = with.cpu+withSteady.cpu, with.rows+withSteady.rows
			}
			b.ReportMetric(float64(bare.cpu.Nanoseconds())/float64(bare.rows), "bare-cpu-ns/row")
			b.ReportMetric(float64(with.cpu.Nanoseconds())/float64(with.rows), "console-cpu-ns/row")
			b.ReportMetric(median(steady), "cpu-ratio")
			b.ReportMetric(median(cold), "cpu-ratio-cold")
			b.ReportMetric(median(wall), "engine-wall-ratio")
		})
	}
}

// median returns the median of xs, which it sorts.
func median(xs []float64) float64 {
	slices.Sort(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
}
