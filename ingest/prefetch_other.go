//go:build !amd64

package ingest

import "unsafe"

// Prefetch does nothing on this architecture (see the amd64 version).
func Prefetch(p unsafe.Pointer) {}
