package packet

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-ot/vigil/ingest"
)

// sharedCaptures returns the real-capture folder next to the repository
// (../shared/captures from the module root), or skips the test.
func sharedCaptures(t testing.TB) string {
	dir := os.Getenv("VIGIL_CAPTURES")
	if dir == "" {
		wd, _ := os.Getwd()
		for d := wd; d != filepath.Dir(d); d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				dir = filepath.Join(filepath.Dir(d), "shared", "captures")
				break
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "INVENTORY.tsv")); err != nil {
		t.Skipf("real captures not present at %q (set VIGIL_CAPTURES)", dir)
	}
	return dir
}

// replayAll drains a source and returns its summary and batches' totals.
func replayAll(t testing.TB, cfg ingest.PacketConfig, opts ReplayOptions, args ...string) (Summary, int, []ingest.NetEvent, []ingest.Communication) {
	t.Helper()
	src, err := OpenReplay(cfg, opts, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	rows := 0
	var events []ingest.NetEvent
	var comms []ingest.Communication
	for {
		b, err := src.ReadBatch(context.Background())
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rows += int(b.Record.NumRows())
		events = append(events, b.Events...)
		comms = append(comms, b.Comms...)
		b.Release()
		b.Ack(context.Background(), nil)
	}
	return src.Summary(), rows, events, comms
}

// TestSharedCaptures replays every real capture on its own: no panic,
// every packet gets one outcome, and OT captures mostly decode.
func TestSharedCaptures(t *testing.T) {
	dir := sharedCaptures(t)
	var files []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !strings.HasSuffix(p, ".tsv") && !strings.HasSuffix(p, ".md") {
			files = append(files, p)
		}
		return nil
	})
	var total Summary
	for _, f := range files {
		sum, _, _, _ := replayAll(t, ingest.DefaultPacketConfig(), ReplayOptions{}, f)
		if got := sum.Decoded + sum.UnknownProtocol + sum.Malformed + sum.SkippedLinkType; got != sum.Packets {
			t.Errorf("%s: outcomes add up to %d of %d packets", f, got, sum.Packets)
		}
		rel, _ := filepath.Rel(dir, f)
		if testing.Verbose() {
			t.Logf("%-90s pkts %6d dec %6d unk %6d mal %5d skip %4d pdus %6d badpdu %4d protos %v", rel, sum.Packets, sum.Decoded, sum.UnknownProtocol, sum.Malformed, sum.SkippedLinkType, sum.Stats.PDUs, sum.Stats.MalformedPDUs, sum.Protocols)
		}
		total.Packets += sum.Packets
		total.Decoded += sum.Decoded
		total.UnknownProtocol += sum.UnknownProtocol
		total.Malformed += sum.Malformed
		total.SkippedLinkType += sum.SkippedLinkType
		total.Stats.PDUs += sum.Stats.PDUs
	}
	t.Logf("%d files: %d packets: decoded %d, unknown protocol %d, malformed %d, skipped link type %d; %d OT PDUs",
		len(files), total.Packets, total.Decoded, total.UnknownProtocol, total.Malformed, total.SkippedLinkType, total.Stats.PDUs)
	if total.Packets < 100000 || total.Decoded < total.Packets/2 || total.Malformed > total.Packets/10 {
		t.Errorf("implausible totals: %+v", total)
	}
}
