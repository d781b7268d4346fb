package detect

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/ingest"
)

// TestRecentValuesRings: each device's ring of each metric keeps its last
// size values, oldest first, across chunks and sparse device ids, with
// what the latest value was judged on; a device without values has none.
func TestRecentValuesRings(t *testing.T) {
	const size = 1000
	r := NewRecentValues(size, 0)
	devices := []int32{7, 0, 3000, 41}
	for n := range 2500 {
		for _, d := range devices {
			for m, name := range []string{"cpu", "temp", "bytes_out", "msgs", "rssi", "auth"} {
				if d == 41 && m > 0 {
					continue // one metric only
				}
				v := RecentValue{Time: ms(n), Value: float32(int(d)*10 + m), Expected: 1.5, Lower: 1, Upper: 2}
				if m == 2 {
					v.Expected, v.Lower, v.Upper = nan32, nan32, nan32 // no band
				}
				r.Add(d, name, v, int64(n), d == 0, m == 1)
			}
		}
	}
	if blocks := blockWidths(r, devices...); len(blocks) != 19 || len(r.chunks) != 1 { // one metric a block: Add makes one at a time
		t.Fatalf("blocks of widths %v in %d chunks", blocks, len(r.chunks))
	}
	for _, d := range devices {
		series := r.Device(d)
		if want := map[bool]int{true: 1, false: 6}[d == 41]; len(series) != want {
			t.Fatalf("device %d: %d series", d, len(series))
		}
		for m, s := range series {
			if len(s.Values) != size || s.Values[0].Time != ms(1500) || s.Values[size-1].Time != ms(2499) {
				t.Fatalf("device %d %s: %d values from %d to %d, want 1500 ms to 2499 ms", d, s.Metric, len(s.Values), s.Values[0].Time, s.Values[len(s.Values)-1].Time)
			}
			for k, v := range s.Values {
				band := v.Expected == 1.5 && v.Lower == 1 && v.Upper == 2
				none := math.IsNaN(float64(v.Expected)) && math.IsNaN(float64(v.Lower)) && math.IsNaN(float64(v.Upper))
				if v.Time != ms(1500+k) || v.Value != float32(int(d)*10+m) || band == (m == 2) || none != (m == 2) {
					t.Fatalf("device %d %s value %d: %+v", d, s.Metric, k, v)
				}
			}
			if s.Samples != 2499 || s.FromGroup != (d == 0) || s.Seasonal != (m == 1) {
				t.Fatalf("device %d %s: judged on %+v", d, s.Metric, s)
			}
		}
	}
	if got := r.Device(8); got != nil {
		t.Fatalf("a device without values: %+v", got)
	}
	if got := r.Device(1 << 20); got != nil {
		t.Fatalf("a device beyond the index: %+v", got)
	}
	r.Add(5, "cpu", RecentValue{Time: ms(1)}, 1, false, false)
	if s := r.Device(5); len(s) != 1 || len(s[0].Values) != 1 || s[0].Values[0].Time != ms(1) {
		t.Fatalf("a ring not full: %+v", s)
	}
}

func ms(n int) int64 { return int64(n) * int64(time.Millisecond) }

// blockWidths returns the widths of the devices' blocks, device by device.
func blockWidths(r *RecentValues, devices ...int32) []int {
	var widths []int
	for _, d := range devices {
		for b := r.first[d] - 1; b >= 0; b = r.heads[b].more - 1 {
			widths = append(widths, int(r.heads[b].width))
		}
	}
	return widths
}

