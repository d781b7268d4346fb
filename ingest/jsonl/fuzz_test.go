package jsonl

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-ot/vigil/ingest"
)

// FuzzSource replays arbitrary bytes as a telemetry file, plain and
// gzip-compressed: no panic, every record read is returned in a batch, and
// each line is a record or a counted reject.
func FuzzSource(f *testing.F) {
	f.Add([]byte(sample), false)
	f.Add([]byte(sample), true)
	f.Add([]byte("datetime;pressure;anomaly\n2020-03-09 10:14:33;1.5;0\n2020-03-09 10:14:34;x;1\n"), false)
	f.Add([]byte("{\"device\":\"a\",\"ts\":1e30,\"metrics\":{\"x\":1}}\n\x00\xff{"), false)
	f.Add([]byte{0x1f, 0x8b, 0x08, 0x00}, false)
	f.Fuzz(func(t *testing.T, data []byte, compress bool) {
		if compress {
			var buf bytes.Buffer
			w := gzip.NewWriter(&buf)
			w.Write(data)
			w.Close()
			data = buf.Bytes()
		}
		path := filepath.Join(t.TempDir(), "in.jsonl")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := Open([]string{path}, Options{Telemetry: ingest.DefaultTelemetryConfig(), Registry: ingest.NewRegistry(), Grouper: grouper(t),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			return // a file that cannot be opened (a bad CSV header, a broken gzip header) is an error, not a crash
		}
		defer s.Close()
		rows := int64(0)
		for {
			b, err := s.ReadBatch(context.Background())
			if err != nil {
				if err != io.EOF && compress {
					t.Fatalf("a whole gzip stream failed to read: %v", err)
				}
				break
			}
			rows += b.Record.NumRows()
			b.Release()
		}
		st := s.Stats()
		if rows != st.Records {
			t.Fatalf("%d rows returned, %d records read", rows, st.Records)
		}
		if st.Records > st.Lines || st.Rejected > st.Lines {
			t.Fatalf("stats do not add up: %+v", st)
		}
	})
}
