package detect

import (
	"context"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/ingest"
)

// BenchmarkEngineProcessEvictIdle is BenchmarkEngineProcess with
// when_full evict_idle under a cap the fleet does not reach: the cost of
// the mode itself on every row.
func BenchmarkEngineProcessEvictIdle(b *testing.B) {
	cfg := DefaultConfig()
	cfg.WhenFull = WhenFullEvictIdle
	benchEngineProcess(b, cfg, 0)
}

// BenchmarkMemoryPerDeviceEvictIdle is BenchmarkMemoryPerDevice with
// when_full evict_idle and a cap one below the fleet, so that every round
// of reports evicts (and the evictor holds every device).
func BenchmarkMemoryPerDeviceEvictIdle(b *testing.B) {
	cfg := DefaultConfig()
	cfg.MaxDevices, cfg.WhenFull = 4095, WhenFullEvictIdle
	for range b.N {
		b.ReportMetric(memoryPerDevice(b, cfg), "B/device")
	}
}

// BenchmarkDeviceChurn judges a fleet at its cap where 1 row in 16 is a
// new device: batches of 4096 rows, 256 of them from devices never seen,
// each in place of the device reported longest ago, which leaves; the
// others from the devices tracked, in turn. With evict_idle each new
// device evicts the one that left; with refuse it is refused (the
// cheapest a new device past the cap can cost). Compare the sizes: the
// cost of an eviction must not grow with the fleet.
func BenchmarkDeviceChurn(b *testing.B) {
	for _, devices := range []int{1 << 10, 1 << 16} {
		for _, mode := range []string{WhenFullRefuse, WhenFullEvictIdle} {
			b.Run(mode+"/devices="+strconv.Itoa(devices), func(b *testing.B) { benchChurn(b, devices, mode) })
		}
	}
}

// cappedEngine returns an engine limited to devices devices, full in
// mode, its registry and a builder over it.
func cappedEngine(b *testing.B, devices int, mode string) (*Engine, *ingest.Registry, *ingest.ObservationBuilder) {
	cfg := DefaultConfig()
	cfg.MaxDevices, cfg.WhenFull = devices, mode
	reg := ingest.NewRegistry()
	eng, err := NewEngine(cfg, Deps{Registry: reg, Baseline: baseline.NewStore(testBaselineConfig(), reg), Sink: &discardSink{}})
	if err != nil {
		b.Fatal(err)
	}
	return eng, reg, ingest.NewObservationBuilder(nil, reg, nil)
}

func benchChurn(b *testing.B, devices int, mode string) {
	eng, reg, builder := cappedEngine(b, devices, mode)
	var row ingest.Row
	t := simEpoch.UnixNano()
	newDev, turn := 0, 0
	var tracked []string // in the order they came
	batch := func() *ingest.Batch {
		for i := range 4096 {
			row.Reset()
			t += int64(10 * time.Millisecond)
			row.TimeNanos, row.Group = t, "site-a/plc"
			switch {
			case len(tracked) < devices:
				row.Device = "dev-" + strconv.Itoa(newDev)
				tracked = append(tracked, row.Device)
				newDev++
			case i%16 == 0:
				// a new device, in place of the one reported longest ago,
				// which leaves for good
				row.Device = "dev-" + strconv.Itoa(newDev)
				tracked[turn%devices] = row.Device
				newDev++
				turn++
			default:
				row.Device = tracked[turn%devices]
				turn++
			}
			row.Metrics = append(row.Metrics, ingest.Metric{Name: "bytes_out", Value: 1000}, ingest.Metric{Name: "cpu", Value: 30})
			builder.Append(&row)
		}
		rec, _ := builder.NewRecord()
		return ingest.NewBatch(rec, nil)
	}
	ctx := context.Background()
	for len(tracked) < devices || newDev < 2*devices { // fill the cap, then churn a while
		if err := eng.Process(ctx, batch()); err != nil {
			b.Fatal(err)
		}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st0 := eng.Stats()
	var cpu time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		bt := batch()
		b.StartTimer()
		c0 := threadCPU()
		if err := eng.Process(ctx, bt); err != nil {
			b.Fatal(err)
		}
		cpu += threadCPU() - c0
	}
	b.StopTimer()
	st := eng.Stats()
	b.ReportMetric(float64(cpu)/float64(4096*b.N), "cpu-ns/row")
	b.ReportMetric(float64(st.DevicesEvicted-st0.DevicesEvicted)/float64(b.N), "evictions/op")
	b.ReportMetric(float64(st.DeviceCapRows-st0.DeviceCapRows)/float64(b.N), "refused/op")
	if n := reg.NumDevices(); n > devices {
		b.Fatalf("%d devices tracked past the cap of %d", n, devices)
	}
}

// BenchmarkFirstEvictionAfterStablePeriod times one eviction after every
// device tracked has reported again since the heap was built, so that
// every entry is stale: the worst case of the lazy heap, which refreshes
// them all at once (each row makes one entry stale, so it is paid once
// per stable period), and then the eviction after it.
func BenchmarkFirstEvictionAfterStablePeriod(b *testing.B) {
	for _, devices := range []int{1 << 16, 1 << 20} {
		b.Run("devices="+strconv.Itoa(devices), func(b *testing.B) {
			var first, next time.Duration
			for range b.N {
				b.StopTimer()
				emit, evictions := stablePeriod(b, devices)
				t0 := time.Now()
				emit(0, 1) // device 0, evicted, returns: every entry is stale
				first += time.Since(t0)
				t0 = time.Now()
				emit(devices+1, devices+2) // one more new device
				next += time.Since(t0)
				if n := evictions(); n != 3 {
					b.Fatalf("%d evictions, want 3", n)
				}
			}
			b.ReportMetric(float64(first.Microseconds())/float64(b.N), "µs/first")
			b.ReportMetric(float64(next.Microseconds())/float64(b.N), "µs/next")
		})
	}
}

// stablePeriod fills an engine with devices under max_devices devices and
// evict_idle, admits one more (evicting device 0, building the heap), then
// has devices 1 to devices-1 report three times. emit(from, to) judges a
// row of each device from to to-1, in batches of 4096.
func stablePeriod(b *testing.B, devices int) (emit func(from, to int), evictions func() int64) {
	eng, _, builder := cappedEngine(b, devices, WhenFullEvictIdle)
	var row ingest.Row
	t := simEpoch.UnixNano()
	emit = func(from, to int) {
		for i := from; i < to; i++ {
			row.Reset()
			t += int64(time.Millisecond)
			row.TimeNanos, row.Device, row.Group = t, "dev-"+strconv.Itoa(i), "site-a/plc"
			row.Metrics = append(row.Metrics, ingest.Metric{Name: "bytes_out", Value: 1000})
			builder.Append(&row)
			if builder.Len() == 4096 || i == to-1 {
				rec, _ := builder.NewRecord()
				if err := eng.Process(context.Background(), ingest.NewBatch(rec, nil)); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	emit(0, devices+1)
	for range 3 {
		emit(1, devices)
	}
	return emit, func() int64 { return eng.Stats().DevicesEvicted }
}