// TestRecentValuesTimes: times are kept to the millisecond, a late value
// before the ring's first is kept, a ring written for longer than its
// times' 24 days keeps its values, and one whose values span more than 24
// days starts again (their times would not fit).
func TestRecentValuesTimes(t *testing.T) {
	r := NewRecentValues(4, 0)
	base := simEpoch.UnixNano()
	for _, dt := range []time.Duration{0, 1500*time.Microsecond + 7, -time.Hour, 24 * 24 * time.Hour} {
		r.Add(1, "cpu", RecentValue{Time: base + int64(dt)}, 1, false, false)
	}
	got := r.Device(1)[0].Values
	if len(got) != 4 || got[0].Time != base || got[1].Time != base+ms(1) || got[2].Time != base-int64(time.Hour) || got[3].Time != base+int64(24*24*time.Hour) {
		t.Fatalf("times %+v", got)
	}
	r.Add(1, "cpu", RecentValue{Time: base + int64(25*24*time.Hour)}, 1, false, false)
	if got := r.Device(1)[0].Values; len(got) != 1 || got[0].Time != base+int64(25*24*time.Hour) {
		t.Fatalf("after 25 days: %+v", got)
	}
	const hours = 598 // hourly values: the last is the first beyond 2³¹ ms from the first
	for h := range hours {
		r.Add(2, "cpu", RecentValue{Time: base + int64(time.Duration(h)*time.Hour), Value: float32(h)}, 1, false, false)
	}
	got = r.Device(2)[0].Values
	for k, v := range got {
		if h := hours - 4 + k; v.Time != base+int64(time.Duration(h)*time.Hour) || v.Value != float32(h) || len(got) != 4 {
			t.Fatalf("after %d hourly values: %+v", hours, got)
		}
	}
}

// TestRecentValuesAllocateNothing: keeping the recent values allocates
// nothing per row once the devices' rings exist: a batch allocates as
// much as without them.
func TestRecentValuesAllocateNothing(t *testing.T) {
	bare, with := batchAllocs(t, 0), batchAllocs(t, 120)
	if with > bare {
		t.Fatalf("%.1f allocations per batch of %d rows keeping recent values, %.1f without", with, benchDevices*benchMinutes, bare)
	}
}

// batchAllocs returns the allocations per batch of a warm engine keeping
// recentValues values.
func batchAllocs(t *testing.T, recentValues int) float64 {
	eng, fleet := warmEngine(t, DefaultConfig(), recentValues)
	var batches []*ingest.Batch
	for range 6 {
		batches = append(batches, ingest.NewBatch(fleet.next(), nil))
	}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(len(batches)-1, func() {
		if err := eng.Process(ctx, batches[0]); err != nil {
			t.Fatal(err)
		}
		batches = batches[1:]
	})
	if recentValues > 0 {
		if s := eng.recent.Device(0); len(s) != 5 || len(s[0].Values) != recentValues {
			t.Fatalf("device 0's recent values: %d series", len(s))
		}
	}
	return allocs
}

// BenchmarkRecentValuesAdd: the engine's write of one judged value, over
// the rings of 512 devices × 5 metrics of 120 values, in the order rows
// come (every device once, then again).
func BenchmarkRecentValuesAdd(b *testing.B) {
	const devices, metrics, size = 512, 5, 120
	r := NewRecentValues(size, 0)
	params := make([]metricParams, metrics)
	for m := range params {
		params[m].name, params[m].threshold = fmt.Sprint("m", m), 4
	}
	r.bind([]int{0, 1, 2, 3, 4}, params)
	exp := make([]baseline.Expectation, metrics)
	for m := range exp {
		exp[m] = baseline.Expectation{Value: 1, Samples: 100, Present: true}
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		d := int32(n % devices)
		row := r.row(d, simEpoch.UnixNano()+int64(n/devices)*int64(time.Minute))
		for m := range metrics {
			row.note(m, &exp[m], 1, 2)
		}
		n++
	}
	r.flush()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*metrics), "ns/value")
}

