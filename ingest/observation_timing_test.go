package ingest

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

type fixedGrouper struct{}

func (fixedGrouper) Group(string, []Attr) string { return "plant-a/s7-1500" }

// BenchmarkAppend measures ObservationBuilder.Append alone: a decoded row
// with 5 metrics, connection fields and firmware, 1000 devices, a record
// cut every 4096 rows.
func BenchmarkAppend(b *testing.B) {
	names := []string{"bytes_out", "bytes_in", "msgs_sent", "auth_failures", "cpu_pct"}
	rows := make([]Row, 1000)
	for i := range rows {
		r := &rows[i]
		r.Device = fmt.Sprintf("plc-%04d", i)
		r.TimeNanos = int64(i)
		r.SrcIP, r.ClientID, r.Cert, r.Firmware = "10.1.2.3", r.Device, "sha256:ab12cd34ef56", "2.9.4"
		for k, n := range names {
			r.Metrics = append(r.Metrics, Metric{Name: n, Value: float64(i * k)})
		}
	}
	bld := NewObservationBuilder(nil, NewRegistry(), fixedGrouper{})
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bld.Append(&rows[i%len(rows)])
		if bld.Len() == 4096 {
			rec, _ := bld.NewRecord()
			rec.Release()
		}
	}
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "rows/cpu-s")
	}
}

// cpuTime returns the process's user+system CPU time; on a shared machine
// rows/cpu-s is steadier than the wall-clock ns/op.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWindowRecord measures one packet window's record, the cost a
// sparse capture pays every window whatever it holds: 8 rows (hosts) of
// 20 metrics out of 27 names, with a source address, built, then
// released by the consumer, with the packet extractor's recycling
// allocator.
func BenchmarkWindowRecord(b *testing.B) {
	rows := windowRows()
	bld := NewObservationBuilder(NewRecyclingAllocator(), NewRegistry(), fixedGrouper{})
	b.ReportAllocs()
	for b.Loop() {
		for i := range rows {
			bld.Append(&rows[i])
		}
		rec, _ := bld.NewRecord()
		rec.Release()
	}
}

// windowRows are the rows of a packet window's record: 8 hosts, 20
// metrics each out of 27 names, with a source address.
func windowRows() []Row {
	names := make([]string, 27)
	for i := range names {
		names[i] = fmt.Sprintf("net_metric_%d_10s", i)
	}
	rows := make([]Row, 8)
	for i := range rows {
		r := &rows[i]
		r.Device, r.Group, r.SrcIP = fmt.Sprintf("10.0.1.%d", i), "10.0.1.0/24", fmt.Sprintf("10.0.1.%d", i)
		for k := range 20 {
			r.Metrics = append(r.Metrics, Metric{Name: names[(i+k)%len(names)], Value: float64(k)})
		}
	}
	return rows
}
