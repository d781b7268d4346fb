package detect

import (
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
// Each device and metric has a ring of a fixed size. The values are
// pointer-free 16-byte records (the event time in milliseconds from the
// ring's base time, the value, the expected value and the band's
// half-width, as float32: enough for a plot) in chunks. The rings a
// device's row makes together (usually all its metrics, in its first row)
// are interleaved in one block, position by position, so that the values
// of its later rows, which those rings take in step, land side by side: a
// row touches one or two cache lines, not one per metric. Rings are found
// by metric slot and device id, without a map. Memory: 16 bytes a value,
// about 55 more per ring (its head, its share of a block and of a chunk's
// unused tail), and 4 bytes per metric slot and device id up to the
// highest that reported the metric (BenchmarkRecentValuesMemory: 9.9 KB
// per device with 5 metrics of 120 values).
//
// It is safe for concurrent use: the engine holds its lock while it judges
// a batch (never while it waits for anything else), a reader while it
// copies one device's values, so a reader waits at most for one batch.
type RecentValues struct {
	mu     sync.Mutex
	size   int
	names  []string   // metric names by slot
	rings  [][]int32  // by metric slot, by device id: 1 + the ring's index; 0: none
	heads  []ringHead // by ring
	blocks []ringBlock
	chunks [][]recentValue // the last one is filled up to used
	used   int

	// the row being recorded (row, add)
	d     int32
	tms   int64 // its event time, Unix ms
	slots []int // by column: the metric slot, -1 for none
	exp   []baseline.Expectation
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

// ringBlock is where rings made together are: the value at position p
// of the ring in column c is at chunks[chunk][off+p*width+c].
type ringBlock struct {
	chunk, off, width int32
}

// ringHead is a ring's position, its base time and what the latest value
// was judged on.
type ringHead struct {
	base                      int64 // Unix ms
	samples                   int64 // values the device's baseline had learned
	next                      uint32
	block, col                int32
	full, fromGroup, seasonal bool
}

// chunkValues is how many values a chunk holds (256 KiB), unless one
// device's block needs more.
const chunkValues = 1 << 14

// NewRecentValues returns empty rings of size values.
func NewRecentValues(size int) *RecentValues {
	if size < 1 {
		panic("BUG: NewRecentValues with a size below 1")
	}
	return &RecentValues{size: size}
}

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

// row starts recording a row of device d at event time t (Unix ns), whose
// column j holds metric slot slots[j] (-1: none), present when exp[j] is.
// The caller holds the lock and has named the slots.
func (r *RecentValues) row(d int32, t int64, slots []int, exp []baseline.Expectation) {
	r.d, r.tms, r.slots, r.exp = d, t/int64(time.Millisecond), slots, exp
}

// ring returns the index of the current device's ring of metric slot,
// making the rings the row's present metrics lack, together in one block,
// when it has none. It allocates only for a device's first row and for
// metrics new to it.
func (r *RecentValues) ring(slot int) int32 {
	if idx := r.rings[slot]; int(r.d) < len(idx) && idx[r.d] > 0 {
		return idx[r.d] - 1
	}
	var missing []int
	for j, sl := range r.slots {
		if sl >= 0 && r.exp[j].Present && !slices.Contains(missing, sl) {
			if idx := r.rings[sl]; int(r.d) >= len(idx) || idx[r.d] == 0 {
				missing = append(missing, sl)
			}
		}
	}
	b := ringBlock{width: int32(len(missing))}
	b.chunk, b.off = r.alloc(r.size * len(missing))
	r.blocks = append(r.blocks, b)
	for col, sl := range missing {
		idx := r.rings[sl]
		if int(r.d) >= len(idx) {
			idx = slices.Grow(idx, int(r.d)+1-len(idx))
			idx = idx[:cap(idx)]
			r.rings[sl] = idx
		}
		idx[r.d] = int32(len(r.heads)) + 1
		r.heads = append(r.heads, ringHead{base: r.tms, block: int32(len(r.blocks) - 1), col: int32(col)})
	}
	return r.rings[slot][r.d] - 1
}

// alloc returns where n new values are.
func (r *RecentValues) alloc(n int) (chunk, off int32) {
	if len(r.chunks) == 0 || r.used+n > len(r.chunks[len(r.chunks)-1]) {
		r.chunks = append(r.chunks, make([]recentValue, max(n, chunkValues)))
		r.used = 0
	}
	off = int32(r.used)
	r.used += n
	return int32(len(r.chunks) - 1), off
}

// add records, in the current row, the value of ex, the expectation of
// metric slot p (present in the row), and the band mean ± p.threshold ×
// spread when band; the caller (the engine, as it judges) holds the lock.
func (r *RecentValues) add(slot int, ex *baseline.Expectation, p *metricParams, mean, spread float64, band bool) {
	v, h := r.next(slot)
	v.value, v.expected, v.half = float32(ex.Value), nan32, nan32
	if band {
		v.expected, v.half = float32(mean), float32(p.threshold*spread)
	}
	h.samples, h.fromGroup, h.seasonal = ex.Samples, ex.FromGroup, ex.Seasonal
}

// next moves the current device's ring of metric slot on and returns the
// place of its value, its time written, and the ring's head.
func (r *RecentValues) next(slot int) (*recentValue, *ringHead) {
	h := &r.heads[r.ring(slot)]
	b := &r.blocks[h.block]
	at := r.tms - h.base
	if at != int64(int32(at)) {
		r.rebase(h, b)
		at = 0
	}
	v := &r.chunks[b.chunk][int(b.off)+int(h.next)*int(b.width)+int(h.col)]
	v.at = int32(at)
	h.next++
	if int(h.next) == r.size {
		h.next, h.full = 0, true
	}
	return v, h
}

// rebase moves the base of ring h (in block b) to the current row's time,
// more than 24 days from it, keeping its values if their times fit (a
// ring spans its last size values, hours for most devices), or else
// starting it again without them.
func (r *RecentValues) rebase(h *ringHead, b *ringBlock) {
	n := int(h.next)
	if h.full {
		n = r.size
	}
	vals := r.chunks[b.chunk][b.off:]
	shift := h.base - r.tms
	for p := range n {
		if at := int64(vals[p*int(b.width)+int(h.col)].at) + shift; at != int64(int32(at)) {
			h.base, h.next, h.full = r.tms, 0, false
			return
		}
	}
	for p := range n {
		vals[p*int(b.width)+int(h.col)].at += int32(shift)
	}
	h.base = r.tms
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
	r.row(d, v.Time, []int{slot}, []baseline.Expectation{{Present: true}})
	w, h := r.next(slot)
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
	for slot, idx := range r.rings {
		if int(d) >= len(idx) || idx[d] == 0 {
			continue
		}
		h := &r.heads[idx[d]-1]
		b := &r.blocks[h.block]
		vals := r.chunks[b.chunk][b.off:]
		from, n := 0, int(h.next)
		if h.full {
			from, n = int(h.next), r.size
		}
		s := RecentSeries{Metric: r.names[slot], Samples: h.samples, FromGroup: h.fromGroup, Seasonal: h.seasonal,
			Values: make([]RecentValue, n)}
		for i := range s.Values {
			v := &vals[(from+i)%r.size*int(b.width)+int(h.col)]
			// without a band, expected and half are NaN, and so the bounds
			s.Values[i] = RecentValue{Time: (h.base + int64(v.at)) * int64(time.Millisecond), Value: v.value, Expected: v.expected,
				Lower: v.expected - v.half, Upper: v.expected + v.half}
		}
		out = append(out, s)
	}
	return out
}

// forget empties device d's rings, which the next device given its id
// (an eviction) fills again; the caller (the engine, as it judges) holds
// the lock.
func (r *RecentValues) forget(d int32) {
	for _, idx := range r.rings {
		if int(d) < len(idx) && idx[d] > 0 {
			h := &r.heads[idx[d]-1]
			h.next, h.full, h.samples, h.fromGroup, h.seasonal = 0, false, 0, false, false
		}
	}
}
