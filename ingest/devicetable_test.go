package ingest

import "testing"

// TestDeviceTablePointersStayValid: elements never move as the table
// grows (a pointer taken before keeps reading and writing the element),
// a page is allocated only for the ids used, and Get never allocates.
func TestDeviceTablePointersStayValid(t *testing.T) {
	var tab DeviceTable[int64]
	if tab.Get(0) != nil || tab.Get(-1) != nil || tab.Len() != 0 {
		t.Fatal("an empty table has elements")
	}
	first := tab.At(3)
	*first = 42
	for id := int32(3); id < 5*DevicePage; id += 7 {
		*tab.At(id) += int64(id)
	}
	if *first != 42+3 || tab.At(3) != first || tab.Get(3) != first {
		t.Errorf("element 3 is %d at %p, want 45 at %p: it moved as the table grew", *tab.At(3), tab.At(3), first)
	}
	far := int32(1_000_000)
	*tab.At(far) = 7
	if got := tab.Bytes(); got > 8*DevicePage*8 {
		t.Errorf("6 pages of int64 hold %d bytes, want at most %d", got, 8*DevicePage*8)
	}
	if tab.Get(far-DevicePage) != nil {
		t.Error("Get found an element in a page never allocated")
	}
	if *tab.Get(far) != 7 || tab.Len() <= int(far) {
		t.Errorf("element %d is %d (table length %d), want 7", far, *tab.Get(far), tab.Len())
	}
}
