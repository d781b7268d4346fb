package ingest

import (
	"fmt"
	"testing"

	"github.com/apache/arrow/go/v15/arrow/array"
)

// FuzzNameIndex applies a sequence of inserts and removes to a nameIndex
// and to a map, and checks after each that every name of a small
// alphabet is found in the index exactly when the map holds it, with the
// same id. With a degenerate hash (the fuzzer's choice) every name lands
// in one of two homes with one of two tags: long probe runs, tags that
// match for different names, and removals that must shift slots back
// across the table's end.
func FuzzNameIndex(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 0x81, 0x83, 8, 9, 0x80}, false)
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 0x81, 0x83, 8, 9, 0x80}, true)
	f.Add(fmt.Appendf(nil, "%080d", 0), true)
	f.Fuzz(func(t *testing.T, ops []byte, degenerate bool) {
		const alphabet = 100
		hash := hashName
		if degenerate {
			// Home 63 or 0 of the first table: runs wrap around its end.
			hash = func(name string) uint64 {
				if len(name)%2 == 0 {
					return 63 << 32
				}
				return 64 << 32
			}
		}
		var x nameIndex
		want := map[string]int32{}
		names := map[int32]string{} // id -> name, as an owner keeps them
		nameOf := func(id int32) string { return names[id] }
		next := int32(0)
		for _, op := range ops {
			name := fmt.Sprint("dev-", int(op&0x7f)%alphabet, "-", int(op&0x7f)/2)
			h := hash(name)
			if op&0x80 == 0 {
				if _, ok := want[name]; ok {
					continue
				}
				want[name], names[next] = next, name
				x.insert(h, next)
				next++
			} else {
				id, ok := x.remove(name, h, nameOf)
				if wid, wok := want[name]; ok != wok || ok && id != wid {
					t.Fatalf("remove(%q) = %d, %v; want %d, %v", name, id, ok, wid, wok)
				}
				delete(want, name)
				delete(names, id)
			}
			if x.len() != len(want) {
				t.Fatalf("len %d, want %d", x.len(), len(want))
			}
			for k := range alphabet {
				n := fmt.Sprint("dev-", k, "-", k/2)
				id, ok := x.find(n, hash(n), nameOf)
				if wid, wok := want[n]; ok != wok || ok && id != wid {
					t.Fatalf("after op %#x: find(%q) = %d, %v; want %d, %v", op, n, id, ok, wid, wok)
				}
			}
		}
	})
}

// TestNameIndexGrows interns more names than several tables hold, then
// removes every other one: the rest are still found under their ids.
func TestNameIndexGrows(t *testing.T) {
	var x nameIndex
	var names []string
	nameOf := func(id int32) string { return names[id] }
	for i := range 10000 {
		names = append(names, fmt.Sprint("plc-", i))
		x.insert(hashName(names[i]), int32(i))
	}
	for i := 0; i < len(names); i += 2 {
		if _, ok := x.remove(names[i], hashName(names[i]), nameOf); !ok {
			t.Fatalf("remove(%q): not found", names[i])
		}
	}
	for i, n := range names {
		id, ok := x.find(n, hashName(n), nameOf)
		if ok != (i%2 == 1) || ok && id != int32(i) {
			t.Fatalf("find(%q) = %d, %v after removing the even names", n, id, ok)
		}
	}
	if x.len() != len(names)/2 || len(x.slots) > 4*len(names) {
		t.Errorf("%d names in %d slots, want %d in at most %d", x.len(), len(x.slots), len(names)/2, 4*len(names))
	}
}

// FuzzBuilderDeviceIDs checks the builder's device ids, found by the
// next-device guess or by its index, against the registry's own
// look-up, row by row, while devices are evicted and their ids given to
// other names (as the engine does with detect.when_full: evict_idle).
// Names repeat in cycles, so the guess is taken and often wrong.
func FuzzBuilderDeviceIDs(f *testing.F) {
	f.Add([]byte{1, 2, 3, 1, 2, 3, 0xc1, 1, 2, 3, 0, 0, 1})
	f.Add([]byte{1, 2, 1, 2, 0xc0, 0xc2, 2, 1, 2, 1, 4, 4})
	f.Fuzz(func(t *testing.T, ops []byte) {
		reg := NewRegistry()
		b := NewObservationBuilder(nil, reg, fixedGrouper{})
		var want []int32
		fresh := 0
		for _, op := range ops {
			if op >= 0xc0 { // evict the device of index op%8, give the index to a new name
				id := int32(op % 8)
				if int(id) >= reg.DeviceSlots() || reg.DeviceName(id) == "" {
					continue
				}
				reg.EvictDevice(id)
				fresh++
				reg.AdmitFreed(fmt.Sprint("fresh-", fresh))
				continue
			}
			name := []string{"", "plc-1", "plc-2", "plc-3", "plc-4", "fresh-1", "fresh-2", "plc-5"}[op%8]
			b.Append(&Row{Device: name, Metrics: []Metric{{Name: "temp", Value: 1}}})
			id, ok := reg.LookupDevice(name)
			if !ok {
				t.Fatalf("%q not interned after its row", name)
			}
			want = append(want, id)
		}
		rec, _ := b.NewRecord()
		defer rec.Release()
		got := rec.Column(2).(*array.Int32).Int32Values()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("device ids %v, want the registry's %v", got, want)
		}
	})
}
