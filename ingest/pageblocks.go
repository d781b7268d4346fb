package ingest

import (
	"reflect"
	"unsafe"
)

// HugeBlock is the size of the blocks PageBlocks carves pages from once it
// has handed out half that much: 8 MiB, of which at least 6 MiB are whole
// 2 MiB pages, whatever the block's alignment.
const HugeBlock = 8 << 20

// PageBlocks hands out the pages of per-device state (zeroed slices of T
// that live as long as the state). While it has handed out less than
// HugeBlock/2 bytes, each page is an allocation of its own, so a small
// fleet's state is as small as its pages. Beyond, pages are carved, one
// after another, from blocks of HugeBlock bytes that ask the kernel for
// transparent huge pages (AdviseHugePages) before anything touches them.
//
// A large fleet's state is read at random, a device a row: on 4 KiB pages
// nearly every row's device costs a TLB miss and a page walk per page of
// its state it touches (and a page fault the first time), where 2 MiB
// pages cover the whole state with a few hundred TLB entries. The kernel
// gives huge pages to such advised memory when its THP mode is madvise
// (the default of many distributions) as well as always.
//
// A page carved from a block keeps the whole block alive: PageBlocks is
// for state that is dropped all at once or not at all. Pages of a T that
// holds pointers are each an allocation of their own whatever the total:
// the garbage collector would scan a block whole, faulting in its
// untouched rest. The zero value is ready; it is not safe for concurrent
// use.
type PageBlocks[T any] struct {
	block []T // the rest of the current block
	total int // bytes handed out
}

// Make returns a zeroed slice of n Ts.
func (b *PageBlocks[T]) Make(n int) []T {
	size := n * int(unsafe.Sizeof(*new(T)))
	b.total += size
	switch {
	case b.total <= HugeBlock/2 || size == 0 || hasPointers(reflect.TypeFor[T]()):
		return make([]T, n)
	case size > HugeBlock/4: // a page too large to share a block
		s := make([]T, n)
		AdviseHugePages(unsafe.Pointer(&s[0]), size)
		return s
	case n > len(b.block):
		b.block = make([]T, HugeBlock/(size/n))
		AdviseHugePages(unsafe.Pointer(&b.block[0]), len(b.block)*(size/n))
	}
	s := b.block[:n:n]
	b.block = b.block[n:]
	return s
}

// Spare returns the bytes of the current block not handed out yet.
func (b *PageBlocks[T]) Spare() int { return len(b.block) * int(unsafe.Sizeof(*new(T))) }

// hasPointers reports whether a value of type t holds a pointer (a
// string, slice, map, … counts).
func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return false
	case reflect.Array:
		return t.Len() > 0 && hasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
		return false
	}
	return true
}
