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
