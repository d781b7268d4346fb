package jsonl

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow/array"

	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/inventory"
	"github.com/vigil-ot/vigil/ingest/telemetry"
)

func grouper(t testing.TB) ingest.Grouper {
	t.Helper()
	cfg := ingest.DefaultInventoryConfig()
	inv, err := inventory.Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func write(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

type readResult struct {
	devices []string
	offsets []int64
	group   []string
	sets    []ingest.SetMember
	batches int
}

func readAll(t testing.TB, s *Source) readResult {
	t.Helper()
	var res readResult
	for {
		b, err := s.ReadBatch(context.Background())
		if err == io.EOF {
			return res
		}
		if err != nil {
			t.Fatal(err)
		}
		res.batches++
		rec := b.Record
		dev := rec.Column(1).(*array.String)
		grp := rec.Column(3).(*array.String)
		part := rec.Column(5).(*array.Int32)
		off := rec.Column(6).(*array.Int64)
		for i := 0; i < int(rec.NumRows()); i++ {
			if part.Value(i) != -1 {
				t.Fatalf("partition %d, want -1", part.Value(i))
			}
			// Copies: the record's buffers hold the next record's once it
			// is released (the source recycles them).
			res.devices = append(res.devices, strings.Clone(dev.Value(i)))
			res.group = append(res.group, strings.Clone(grp.Value(i)))
			res.offsets = append(res.offsets, off.Value(i))
		}
		res.sets = append(res.sets, b.Sets...)
		b.Ack(context.Background(), nil)
		b.Release()
	}
}

func open(t testing.TB, paths []string, mutate func(*Options)) *Source {
	t.Helper()
	opts := Options{Telemetry: ingest.DefaultTelemetryConfig(), Registry: ingest.NewRegistry(), Grouper: grouper(t),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if mutate != nil {
		mutate(&opts)
	}
	s, err := Open(paths, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

const sample = `{"device":"plc-1","ts":"2026-11-21T10:00:00Z","attrs":{"site":"a","hw":"x"},"metrics":{"bytes_out":1}}
{"device":"plc-2","ts":"2026-11-21T10:00:01Z","attrs":{"site":"a","hw":"x"},"metrics":{"bytes_out":2}}

{"device":"plc-3","ts":"2026-11-21T10:00:02Z","metrics":{"bytes_out":3}
{"device":"plc-3","ts":"2026-11-21T10:00:03Z","metrics":{"bytes_out":"three"}}
{"device":"plc-4","ts":"2026-11-21T10:00:04Z","attrs":{"site":"b","hw":"y"},"metrics":{"bytes_out":4}}
{"thing":"meter-1","hed":{"rid":1795687205},"met":{"tp":{"pts":[{"pt":502},{"pt":22}]}}}
`

func TestBadLinesAreSkippedAndCounted(t *testing.T) {
	var logBuf bytes.Buffer
	s := open(t, []string{write(t, "a.jsonl", sample)}, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logBuf, nil))
		o.Telemetry.BatchRows = 2
	})
	res := readAll(t, s)
	if got := strings.Join(res.devices, ","); got != "plc-1,plc-2,plc-4,meter-1" {
		t.Fatalf("devices %s", got)
	}
	if fmt.Sprint(res.offsets) != "[1 2 6 7]" {
		t.Fatalf("offsets %v, want the line numbers", res.offsets)
	}
	if fmt.Sprint(res.group) != "[a/x a/x b/y unknown/unknown]" {
		t.Fatalf("groups %v", res.group)
	}
	if res.batches != 2 {
		t.Fatalf("%d batches, want 2 with batch_rows 2", res.batches)
	}
	if len(res.sets) != 2 || res.sets[0] != (ingest.SetMember{Row: 1, Set: "listening_tcp_ports", Value: "502"}) {
		t.Fatalf("sets %+v (Row is relative to its batch)", res.sets)
	}
	st := s.Stats()
	if st.Lines != 6 || st.Records != 4 || st.Rejected != 2 ||
		st.Rejects[telemetry.ReasonJSONSyntax] != 1 || st.Rejects[telemetry.ReasonBadMetric] != 1 {
		t.Fatalf("stats %+v", st)
	}
	log := logBuf.String()
	if !strings.Contains(log, "line=4 reason=json_syntax") || !strings.Contains(log, "line=5 reason=bad_metric") || !strings.Contains(log, "a.jsonl") {
		t.Fatalf("log does not name file and line:\n%s", log)
	}
}

func TestRejectLogIsRateLimited(t *testing.T) {
	var logBuf bytes.Buffer
	content := strings.Repeat("not json\n", 50) + `{"device":"d","ts":1,"metrics":{"x":1}}` + "\n"
	s := open(t, []string{write(t, "bad.jsonl", content)}, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logBuf, nil))
	})
	res := readAll(t, s)
	if len(res.devices) != 1 || s.Stats().Rejects[telemetry.ReasonJSONSyntax] != 50 {
		t.Fatalf("devices %v stats %+v", res.devices, s.Stats())
	}
	if n := strings.Count(logBuf.String(), "\n"); n != loggedPerReason+1 {
		t.Fatalf("%d log lines, want %d", n, loggedPerReason+1)
	}
}

