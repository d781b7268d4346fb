//go:build !linux

package ingest

import "unsafe"

// AdviseHugePages does nothing outside Linux (see the Linux version).
func AdviseHugePages(p unsafe.Pointer, n int) {}
