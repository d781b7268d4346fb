package detect

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/ingest"
)

// benchFleet builds batches of 4096 rows: 512 devices in 8 groups, 8
// minutes of one report per device and minute, 5 metrics, source address,
// client id, certificate and firmware on every row.
type benchFleet struct {
	reg     *ingest.Registry
	builder *ingest.ObservationBuilder
	rng     *rand.Rand
	names   []string
	groups  []string
	minute  int
	row     ingest.Row
}

const benchDevices, benchMinutes = 512, 8

func newBenchFleet(reg *ingest.Registry) *benchFleet {
	f := &benchFleet{reg: reg, builder: ingest.NewObservationBuilder(nil, reg, nil), rng: rand.New(rand.NewPCG(3, 4))}
	for i := 0; i < benchDevices; i++ {
		f.names = append(f.names, fmt.Sprintf("dev-%04d", i))
		f.groups = append(f.groups, fmt.Sprintf("site-%d/hw-%d", i%4, i%2))
	}
	return f
}

func (f *benchFleet) next() arrow.Record {
	for m := 0; m < benchMinutes; m++ {
		for i := 0; i < benchDevices; i++ {
			r := &f.row
			r.Reset()
			r.TimeNanos = simEpoch.Add(time.Duration(f.minute)*time.Minute + time.Duration(i%60)*time.Second).UnixNano()
			r.Device, r.Group = f.names[i], f.groups[i]
			r.SrcIP, r.ClientID, r.Cert, r.Firmware = "10.0.0.1", f.names[i], f.names[i], "2.9.4"
			r.Metrics = append(r.Metrics,
				ingest.Metric{Name: "bytes_out", Value: 80_000 * (1 + 0.05*f.rng.NormFloat64())},
				ingest.Metric{Name: "msgs_sent", Value: 60 + 3*f.rng.NormFloat64()},
				ingest.Metric{Name: "cpu", Value: 30 + 2*f.rng.NormFloat64()},
				ingest.Metric{Name: "temp", Value: 45 + f.rng.NormFloat64()},
				ingest.Metric{Name: "auth_failures", Value: 0},
			)
			f.builder.Append(r)
		}
		f.minute++
	}
	rec, _ := f.builder.NewRecord()
	return rec
}

type discardSink struct{ n int }

func (s *discardSink) Write(_ context.Context, out *Output) error { s.n += out.Len(); return nil }
func (s *discardSink) Close() error                               { return nil }

// BenchmarkEngineProcess measures Engine.Process (baseline Expect and
// Learn, all row detectors, lifecycle) on 4096-row batches with 5 metrics
// in steady state: the fleet has been running for a day, groups protect.
func BenchmarkEngineProcess(b *testing.B) {
	benchEngineProcess(b, DefaultConfig(), 0)
}

// BenchmarkEngineProcessRecentValues is BenchmarkEngineProcess keeping the
// console's 120 recent values of each metric of each device
// (PublishStatus), published once at the start.
func BenchmarkEngineProcessRecentValues(b *testing.B) {
	benchEngineProcess(b, DefaultConfig(), 120)
}

// BenchmarkEngineProcessRollout is BenchmarkEngineProcess with the rollout
// guard on (every row's firmware and KPIs tracked, its windows judged).
func BenchmarkEngineProcessRollout(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Rollout.Enabled = true
	benchEngineProcess(b, cfg, 0)
}

// warmEngine returns an engine that has judged a day of the bench fleet,
// keeping recentValues values of each metric of each device (0: none),
// and the fleet for more.
func warmEngine(tb testing.TB, cfg Config, recentValues int) (*Engine, *benchFleet) {
	if recentValues > 0 {
		return warmEngineStatus(tb, cfg, time.Hour, recentValues, 0)
	}
	return warmEngineStatus(tb, cfg, 0, 0, 0)
}

// warmEngineStatus is warmEngine publishing its status every interval (0:
// not at all) to a sink that discards it, its recent values at most one a
// recentStep (0: every value).
func warmEngineStatus(tb testing.TB, cfg Config, interval time.Duration, recentValues int, recentStep time.Duration) (*Engine, *benchFleet) {
	reg := ingest.NewRegistry()
	store := baseline.NewStore(testBaselineConfig(), reg)
	auth := 10.0
	cfg.Rules = []RuleConfig{{Name: "auth", Metric: "auth_failures", ComparisonOperator: OpGreaterThan, Value: &auth, Duration: 5 * time.Minute}}
	eng, err := NewEngine(cfg, Deps{Registry: reg, Baseline: store, Sink: &discardSink{}})
	if err != nil {
		tb.Fatal(err)
	}
	if interval > 0 {
		eng.PublishStatus(discardStatus{}, interval, recentValues, recentStep)
	}
	fleet := newBenchFleet(reg)
	for i := 0; i < 24*60/benchMinutes; i++ { // a day of warm-up
		if err := eng.Process(context.Background(), ingest.NewBatch(fleet.next(), nil)); err != nil {
			tb.Fatal(err)
		}
	}
	return eng, fleet
}

type discardStatus struct{}

func (discardStatus) PublishStatus(*StatusUpdate) {}

