package attackgen

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/packet"
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
	run := func(mem memory.Allocator) []byte {
		reg := ingest.NewRegistry()
		store := baseline.NewStore(baseline.DefaultConfig(), reg)
		dcfg := detect.DefaultConfig()
		net, err := detect.NewNetworkDetector(dcfg.Network, reg, store.CommSet("network", dcfg.Network.Learning))
		if err != nil {
			t.Fatal(err)
		}
		sink := &collectSink{}
		eng, err := detect.NewEngine(dcfg, detect.Deps{Registry: reg, Baseline: store, Sink: sink, Extra: []detect.BatchDetector{net}})
		if err != nil {
			t.Fatal(err)
		}
		src, err := packet.OpenReplay(ingest.DefaultPacketConfig(), packet.ReplayOptions{Options: packet.Options{Registry: reg, Mem: mem}}, path)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		ctx := context.Background()
		for {
			b, err := src.ReadBatch(ctx)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := eng.Process(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		if err := eng.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if len(sink.alerts) == 0 {
			t.Fatal("the OT day raised no alert")
		}
		return []byte(fmt.Sprintf("%+v", sink.alerts))
	}
	want := run(memory.NewGoAllocator())
	if got := run(poisoningAllocator{ingest.NewRecyclingAllocator()}); string(got) != string(want) {
		t.Fatalf("alerts differ when released records are poisoned:\n got %.600s\nwant %.600s", got, want)
	}
}
