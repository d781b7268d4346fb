package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/ingest/simulate/attackgen"
)

var updateScore = flag.Bool("update-score", false, "rewrite testdata/fleet/score.golden.json from the current scores")

// runScoreTest runs vigil score with args and returns its output; it
// fails the test on a parse or run error.
func runScoreTest(t *testing.T, args ...string) string {
	t.Helper()
	var stderr bytes.Buffer
	opts, err := parseScoreFlags(args, &stderr)
	if err != nil {
		t.Fatalf("vigil score %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var out bytes.Buffer
	if err := runScoring(context.Background(), opts, &out, &stderr); err != nil {
		t.Fatalf("vigil score %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out.String()
}

// scoreFigures decodes the top-level figures of a --json report.
func scoreFigures(t *testing.T, out string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out)
	}
	return m
}

// TestScoreFleetSampleGolden scores the committed fleet sample against its
// labels: every incident is found, and the whole report (which alarm found
// each incident and when, the false alarms, NAB) is the golden file's.
func TestScoreFleetSampleGolden(t *testing.T) {
	t.Chdir(repoRoot)
	out := runScoreTest(t, "--json", "--config", "testdata/config/fleet.yaml", "--labels", "testdata/fleet/labels.csv", "testdata/fleet/telemetry.jsonl.gz")
	m := scoreFigures(t, out)
	if m["incidents_total"] != float64(9) || m["incidents_detected"] != m["incidents_total"] {
		t.Errorf("incidents detected %v of %v, want all 9", m["incidents_detected"], m["incidents_total"])
	}
	const golden = "testdata/fleet/score.golden.json"
	if *updateScore {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/vigil -run TestScoreFleetSampleGolden -update-score to write it)", err)
	}
	if out != string(want) {
		t.Errorf("score of the fleet sample differs from %s: %s", golden, firstDiff(want, []byte(out)))
	}

	// The alerts of a replay, scored from a file, score the same.
	alerts := filepath.Join(t.TempDir(), "alerts.jsonl")
	runReplayTest(t, "--out", alerts, "--config", "testdata/config/fleet.yaml", "testdata/fleet/telemetry.jsonl.gz")
	fromFile := runScoreTest(t, "--json", "--config", "testdata/config/fleet.yaml", "--labels", "testdata/fleet/labels.csv",
		"--alerts", alerts, "testdata/fleet/telemetry.jsonl.gz")
	a, b := scoreFigures(t, out), scoreFigures(t, fromFile)
	for _, k := range []string{"incidents_detected", "false_alarms", "alarms"} {
		if a[k] != b[k] {
			t.Errorf("%s: %v from the replay, %v from its alerts file", k, a[k], b[k])
		}
	}
}

// TestScoreSweep replays once per value: with the peer detector off, the
// self detector finds the self incident, and without it that is missed.
func TestScoreSweep(t *testing.T) {
	t.Chdir(repoRoot)
	out := runScoreTest(t, "--config", "testdata/config/fleet.yaml", "--labels", "testdata/fleet/labels.csv",
		"--sweep", "detect.self.enabled=true,false", "--sweep", "detect.peer.enabled=false", "testdata/fleet/telemetry.jsonl.gz")
	t.Logf("\n%s", out)
	lines := strings.Split(out, "\n")
	if !strings.Contains(lines[0], "detect.self.enabled=true detect.peer.enabled=false") || !strings.Contains(lines[0], "detect.self.enabled=false detect.peer.enabled=false") {
		t.Fatalf("header names no variants: %q", lines[0])
	}
	var detected []string
	for _, l := range lines {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "incidents_detected" {
			detected = f[1:]
		}
	}
	if len(detected) != 2 || detected[0] != "9" || detected[1] == "9" {
		t.Errorf("incidents detected by variant %v, want 9 with the self detector and fewer without", detected)
	}
}

func TestSweepVariantsBadKey(t *testing.T) {
	for sweep, want := range map[string]string{
		"detect.self.threshold":       "want KEY=V1,V2",
		"detect.self.thresold=3":      "thresold",
		"detect.self.threshold=three": "threshold",
		"detect.self=3":               "detect.self=3",
	} {
		_, err := sweepVariants("", []string{sweep})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--sweep %s: error %v, want one naming %q", sweep, err, want)
		}
	}
}

