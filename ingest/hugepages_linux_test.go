package ingest

import (
	"strconv"
	"syscall"
	"testing"
	"unsafe"

	"github.com/vigil-ot/vigil/ingest/smaps"
)

// needMadviseTHP skips the test unless the kernel's THP mode is madvise:
// with always, memory gets huge pages whether advised or not; with never,
// it gets none.
func needMadviseTHP(t *testing.T) {
	t.Helper()
	if mode := smaps.THPMode(); mode != "madvise" {
		t.Skipf("transparent huge pages in mode %q, not madvise", mode)
	}
}

// hugePagesAt is smaps.HugePagesAt, failing t on an error.
func hugePagesAt(t *testing.T, p unsafe.Pointer) int {
	t.Helper()
	kb, err := smaps.HugePagesAt(p)
	if err != nil {
		t.Fatal(err)
	}
	return kb
}

// TestLargePageBlocksOnHugePages: once PageBlocks has handed out more
// than HugeBlock/2 bytes of pages, the pages it adds lie on transparent
// huge pages, where each used to be an allocation of its own on 4 KiB
// pages.
func TestLargePageBlocksOnHugePages(t *testing.T) {
	needMadviseTHP(t)
	var blocks PageBlocks[[64 << 10]byte] // 64 KiB pages
	var last *[64 << 10]byte
	for range 3 * HugeBlock / (64 << 10) {
		last = &blocks.Make(1)[0]
		for i := 0; i < len(last); i += 4096 { // a write a 4 KiB page
			last[i] = 1
		}
	}
	if kb := hugePagesAt(t, unsafe.Pointer(last)); kb == 0 {
		t.Errorf("the last page of %d MiB of pages lies in a mapping with no huge pages", 3*HugeBlock>>20)
	}
}

// TestLargeNameIndexOnHugePages: a name index whose slots outgrow
// HugeBlock/2 bytes lies on transparent huge pages: a row's device is a
// random slot of it.
func TestLargeNameIndexOnHugePages(t *testing.T) {
	needMadviseTHP(t)
	var x nameIndex
	for id := range int32(HugeBlock / 8 / 2) { // an 8 MiB table at the end
		x.insert(hashName(strconv.Itoa(int(id))), id)
	}
	if kb := hugePagesAt(t, unsafe.Pointer(&x.slots[len(x.slots)/2])); kb == 0 {
		t.Errorf("the slots of a %d MiB name index lie in a mapping with no huge pages", 8*len(x.slots)>>20)
	}
}

// TestAdviseHugePagesCollapsesFaultedMemory: memory already faulted in on
// 4 KiB pages (as the Go heap's reused memory is, zeroed by the
// allocator) lies on huge pages after AdviseHugePages, its bytes kept.
func TestAdviseHugePagesCollapsesFaultedMemory(t *testing.T) {
	needMadviseTHP(t)
	// Memory of its own, outside the Go heap, whose other memory earlier
	// tests may have advised.
	b, err := syscall.Mmap(-1, 0, 3*hugePage, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(b)
	for i := range b {
		b[i] = byte(i)
	}
	mid := unsafe.Pointer(&b[3*hugePage/2]) // in the whole 2 MiB page b holds
	if kb := hugePagesAt(t, mid); kb != 0 {
		t.Skipf("the memory was on huge pages before advice (%d kB)", kb)
	}
	AdviseHugePages(unsafe.Pointer(&b[0]), len(b))
	if kb := hugePagesAt(t, mid); kb == 0 {
		t.Error("memory faulted in before the advice lies in a mapping with no huge pages")
	}
	for i := range b {
		if b[i] != byte(i) {
			t.Fatalf("byte %d is %d after the advice, want %d", i, b[i], byte(i))
		}
	}
}