func benchEngineProcess(b *testing.B, cfg Config, recentValues int) {
	eng, fleet := warmEngine(b, cfg, recentValues)
	ctx := context.Background()
	const rows = benchDevices * benchMinutes
	// Batches are built 32 at a time with the timer stopped, so building
	// them counts neither in time nor in allocations.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var cpu time.Duration
	var pool [32]*ingest.Batch
	next := len(pool)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if next == len(pool) {
			b.StopTimer()
			for k := range pool {
				pool[k] = ingest.NewBatch(fleet.next(), nil)
			}
			next = 0
			b.StartTimer()
		}
		c0 := threadCPU()
		if err := eng.Process(ctx, pool[next]); err != nil {
			b.Fatal(err)
		}
		cpu += threadCPU() - c0
		next++
	}
	b.StopTimer()
	// The machine is shared: CPU time of this thread is the fairer figure.
	b.ReportMetric(float64(cpu)/float64(rows)/float64(b.N), "cpu-ns/row")
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(rows*5)*float64(b.N)/b.Elapsed().Seconds(), "values/s")
	if st := eng.Stats(); st.Rows == 0 {
		b.Fatal("no rows judged")
	}
}

// threadCPU returns the CPU time the calling OS thread has used.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	const rusageThread = 1 // RUSAGE_THREAD (Linux)
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// memoryBudgetPerDevice is the most heap engine, baseline and registry
// together may hold per tracked device with 10 metrics and identity fields.
const memoryBudgetPerDevice = 2048

// BenchmarkMemoryPerDevice reports the heap held per tracked device, by the
// engine and its baseline together, with 10 metrics and identity fields:
// 4096 devices in 16 groups, 40 reports each. It fails above the budget.
func BenchmarkMemoryPerDevice(b *testing.B) {
	for i := 0; i < b.N; i++ {
		per := memoryPerDevice(b, DefaultConfig())
		b.ReportMetric(per, "B/device")
		if per > memoryBudgetPerDevice {
			b.Fatalf("%.0f B per device, budget %d", per, memoryBudgetPerDevice)
		}
	}
}

// TestMemoryPerDeviceBudget keeps the budget in every test run.
func TestMemoryPerDeviceBudget(t *testing.T) {
	if per := memoryPerDevice(t, DefaultConfig()); per > memoryBudgetPerDevice {
		t.Fatalf("engine, baseline and registry hold %.0f B per device with 10 metrics and identity fields; budget %d", per, memoryBudgetPerDevice)
	} else {
		t.Logf("%.0f B per device (budget %d)", per, memoryBudgetPerDevice)
	}
}

// memoryPerDevice returns the heap per device of the fleet of
// BenchmarkMemoryPerDevice judged under cfg, per device tracked.
func memoryPerDevice(tb testing.TB, cfg Config) float64 {
	const devices, reports = 4096, 40
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	reg := ingest.NewRegistry()
	store := baseline.NewStore(testBaselineConfig(), reg)
	eng, err := NewEngine(cfg, Deps{Registry: reg, Baseline: store, Sink: &discardSink{}})
	if err != nil {
		tb.Fatal(err)
	}
	builder := ingest.NewObservationBuilder(nil, reg, nil)
	var row ingest.Row
	names := make([]string, devices)
	for d := range names {
		names[d] = fmt.Sprintf("device-%05d", d)
	}
	metrics := []string{"m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9"}
	for r := 0; r < reports; r++ {
		for d := 0; d < devices; d++ {
			row.Reset()
			row.TimeNanos = simEpoch.Add(time.Duration(r)*time.Minute + time.Duration(d%60)*time.Second).UnixNano()
			row.Device, row.Group = names[d], metrics[d%10]+"/g"+metrics[d%2]
			row.SrcIP, row.ClientID, row.Cert, row.Firmware = "10.0.0.1", names[d], "sha256:"+names[d], "1.0.0"
			for k, m := range metrics {
				row.Metrics = append(row.Metrics, ingest.Metric{Name: m, Value: float64(d + k + r)})
			}
			builder.Append(&row)
		}
		rec, _ := builder.NewRecord()
		if err := eng.Process(context.Background(), ingest.NewBatch(rec, nil)); err != nil {
			tb.Fatal(err)
		}
	}
	builder = nil
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(eng)
	runtime.KeepAlive(store)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(reg.NumDevices())
}

// BenchmarkBaselineAlone runs only what the engine asks of the baseline
// (Bind, Expect and Learn per row) on the batches of
// BenchmarkEngineProcess, so the difference is the detectors' and the
// lifecycle's share.
func BenchmarkBaselineAlone(b *testing.B) {
	reg := ingest.NewRegistry()
	store := baseline.NewStore(testBaselineConfig(), reg)
	fleet := newBenchFleet(reg)
	exp := make([]baseline.Expectation, 8)
	run := func(rec arrow.Record) {
		f := store.Bind(rec)
		for i := 0; i < f.NumRows(); i++ {
			f.Expect(i, exp)
			f.Learn(i)
		}
		rec.Release()
	}
	for i := 0; i < 24*60/benchMinutes; i++ {
		run(fleet.next())
	}
	const rows = benchDevices * benchMinutes
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var cpu time.Duration
	var pool [32]arrow.Record
	next := len(pool)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if next == len(pool) {
			b.StopTimer()
			for k := range pool {
				pool[k] = fleet.next()
			}
			next = 0
			b.StartTimer()
		}
		c0 := threadCPU()
		run(pool[next])
		cpu += threadCPU() - c0
		next++
	}
	b.StopTimer()
	b.ReportMetric(float64(cpu)/float64(rows)/float64(b.N), "cpu-ns/row")
}
