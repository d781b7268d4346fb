package detect

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/ingest"
)

// BenchmarkEngineConsoleCost measures what the console costs the engine's
// goroutine: two warm engines (a day of the bench fleet) judge the same
// batches, one bare and one publishing its status every second (to a sink
// that discards it) and keeping no recent values or 120 of each metric,
// every value or one a step of 5 minutes (the console's default; the bench
// fleet reports every minute);
// batch by batch, in turn first, on this thread, whose CPU time each batch
// is charged to its engine. Alternating every batch (a few milliseconds)
// lets both engines share the shared machine's load, which varies from
// second to second; what is left is mostly the difference between two
// heaps' layouts, which bare (a second bare engine) shows: 0.97–1.00 in
// three runs on a loaded 2-vCPU VM. The console's own goroutine and the
// garbage collector are not counted: BenchmarkIngestWithConsole
// (sinks/console) counts them, over whole ingestions.
func BenchmarkEngineConsoleCost(b *testing.B) {
	for _, c := range []struct {
		name         string
		interval     time.Duration
		recentValues int
		recentStep   time.Duration
	}{{"bare", 0, 0, 0}, {"status", time.Second, 0, 0}, {"status+values=120", time.Second, 120, 0},
		{"status+values=120/step=5m", time.Second, 120, 5 * time.Minute}} {
		b.Run(c.name, func(b *testing.B) {
			bare, bareFleet := warmEngineStatus(b, DefaultConfig(), 0, 0, 0)
			with, withFleet := warmEngineStatus(b, DefaultConfig(), c.interval, c.recentValues, c.recentStep)
			ctx := context.Background()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var bareCPU, withCPU time.Duration
			process := func(eng *Engine, batch *ingest.Batch) time.Duration {
				c0 := threadCPU()
				if err := eng.Process(ctx, batch); err != nil {
					b.Fatal(err)
				}
				return threadCPU() - c0
			}
			for i := 0; b.Loop(); i++ {
				bb, wb := ingest.NewBatch(bareFleet.next(), nil), ingest.NewBatch(withFleet.next(), nil)
				if i%2 == 0 {
					bareCPU += process(bare, bb)
					withCPU += process(with, wb)
				} else {
					withCPU += process(with, wb)
					bareCPU += process(bare, bb)
				}
			}
			const rows = benchDevices * benchMinutes
			b.ReportMetric(float64(bareCPU)/float64(rows)/float64(b.N), "bare-cpu-ns/row")
			b.ReportMetric(float64(withCPU-bareCPU)/float64(rows)/float64(b.N), "console-cpu-ns/row")
			b.ReportMetric(float64(withCPU)/float64(bareCPU), "cpu-ratio")
		})
	}
}