// BenchmarkRecentValuesRows: what noting a row of 5 metrics and moving it
// into its device's ring costs the engine (row, note, settle, flush), in a
// fleet whose rings of 120 values are full: 512 devices reporting in turn,
// and 300,000 in a new random order every round (2.3 GB of rings, one
// cache and TLB miss a row unless it is asked for ahead), a report a
// minute, keeping every row or one a step of 5 minutes (the console's
// default); ns/op is a row's.
func BenchmarkRecentValuesRows(b *testing.B) {
	const size, metrics = 120, 5
	for _, devices := range []int{512, 300_000} {
		for _, step := range []time.Duration{0, 5 * time.Minute} {
			b.Run(fmt.Sprintf("devices=%d/step=%s", devices, step), func(b *testing.B) {
				r := NewRecentValues(size, step)
				params := make([]metricParams, metrics)
				slots := make([]int, metrics)
				for i := range params {
					params[i].name, slots[i] = string(rune('a'+i)), i
				}
				r.bind(slots, params)
				exs := make([]baseline.Expectation, metrics)
				for i := range exs {
					exs[i] = baseline.Expectation{Value: float64(i), Samples: 1000, Present: true}
				}
				order := make([]int32, devices)
				for i := range order {
					order[i] = int32(i)
				}
				steps := make([]recentStep, devices) // the engine's, by device
				rng := rand.New(rand.NewPCG(1, 2))
				t, k := simEpoch.UnixNano(), 0
				next := func() {
					d := order[k]
					if k+16 < devices { // the engine has judged the row from the device's state: it is cached
						ingest.Prefetch(unsafe.Pointer(&steps[order[k+16]]))
					}
					row := r.row(d, t)
					for j := range exs {
						row.note(j, &exs[j], float32(j), 2)
					}
					r.settle(row, t, &steps[d], false)
					if k++; k == devices {
						k, t = 0, t+60e9
						if devices > 512 {
							rng.Shuffle(devices, func(i, j int) { order[i], order[j] = order[j], order[i] })
						}
					}
				}
				for range size * devices { // every ring full
					next()
				}
				for b.Loop() {
					next()
				}
				r.flush()
			})
		}
	}
}

// TestRecentValuesBlocks: the metrics a row brings together share a
// block; a metric new to the device gets a block of its own; a metric
// absent from a row of its block has no value there, the others go on.
func TestRecentValuesBlocks(t *testing.T) {
	r := NewRecentValues(3, 0)
	params := make([]metricParams, 4)
	for m := range params {
		params[m].name, params[m].threshold = fmt.Sprint("m", m), 2
	}
	exp := make([]baseline.Expectation, 4)
	write := func(n int, slots []int) {
		r.bind(slots, params)
		row := r.row(9, ms(n))
		for j, slot := range slots {
			if slot >= 0 && exp[j].Present {
				exp[j].Value = float64(10*n + slot)
				if slot != 1 {
					row.note(j, &exp[j], float32(slot), 0.5)
				} else {
					row.note(j, &exp[j], nan32, nan32) // no band
				}
			} else {
				row.absent(j)
			}
		}
		r.flush()
	}
	for j := range exp {
		exp[j].Present = true
	}
	for n := range 4 {
		write(n, []int{2, 0, 1, -1}) // columns in another order than slots
	}
	exp[0].Present = false // m3 new, m2 absent
	write(4, []int{2, 0, 1, 3})
	exp[0].Present = true
	write(5, []int{3, 2, 0, 1})
	if blocks := blockWidths(r, 9); fmt.Sprint(blocks) != "[3 1]" {
		t.Fatalf("blocks of widths %v", blocks)
	}
	want := map[string][]int{"m0": {3, 4, 5}, "m1": {3, 4, 5}, "m2": {3, 5}, "m3": {4, 5}}
	for _, s := range r.Device(9) {
		var got []int
		for _, v := range s.Values {
			n := int(v.Time / int64(time.Millisecond))
			got = append(got, n)
			slot := int(s.Metric[1] - '0')
			lower, upper := float32(slot)-0.5, float32(slot)+0.5
			if slot == 1 {
				lower, upper = nan32, nan32
			}
			if v.Value != float32(10*n+slot) || (slot != 1 && (v.Expected != float32(slot) || v.Lower != lower || v.Upper != upper)) ||
				(slot == 1 && !math.IsNaN(float64(v.Expected))) {
				t.Fatalf("%s: %+v", s.Metric, v)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want[s.Metric]) {
			t.Fatalf("%s: values of rows %v, want %v", s.Metric, got, want[s.Metric])
		}
		delete(want, s.Metric)
	}
	if len(want) != 0 {
		t.Fatalf("no values of %v", want)
	}
}

// BenchmarkRecentValuesMemory reports the heap the recent values hold per
// device, full, with 5 metrics at the console's default ring size (120
// values), written as the engine writes them: all 5 in each row.
func BenchmarkRecentValuesMemory(b *testing.B) {
	const devices, metrics, size = 10_000, 5, 120
	params := make([]metricParams, metrics)
	for m := range params {
		params[m].name = fmt.Sprint("m", m)
	}
	slots := []int{0, 1, 2, 3, 4}
	exp := make([]baseline.Expectation, metrics)
	for m := range exp {
		exp[m].Present = true
	}
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		r := NewRecentValues(size, 0)
		r.bind(slots, params)
		for n := range size {
			for d := range int32(devices) {
				row := r.row(d, ms(n))
				for m := range metrics {
					row.note(m, &exp[m], nan32, nan32)
				}
			}
		}
		r.flush()
		runtime.GC()
		runtime.ReadMemStats(&after)
		per := float64(after.HeapAlloc-before.HeapAlloc) / devices
		b.ReportMetric(per, "B/device")
		b.ReportMetric(per/(metrics*size), "B/value")
		runtime.KeepAlive(r)
	}
}