func TestGzipMatchesPlain(t *testing.T) {
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write([]byte(sample))
	w.Close()
	plain := readAll(t, open(t, []string{write(t, "a.jsonl", sample)}, nil))
	zipped := readAll(t, open(t, []string{write(t, "a.jsonl.gz", gz.String())}, nil))
	if fmt.Sprint(plain) != fmt.Sprint(zipped) {
		t.Fatalf("plain %v\ngzip %v", plain, zipped)
	}
}

// TestTruncatedGzipIsAnError: a gzip file cut in the middle gives every
// row read before the cut (the last partial batch too), the other files
// are read to their end, and then the error names the file.
func TestTruncatedGzipIsAnError(t *testing.T) {
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write([]byte(strings.Repeat(sample, 100)))
	w.Close()
	p := write(t, "cut.jsonl.gz", gz.String()[:gz.Len()/2])
	other := write(t, "whole.jsonl", strings.Repeat(`{"device":"plc-9","ts":"2026-11-21T11:00:00Z","metrics":{"x":1}}`+"\n", 3))
	s := open(t, []string{p, other}, func(o *Options) { o.Telemetry.BatchRows = 64 })
	var err error
	rows, plc9 := 0, 0
	for err == nil {
		var b *ingest.Batch
		if b, err = s.ReadBatch(context.Background()); b != nil {
			rows += int(b.Record.NumRows())
			dev := b.Record.Column(1).(*array.String)
			for i := 0; i < dev.Len(); i++ {
				if dev.Value(i) == "plc-9" {
					plc9++
				}
			}
			b.Release()
		}
	}
	if err == io.EOF || !strings.Contains(err.Error(), "cut.jsonl.gz") {
		t.Fatalf("got %v, want a read error naming the file", err)
	}
	if st := s.Stats(); rows != int(st.Records) || plc9 != 3 {
		t.Fatalf("%d rows in batches of %d records read (%d of the whole file's 3): every row read must be returned", rows, st.Records, plc9)
	}
}

func TestMergeByEventTime(t *testing.T) {
	line := func(dev string, sec int) string {
		return fmt.Sprintf(`{"device":%q,"ts":"2026-11-21T10:00:%02dZ","metrics":{"x":1}}`+"\n", dev, sec)
	}
	a := write(t, "a.jsonl", line("a1", 0)+line("a2", 2)+line("a3", 4))
	b := write(t, "b.jsonl", line("b1", 1)+line("b2", 2)+line("b3", 3)+line("b4", 9))
	res := readAll(t, open(t, []string{a, b}, nil))
	// Ties (second 2) go to the file named first.
	if got := strings.Join(res.devices, ","); got != "a1,b1,a2,b2,b3,a3,b4" {
		t.Fatalf("merged order %s", got)
	}
	if fmt.Sprint(res.offsets) != "[1 1 2 2 3 3 4]" {
		t.Fatalf("offsets %v, want each file's line numbers", res.offsets)
	}
}

func TestOversizedLine(t *testing.T) {
	huge := `{"device":"big","ts":1,"metrics":{"x":1},"pad":"` + strings.Repeat("x", 3<<20) + `"}` + "\n"
	content := `{"device":"d1","ts":1,"metrics":{"x":1}}` + "\n" + huge + `{"device":"d2","ts":2,"metrics":{"x":1}}` + "\n" + huge[:200]
	s := open(t, []string{write(t, "big.jsonl", content)}, func(o *Options) { o.Telemetry.MaxMessageBytes = 100 })
	res := readAll(t, s)
	if got := strings.Join(res.devices, ","); got != "d1,d2" {
		t.Fatalf("devices %s", got)
	}
	if st := s.Stats(); st.Rejects[telemetry.ReasonOversized] != 2 || st.Lines != 4 {
		t.Fatalf("stats %+v", st)
	}
	if c := cap(s.cursors[0].lineBuf); c > 4096 {
		t.Fatalf("line buffer grew to %d bytes for a 100-byte limit", c)
	}
}

func TestOpenErrors(t *testing.T) {
	_, err := Open([]string{filepath.Join(t.TempDir(), "missing.jsonl")}, Options{Telemetry: ingest.DefaultTelemetryConfig(), Registry: ingest.NewRegistry(), Grouper: grouper(t)})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "cannot open telemetry file") {
		t.Fatalf("got %v", err)
	}
	s := open(t, []string{write(t, "empty.jsonl", "")}, nil)
	if _, err := s.ReadBatch(context.Background()); err != io.EOF {
		t.Fatalf("empty file: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s = open(t, []string{write(t, "a.jsonl", sample)}, nil)
	if _, err := s.ReadBatch(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}
