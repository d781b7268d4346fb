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

// PrefetchRange asks for every cache line of the n bytes at p (Prefetch):
// a device's state that spans several lines.
func PrefetchRange(p unsafe.Pointer, n int) {
	const line = 64
	Prefetch(p)
	for off := line - int(uintptr(p)&(line-1)); off < n; off += line {
		Prefetch(unsafe.Add(p, off))
	}
}
