package score

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// caseFiles are the files a case folder may hold (see
// testdata/score/README.md); alerts.jsonl and expected.json are required.
var caseFiles = map[string]bool{
	"alerts.jsonl": true, "labels.csv": true, "labels.json": true, "rows.csv": true,
	"options.json": true, "expected.json": true, "expected.txt": true, "README.md": true,
}

// TestCases walks testdata/score/<case>: it scores alerts.jsonl against
// the labels and rows of the case, with its options, and checks every key
// of expected.json against the report's JSON (keys expected.json leaves
// out are not checked; a null expects the key absent), and the text
// report against expected.txt when there is one.
func TestCases(t *testing.T) {
	dirs, err := filepath.Glob("../../testdata/score/*")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, dir := range dirs {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() || filepath.Base(dir) == "bad" {
			continue
		}
		n++
		t.Run(filepath.Base(dir), func(t *testing.T) { runCase(t, dir) })
	}
	if n == 0 {
		t.Fatal("no cases found")
	}
}

func runCase(t *testing.T, dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !caseFiles[e.Name()] {
			t.Errorf("unknown file %s in the case (a typo?)", e.Name())
		}
	}
	path := func(name string) string { return filepath.Join(dir, name) }
	f, err := os.Open(path("alerts.jsonl"))
	if err != nil {
		t.Fatalf("every case needs alerts.jsonl: %v", err)
	}
	alerts, err := ReadAlerts(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var incidents []Incident
	for _, name := range []string{"labels.csv", "labels.json"} {
		if f, err := os.Open(path(name)); err == nil {
			incidents, err = ParseIncidents(name, f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	rows, err := readRows(path("rows.csv"))
	if err != nil {
		t.Fatal(err)
	}
	opt, err := readOptions(path("options.json"))
	if err != nil {
		t.Fatal(err)
	}
	rep := Score(alerts, incidents, rows, opt)

	var out bytes.Buffer
	if err := rep.WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	wantJSON, err := os.ReadFile(path("expected.json"))
	if err != nil {
		t.Fatalf("every case needs expected.json: %v", err)
	}
	var want, got any
	if err := json.Unmarshal(wantJSON, &want); err != nil {
		t.Fatalf("expected.json: %v", err)
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("report JSON: %v", err)
	}
	for _, m := range subsetMismatches("", want, got) {
		t.Error(m)
	}
	if t.Failed() {
		t.Logf("report:\n%s", out.String())
	}

	wantText, err := os.ReadFile(path("expected.txt"))
	if err != nil {
		return
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if text.String() != string(wantText) {
		t.Errorf("text report:\n%s\nwant (expected.txt):\n%s", text.String(), wantText)
	}
}

// subsetMismatches compares want, decoded from expected.json, with got:
// objects by want's keys only, arrays element by element, numbers within
// 1e-9 relative, null against null or absent.
func subsetMismatches(at string, want, got any) []string {
	switch w := want.(type) {
	case nil:
		if got != nil {
			return []string{fmt.Sprintf("%s = %v, want absent or null", at, got)}
		}
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s = %v, want an object", at, got)}
		}
		var ms []string
		for k, v := range w {
			ms = append(ms, subsetMismatches(at+"."+k, v, g[k])...)
		}
		return ms
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s = %v, want %d elements", at, got, len(w))}
		}
		var ms []string
		for i := range w {
			ms = append(ms, subsetMismatches(at+"["+strconv.Itoa(i)+"]", w[i], g[i])...)
		}
		return ms
	case float64:
		g, ok := got.(float64)
		if !ok || math.Abs(g-w) > 1e-9*math.Max(1, math.Abs(w)) {
			return []string{fmt.Sprintf("%s = %v, want %v", at, got, w)}
		}
	default:
		if got != want {
			return []string{fmt.Sprintf("%s = %v, want %v", at, got, want)}
		}
	}
	return nil
}

// readRows reads a case's rows.csv: device,time,anomaly,changepoint with
// RFC 3339 times and 0/1 flags. No file: no rows.
func readRows(path string) ([]Row, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var rows []Row
	for i, rec := range recs[1:] {
		tm, err := time.Parse(time.RFC3339, rec[1])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+2, err)
		}
		rows = append(rows, Row{Device: rec[0], Time: tm, Anomaly: rec[2] == "1", Changepoint: rec[3] == "1"})
	}
	return rows, nil
}

// readOptions reads a case's options.json:
// {"slack": "5m", "devices": 3, "span": "24h", "learn_until": RFC 3339 time for every device}.
func readOptions(path string) (Options, error) {
	var opt Options
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return opt, nil
	}
	if err != nil {
		return opt, err
	}
	var o struct {
		Slack, Span string
		Devices     int
		LearnUntil  time.Time `json:"learn_until"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return opt, fmt.Errorf("%s: %w", path, err)
	}
	opt.Devices = o.Devices
	for _, d := range []struct {
		s   string
		dst *time.Duration
	}{{o.Slack, &opt.Slack}, {o.Span, &opt.Span}} {
		if d.s == "" {
			continue
		}
		if *d.dst, err = time.ParseDuration(d.s); err != nil {
			return opt, fmt.Errorf("%s: %w", path, err)
		}
	}
	if !o.LearnUntil.IsZero() {
		opt.LearnUntil = func(string) time.Time { return o.LearnUntil }
	}
	return opt, nil
}