// TestRecentValuesColumnOrder: rows whose columns are a block's in their
// order (moved with writeSame) and the same rows with their columns in
// another order (writeBlock) give the same values, with absent ones and
// rings gone round; and rows noted before the columns change (bind, as
// for a held row judged inside a batch) land in their own metrics.
func TestRecentValuesColumnOrder(t *testing.T) {
	params := make([]metricParams, 4)
	for m := range params {
		params[m].name = fmt.Sprint("m", m)
	}
	fill := func(r *RecentValues, slots []int, n int) {
		r.bind(slots, params)
		row := r.row(int32(n%3), ms(n))
		for j, slot := range slots {
			if (n+slot)%5 == 0 {
				row.absent(j)
				continue
			}
			ex := baseline.Expectation{Value: float64(100*n + slot), Samples: int64(n), FromGroup: slot == 2, Seasonal: n%2 == 0}
			row.note(j, &ex, float32(slot), float32(n))
		}
	}
	same, other := NewRecentValues(7, 0), NewRecentValues(7, 0)
	for n := range 40 {
		fill(same, []int{0, 1, 2, 3}, n)
		slots := []int{3, 1, 0, 2}
		if n%2 == 1 {
			slots = []int{2, 0, 3, 1}
		}
		fill(other, slots, n)
	}
	same.flush()
	other.flush()
	for d := range int32(3) {
		want, got := same.Device(d), other.Device(d)
		if len(want) != 4 || fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
			t.Fatalf("device %d: columns in another order\n%+v\nwant\n%+v", d, got, want)
		}
		for _, s := range want {
			slot := int(s.Metric[1] - '0')
			for _, v := range s.Values {
				n := int(v.Time / int64(time.Millisecond))
				if v.Value != float32(100*n+slot) || v.Expected != float32(slot) || (n+slot)%5 == 0 || n%3 != int(d) {
					t.Fatalf("device %d %s: %+v", d, s.Metric, v)
				}
			}
		}
	}
}

// TestRecentValuesSamplesSaturate: what a value was judged on keeps its
// flags, and the samples up to about a billion.
func TestRecentValuesSamplesSaturate(t *testing.T) {
	r := NewRecentValues(2, 0)
	r.Add(0, "cpu", RecentValue{Time: ms(1)}, 1<<40, true, true)
	if s := r.Device(0); s[0].Samples != metaSamples || !s[0].FromGroup || !s[0].Seasonal {
		t.Fatalf("judged on %+v", s[0])
	}
}

// TestRecentValuesForget: an evicted device's values, noted before the
// eviction and not yet moved into the rings, are not the next device's
// that is given its id: forget moves them first, then empties the rings.
func TestRecentValuesForget(t *testing.T) {
	r := NewRecentValues(4, 0)
	params := []metricParams{{name: "m0", threshold: 2}}
	exp := []baseline.Expectation{{Present: true}}
	r.bind([]int{0}, params)
	for n := range 3 { // the old device's, still in the engine's buffer
		exp[0].Value = float64(100 + n)
		r.row(7, ms(n)).note(0, &exp[0], 100, 1)
	}
	r.forget(7)
	exp[0].Value = 5 // the new device given id 7
	r.row(7, ms(10)).note(0, &exp[0], 5, 1)
	r.flush()
	s := r.Device(7)
	if len(s) != 1 || len(s[0].Values) != 1 || s[0].Values[0].Value != 5 || s[0].Values[0].Time != ms(10) {
		t.Fatalf("after forget, device 7's values are %+v, want only the new device's 5 at %d", s, ms(10))
	}
}

