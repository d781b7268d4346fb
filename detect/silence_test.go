package detect

import (
	"testing"

	"github.com/vigil-ot/vigil/ingest"
)

// TestSilenceHeapKeys drives silence with report intervals that lengthen
// and shrink (a shrinking interval moves a deadline earlier) and checks,
// after every batch, what the lazily sifted deadline heaps rely on: each
// group's heap is ordered by (key, device), every entry knows its place,
// and no key is later than its device's deadline, so the top of the heap
// is always the device with the earliest deadline. A device that then
// stops must still be declared silent.
func TestSilenceHeapKeys(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Silence.MissedReports = 20 // long deadlines: a shrinking interval moves them earlier
	s := newSim(t, cfg, twoGroups, 10, nil)
	check := func(m int) {
		t.Helper()
		e := s.eng
		for g := range e.groups {
			gs := &e.groups[g]
			for i, ent := range gs.heap {
				ds := &e.devices[ent.dev]
				if ds.sil.heapIdx != int32(i) {
					t.Fatalf("minute %d: device %d at heap index %d thinks it is at %d", m, ent.dev, i, ds.sil.heapIdx)
				}
				if ent.key > ds.sil.deadline {
					t.Fatalf("minute %d: device %d keyed at %d, after its deadline %d", m, ent.dev, ent.key, ds.sil.deadline)
				}
				if i > 0 && e.heapLess(gs, int32(i), int32((i-1)/2)) {
					t.Fatalf("minute %d: heap of group %d out of order at %d", m, g, i)
				}
			}
		}
	}
	// Devices 0-4 of each group report every 3 minutes until minute 200,
	// then every minute; the others every minute until 200, then every 2.
	// Device 13 stops at minute 300.
	s.run(0, 400, func(m, i int, d *simDevice, r *ingest.Row) bool {
		defer check(m)
		switch {
		case i == 13 && m >= 300:
			return false
		case i%10 < 5:
			return m >= 200 || m%3 == 0
		default:
			return m < 200 || m%2 == 0
		}
	})
	check(400)
	al := s.sink.find(DetectorSilence, behaviorSilence, "", StateAlarm)
	if len(al) != 1 || al[0].Device != s.devices[13].name {
		t.Fatalf("want one silence alarm, on %s:\n%s", s.devices[13].name, s.sink.dump())
	}
}
