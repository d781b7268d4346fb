package detect

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/ingest"
)

// TestRecentValuesRings: each device's ring of each metric keeps its last
// size values, oldest first, across chunks, sparse device ids and blocks
// widened for a device's new metrics, with what the latest value was
// judged on; a device without values has none.
func TestRecentValuesRings(t *testing.T) {
	const size = 1000
	r := NewRecentValues(size)
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
	if b := r.blocks[7]; b.width != 6 || b.rings != 6 || r.blocks[41].width != 1 || len(r.chunks) < 3 {
		t.Fatalf("device 7's block %+v, device 41's %+v, %d chunks", b, r.blocks[41], len(r.chunks))
	}
	for n := 2500; n < 2500+size-1; n++ { // a new metric: device 41's block widens
		r.Add(41, "temp", RecentValue{Time: ms(n), Value: 411, Expected: 1.5, Lower: 1, Upper: 2}, int64(n), false, true)
	}
	if b := r.blocks[41]; b.width != 2 || b.rings != 2 {
		t.Fatalf("device 41's block %+v after a second metric", b)
	}
	if s := r.Device(41); len(s) != 2 || s[1].Metric != "temp" || len(s[1].Values) != size-1 || s[1].Values[0].Value != 411 || !s[1].Seasonal {
		t.Fatalf("device 41's second metric: %+v", s)
	}
	for _, d := range devices {
		series := r.Device(d)
		if d == 41 {
			series = series[:1] // its first metric
		}
		if len(series) != 6 && d != 41 {
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

// TestRecentValuesTimes: times are kept to the millisecond, a late value
// before the ring's first is kept, and a value more than 24 days from the
// ring's base starts the ring again (its time would not fit).
func TestRecentValuesTimes(t *testing.T) {
	r := NewRecentValues(4)
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
	r := NewRecentValues(size)
	params := make([]metricParams, metrics)
	for m := range params {
		params[m].name, params[m].threshold = fmt.Sprint("m", m), 4
	}
	r.nameMetrics(params)
	slots := []int{0, 1, 2, 3, 4}
	exp := make([]baseline.Expectation, metrics)
	for m := range exp {
		exp[m] = baseline.Expectation{Value: 1, Samples: 100, Present: true}
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		d := int32(n % devices)
		r.row(d, simEpoch.UnixNano()+int64(n/devices)*int64(time.Minute), slots, exp)
		for m := range metrics {
			r.add(m, &exp[m], &params[m], 1, 0.5, true)
		}
		n++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*metrics), "ns/value")
}
