package ingest

import (
	"math/bits"
	"sync"

	"github.com/apache/arrow/go/v15/arrow/memory"
)

// RecyclingAllocator is an Arrow allocator that keeps the buffers of
// released records and hands them out again, so a source that builds a
// small record per window (a packet capture: one per 10 s window, a few
// rows each) stops allocating, and the garbage collector stops chasing,
// a few dozen buffers per record. Buffers are kept by power-of-two size,
// up to maxRecycledSize and keptPerSize of each; larger ones, and the
// rest, are left to the garbage collector as memory.GoAllocator's are.
//
// A consumer must not read a record's values after releasing it (Arrow's
// rule; with the Go allocator a violation went unnoticed): its buffers
// may already hold the next record's. It is safe for concurrent use: a
// record may be released on another goroutine than the one building.
type RecyclingAllocator struct {
	mu   sync.Mutex
	free [numSizeClasses][][]byte
}

const (
	minRecycledShift = 6 // 64 bytes: Arrow rounds buffers up to 64
	maxRecycledShift = 20
	numSizeClasses   = maxRecycledShift - minRecycledShift + 1
	maxRecycledSize  = 1 << maxRecycledShift
	keptPerSize      = 256
)

var _ memory.Allocator = (*RecyclingAllocator)(nil)

// NewRecyclingAllocator returns an allocator with no buffers kept yet.
func NewRecyclingAllocator() *RecyclingAllocator { return &RecyclingAllocator{} }

// sizeClass returns the class of buffers of capacity at least n, or -1
// when n is beyond the largest.
func sizeClass(n int) int {
	if n > maxRecycledSize {
		return -1
	}
	if n <= 1<<minRecycledShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minRecycledShift
}

// Allocate implements memory.Allocator: a zeroed buffer of size bytes.
func (a *RecyclingAllocator) Allocate(size int) []byte {
	c := sizeClass(size)
	if c < 0 {
		return make([]byte, size)
	}
	a.mu.Lock()
	if n := len(a.free[c]); n > 0 {
		b := a.free[c][n-1]
		a.free[c][n-1] = nil
		a.free[c] = a.free[c][:n-1]
		a.mu.Unlock()
		b = b[:size]
		clear(b)
		return b
	}
	a.mu.Unlock()
	return make([]byte, size, 1<<(c+minRecycledShift))
}

// Reallocate implements memory.Allocator: b grown or shrunk to size
// bytes, its contents kept, the bytes beyond them zero.
func (a *RecyclingAllocator) Reallocate(size int, b []byte) []byte {
	if size <= cap(b) {
		old := len(b)
		b = b[:size]
		if size > old {
			clear(b[old:])
		}
		return b
	}
	nb := a.Allocate(size)
	copy(nb, b)
	a.Free(b)
	return nb
}

// Free implements memory.Allocator: b is kept for a later Allocate when
// its capacity is one of the classes and the class is not full.
func (a *RecyclingAllocator) Free(b []byte) {
	c := sizeClass(cap(b))
	if c < 0 || cap(b) != 1<<(c+minRecycledShift) {
		return
	}
	a.mu.Lock()
	if len(a.free[c]) < keptPerSize {
		a.free[c] = append(a.free[c], b[:0])
	}
	a.mu.Unlock()
}
