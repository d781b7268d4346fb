package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/ingest/packet"
	"github.com/vigil-ot/vigil/ingest/simulate/attackgen"
)

// TestReplaySummaryCountsTimeOutliers: a capture whose packet in the
// middle carries a corrupt timestamp says so in a warning, and the summary
// counts it, as the warning promises.
func TestReplaySummaryCountsTimeOutliers(t *testing.T) {
	capture := filepath.Join(t.TempDir(), "corrupt.pcap")
	must(t, writeFile(capture, func(w io.Writer) error {
		_, err := attackgen.GenerateCorruptTimestamp(w, attackgen.DefaultScenario().Start, 10*time.Minute)
		return err
	}))
	_, stderr := runReplayTest(t, capture)
	if want := "  capture clock: 1 time outlier (counted at the packet before it)\n"; !bytes.Contains(stderr, []byte(want)) {
		t.Errorf("summary lacks %q:\n%s", want, stderr)
	}
}

// TestReplaySummaryCountsRefusals: the OT day's attacks (a spoofed SYN
// flood with its backscatter, scans) make the packet path refuse flows and
// the network detectors fold scanners' novelty alerts; the summary counts
// both, with the figures the extractor and the detectors hold.
func TestReplaySummaryCountsRefusals(t *testing.T) {
	if testing.Short() {
		t.Skip("replays a 3-hour OT capture twice")
	}
	s := attackgen.DefaultOTDayScenario()
	s.Clean = 3 * time.Hour // the network detectors learn for an hour
	capture := filepath.Join(t.TempDir(), "otday.pcap")
	must(t, writeFile(capture, func(w io.Writer) error { _, err := attackgen.GenerateOTDay(w, s); return err }))

	job, err := openReplay(DefaultConfig(), []string{capture}, &collectSink{}, slog.New(slog.NewTextHandler(io.Discard, nil)), replaySetup{})
	if err != nil {
		t.Fatal(err)
	}
	defer job.close()
	if err := job.run(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, ns := job.Captures.Summary().Stats, job.Network.Stats()
	if st.HalfOpenFlows == 0 || ns.ScanQuiet == 0 {
		t.Fatalf("the OT day no longer exercises the summary: %d half-open flows, %+v", st.HalfOpenFlows, ns)
	}

	_, stderr := runReplayTest(t, capture)
	for _, w := range []string{
		fmt.Sprintf("  not kept: %d half-open TCP flows", st.HalfOpenFlows),
		fmt.Sprintf("network detectors: %d novelty alerts of scanners left to the scan alarm", ns.ScanQuiet),
	} {
		if !bytes.Contains(stderr, []byte(w)) {
			t.Errorf("summary lacks %q:\n%s", w, stderr)
		}
	}
}

// TestSummaryRefusalLines: every refusal the extractor and the network
// detectors count has its words in the summary, and a replay that refused
// nothing prints none of the lines.
func TestSummaryRefusalLines(t *testing.T) {
	var buf bytes.Buffer
	writeCaptureRefusals(&buf, &packet.Stats{})
	writeNetworkStats(&buf, detect.NetworkStats{})
	if buf.Len() > 0 {
		t.Errorf("nothing refused, yet:\n%s", buf.String())
	}
	st := packet.Stats{CommsDropped: 2, EventsDropped: 3, SetMembersDropped: 4}
	st.HalfOpenFlows, st.NonAssetHostsEvicted, st.TimeOutliers, st.TimeJumps, st.ARPBindingsEvicted = 5, 6, 7, 1, 8
	st.ScanStatesEvicted, st.ScanSketchesRefused, st.ProbesUntracked = 9, 10, 11
	writeCaptureRefusals(&buf, &st)
	writeNetworkStats(&buf, detect.NetworkStats{FloodIncidents: 1, FoldedSources: 1041, FoldedUnlearned: 500, ScanQuiet: 12, ScannersRefused: 13, NamesRefused: 14})
	want := `  not kept: 5 half-open TCP flows, 6 hosts that never proved they exist evicted, 9 scan states evicted, 10 scan sketches refused (counts left exact), 11 probes not checked for an answer, 8 ARP bindings evicted, 2 communications not reported (batch full), 3 findings not reported (batch full), 4 set members not reported (batch full)
  capture clock: 7 time outliers (each counted at the packet before it), 1 jump taken as a gap in the capture
network detectors: 1 flood incident folding 1041 new sources (500 of groups never seen, not learned); 12 novelty alerts of scanners left to the scan alarm; tables full: 13 scanners not remembered (novelty alerts sent one by one), 14 host names not remembered (flood targets named by address)
`
	if buf.String() != want {
		t.Errorf("summary lines:\n%s\nwant:\n%s", buf.String(), want)
	}
}
