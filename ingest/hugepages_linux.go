package ingest

import (
	"syscall"
	"unsafe"
)

// hugePage is the size of an x86-64 (and arm64 with 4 KiB pages)
// transparent huge page.
const hugePage = 2 << 20

// AdviseHugePages asks the kernel to back the whole 2 MiB pages within
// the n bytes at p with transparent huge pages (madvise MADV_HUGEPAGE).
// It changes no byte of the memory, only how pages not yet touched are
// faulted in: call it on memory nothing has written to yet. It is a hint:
// an error (a kernel without THP) is ignored.
func AdviseHugePages(p unsafe.Pointer, n int) {
	from := (uintptr(p) + hugePage - 1) &^ (hugePage - 1)
	to := (uintptr(p) + uintptr(n)) &^ (hugePage - 1)
	if from >= to {
		return
	}
	_ = syscall.Madvise(unsafe.Slice((*byte)(unsafe.Add(p, from-uintptr(p))), to-from), syscall.MADV_HUGEPAGE)
}
