package attackgen

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/ingest"
)

// poisoningAllocator overwrites every buffer it frees before recycling
// it: a NaN in every float64, -1 in every integer.
type poisoningAllocator struct{ *ingest.RecyclingAllocator }

func (p poisoningAllocator) Free(b []byte) {
	b = b[:cap(b)]
	for i := range b {
		b[i] = 0xff
	}
	p.RecyclingAllocator.Free(b)
}

// TestPacketRecordsNotReadAfterRelease replays the OT day (3 hours clean,
// then the attacks) through the packet source, the baseline and every
// detector twice: with the Go allocator, which never reuses memory, and
// with the extractor's recycling allocator poisoning each buffer as it is
// released. The alerts are the same: no stage reads a window's record
// after releasing it, so recycling its buffers for the next window's
// record changes no judgement.
func TestPacketRecordsNotReadAfterRelease(t *testing.T) {
	c := otDayTestCapture(t)
	path := filepath.Join(t.TempDir(), "otday.pcap")
	if err := os.WriteFile(path, c.data, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(mem memory.Allocator) string {
		alerts := replayThroughEngine(t, path, ingest.DefaultPacketConfig(), detect.DefaultConfig(), mem)
		if len(alerts) == 0 {
			t.Fatal("the OT day raised no alert")
		}
		return fmt.Sprintf("%+v", alerts)
	}
	want := run(memory.NewGoAllocator())
	if got := run(poisoningAllocator{ingest.NewRecyclingAllocator()}); got != want {
		t.Fatalf("alerts differ when released records are poisoned:\n got %.600s\nwant %.600s", got, want)
	}
}
