package baseline

import (
	"fmt"
	"testing"
	"unsafe"

	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/smaps"
)

// TestLargeFleetStateOnHugePages: the device state of a large fleet (70k
// devices of 5 metrics, 17 MiB of means and squared deviations) lies on
// transparent huge pages past its first ingest.HugeBlock/2 bytes: a row
// reads its device's state at random.
func TestLargeFleetStateOnHugePages(t *testing.T) {
	if mode := smaps.THPMode(); mode != "madvise" {
		t.Skipf("transparent huge pages in mode %q, not madvise (always: every page may be huge; never: none)", mode)
	}
	reg := ingest.NewRegistry()
	s := NewStore(testConfig(), reg)
	metrics := []string{"m0", "m1", "m2", "m3", "m4"}
	const devices, batch = 70_000, 4096
	var rows []obs
	for d := range devices {
		rows = append(rows, obs{t: t0, dev: fmt.Sprintf("dev-%06d", d), grp: "g", vals: []float64{1, 2, 3, 4, 5}})
		if len(rows) == batch || d == devices-1 {
			rec := buildRecord(t, reg, metrics, rows)
			feed(s, rec)
			rec.Release()
			rows = rows[:0]
		}
	}
	// The page halfway through the first block of 8 MiB, which follows
	// the 4 MiB handed out page by page: at least 2 MiB from either end
	// of the block.
	perDevice := len(metrics) * s.nh * 16 // mean and m2
	page := ingest.HugeBlock / (perDevice * ingest.DevicePage)
	pg := s.pages[page]
	kb, err := smaps.HugePagesAt(unsafe.Pointer(&pg.mean[0]))
	if err != nil {
		t.Fatal(err)
	}
	if kb == 0 {
		t.Errorf("the means of page %d of %d lie in a mapping with no huge pages", page, len(s.pages))
	}
}
