//go:build !amd64

package ingest

import "unsafe"

// PrefetchAhead: see the amd64 version.
const PrefetchAhead = 8

// PrefetchMinDevices: see the amd64 version.
const PrefetchMinDevices = 1 << 15

// Prefetch does nothing on this architecture (see the amd64 version).
func Prefetch(p unsafe.Pointer) {}