// TestRecentValuesRowsByPlane: a chunk holds its blocks' rows row by row,
// so the first rows of a fleet's devices lie together (the memory a fleet
// touches grows with the rows written, not with the rings' size), and
// every device still reads its own last values, across chunks.
func TestRecentValuesRowsByPlane(t *testing.T) {
	const size, devices, rows = 120, 1000, 130
	r := NewRecentValues(size, 0)
	base := simEpoch.UnixNano()
	for n := range rows {
		for d := range int32(devices) {
			r.Add(d, "cpu", RecentValue{Time: base + ms(n), Value: float32(int(d)*1000 + n)}, int64(n), false, false)
		}
	}
	perChunk := planeWords / 4 // a row of one metric: 4 words
	if want := (devices + perChunk - 1) / perChunk; len(r.chunks) != want {
		t.Fatalf("%d chunks, want %d", len(r.chunks), want)
	}
	h0, h1 := &r.heads[r.firstBlock(0)], &r.heads[r.firstBlock(1)]
	if gap := uintptr(unsafe.Pointer(&r.blockRow(h1, 0)[0])) - uintptr(unsafe.Pointer(&r.blockRow(h0, 0)[0])); gap != 4*4 {
		t.Fatalf("devices 0 and 1: first rows %d bytes apart, want 16", gap)
	}
	for _, d := range []int32{0, 1, 255, 256, 999} {
		v := r.Device(d)[0].Values
		if len(v) != size || v[0].Value != float32(int(d)*1000+rows-size) || v[size-1].Value != float32(int(d)*1000+rows-1) {
			t.Fatalf("device %d: %d values from %v to %v", d, len(v), v[0], v[len(v)-1])
		}
	}
}

// TestRecentValuesStep: with a step, a block keeps one row per step of
// event time: the step's first value of each metric, replaced by a later
// one of the step only when that lies further outside its band (and then
// at its time), or when the row had none of that metric; what the latest
// value was judged on follows every value; a value out of order counts in
// the latest row's step; a ring keeps its last size steps.
func TestRecentValuesStep(t *testing.T) {
	r := NewRecentValues(3, time.Minute)
	params := []metricParams{{name: "a"}, {name: "b"}}
	r.bind([]int{0, 1}, params)
	base := simEpoch.Truncate(time.Minute).UnixNano()
	write := func(sec int, a, b float32, samples int64) {
		row := r.row(4, base+int64(sec)*int64(time.Second))
		for j, v := range []float32{a, b} {
			if math.IsNaN(float64(v)) {
				row.absent(j)
				continue
			}
			row.note(j, &baseline.Expectation{Value: float64(v), Samples: samples}, 0, 1) // band -1 to 1
		}
		r.flush()
	}
	none := nan32
	write(0, 0.5, 0.3, 1)  // the step's first row
	write(10, 0.2, 0.9, 2) // inside the band: not kept
	write(20, 3, 0.1, 3)   // a outside: kept, the row at 20 s
	write(30, -2, none, 4) // a outside, less far: not kept
	write(40, -5, none, 5) // further: kept, the row at 40 s
	write(50, 0.1, none, 6)
	check := func(when string, wantA, wantB string, samplesA, samplesB int64) {
		t.Helper()
		got := map[string]string{}
		samples := map[string]int64{"a": samplesA, "b": samplesB}
		for _, s := range r.Device(4) {
			var pts []string
			for _, v := range s.Values {
				pts = append(pts, fmt.Sprintf("%ds:%g", (v.Time-base)/int64(time.Second), v.Value))
			}
			got[s.Metric] = fmt.Sprint(pts)
			if s.Samples != samples[s.Metric] {
				t.Fatalf("%s: %s judged on %d samples, want %d", when, s.Metric, s.Samples, samples[s.Metric])
			}
		}
		if got["a"] != wantA || got["b"] != wantB {
			t.Fatalf("%s: a %s b %s, want a %s b %s", when, got["a"], got["b"], wantA, wantB)
		}
	}
	check("one step", "[40s:-5]", "[40s:0.3]", 6, 3)
	write(60, 0.7, none, 7)  // a new step, without b
	write(65, 0.2, 0.4, 8)   // b fills its column
	write(200, 0.6, none, 9) // two steps later: the next row
	write(70, 9, 0.5, 10)    // out of order: the latest row's step; a outside, b fills
	check("three steps", "[40s:-5 60s:0.7 70s:9]", "[40s:0.3 60s:0.4 70s:0.5]", 10, 10)
	write(250, 0.1, 0.1, 11)
	write(330, 0.2, 0.2, 12) // two more steps: the first two leave the ring
	check("a full ring", "[70s:9 250s:0.1 330s:0.2]", "[70s:0.5 250s:0.1 330s:0.2]", 12, 12)
	if h := r.heads[r.first[4]-1]; h.next != 2 || !h.full {
		t.Fatalf("the ring at row %d (full %v) after 5 steps in 3 rows", h.next, h.full)
	}

	// Add, a block written apart from the engine's columns, keeps a row a
	// step too.
	for sec := range 600 {
		r.Add(5, "c", RecentValue{Time: base + int64(sec)*int64(time.Second), Value: float32(sec), Expected: 0, Lower: -1000, Upper: 1000}, 1, false, false)
	}
	if s := r.Device(5); len(s) != 1 || fmt.Sprint(s[0].Values[0].Value, s[0].Values[1].Value, s[0].Values[2].Value) != "420 480 540" {
		t.Fatalf("a value a second for 10 minutes, steps of a minute, a ring of 3: %+v", s)
	}
}

