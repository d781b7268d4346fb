package baseline

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"

	"github.com/vigil-ot/vigil/ingest"
)

// fleetRecords builds n records of rows rows each: devices devices in
// groups groups reporting metrics metrics once a minute, about 1 in 50
// values null.
func fleetRecords(tb testing.TB, reg *ingest.Registry, n, rows, devices, groups, metrics int) []arrow.Record {
	names := make([]string, metrics)
	for j := range names {
		names[j] = fmt.Sprintf("metric_%02d", j)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	var recs []arrow.Record
	row := 0
	for r := 0; r < n; r++ {
		var obsv []obs
		for i := 0; i < rows; i++ {
			d := row % devices
			vals := make([]float64, metrics)
			for j := range vals {
				vals[j] = float64(100*(j+1)) + rng.NormFloat64()*float64(j+1)*3
				if rng.IntN(50) == 0 {
					vals[j] = math.NaN()
				}
			}
			obsv = append(obsv, obs{
				t:    t0 + int64(row/devices)*int64(time.Minute) + int64(d)*int64(time.Millisecond),
				dev:  fmt.Sprintf("dev-%04d", d),
				grp:  fmt.Sprintf("site-%d/hw-%d", d%groups%3, d%groups/3),
				vals: vals,
			})
			row++
		}
		recs = append(recs, buildRecord(tb, reg, names, obsv))
	}
	return recs
}

// benchConfig is the default configuration without the seasonal warm-up:
// the benchmark records span two hours, and the steady state, which the
// benchmarks measure, learns the hour-of-week profile with every row.
func benchConfig() Config {
	c := DefaultConfig()
	c.SeasonalWarmup = 0
	return c
}

// BenchmarkBindExpectLearn measures the baseline's share of the telemetry
// path: Bind, then Expect and Learn for every row, over 4096-row records of
// 10 metrics from 300 devices in 6 groups. SetBytes counts 8 bytes per
// metric value, so MB/s / 8 is millions of metric values per second.
func BenchmarkBindExpectLearn(b *testing.B) {
	reg := ingest.NewRegistry()
	recs := fleetRecords(b, reg, 8, 4096, 300, 6, 10)
	s := NewStore(benchConfig(), reg)
	exp := make([]Expectation, 10)
	run := func(rec arrow.Record) {
		f := s.Bind(rec)
		for i := 0; i < f.NumRows(); i++ {
			f.Expect(i, exp)
			f.Learn(i)
		}
	}
	for _, rec := range recs { // warm up: devices, groups, sketches exist
		run(rec)
	}
	b.SetBytes(4096 * 10 * 8)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuSeconds()
	for i := 0; i < b.N; i++ {
		run(recs[i%len(recs)])
	}
	cpu := cpuSeconds() - cpu0
	b.StopTimer()
	reportThroughput(b, float64(b.N)*4096*10, cpu)
}

// BenchmarkBindExpectLearnInOrder is BenchmarkBindExpectLearn with every
// pass over the records moved forward in event time, so rows arrive in
// order as live telemetry does. BenchmarkBindExpectLearn replays the same
// records, so after the warm-up every row is older than its device's and
// group's state and takes the out-of-order path (sample weights from exp2
// on every row): the worst case, e.g. a partition's backlog.
func BenchmarkBindExpectLearnInOrder(b *testing.B) {
	reg := ingest.NewRegistry()
	recs := fleetRecords(b, reg, 8, 4096, 300, 6, 10)
	var span int64 // event time one pass covers
	for _, rec := range recs {
		ts := rec.Column(0).(*array.Timestamp).TimestampValues()
		span = max(span, int64(ts[len(ts)-1])-t0)
	}
	span += int64(time.Minute)
	s := NewStore(benchConfig(), reg)
	exp := make([]Expectation, 10)
	run := func(rec arrow.Record) {
		f := s.Bind(rec)
		for i := 0; i < f.NumRows(); i++ {
			f.Expect(i, exp)
			f.Learn(i)
		}
	}
	// shift moves every record a pass forward: the value buffers are
	// written in place, the records are the benchmark's own.
	shift := func() {
		for _, rec := range recs {
			ts := rec.Column(0).(*array.Timestamp).TimestampValues()
			for i := range ts {
				ts[i] += arrow.Timestamp(span)
			}
		}
	}
	for _, rec := range recs { // warm up: devices, groups, sketches exist
		run(rec)
	}
	shift()
	b.SetBytes(4096 * 10 * 8)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuSeconds()
	for i := 0; i < b.N; i++ {
		if i > 0 && i%len(recs) == 0 {
			shift() // 32k additions per 8 records of 40k values each: noise
		}
		run(recs[i%len(recs)])
	}
	cpu := cpuSeconds() - cpu0
	b.StopTimer()
	reportThroughput(b, float64(b.N)*4096*10, cpu)
}

// BenchmarkExpect measures Expect alone (the detectors' read path).
func BenchmarkExpect(b *testing.B) {
	reg := ingest.NewRegistry()
	recs := fleetRecords(b, reg, 4, 4096, 300, 6, 10)
	s := NewStore(DefaultConfig(), reg)
	for _, rec := range recs {
		feed(s, rec)
	}
	exp := make([]Expectation, 10)
	b.SetBytes(4096 * 10 * 8)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuSeconds()
	for i := 0; i < b.N; i++ {
		f := s.Bind(recs[i%len(recs)])
		for r := 0; r < f.NumRows(); r++ {
			f.Expect(r, exp)
		}
	}
	cpu := cpuSeconds() - cpu0
	b.StopTimer()
	reportThroughput(b, float64(b.N)*4096*10, cpu)
}

// BenchmarkBytesPerDevice reports the per-device state of 10 000 devices
// with 10 metrics, from the real slice capacities.
func BenchmarkBytesPerDevice(b *testing.B) {
	for i := 0; i < b.N; i++ {
		reg := ingest.NewRegistry()
		s := NewStore(DefaultConfig(), reg)
		recs := fleetRecords(b, reg, 3, 4096, 10000, 6, 10)
		for _, rec := range recs {
			feed(s, rec)
			rec.Release()
		}
		b.ReportMetric(float64(s.StateBytes())/float64(s.NumDevices()), "bytes/device")
	}
}

func BenchmarkSketchAdd(b *testing.B) {
	q := NewQuantileSketch(time.Hour)
	rng := rand.New(rand.NewPCG(1, 1))
	vals := make([]float64, 4096)
	for i := range vals {
		vals[i] = math.Exp(rng.NormFloat64() * 2)
	}
	b.ReportAllocs()
	b.SetBytes(8)
	for i := 0; i < b.N; i++ {
		q.Add(t0+int64(i)*int64(time.Millisecond), vals[i&4095])
	}
}

func BenchmarkHLLAdd(b *testing.B) {
	h := NewHLL(DefaultHLLPrecision)
	b.ReportAllocs()
	b.SetBytes(8)
	for i := 0; i < b.N; i++ {
		h.AddUint64(uint64(i))
	}
}

func BenchmarkExp2(b *testing.B) {
	var sum float64
	for i := 0; i < b.N; i++ {
		sum += exp2(-float64(i&1023) / 64)
	}
	_ = sum
}

func BenchmarkMathExp2(b *testing.B) {
	var sum float64
	for i := 0; i < b.N; i++ {
		sum += math.Exp2(-float64(i&1023) / 64)
	}
	_ = sum
}

// cpuSeconds returns the CPU time the process has used. On a shared,
// oversubscribed machine wall-clock rates understate what one core does;
// values per CPU-second is the per-core figure. The benchmarks allocate
// nothing, so no GC time is mixed in.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func reportThroughput(b *testing.B, values, cpu float64) {
	b.ReportMetric(values/b.Elapsed().Seconds()/1e6, "Mvalues/s")
	if cpu > 0 {
		b.ReportMetric(values/cpu/1e6, "Mvalues/cpu-s")
	}
}

