package ingest

import "unsafe"

// Prefetch asks the CPU to bring the cache line at p into its caches and
// goes on without waiting for it (PREFETCHT0): a loop over rows that
// knows which state a later row will read asks for it some rows ahead,
// so that the cache misses of rows in no stable order overlap instead of
// stalling each row in turn. It never faults, whatever p is, and changes
// nothing but the caches.
//
//go:noescape
func Prefetch(p unsafe.Pointer)
