package ingest

import (
	"syscall"
	"unsafe"
)

// hugePage is the size of an x86-64 (and arm64 with 4 KiB pages)
// transparent huge page.
const hugePage = 2 << 20

// madvCollapse is MADV_COLLAPSE (Linux 6.1), which package syscall lacks.
const madvCollapse = 25

// AdviseHugePages asks the kernel to back the whole 2 MiB pages within
// the n bytes at p with transparent huge pages (madvise MADV_HUGEPAGE):
// pages not faulted in yet come as huge pages when first touched. Memory
// the Go heap reuses is faulted in already (the allocator zeroed it): it
// is collapsed into huge pages now (MADV_COLLAPSE, a copy of it). Neither
// changes a byte of the memory. It is a hint: errors (a kernel without
// THP or without MADV_COLLAPSE, no huge page free) are ignored.
func AdviseHugePages(p unsafe.Pointer, n int) {
	from := (uintptr(p) + hugePage - 1) &^ (hugePage - 1)
	to := (uintptr(p) + uintptr(n)) &^ (hugePage - 1)
	if from >= to {
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Add(p, from-uintptr(p))), to-from)
	if syscall.Madvise(b, syscall.MADV_HUGEPAGE) != nil {
		return
	}
	var resident [1]byte
	if _, _, errno := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), 1, uintptr(unsafe.Pointer(&resident[0]))); errno == 0 && resident[0]&1 != 0 {
		_ = syscall.Madvise(b, madvCollapse)
	}
}
