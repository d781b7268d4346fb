package detect

import (
	"math/bits"
	"slices"
	"sync"
	"time"

	"github.com/vigil-ot/vigil/baseline"
)

// RecentValues keeps the latest judged values of each metric of each
// device, with the band each was judged against: the console's plots. The
// engine writes them in place as it judges (Engine.PublishStatus), so that
// nothing is built or handed over per row; a reader copies one device's
// values when it needs them (Device).
//
// The values live in rings of a fixed size, one per device and metric,
// allocated in chunks of pointer-free 16-byte records (RecentValueBytes:
// the event time in milliseconds from the ring's base time, the value, the
// expected value and the band's half-width, as float32: enough for a
// plot), plus about RecentRingBytes per ring. A device's rings are found by
// metric slot and device id, without a map.
//
// It is safe for concurrent use: the engine holds its lock while it judges
// a batch (never while it waits for anything else), a reader while it
// copies one device's values, so a reader waits at most for one batch.
type RecentValues struct {
	mu    sync.Mutex
	size  int
	shift uint            // rings per chunk: 1 << shift
	names []string        // metric names by slot
	rings [][]int32       // by metric slot, by device id: 1 + the ring's index; 0: none
	heads []ringHead      // by ring
	vals  [][]recentValue // chunks of rings
}

// RecentValue is one judged value: its event time and the self
// detector's expected value and band (NaN while there was none).
type RecentValue struct {
	Time                          int64 // event time, Unix ns, to the millisecond
	Value, Expected, Lower, Upper float32
}

// recentValue is a RecentValue as a ring holds it.
type recentValue struct {
	at                    int32 // event time, milliseconds from the ring's base
	value, expected, half float32
}

// ringHead is a ring's position, its base time and what the latest value
// was judged on.
type ringHead struct {
	base                      int64 // Unix ms
	samples                   int64 // values the device's baseline had learned
	next                      uint32
	full, fromGroup, seasonal bool
}

// What RecentValues holds per device and metric that reported:
// RecentValueBytes for each of the size values of its ring, and about
// RecentRingBytes for its head and its entry in the index by device.
const (
	RecentValueBytes = 16
	RecentRingBytes  = 28
)

// chunkValues is about how many values a chunk of rings holds (256 KiB).
const chunkValues = 1 << 14

// NewRecentValues returns empty rings of size values.
func NewRecentValues(size int) *RecentValues {
	if size < 1 {
		panic("BUG: NewRecentValues with a size below 1")
	}
	return &RecentValues{size: size, shift: uint(max(0, bits.Len(uint(chunkValues/size))-1))}
}

// Size is how many values each ring holds.
func (r *RecentValues) Size() int { return r.size }

// metric makes slot name metric name; the caller holds the lock.
func (r *RecentValues) metric(slot int, name string) {
	for len(r.names) <= slot {
		r.names = append(r.names, "")
		r.rings = append(r.rings, nil)
	}
	r.names[slot] = name
}

// nameMetrics names the engine's metric slots; the caller holds the lock.
func (r *RecentValues) nameMetrics(metrics []metricParams) {
	for len(r.names) < len(metrics) {
		r.metric(len(r.names), metrics[len(r.names)].name)
	}
}

// add records the value of ex, device d's expectation of metric slot p
// at event time t (Unix ns), and the band mean ± p.threshold × spread
// when band; the caller (the engine, as it judges) holds the lock and has
// named the slot.
func (r *RecentValues) add(d int32, slot int, t int64, ex *baseline.Expectation, p *metricParams, mean, spread float64, band bool) {
	v, h := r.next(d, slot, t)
	v.value, v.expected, v.half = float32(ex.Value), nan32, nan32
	if band {
		v.expected, v.half = float32(mean), float32(p.threshold*spread)
	}
	h.samples, h.fromGroup, h.seasonal = ex.Samples, ex.FromGroup, ex.Seasonal
}

