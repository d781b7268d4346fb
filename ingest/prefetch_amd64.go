package ingest

import "unsafe"

// PrefetchAhead is how many rows ahead of the row it judges a loop over
// rows asks for a device's state (Prefetch): in a large fleet whose rows
// come in no stable order, each row's state is a few cache misses away,
// and judging a row takes about as long as a miss. What the state's
// address depends on (a table of local ids) is asked for twice as far
// ahead, so that it is in cache when the address is computed.
const PrefetchAhead = 8

// PrefetchMinDevices is the fleet from which loops over rows prefetch:
// the state of a smaller one (a few hundred bytes a device) stays in
// cache, where asking for it only costs the calls.
const PrefetchMinDevices = 1 << 15

// Prefetch asks the CPU to bring the cache line at p into its caches and
// goes on without waiting for it (PREFETCHT0): a loop over rows that
// knows which state a later row will read asks for it some rows ahead,
// so that the cache misses of rows in no stable order overlap instead of
// stalling each row in turn. It never faults, whatever p is, and changes
// nothing but the caches.
//
//go:noescape
func Prefetch(p unsafe.Pointer)
