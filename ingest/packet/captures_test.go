package packet

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/pcap/pcaptest"
)

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
	dir := pcaptest.Require(t)
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

// TestTestdataCaptures replays the small captures committed in testdata
// (no ../shared needed) and checks outcome counts against what tshark
// shows for the same files: DNP3 on BSD loopback, pcapng with several
// sections, interfaces and link types, S7comm in a pcapng named .pcap.
func TestTestdataCaptures(t *testing.T) {
	cases := []struct {
		file               string
		packets, decoded   int64
		malformed, skipped int64
		protocol           string
		minPDUs            int64
	}{
		// tshark: 15 frames, 127.0.0.1:1550 <-> :20000, 4 carrying DNP3.
		{"dnp3_null_loopback.pcap", 15, 15, 0, 0, "dnp3", 4},
		// tshark: 18 frames, 14 of them COTP (CR, CC, DT carrying S7comm-plus).
		{"s7_pcapng_named_pcap.pcap", 18, 18, 0, 0, "s7comm", 14},
	}
	for _, c := range cases {
		sum, _, _, _ := replayAll(t, ingest.DefaultPacketConfig(), ReplayOptions{}, filepath.Join("../../testdata/pcap", c.file))
		if sum.Packets != c.packets || sum.Decoded != c.decoded || sum.Malformed != c.malformed || sum.SkippedLinkType != c.skipped {
			t.Errorf("%s: packets %d decoded %d malformed %d skipped %d; want %d %d %d %d", c.file,
				sum.Packets, sum.Decoded, sum.Malformed, sum.SkippedLinkType, c.packets, c.decoded, c.malformed, c.skipped)
		}
		found := false
		for _, p := range sum.Protocols {
			if p.Name == c.protocol && p.PDUs >= c.minPDUs {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: protocols %+v, want %s with at least %d PDUs", c.file, sum.Protocols, c.protocol, c.minPDUs)
		}
		if len(sum.Assets) == 0 || len(sum.Edges) == 0 {
			t.Errorf("%s: no assets or edges discovered", c.file)
		}
	}
	// Several files merged in one replay: every packet of each is counted.
	sum, _, _, _ := replayAll(t, ingest.DefaultPacketConfig(), ReplayOptions{}, "../../testdata/pcap")
	if sum.Packets != 15+4+21+18+8 || len(sum.Files) != 5 {
		t.Errorf("directory replay: %d packets from %d files", sum.Packets, len(sum.Files))
	}
}
