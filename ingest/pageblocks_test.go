package ingest

import "testing"

// TestPageBlocksKeepPointerPagesApart: pages of a type that holds pointers
// are allocations of their own however many there are (the collector
// would scan a shared block whole, faulting in its untouched rest), while
// pointer-free pages past HugeBlock/2 bytes share blocks.
func TestPageBlocksKeepPointerPagesApart(t *testing.T) {
	var withPointers PageBlocks[[512]*int] // 4 KiB pages
	var flat PageBlocks[[512]int64]
	for range HugeBlock / 4096 { // 8 MiB: 4 page by page, 4 from a block
		withPointers.Make(1)
		flat.Make(1)
	}
	if n := withPointers.Spare(); n != 0 {
		t.Errorf("pages with pointers come from a block (%d bytes to spare)", n)
	}
	if n := flat.Spare(); n == 0 {
		t.Error("pointer-free pages past HugeBlock/2 bytes come from no block")
	}
}
