package jsonl

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkReplayCSV measures the replay source end to end on a CSV file
// shaped like SKAB's (';', local times, eight sensors, two labels) →
// parsed, grouped, appended → 4096-row Arrow batches. One op is one row.
func BenchmarkReplayCSV(b *testing.B) {
	const n = 100_000
	path := filepath.Join(b.TempDir(), "valve.csv")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	size, _ := fmt.Fprintln(w, "datetime;Accelerometer1RMS;Accelerometer2RMS;Current;Pressure;Temperature;Thermocouple;Voltage;Volume Flow RateRMS;anomaly;changepoint")
	start := time.Date(2020, 3, 9, 10, 14, 33, 0, time.UTC)
	for i := range n {
		k, _ := fmt.Fprintf(w, "%s;0.02%05d;0.0401113;1.%d;0.054711;79.3366;26.0199;233.062;32.0;0.0;0.0\n",
			start.Add(time.Duration(i)*time.Second).Format(time.DateTime), i, i%977)
		size += k
	}
	w.Flush()
	f.Close()
	b.SetBytes(int64(size / n))
	b.ReportAllocs()
	var cpu time.Duration
	rows := 0
	b.ResetTimer()
	for rows < b.N {
		c0 := cpuTime()
		s := open(b, []string{path}, func(o *Options) { o.Telemetry.CSV.TimeZone = "Europe/Moscow" })
		for {
			bt, err := s.ReadBatch(context.Background())
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			rows += int(bt.Record.NumRows())
			bt.Release()
		}
		s.Close()
		cpu += cpuTime() - c0
	}
	// One op is one row; b.N is rounded up to whole files.
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(rows)/cpu.Seconds(), "rows/cpu-s")
}
