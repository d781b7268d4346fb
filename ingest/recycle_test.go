package ingest

import (
	"testing"
	"unsafe"

	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
)

// TestRecyclingAllocatorReuses checks that a freed buffer is handed out
// again, zeroed, for a request of its size class; that Reallocate keeps
// the contents and zeroes what it adds; and that buffers it did not make
// (odd capacities, too large) are left to the garbage collector.
func TestRecyclingAllocatorReuses(t *testing.T) {
	a := NewRecyclingAllocator()
	b := a.Allocate(100)
	if len(b) != 100 || cap(b) != 128 {
		t.Fatalf("Allocate(100): len %d cap %d, want 100 and 128", len(b), cap(b))
	}
	for i := range b {
		b[i] = 0xff
	}
	a.Free(b)
	c := a.Allocate(120)
	if unsafe.SliceData(c) != unsafe.SliceData(b) {
		t.Fatalf("Allocate after Free did not reuse the freed buffer")
	}
	for i, v := range c[:cap(c)] {
		if v != 0 && i < len(c) {
			t.Fatalf("reused buffer: byte %d is %#x, want 0", i, v)
		}
	}
	if d := a.Allocate(120); unsafe.SliceData(d) == unsafe.SliceData(c) {
		t.Fatalf("a buffer in use was handed out twice")
	}

	c = c[:10]
	for i := range c {
		c[i] = byte(i + 1)
	}
	c[:cap(c)][50] = 0xee // stale byte beyond len: must not come back
	g := a.Reallocate(64, c)
	if unsafe.SliceData(g) != unsafe.SliceData(c) || len(g) != 64 || g[9] != 10 || g[50] != 0 {
		t.Fatalf("Reallocate within capacity: len %d, g[9]=%d g[50]=%#x", len(g), g[9], g[50])
	}
	h := a.Reallocate(1000, g)
	if len(h) != 1000 || cap(h) != 1024 || h[0] != 1 || h[9] != 10 || h[10] != 0 {
		t.Fatalf("Reallocate beyond capacity: len %d cap %d, h[0]=%d h[9]=%d h[10]=%d", len(h), cap(h), h[0], h[9], h[10])
	}
	if r := a.Allocate(128); unsafe.SliceData(r) != unsafe.SliceData(g) {
		t.Fatalf("the buffer Reallocate moved away from was not kept")
	}

	odd := make([]byte, 100)
	a.Free(odd)
	if r := a.Allocate(100); unsafe.SliceData(r) == unsafe.SliceData(odd) {
		t.Fatalf("a buffer of another allocator was kept")
	}
	big := a.Allocate(maxRecycledSize + 1)
	a.Free(big)
	if r := a.Allocate(maxRecycledSize + 1); unsafe.SliceData(r) == unsafe.SliceData(big) {
		t.Fatalf("a buffer beyond the largest class was kept")
	}
}

// TestRecyclingAllocatorRecords builds records of one shape one after
// another, each released (on another goroutine, as a consumer may) before
// the next is built: the values are right, and the buffers of the released
// record serve the next, so a record costs fewer allocations than with the
// Go allocator, by at least the buffers its fixed-width and metric columns
// share (one, and values and validity).
func TestRecyclingAllocatorRecords(t *testing.T) {
	allocs := func(mem memory.Allocator) float64 {
		b := NewObservationBuilder(mem, NewRegistry(), siteGrouper{})
		k := 0
		build := func() {
			k++
			for i := range 8 {
				r := Row{Device: "d", SrcIP: "10.0.0.1", Metrics: []Metric{{Name: "a", Value: float64(k*10 + i)}}}
				if i%2 == 0 {
					r.Metrics = append(r.Metrics, Metric{Name: "b", Value: -1})
				}
				b.Append(&r)
			}
			rec, _ := b.NewRecord()
			a := rec.Column(NumFixedCols).(*array.Float64)
			bc := rec.Column(NumFixedCols + 1).(*array.Float64)
			for i := range 8 {
				if a.Value(i) != float64(k*10+i) || bc.IsNull(i) != (i%2 == 1) {
					t.Fatalf("record %d row %d: a=%v b null %v", k, i, a.Value(i), bc.IsNull(i))
				}
			}
			done := make(chan struct{})
			go func() { rec.Release(); close(done) }()
			<-done
		}
		build()
		return testing.AllocsPerRun(20, build)
	}
	recycled, fresh := allocs(NewRecyclingAllocator()), allocs(memory.NewGoAllocator())
	t.Logf("allocations per record: %v recycled, %v with the Go allocator", recycled, fresh)
	if recycled > fresh-3 {
		t.Fatalf("allocations per record: %v recycled, %v with the Go allocator; want at least 3 fewer", recycled, fresh)
	}
}