// TestScoreRowLabels scores a CSV time series by its anomaly column: a
// sine wave with three labelled 10-second excursions, the first 400 rows
// learning. The excursions are found, and the rows of the learning part
// are not scored.
func TestScoreRowLabels(t *testing.T) {
	dir := t.TempDir()
	var csv strings.Builder
	csv.WriteString("datetime;pressure;anomaly;changepoint\n")
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for i := 0; i < 2000; i++ {
		v, a, c := 5+0.5*math.Sin(float64(i)/30)+0.01*float64(i%7), 0, 0
		if k := i % 400; i >= 800 && k < 10 {
			v, a = 40, 1
			if k == 0 || k == 9 {
				c = 1
			}
		}
		fmt.Fprintf(&csv, "%s;%.4f;%d;%d\n", t0.Add(time.Duration(i)*time.Second).Format("2006-01-02 15:04:05"), v, a, c)
	}
	path := filepath.Join(dir, "pump.csv")
	if err := os.WriteFile(path, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// Two more copies that share the stem: replayed one at a time
	// (--each-file), each must still be named as among all inputs
	// ("a/pump", "b/pump"), the names of its row labels.
	for _, sub := range []string{"a", "b"} {
		os.Mkdir(filepath.Join(dir, sub), 0o755)
		if err := os.WriteFile(filepath.Join(dir, sub, "pump.csv"), []byte(csv.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "vigil.yaml")
	// The test series is 33 minutes long: learning must end within it.
	if err := os.WriteFile(cfg, []byte("baseline:\n  min_duration: 5m\n  min_samples: 200\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := runScoreTest(t, "--json", "--config", cfg, "--rows", "anomaly", "--changepoints", "changepoint", "--learn", "400", path)
	m := scoreFigures(t, out)
	t.Logf("rows scored %v, tp %v fp %v fn %v, f1 %v, nab %v, skab %v", m["rows_scored"], m["tp"], m["fp"], m["fn"], m["f1"], m["nab_standard"], m["skab_standard"])
	if m["rows_scored"] != float64(1600) || m["rows_learning"] != float64(400) {
		t.Errorf("rows scored %v and learning %v, want 1600 and 400", m["rows_scored"], m["rows_learning"])
	}
	if m["incidents_total"] != float64(3) || m["incidents_detected"] != float64(3) {
		t.Errorf("%v of %v excursions detected, want 3 of 3", m["incidents_detected"], m["incidents_total"])
	}
	if tp, _ := m["tp"].(float64); tp < 15 || m["f1"].(float64) < 0.7 {
		t.Errorf("%v of the 30 anomalous rows predicted, F1 %v: want most of them", m["tp"], m["f1"])
	}

	each := scoreFigures(t, runScoreTest(t, "--json", "--each-file", "--config", cfg, "--rows", "anomaly", "--learn", "400",
		filepath.Join(dir, "a", "pump.csv"), filepath.Join(dir, "b", "pump.csv")))
	if each["incidents_detected"] != float64(6) || each["rows_learning"] != float64(800) || each["tp"] != 2*m["tp"].(float64) {
		t.Errorf("--each-file over two copies: %v of %v excursions, %v rows learning, tp %v; want 6 of 6, 800, %v",
			each["incidents_detected"], each["incidents_total"], each["rows_learning"], each["tp"], 2*m["tp"].(float64))
	}
}

// TestScoreErrors: labels that cannot be right fail with their line.
func TestScoreErrors(t *testing.T) {
	t.Chdir(repoRoot)
	dir := t.TempDir()
	bad := filepath.Join(dir, "labels.csv")
	os.WriteFile(bad, []byte("device,start,end,kind\nplc-a-002,2026-11-03T10:00:00Z,2026-11-03T10:30:00Z,exfil\nplc-z-999,2026-11-03T10:00:00Z,2026-11-03T10:30:00Z,ghost\n"), 0o644)
	var stderr bytes.Buffer
	opts, err := parseScoreFlags([]string{"--config", "testdata/config/fleet.yaml", "--labels", bad, "testdata/fleet/telemetry.jsonl.gz"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	err = runScoring(context.Background(), opts, &bytes.Buffer{}, &stderr)
	if err == nil || !strings.Contains(err.Error(), "labels.csv:3") || !strings.Contains(err.Error(), "plc-z-999") {
		t.Errorf("unknown device: error %v, want one naming labels.csv:3 and plc-z-999", err)
	}
	for _, args := range [][]string{
		{"testdata/fleet/telemetry.jsonl.gz"},                              // nothing to score against
		{"--labels", "x.csv"},                                              // no inputs
		{"--labels", "x.csv", "--learn", "15 minutes", "in.jsonl"},         // bad --learn
		{"--labels", "x.csv", "--alerts", "a", "--sweep", "a.b=1,2", "in"}, // sweep needs a replay
	} {
		if _, err := parseScoreFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("vigil score %s: no error", strings.Join(args, " "))
		}
	}
}

// TestScoreHTML: the page is self-contained and plots each miss.
func TestScoreHTML(t *testing.T) {
	t.Chdir(repoRoot)
	// Without the self, peer and joint detectors the self incident is missed
	// and gets a plot.
	page := filepath.Join(t.TempDir(), "report.html")
	opts := scoreOptions{config: "testdata/config/fleet.yaml", labels: "testdata/fleet/labels.csv", html: page,
		sweeps: []string{"detect.self.enabled=false", "detect.peer.enabled=false", "detect.joint.enabled=false"}, inputs: []string{"testdata/fleet/telemetry.jsonl.gz"}}
	if err := runScoring(context.Background(), opts, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	html := string(mustRead(t, page))
	// The panel draws the value line and the labelled window.
	for _, want := range []string{"<svg", "missed: self-1 plc-a-002", "bytes_out", "<polyline", "<title>self-1 plc-a-002", "<pre>"} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, external := range []string{"src=\"http", "href=\"http", "<script", "@import"} {
		if strings.Contains(html, external) {
			t.Errorf("report is not self-contained: it has %q", external)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestScoreAttackCapture scores the crafted attack capture two ways: by
// its incident labels (one line an attack, as attackgen writes them), and
// by packet labels (index;label, as labelled ICS captures ship them) that
// mark the flood's packets. Window detectors alarm when their window
// closes, so the slack covers one 10 s window.
func TestScoreAttackCapture(t *testing.T) {
	dir := t.TempDir()
	capPath, labelsPath := filepath.Join(dir, "attack.pcap"), filepath.Join(dir, "attack.labels.csv")
	var capBuf, labelBuf bytes.Buffer
	labels, err := attackgen.Generate(&capBuf, attackgen.DefaultScenario())
	if err != nil {
		t.Fatal(err)
	}
	if err := attackgen.WriteLabels(&labelBuf, labels); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(capPath, capBuf.Bytes(), 0o644)
	os.WriteFile(labelsPath, labelBuf.Bytes(), 0o644)
	cfg := filepath.Join(dir, "net.yaml")
	os.WriteFile(cfg, []byte("detect:\n  network:\n    learning: 10m\n"), 0o644)

	m := scoreFigures(t, runScoreTest(t, "--json", "--config", cfg, "--slack", "10s", "--labels", labelsPath, capPath))
	if m["incidents_total"] != float64(4) || m["incidents_detected"] != float64(4) || m["false_alarms"] != float64(0) {
		t.Errorf("incident labels: %v of %v attacks detected, %v false alarms; want 4 of 4, 0", m["incidents_detected"], m["incidents_total"], m["false_alarms"])
	}

	// Packet labels: every packet of the flood's span is "syn_flood".
	var flood attackgen.Label
	for _, l := range labels {
		if l.Attack == "syn_flood" {
			flood = l
		}
	}
	times, err := packetTimes(capPath)
	if err != nil {
		t.Fatal(err)
	}
	var pl strings.Builder
	pl.WriteString("index;label\n")
	flooded := 0
	for i, tm := range times {
		label := "normal"
		if !tm.Before(flood.Start) && tm.Before(flood.End) {
			label, flooded = "syn_flood", flooded+1
		}
		fmt.Fprintf(&pl, "%d;%s\n", i+1, label)
	}
	packetLabels := filepath.Join(dir, "attack.packets.labels")
	os.WriteFile(packetLabels, []byte(pl.String()), 0o644)
	out := runScoreTest(t, "--config", cfg, "--slack", "10s", "--labels", packetLabels, capPath)
	if flooded == 0 || !strings.Contains(out, "Incidents: 1 of 1 detected") || !strings.Contains(out, "flood/flood") {
		t.Errorf("packet labels (%d flood packets): want the one flood episode detected by the flood detector:\n%s", flooded, out)
	}
}

// TestUnseenMetricWarnings: a rule naming a metric the input lacks (a
// typo) is warned about in the replay summary and by validate --against.
func TestUnseenMetricWarnings(t *testing.T) {
	t.Chdir(repoRoot)
	base, err := os.ReadFile("testdata/config/fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), "typo.yaml")
	typo := strings.Replace(string(base), "metric: auth_failures", "metric: auth_failurs", 1)
	if typo == string(base) {
		t.Fatal("testdata/config/fleet.yaml has no rule on auth_failures any more: update this test")
	}
	os.WriteFile(cfgPath, []byte(typo), 0o644)
	var stdout, stderr bytes.Buffer
	if err := replay(context.Background(), replayOptions{config: cfgPath, inputs: []string{"testdata/fleet/telemetry.jsonl.gz"}}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	const want = `warning: detect.rules[0] (auth-brute-force): no input has a metric "auth_failurs"`
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("replay summary lacks %q:\n%s", want, stderr.String())
	}
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	warnings, err := unseenMetricsIn(cfg, []string{"testdata/fleet/telemetry.jsonl.gz"})
	if err != nil || len(warnings) != 1 || !strings.Contains("warning: "+warnings[0], want) {
		t.Errorf("validate --against: %q, %v; want the one warning", warnings, err)
	}
}

// A duration of learning counts from the input's first record for every
// device: a host first seen after it (an attacker) is scored at once. Row
// counts count per device.
func TestLearnDurationCountsFromTheInputsStart(t *testing.T) {
	tl := newTimeline()
	h := int64(time.Hour)
	for _, p := range []detect.TracePoint{
		{Device: "plc", Group: "g", Time: 0}, {Device: "plc", Group: "g", Time: h}, {Device: "plc", Group: "g", Time: 3 * h},
		{Device: "attacker", Group: "g", Time: 2 * h}, {Device: "attacker", Group: "g", Time: 2*h + 1},
	} {
		tl.add(p)
	}
	o := tl.options(learnSpec{d: time.Hour}, 0)
	for d, want := range map[string]int64{"plc": h, "attacker": h} {
		if got := o.LearnUntil(d).UnixNano(); got != want {
			t.Errorf("--learn 1h: %s learns until %v, want %v", d, time.Duration(got), time.Duration(want))
		}
	}
	o = tl.options(learnSpec{rows: 1}, 0)
	if got := o.LearnUntil("attacker").UnixNano(); got != 2*h+1 {
		t.Errorf("--learn 1: attacker learns until %v, want its second row", time.Duration(got))
	}
}