// next moves device d's ring of metric slot on to a value at event time t
// (Unix ns) and returns the place of the value, its time written, and the
// ring's head. It allocates only for a new device or metric, and then
// only now and then: rings come in chunks, the index by device grows by
// doubling.
func (r *RecentValues) next(d int32, slot int, t int64) (*recentValue, *ringHead) {
	idx := r.rings[slot]
	if int(d) >= len(idx) {
		idx = slices.Grow(idx, int(d)+1-len(idx))
		idx = idx[:cap(idx)]
		r.rings[slot] = idx
	}
	k := idx[d] - 1
	if k < 0 {
		k = r.newRing(t)
		idx[d] = k + 1
	}
	h := &r.heads[k]
	at := t/int64(time.Millisecond) - h.base
	if at != int64(int32(at)) {
		// 24 days from the base: start again from t, without the
		// values before
		h.base, h.next, h.full, at = t/int64(time.Millisecond), 0, false, 0
	}
	mask := int32(1)<<r.shift - 1
	v := &r.vals[k>>r.shift][int(k&mask)*r.size+int(h.next)]
	v.at = int32(at)
	h.next++
	if int(h.next) == r.size {
		h.next, h.full = 0, true
	}
	return v, h
}

// newRing returns the index of a new, empty ring based at t (Unix ns).
func (r *RecentValues) newRing(t int64) int32 {
	k := len(r.heads)
	if k>>r.shift == len(r.vals) {
		r.vals = append(r.vals, make([]recentValue, r.size<<r.shift))
	}
	r.heads = append(r.heads, ringHead{base: t / int64(time.Millisecond)})
	return int32(k)
}

// Add appends v, whose band is symmetric, to device d's values of metric
// name, for a writer other than the engine (which writes in place as it
// judges, under its own lock): samples, fromGroup and seasonal are what v
// was judged on (RecentSeries).
func (r *RecentValues) Add(d int32, name string, v RecentValue, samples int64, fromGroup, seasonal bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	slot := slices.Index(r.names, name)
	if slot < 0 {
		slot = len(r.names)
		r.metric(slot, name)
	}
	w, h := r.next(d, slot, v.Time)
	w.value, w.expected, w.half = v.Value, v.Expected, (v.Upper-v.Lower)/2
	h.samples, h.fromGroup, h.seasonal = samples, fromGroup, seasonal
}

// RecentSeries is one metric's recent values of a device.
type RecentSeries struct {
	Metric string
	// Samples, FromGroup and Seasonal are what the latest value was judged
	// on: the values the device's baseline had learned, and whether the
	// expectation was its group's or the hour-of-week profile's.
	Samples             int64
	FromGroup, Seasonal bool
	Values              []RecentValue // oldest first
}

// Device returns a copy of device d's recent values, one series per metric
// it reported, by metric slot.
func (r *RecentValues) Device(d int32) []RecentSeries {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []RecentSeries
	mask := int32(1)<<r.shift - 1
	for slot, idx := range r.rings {
		if int(d) >= len(idx) || idx[d] == 0 {
			continue
		}
		k := idx[d] - 1
		h := &r.heads[k]
		ring := r.vals[k>>r.shift][int(k&mask)*r.size:][:r.size]
		s := RecentSeries{Metric: r.names[slot], Samples: h.samples, FromGroup: h.fromGroup, Seasonal: h.seasonal,
			Values: make([]RecentValue, 0, r.size)}
		if h.full {
			s.Values = h.appendValues(s.Values, ring[h.next:])
		}
		s.Values = h.appendValues(s.Values, ring[:h.next])
		out = append(out, s)
	}
	return out
}

// appendValues appends the ring's values vs to dst.
func (h *ringHead) appendValues(dst []RecentValue, vs []recentValue) []RecentValue {
	for _, v := range vs { // without a band, expected and half are NaN, and so the bounds
		dst = append(dst, RecentValue{Time: (h.base + int64(v.at)) * int64(time.Millisecond), Value: v.value, Expected: v.expected,
			Lower: v.expected - v.half, Upper: v.expected + v.half})
	}
	return dst
}
