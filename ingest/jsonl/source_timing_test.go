package jsonl

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// BenchmarkReplayNative measures the replay source end to end: a JSONL
// file of native messages with 5 metrics → decoded, grouped, appended →
// 4096-row Arrow batches. One op is one message.
func BenchmarkReplayNative(b *testing.B) {
	const n = 100_000
	path := filepath.Join(b.TempDir(), "fleet.jsonl")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	var size int64
	for i := 0; i < n; i++ {
		dev := i % 1000
		k, _ := fmt.Fprintf(f, `{"device":"plc-%04d","ts":"2026-11-21T%02d:%02d:%02d.000Z","attrs":{"site":"plant-%c","hw":"s7-%d","fw":"2.9.4"},"metrics":{"bytes_out":%d,"bytes_in":%d,"msgs_sent":%d,"auth_failures":%d,"cpu_pct":%d.5},"conn":{"src_ip":"10.1.%d.%d","client_id":"plc-%04d"}}`+"\n",
			dev, (i/3600)%24, (i/60)%60, i%60, 'a'+dev%3, 1200+300*(dev%2), 1000+i%977, 800+i%313, 10+i%7, i%2, i%90, dev/250, dev%250, dev)
		size += int64(k)
	}
	f.Close()
	b.SetBytes(size / n)
	b.ReportAllocs()
	var cpu time.Duration
	msgs := 0
	b.ResetTimer()
	for msgs < b.N {
		c0 := cpuTime()
		s := open(b, []string{path}, nil)
		for {
			bt, err := s.ReadBatch(context.Background())
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			msgs += int(bt.Record.NumRows())
			bt.Release()
		}
		s.Close()
		cpu += cpuTime() - c0
	}
	// One op is one message; b.N is rounded up to whole files.
	b.ReportMetric(float64(msgs)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(msgs)/cpu.Seconds(), "msgs/cpu-s")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
