package jsonl

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"go.yaml.in/yaml/v3"

	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/csvts"
	"github.com/vigil-ot/vigil/ingest/telemetry"
)

var update = flag.Bool("update", false, "rewrite the CSV golden files under testdata/telemetry-formats/good")

const formatsDir = "../../testdata/telemetry-formats"

// caseConfig reads NAME.yml beside a case file, the input.telemetry
// section it is replayed with, strictly over the defaults.
func caseConfig(t *testing.T, path string) ingest.TelemetryConfig {
	t.Helper()
	cfg := ingest.DefaultTelemetryConfig()
	data, err := os.ReadFile(strings.TrimSuffix(path, ".csv") + ".yml")
	if errors.Is(err, os.ErrNotExist) {
		return cfg
	}
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("%s.yml: %v", path, err)
	}
	return cfg
}

// renderRecords prints every row the source emits: device, time, line and
// the metrics that are not null, then the source's counts.
func renderRecords(t *testing.T, s *Source) string {
	t.Helper()
	var b strings.Builder
	for {
		bt, err := s.ReadBatch(context.Background())
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rec := bt.Record
		ts := rec.Column(0).(*array.Timestamp)
		dev := rec.Column(1).(*array.String)
		off := rec.Column(6).(*array.Int64)
		for i := 0; i < int(rec.NumRows()); i++ {
			fmt.Fprintf(&b, "line %d device=%q ts=%s", off.Value(i), dev.Value(i),
				time.Unix(0, int64(ts.Value(i))).UTC().Format(time.RFC3339Nano))
			for j := ingest.NumFixedCols; j < int(rec.NumCols()); j++ {
				if col := rec.Column(j).(*array.Float64); col.IsValid(i) {
					fmt.Fprintf(&b, " %s=%g", rec.ColumnName(j), col.Value(i))
				}
			}
			b.WriteString("\n")
		}
		bt.Release()
	}
	st := s.Stats()
	fmt.Fprintf(&b, "lines=%d records=%d rejected=%d bad_cells=%d", st.Lines, st.Records, st.Rejected, st.BadCells)
	for _, k := range sortedKeys(st.Rejects) {
		fmt.Fprintf(&b, " %s=%d", k, st.Rejects[k])
	}
	b.WriteString("\n")
	return b.String()
}

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestCSVGoldenCases replays every good/*.csv through Open, with the
// input.telemetry section of NAME.yml when there is one, and compares the
// rows with NAME.golden.
func TestCSVGoldenCases(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join(formatsDir, "good", "*.csv"))
	if len(paths) < 4 {
		t.Fatalf("found %d CSV cases, want at least 4", len(paths))
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			cfg := caseConfig(t, p)
			s := open(t, []string{p}, func(o *Options) { o.Telemetry = cfg; o.Telemetry.BatchRows = 2 })
			got := renderRecords(t, s)
			golden := strings.TrimSuffix(p, ".csv") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("rows differ from %s:\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

// TestCSVBadCases replays every bad/*.csv. A file named REASON__*.csv has
// only rows rejected for REASON, besides rows that are fine; a file named
// open_error__*.csv must fail Open with the text of its .err file.
func TestCSVBadCases(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join(formatsDir, "bad", "*.csv"))
	seen := map[string]bool{}
	for _, p := range paths {
		name := filepath.Base(p)
		reason, _, _ := strings.Cut(name, "__")
		seen[reason] = true
		t.Run(name, func(t *testing.T) {
			opts := Options{Telemetry: caseConfig(t, p), Registry: ingest.NewRegistry(), Grouper: grouper(t),
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			s, err := Open([]string{p}, opts)
			if reason == "open_error" {
				want, rerr := os.ReadFile(strings.TrimSuffix(p, ".csv") + ".err")
				if rerr != nil {
					t.Fatal(rerr)
				}
				if err == nil || !strings.Contains(err.Error(), strings.TrimSpace(string(want))) || !strings.Contains(err.Error(), name) {
					t.Fatalf("got %v\nwant an error naming the file and containing %s", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			renderRecords(t, s)
			st := s.Stats()
			if st.Rejected == 0 || st.Rejects[reason] != st.Rejected {
				t.Fatalf("rejects %v, want only %s", st.Rejects, reason)
			}
		})
	}
	for _, r := range csvts.Reasons {
		if r != telemetry.ReasonOversized && !seen[r] {
			t.Errorf("no bad CSV case for reason %q", r)
		}
	}
}

func TestCSVAutoDetection(t *testing.T) {
	csvFile := write(t, "plant.csv", "time;flow\n2026-11-21 10:00:01;1.5\n2026-11-21 10:00:03;2.5\n")
	jsonFile := write(t, "fleet.jsonl", `{"device":"plc-1","ts":"2026-11-21T10:00:02Z","metrics":{"x":1}}`+"\n")
	// A JSONL file whose first line was cut stays JSONL: the second line
	// tells.
	cut := write(t, "cut.jsonl", `"plc-1","ts":"2026-11-21T10:00:00Z","metrics":{"x":1}}`+"\n"+`{"device":"plc-2","ts":"2026-11-21T10:00:04Z","metrics":{"x":1}}`+"\n")
	s := open(t, []string{csvFile, jsonFile, cut}, nil)
	res := readAll(t, s)
	if got := strings.Join(res.devices, ","); got != "plant,plc-1,plant,plc-2" {
		t.Fatalf("devices %s, want the CSV rows merged with the JSONL ones by time", got)
	}
	if fmt.Sprint(res.offsets) != "[2 1 3 2]" {
		t.Fatalf("offsets %v, want file lines (the CSV header is line 1)", res.offsets)
	}
	if st := s.Stats(); st.Lines != 5 || st.Rejects[telemetry.ReasonJSONSyntax] != 1 {
		t.Fatalf("stats %+v", st)
	}
	// A fixed JSON format reads a CSV file as JSONL.
	s = open(t, []string{csvFile}, func(o *Options) { o.Telemetry.Format = ingest.FormatNative })
	if res := readAll(t, s); len(res.devices) != 0 || s.Stats().Rejected != 3 {
		t.Fatalf("format native: %v %+v", res.devices, s.Stats())
	}
}

func TestCSVGzipFolderNamesAndEmptyFiles(t *testing.T) {
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write([]byte("ts,v\n1795687200,1\n1795687201,2\n"))
	w.Close()
	dir := t.TempDir()
	for _, sub := range []string{"a", "b"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	a := filepath.Join(dir, "a", "0.csv.gz")
	b := filepath.Join(dir, "b", "0.csv")
	empty := filepath.Join(dir, "b", "empty.csv")
	headerOnly := filepath.Join(dir, "b", "header.csv")
	for p, content := range map[string]string{a: gz.String(), b: "ts,v\n1795687200.5,3\n", empty: "", headerOnly: "ts,v\n"} {
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := open(t, []string{a, b, empty, headerOnly}, func(o *Options) { o.Telemetry.Format = ingest.FormatCSV })
	res := readAll(t, s)
	if got := strings.Join(res.devices, ","); got != "a/0,b/0,a/0" {
		t.Fatalf("devices %s: files sharing a stem are named by their folder", got)
	}
}

func TestCSVBadCellsCountedAndLogged(t *testing.T) {
	var logBuf bytes.Buffer
	content := "time,a,b\n" + strings.Repeat("2026-11-21 10:00:00,ERR,1\n", 8)
	s := open(t, []string{write(t, "cells.csv", content)}, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logBuf, nil))
	})
	res := readAll(t, s)
	if st := s.Stats(); len(res.devices) != 8 || st.BadCells != 8 || st.Rejected != 0 {
		t.Fatalf("rows %d stats %+v: a bad cell keeps its row", len(res.devices), st)
	}
	log := logBuf.String()
	if !strings.Contains(log, "cells.csv line=2 column=a value=ERR") {
		t.Fatalf("log does not name file, line, column and value:\n%s", log)
	}
	if n := strings.Count(log, "\n"); n != loggedPerReason+1 {
		t.Fatalf("%d log lines, want %d", n, loggedPerReason+1)
	}
}

func TestCSVHeaderTooLong(t *testing.T) {
	p := write(t, "wide.csv", "time,"+strings.Repeat("a", 200)+"\n2026-11-21 10:00:00,1\n")
	cfg := ingest.DefaultTelemetryConfig()
	cfg.Format, cfg.MaxMessageBytes = ingest.FormatCSV, 100
	_, err := Open([]string{p}, Options{Telemetry: cfg, Registry: ingest.NewRegistry(), Grouper: grouper(t)})
	if err == nil || !strings.Contains(err.Error(), "header line 1 is longer than max_message_bytes 100") {
		t.Fatalf("got %v", err)
	}
}

func TestReadRowLabels(t *testing.T) {
	dir := t.TempDir()
	v1, v2 := filepath.Join(dir, "valve1"), filepath.Join(dir, "valve2")
	os.Mkdir(v1, 0o755)
	os.Mkdir(v2, 0o755)
	a := filepath.Join(v1, "0.csv")
	b := filepath.Join(v2, "0.csv")
	os.WriteFile(a, []byte("datetime;x;y;anomaly;changepoint\n"+
		"2020-03-09 10:14:33;1;2;0.0;0.0\n"+
		"2020-03-09 10:14:34;bad;2;;1\n"+ // a bad metric cell keeps the row
		"2020-03-09 10:14:32;1;2;1;1\n"+ // out of order: not a row of the replay
		"2020-03-09 10:14:35;;;1;0\n"), 0o644) // no metrics: not a row either
	os.WriteFile(b, []byte("datetime;x;Anomaly;changepoint\n2020-03-09 10:14:30;1;1;0\n"), 0o644)
	cfg := ingest.DefaultTelemetryConfig()
	cfg.CSV.TimeZone = "Europe/Moscow"
	rows, err := ReadRowLabels([]string{a, b}, cfg, []string{"anomaly", "changepoint"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s %s %v", r.Device, r.Time.Format(time.RFC3339), r.Labels))
	}
	want := []string{
		"valve1/0 2020-03-09T07:14:33Z [0 0]",
		"valve1/0 2020-03-09T07:14:34Z [NaN 1]",
		"valve2/0 2020-03-09T07:14:30Z [1 0]",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	if !math.IsNaN(rows[1].Labels[0]) {
		t.Fatal("an empty label must be NaN")
	}
	// The replay source emits the same rows with the same devices and times.
	s := open(t, []string{a, b}, func(o *Options) { o.Telemetry = cfg })
	res := readAll(t, s)
	if got := strings.Join(res.devices, ","); got != "valve2/0,valve1/0,valve1/0" {
		t.Fatalf("replay devices %s", got)
	}

	_, err = ReadRowLabels([]string{a, b}, cfg, []string{"anomaly", "attack", "label"})
	if err == nil || !strings.Contains(err.Error(), "0.csv: no column attack, label in its header [datetime, x, y, anomaly, changepoint]") {
		t.Fatalf("missing columns: %v", err)
	}
	j := write(t, "fleet.jsonl", `{"device":"d","ts":1,"metrics":{"x":1}}`+"\n")
	if _, err = ReadRowLabels([]string{a, j}, cfg, []string{"anomaly"}); err == nil || !strings.Contains(err.Error(), "fleet.jsonl: it is not read as CSV") {
		t.Fatalf("JSONL file: %v", err)
	}
	textLabel := write(t, "swat.csv", "time,x,attack\n2026-11-21 10:00:00,1,Normal\n")
	if _, err = ReadRowLabels([]string{textLabel}, cfg, []string{"attack"}); err == nil || !strings.Contains(err.Error(), `cannot read label "attack" of `+textLabel+` line 2: "Normal" is not a number`) {
		t.Fatalf("text label: %v", err)
	}
}

func TestCSVReplayAllocations(t *testing.T) {
	var b strings.Builder
	b.WriteString("datetime;a;b;c;anomaly\n")
	start := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	for i := range 20000 {
		fmt.Fprintf(&b, "%s;%d.5;%d;0.25;0\n", start.Add(time.Duration(i)*time.Second).Format(time.DateTime), i, i%7)
	}
	p := write(t, "big.csv", b.String())
	s := open(t, []string{p}, nil)
	var recs []arrow.Record
	allocs := testing.AllocsPerRun(1, func() {
		for {
			bt, err := s.ReadBatch(context.Background())
			if err == io.EOF {
				return
			}
			recs = append(recs, bt.Record)
		}
	})
	for _, r := range recs {
		r.Release()
	}
	if perRow := allocs / 20000; perRow > 0.05 {
		t.Fatalf("%.3f allocations per row, want them per batch only", perRow)
	}
}