// BenchmarkCheckpoint writes the state of 3000 devices with 10 metrics in
// 6 groups and reports the file size per device.
func BenchmarkCheckpoint(b *testing.B) {
	reg := ingest.NewRegistry()
	s := NewStore(DefaultConfig(), reg)
	for _, rec := range fleetRecords(b, reg, 3, 4096, 3000, 6, 10) {
		feed(s, rec)
		rec.Release()
	}
	var buf bytes.Buffer
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf.Reset()
		if err := s.Checkpoint(&buf, map[string]int64{"telemetry/0": 1}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.SetBytes(int64(buf.Len()))
	b.ReportMetric(float64(buf.Len())/float64(s.NumDevices()), "file-bytes/device")
}

// BenchmarkMarshalDevice measures one changelog record of a device with
// 10 metrics, reusing the caller's buffer.
func BenchmarkMarshalDevice(b *testing.B) {
	reg := ingest.NewRegistry()
	s := NewStore(DefaultConfig(), reg)
	for _, rec := range fleetRecords(b, reg, 1, 4096, 300, 6, 10) {
		feed(s, rec)
		rec.Release()
	}
	var dst []byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dst = s.AppendDevice(dst[:0], int32(i%300))
	}
	b.SetBytes(int64(len(dst)))
}

// BenchmarkShuffledFleet measures Expect and Learn a row on a fleet of
// 200k devices of 5 metrics whose rows come in another random order every
// round, with the frame prefetching each row's state 8 rows ahead
// (ingest.Prefetch) and without: the ratio of the two, measured side by
// side, is what prefetching wins once the state outgrows the caches.
func BenchmarkShuffledFleet(b *testing.B) {
	const devices, metrics, batch = 200_000, 5, 4096
	reg := ingest.NewRegistry()
	s := NewStore(benchConfig(), reg)
	names := make([]string, metrics)
	for j := range names {
		names[j] = fmt.Sprintf("metric_%02d", j)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	var recs []arrow.Record
	for round := range 3 {
		order := rng.Perm(devices)
		for from := 0; from < devices; from += batch {
			var rows []obs
			for _, d := range order[from:min(from+batch, devices)] {
				rows = append(rows, obs{t: t0 + int64(round)*int64(time.Minute), dev: fmt.Sprintf("dev-%06d", d), grp: fmt.Sprintf("g%d", d%12),
					vals: []float64{1e4 + float64(d%100), 2e3, 50, 0, 25}})
			}
			recs = append(recs, buildRecord(b, reg, names, rows))
		}
	}
	exp := make([]Expectation, metrics)
	run := func(rec arrow.Record) {
		f := s.Bind(rec)
		for i := 0; i < f.NumRows(); i++ {
			f.Expect(i, exp)
			f.Learn(i)
		}
	}
	for _, rec := range recs[:len(recs)/3] { // the first round: every device's state made
		run(rec)
	}
	recs = recs[len(recs)/3:]
	defer func(v int32) { prefetchMinDevices = v }(prefetchMinDevices)
	for _, c := range []struct {
		name string
		from int32
	}{{"prefetch", ingest.PrefetchMinDevices}, {"none", math.MaxInt32}} {
		b.Run(c.name, func(b *testing.B) {
			prefetchMinDevices = c.from
			rows := 0
			for i := 0; b.Loop(); i++ {
				rec := recs[i%len(recs)]
				run(rec)
				rows += int(rec.NumRows())
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(rows), "ns/row")
		})
	}
}