// TestRecentValuesSettle: the rows settle drops are those a flush would
// keep nothing of: rings fed every row and rings fed what settle leaves
// hold the same values, over devices reporting at random intervals (now
// and then out of order), with metrics now present, now absent, now
// outside their band.
func TestRecentValuesSettle(t *testing.T) {
	const devices, metrics = 5, 4
	all, settled := NewRecentValues(6, 5*time.Minute), NewRecentValues(6, 5*time.Minute)
	params := make([]metricParams, metrics)
	slots := make([]int, metrics+1) // a column without a metric too
	for m := range params {
		params[m].name, slots[m] = fmt.Sprint("m", m), metrics-1-m
	}
	slots[metrics] = -1
	all.bind(slots, params)
	settled.bind(slots, params)
	rng := rand.New(rand.NewPCG(5, 6))
	steps := make([]recentStep, devices)
	clock := simEpoch.UnixNano()
	dropped := 0
	for n := range 20_000 {
		d := int32(rng.IntN(devices))
		tm := clock
		if rng.IntN(50) == 0 {
			tm -= rng.Int64N(int64(15 * time.Minute)) // out of order
		}
		clock += rng.Int64N(int64(20 * time.Second))
		a, s := all.row(d, tm), settled.row(d, tm)
		far := false
		for j := range slots {
			if slots[j] < 0 || rng.IntN(4) == 0 {
				a.absent(j)
				s.absent(j)
				continue
			}
			v := float32(rng.NormFloat64())
			if rng.IntN(20) == 0 {
				v *= 10
			}
			ex := baseline.Expectation{Value: float64(v), Samples: int64(n)}
			expected, half := float32(0), float32(3)
			if rng.IntN(10) == 0 {
				expected, half = nan32, nan32 // no band
			}
			a.note(j, &ex, expected, half)
			s.note(j, &ex, expected, half)
			if !math.IsNaN(float64(half)) && !withinHalfBand(float64(v-expected), float64(half), 0.5) { // as the engine tells
				far = true
			}
		}
		before := settled.pend.n
		settled.settle(s, tm, &steps[d], far)
		if settled.pend.n < before {
			dropped++
		}
		if rng.IntN(100) == 0 {
			all.flush()
			settled.flush()
		}
	}
	all.flush()
	settled.flush()
	if dropped < 20_000/3 {
		t.Fatalf("settle dropped %d rows of 20000: a device reports about 6 times a step", dropped)
	}
	for d := range int32(devices) {
		want, got := all.Device(d), settled.Device(d)
		if len(got) != len(want) {
			t.Fatalf("device %d: %d series, want %d", d, len(got), len(want))
		}
		for i := range want {
			if fmt.Sprint(got[i].Values) != fmt.Sprint(want[i].Values) {
				t.Fatalf("device %d %s:\n got %v\nwant %v", d, want[i].Metric, got[i].Values, want[i].Values)
			}
		}
	}
}
