package ingest

import "unsafe"

// DevicePageShift sets the size of a DeviceTable's pages: 1<<DevicePageShift
// device ids. A page is small next to a large fleet and large enough that
// the table of pages stays in cache (1M devices: 1,024 pages).
const DevicePageShift = 10

// DevicePage is the number of device ids in a page of a DeviceTable.
const DevicePage = 1 << DevicePageShift

// DeviceTable holds a T for every device id, in fixed-size pages allocated
// as ids arrive. Growing never copies nor moves what it holds: a fleet that
// arrives device by device costs one zeroed page per DevicePage devices,
// where a slice grown by doubling copies (and faults in) the whole state
// again and again, and a pointer returned by At stays valid. The zero
// value is empty; a T never set is T's zero value.
type DeviceTable[T any] struct {
	pages []*[DevicePage]T
}

// At returns the element of id (≥ 0), allocating its page.
func (t *DeviceTable[T]) At(id int32) *T {
	p := int(id) >> DevicePageShift
	if p >= len(t.pages) || t.pages[p] == nil {
		t.grow(p)
	}
	return &t.pages[p][id&(DevicePage-1)]
}

func (t *DeviceTable[T]) grow(p int) {
	for len(t.pages) <= p {
		t.pages = append(t.pages, nil)
	}
	t.pages[p] = new([DevicePage]T)
}

// Get returns the element of id, or nil when id is negative or its page
// was never allocated. It never allocates.
func (t *DeviceTable[T]) Get(id int32) *T {
	p := int(id) >> DevicePageShift
	if id < 0 || p >= len(t.pages) || t.pages[p] == nil {
		return nil
	}
	return &t.pages[p][id&(DevicePage-1)]
}

// Len returns an id bound: every element set has an id below it.
func (t *DeviceTable[T]) Len() int { return len(t.pages) * DevicePage }

// Bytes returns the memory the table's pages hold.
func (t *DeviceTable[T]) Bytes() int {
	n := cap(t.pages) * 8
	for _, p := range t.pages {
		if p != nil {
			n += int(unsafe.Sizeof(*p))
		}
	}
	return n
}
