package baseline

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/ingest"
)

// largeStore learns devices devices with 5 metrics each, one row per
// device, in 6 groups.
func largeStore(tb testing.TB, devices int) *Store {
	tb.Helper()
	reg := ingest.NewRegistry()
	s := NewStore(DefaultConfig(), reg)
	names := []string{"bytes_out", "bytes_in", "msgs_sent", "auth_failures", "cpu_pct"}
	var rows []obs
	flush := func() {
		rec := buildRecord(tb, reg, names, rows)
		feed(s, rec)
		rec.Release()
		rows = rows[:0]
	}
	for d := 0; d < devices; d++ {
		rows = append(rows, obs{
			t:    t0 + int64(d)*int64(time.Millisecond),
			dev:  fmt.Sprintf("dev-%06d", d),
			grp:  fmt.Sprintf("plant-%d/hw-%d", d%3, d/3%2),
			vals: []float64{float64(5000 + d%15000), float64(1000 + d%4000), float64(40 + d%40), 0, float64(d%300) / 10},
		})
		if len(rows) == 4096 {
			flush()
		}
	}
	if len(rows) > 0 {
		flush()
	}
	return s
}

// heapHighWater samples the heap's live and not yet swept objects every
// 100 µs until stop is called, which returns the highest figure seen.
func heapHighWater() (stop func() uint64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	var (
		wg   sync.WaitGroup
		done = make(chan struct{})
		peak = read()
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Microsecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				peak = max(peak, read())
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		return max(peak, read())
	}
}

// BenchmarkCheckpointLarge writes the checkpoint of 200k devices with 5
// metrics each (the state `vigil replay --checkpoint` saves for such a
// fleet) to io.Discard and reports how far the heap rose above the
// state while it ran: the checkpoint's own memory, which is what
// --checkpoint adds to a replay's peak RSS.
func BenchmarkCheckpointLarge(b *testing.B) {
	s := largeStore(b, 200_000)
	var size countingWriter
	if err := s.Checkpoint(&size, nil); err != nil {
		b.Fatal(err)
	}
	var peakRise uint64
	b.SetBytes(size.n)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		stop := heapHighWater()
		b.StartTimer()
		if err := s.Checkpoint(io.Discard, nil); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		peakRise = max(peakRise, stop()-before.HeapAlloc)
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(peakRise)/1e6, "peak-heap-rise-MB")
	b.ReportMetric(float64(size.n)/1e6, "file-MB")
}

// BenchmarkRestoreLarge restores the checkpoint of BenchmarkCheckpointLarge.
// Restore holds the file (its checksum is checked before Arrow parses it)
// and one batch at a time; its peak shows in the RSS of
// `vigil replay --restore`, the heap's high-water here being mostly
// garbage the collector has not reached yet.
func BenchmarkRestoreLarge(b *testing.B) {
	s := largeStore(b, 200_000)
	var buf bytes.Buffer
	if err := s.Checkpoint(&buf, nil); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := NewStore(DefaultConfig(), ingest.NewRegistry()).Restore(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
