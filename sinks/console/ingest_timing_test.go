package console

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
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

// ingestBatches builds a fleet's reports over reg: devices in 8 groups,
// one report a minute each with 5 metrics and identity fields, reports of
// each device, in batches of 4096 rows.
func ingestBatches(reg *ingest.Registry, devices, reports int) []arrow.Record {
	b := ingest.NewObservationBuilder(nil, reg, nil)
	rng := rand.New(rand.NewPCG(3, 4))
	start := time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC)
	names, groups := make([]string, devices), make([]string, devices)
	for i := range devices {
		names[i], groups[i] = ingestDeviceName(i), fmt.Sprintf("site-%d/hw-%d", i%4, i%2)
	}
	var recs []arrow.Record
	var r ingest.Row
	for m := range reports {
		for i := range devices {
			r.Reset()
			r.TimeNanos = start.Add(time.Duration(m)*time.Minute + time.Duration(i%60)*time.Second).UnixNano()
			r.Device, r.Group = names[i], groups[i]
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

// ingestDeviceName is the name of device i of ingestBatches.
func ingestDeviceName(i int) string { return fmt.Sprintf("dev-%05d", i) }

// cpuTime returns the CPU time of the process: every goroutine's and the
// garbage collector's, and nothing of the other programs on the machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// gcTime returns the CPU time the garbage collector has taken so far.
func gcTime() time.Duration {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	return time.Duration(s[0].Value.Float64() * float64(time.Second))
}

// BenchmarkIngestWithConsole measures what the console costs ingestion,
// the whole process: two pipelines, one bare and one with the console
// attached, judge the same fleet (512 devices, 5 metrics, 8 hours of
// minute reports, in batches of 4096 rows; or 100,000 devices' first 30
// reports, a large fleet's first half hour), batch by batch, in turn first.
// Each batch is charged the process's CPU time from its start until it is
// judged and, in the console's pipeline, until the console has applied
// what the engine published (the engine's goroutine, the console's, the
// garbage collector). Alternating every few milliseconds lets both share
// the shared machine's load, which varies from second to second.
//
// cpu-ratio is the console's pipeline's CPU time over the bare one's in
// the second half of the batches (512 devices: the last 4 hours, steady);
// cpu-ratio-cold the same in the first half, from nothing, when every
// device's state and recent values are allocated on the way (a replay's
// case); cpu-ratio-all over the whole stream and the flush at its end,
// whose publication has every device that changed since the one before
// (in a large fleet ingested at full speed, publications are far apart:
// see detect.statusSpacing). The garbage collector works for both
// pipelines' heaps and is charged to whichever batch it works in, so half
// of what the console adds to its work counts against the bare pipeline;
// gc-share is the collector's share of the CPU time, a bound on that
// error. The console keeps 120 recent values a step of 5 minutes (the
// default: a ring row every 5 reports), every value (step=0, a row a
// report) or none, and publishes once a second (the default) or, as the
// worst case, after every batch.
func BenchmarkIngestWithConsole(b *testing.B) {
	for _, tc := range []struct {
		name             string
		cfg              Config
		devices, reports int
	}{
		{"values=120/step=5m/publish=1s", DefaultConfig(), 512, 480},
		{"values=120/step=0/publish=1s", Config{RecentValues: 120, PublishInterval: time.Second}, 512, 480},
		{"values=120/step=0/publish=0s", Config{RecentValues: 120, PublishInterval: 0}, 512, 480},
		{"values=0/publish=1s", Config{RecentValues: 0, PublishInterval: time.Second}, 512, 480},
		{"devices=100000/reports=30/step=5m", DefaultConfig(), 100_000, 30},
		{"devices=100000/reports=30/step=0", Config{RecentValues: 120, PublishInterval: time.Second}, 100_000, 30},
		{"devices=100000/reports=30/values=0", Config{RecentValues: 0, PublishInterval: time.Second}, 100_000, 30},
	} {
		cfg := tc.cfg
		b.Run(tc.name, func(b *testing.B) {
			var bare, with [3]time.Duration // cold, steady, the last publication
			var total, gc time.Duration
			ctx := context.Background()
			for i := 0; b.Loop(); i++ {
				con := New(Options{Config: cfg})
				bp, bareRecs := ingestPipeline(b, nil, tc.devices, tc.reports)
				wp, withRecs := ingestPipeline(b, con, tc.devices, tc.reports)
				runtime.GC() // the batches' garbage is not the first batch's
				gc0 := gcTime()
				// charge returns the CPU time of f and, with con, until
				// con has applied what was published.
				charge := func(con *Console, f func() error) time.Duration {
					start := cpuTime()
					if err := f(); err != nil {
						b.Fatal(err)
					}
					if con != nil {
						con.readLock() // applied
						con.mu.RUnlock()
					}
					return cpuTime() - start
				}
				for k := 0; k <= len(bareRecs); k++ {
					phase := min(2*k/len(bareRecs), 2)
					step := func(p *pipeline.Pipeline, recs []arrow.Record) func() error {
						if k == len(recs) {
							return func() error { return p.Engine.Flush(ctx) }
						}
						return func() error { return p.Engine.Process(ctx, ingest.NewBatch(recs[k], nil)) }
					}
					var bc, wc time.Duration
					if (i+k)%2 == 0 {
						bc = charge(nil, step(bp, bareRecs))
						wc = charge(con, step(wp, withRecs))
					} else {
						wc = charge(con, step(wp, withRecs))
						bc = charge(nil, step(bp, bareRecs))
					}
					bare[phase] += bc
					with[phase] += wc
					total += bc + wc
				}
				gc += gcTime() - gc0
				con.Close()
			}
			b.ReportMetric(float64(with[1])/float64(bare[1]), "cpu-ratio")
			b.ReportMetric(float64(with[0])/float64(bare[0]), "cpu-ratio-cold")
			b.ReportMetric(float64(with[0]+with[1]+with[2])/float64(bare[0]+bare[1]+bare[2]), "cpu-ratio-all")
			b.ReportMetric(float64(gc)/float64(total), "gc-share")
		})
	}
}

// ingestPipeline returns a new pipeline, with con when not nil, and the
// batches of ingestBatches over its registry.
func ingestPipeline(b *testing.B, con *Console, devices, reports int) (*pipeline.Pipeline, []arrow.Record) {
	deps := pipeline.Deps{Sink: discardSink{}, NoNetwork: true}
	if con != nil {
		deps.Console = con
	}
	p, err := pipeline.New(pipeline.Config{Inventory: ingest.DefaultInventoryConfig(), Baseline: baseline.DefaultConfig(), Detect: detect.DefaultConfig()}, deps)
	if err != nil {
		b.Fatal(err)
	}
	return p, ingestBatches(p.Registry, devices, reports)
}
