package packet

import "testing"

// The flow table's index starts small and doubles as flows come, up to
// twice max_flows, and every flow stays found through the growth, the
// removals and the evictions of a full table.
func TestFlowTableGrows(t *testing.T) {
	const max = 5000
	tab := newFlowTable(max)
	if len(tab.slots) > minFlowSlots {
		t.Fatalf("a new table's index has %d slots, want at most %d", len(tab.slots), minFlowSlots)
	}
	key := func(n int) flowKey { return flowKey{a1: uint64(n), b1: 1 << 40, ports: 502<<24 | 6} }
	live := map[int]int32{}
	for n := range 3 * max {
		k := key(n)
		if old := key(n - 2); n%3 == 2 { // remove an earlier flow now and then
			if i, ok := live[n-2]; ok && tab.flows[i].used && tab.flows[i].key.eq(&old) {
				tab.remove(i)
				delete(live, n-2)
			}
		}
		i := tab.insert(k, k.hash())
		tab.flows[i].last = int64(n)
		live[n] = i
		if 2*tab.len() > len(tab.slots) {
			t.Fatalf("after %d inserts: %d flows in %d slots", n+1, tab.len(), len(tab.slots))
		}
	}
	if len(tab.slots) != maxFlowSlots(max) {
		t.Fatalf("full table's index has %d slots, want %d", len(tab.slots), maxFlowSlots(max))
	}
	found := 0
	for n, i := range live {
		k := key(n)
		if !tab.flows[i].used || !tab.flows[i].key.eq(&k) {
			continue // evicted since
		}
		if got := tab.lookup(&k, k.hash()); got != i {
			t.Fatalf("flow %d: lookup %d, want %d", n, got, i)
		}
		found++
	}
	if found != tab.len() || found != max {
		t.Fatalf("%d flows found, table holds %d, want %d", found, tab.len(), max)
	}
}

// FuzzDistinctSet checks the window's distinct set against a Go map, the
// plain reference, over adds of keys from a small space (so members
// repeat and probe sequences collide), growth, and resets, including
// the reset of a large set and the wrap of the epoch counter.
//
// Each input byte is one operation: 0xff resets the set, 0xfe moves its
// epoch to just before the counter wraps; any other byte adds (if absent)
// a key made of its bits.
func FuzzDistinctSet(f *testing.F) {
	f.Add([]byte{1, 2, 3, 1, 0xff, 1, 2})
	f.Add([]byte{0xfe, 5, 6, 0xff, 5, 0xff, 6, 7})
	f.Add([]byte{5, 6, 0xfe, 7, 5, 0xff, 6, 0xff, 6, 8})
	many := make([]byte, 0, 300)
	for i := range 250 {
		many = append(many, byte(i))
	}
	f.Add(append(many, 0xff, 3, 4))
	f.Fuzz(func(t *testing.T, ops []byte) {
		var s distinctSet
		ref := map[distinctKey]bool{}
		for _, op := range ops {
			switch op {
			case 0xff:
				s.reset()
				clear(ref)
				continue
			case 0xfe:
				old := s.epoch
				s.epoch = ^uint32(0) - 1
				for i := range s.slots { // the members stay members, the rest empty
					if s.slots[i].epoch == old {
						s.slots[i].epoch = s.epoch
					} else {
						s.slots[i].epoch = 0
					}
				}
				continue
			}
			k := distinctKey{host: int32(op & 7), gen: uint32(op>>3) & 1, kind: op >> 4 & 3, port: uint16(op >> 6)}
			k.addr[15] = op
			h := k.hash()
			if got := s.has(&k, h); got != ref[k] {
				t.Fatalf("has(%v) = %v, want %v", k, got, ref[k])
			}
			if !ref[k] {
				s.add(&k, h)
				ref[k] = true
			}
			if s.len() != len(ref) {
				t.Fatalf("len %d, want %d", s.len(), len(ref))
			}
		}
		for k := range ref {
			if !s.has(&k, k.hash()) {
				t.Fatalf("%v lost", k)
			}
		}
	})
}

// A distinct set a flood filled keeps its table while the flood lasts
// (windows that fill it again), and drops it after the first window that
// fills less than an eighth of it.
func TestDistinctSetKeepsTableWhileFull(t *testing.T) {
	var s distinctSet
	fill := func(n int) {
		for i := range n {
			k := distinctKey{host: 1, gen: uint32(i)}
			if h := k.hash(); !s.has(&k, h) {
				s.add(&k, h)
			}
		}
	}
	fill(3 * maxKeptDistinctSlots)
	large := len(s.slots)
	if large <= maxKeptDistinctSlots {
		t.Fatalf("%d members in %d slots", s.len(), large)
	}
	s.reset()
	if len(s.slots) != large {
		t.Fatalf("emptied after a full window: %d slots, want the %d kept", len(s.slots), large)
	}
	fill(3 * maxKeptDistinctSlots)
	if len(s.slots) != large {
		t.Fatalf("refilled: %d slots, want %d", len(s.slots), large)
	}
	s.reset()
	fill(10)
	s.reset()
	if len(s.slots) > maxKeptDistinctSlots {
		t.Fatalf("after a quiet window the set still has %d slots", len(s.slots))
	}
}
