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

func benchChurn(b *testing.B, devices int, mode string) {
	cfg := DefaultConfig()
	cfg.MaxDevices, cfg.WhenFull = devices, mode
	reg := ingest.NewRegistry()
	eng, err := NewEngine(cfg, Deps{Registry: reg, Baseline: baseline.NewStore(testBaselineConfig(), reg), Sink: &discardSink{}})
	if err != nil {
		b.Fatal(err)
	}
	builder := ingest.NewObservationBuilder(nil, reg, nil)
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
