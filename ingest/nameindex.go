package ingest

import (
	"hash/maphash"
	"unsafe"
)

// nameSeed seeds the hashes of every nameIndex of the process, so that a
// builder hashes a device name once for its own index and the registry's.
var nameSeed = maphash.MakeSeed()

// hashName returns the hash of name that nameIndex methods take.
func hashName(name string) uint64 { return maphash.String(nameSeed, name) }

// nameIndex finds the dense id of a name: an open-addressing table
// (linear probing) of 64-bit slots, each the upper half of a name's hash
// beside its id + 1 (0: an empty slot). The names themselves stay where
// their owner keeps them by id (nameOf): the table holds no pointer, so
// the garbage collector never scans it, a fleet's growth rehashes it
// from the stored halves without reading a name, and a device costs no
// heap object of its own — where a map[string]T of a million devices is a
// million keys to scan on every cycle and to rehash as it grows.
//
// It is not safe for concurrent use; the zero value is empty.
type nameIndex struct {
	slots []uint64
	n     int // ids held
}

// nameIndexMin is the number of slots of a nameIndex's first table.
const nameIndexMin = 64

func (x *nameIndex) home(tag uint32) int { return int(tag) & (len(x.slots) - 1) }

// find returns the id of name (whose hash is h), and false when the index
// does not hold it. nameOf returns the name of an id the index holds.
func (x *nameIndex) find(name string, h uint64, nameOf func(int32) string) (int32, bool) {
	if len(x.slots) == 0 {
		return -1, false
	}
	tag := uint32(h >> 32)
	mask := len(x.slots) - 1
	for i := x.home(tag); ; i = (i + 1) & mask {
		s := x.slots[i]
		if s == 0 {
			return -1, false
		}
		if uint32(s>>32) == tag {
			if id := int32(uint32(s)) - 1; nameOf(id) == name {
				return id, true
			}
		}
	}
}

// insert adds id under hash h; the caller knows the index does not hold
// its name.
func (x *nameIndex) insert(h uint64, id int32) {
	if 4*(x.n+1) > 3*len(x.slots) {
		x.grow()
	}
	x.put(uint64(uint32(h>>32))<<32 | uint64(uint32(id)+1))
	x.n++
}

// put stores slot s at the first empty slot from its home.
func (x *nameIndex) put(s uint64) {
	mask := len(x.slots) - 1
	i := x.home(uint32(s >> 32))
	for x.slots[i] != 0 {
		i = (i + 1) & mask
	}
	x.slots[i] = s
}

// grow doubles the table, placing each slot again by its stored half of
// the hash.
func (x *nameIndex) grow() {
	old := x.slots
	x.slots = make([]uint64, max(2*len(old), nameIndexMin))
	if n := 8 * len(x.slots); n >= HugeBlock/2 {
		AdviseHugePages(unsafe.Pointer(&x.slots[0]), n) // read at random, a slot a row
	}
	for _, s := range old {
		if s != 0 {
			x.put(s)
		}
	}
}

// remove drops name (hash h) and returns its id, or false when the index
// does not hold it. The slots after it shift back into the hole (no
// tombstones), so a fleet that churns through evictions never fills the
// table with dead slots.
func (x *nameIndex) remove(name string, h uint64, nameOf func(int32) string) (int32, bool) {
	id, ok := x.find(name, h, nameOf)
	if !ok {
		return -1, false
	}
	mask := len(x.slots) - 1
	want := uint64(uint32(h>>32))<<32 | uint64(uint32(id)+1)
	hole := x.home(uint32(h >> 32))
	for x.slots[hole] != want {
		hole = (hole + 1) & mask
	}
	// Move back every later slot of the run whose home is not between the
	// hole and it (cyclically): its probe from home would cross the hole.
	for i := (hole + 1) & mask; x.slots[i] != 0; i = (i + 1) & mask {
		if home := x.home(uint32(x.slots[i] >> 32)); (i-home)&mask >= (i-hole)&mask {
			x.slots[hole] = x.slots[i]
			hole = i
		}
	}
	x.slots[hole] = 0
	x.n--
	return id, true
}

// reset empties the index, keeping its table.
func (x *nameIndex) reset() {
	clear(x.slots)
	x.n = 0
}

// len returns the number of ids held.
func (x *nameIndex) len() int { return x.n }
