package main

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/sinks"
)

// clockReplay replays input with testdata/config/fleet.yaml through the
// replay pipeline and returns the alerts, the engine's counters and the
// baseline version (rows learned).
func clockReplay(t *testing.T, input string) ([]byte, detect.Stats, uint64) {
	t.Helper()
	cfg, err := LoadConfig("testdata/config/fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sink := sinks.NewWriterSink("test", &out, sinks.FormatJSON)
	defer sink.Close()
	job, err := openReplay(cfg, []string{input}, sink, slog.New(slog.DiscardHandler), replaySetup{})
	if err != nil {
		t.Fatal(err)
	}
	defer job.close()
	if err := job.run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), job.Engine.Stats(), job.Store.Version()
}

// sampleWith writes the fleet sample to a file with edit applied to each
// line (n counts from 1); edit returns the lines to write in its place.
func sampleWith(t *testing.T, edit func(n int, line string) []string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "telemetry.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	sc := bufio.NewScanner(openGzip(t, "testdata/fleet/telemetry.jsonl.gz"))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		for _, l := range edit(n, sc.Text()) {
			w.WriteString(l)
			w.WriteByte('\n')
		}
	}
	must(t, sc.Err(), w.Flush())
	return path
}

var offsets = regexp.MustCompile(`"offset":[0-9]+`)

// dated returns line with its "ts" replaced by ts.
func dated(t *testing.T, line, ts string) string {
	t.Helper()
	i := strings.Index(line, `"ts":"`)
	if i < 0 {
		t.Fatalf("no ts in %s", line)
	}
	j := strings.IndexByte(line[i+6:], '"')
	return line[:i+6] + ts + line[i+6+j:]
}

// TestReplayFutureRecord: one record dated 2030 in the fleet sample, in the
// middle of day 2 or as its very first line, changes no alert and nothing
// learned (it moved the event-time clock: 441 and 1878 lines instead of
// 35), and is counted. A record from day 1 replayed in day 2 is judged but
// not learned (a quiet device's, so that judging it raises nothing: a
// report of plant-b/s7-1200 from before its firmware upgrade would be a
// firmware downgrade).
func TestReplayFutureRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("replays the fleet sample four times")
	}
	t.Chdir(repoRoot)
	want, clean, version := clockReplay(t, "testdata/fleet/telemetry.jsonl.gz")
	if clean.FutureRows+clean.LateRows+clean.UnclockedRows != 0 || clean.Rows != 172574 {
		t.Fatalf("the clean sample: %d future, %d late, %d unclocked, %d rows judged; want 0, 0, 0, 172574",
			clean.FutureRows, clean.LateRows, clean.UnclockedRows, clean.Rows)
	}
	var day1 string
	for _, c := range []struct {
		name                    string
		edit                    func(n int, line string) []string
		future, unclocked, late int64
		judged                  int64 // rows judged beyond the clean sample's
	}{
		{"2030 mid-stream", func(n int, l string) []string {
			if n == 100000 {
				return []string{l, dated(t, l, "2030-06-01T12:00:00Z")}
			}
			return []string{l}
		}, 1, 0, 0, 0},
		{"2030 first", func(n int, l string) []string {
			if n == 1 {
				return []string{dated(t, l, "2030-06-01T12:00:00Z"), l}
			}
			return []string{l}
		}, 0, 1, 0, 0},
		{"day 1 late in day 2", func(n int, l string) []string {
			if day1 == "" && strings.HasPrefix(l, `{"device":"plc-a-004",`) && n > 1000 {
				day1 = l // a quiet device's night report
			}
			if n == 100000 {
				return []string{l, day1}
			}
			return []string{l}
		}, 0, 0, 1, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, st, v := clockReplay(t, sampleWith(t, c.edit))
			// a line inserted moves the source offsets (line numbers) after it
			out, want := offsets.ReplaceAll(out, nil), offsets.ReplaceAll(want, nil)
			if !bytes.Equal(out, want) {
				t.Errorf("alerts differ from the clean sample's (%d and %d lines): %s",
					bytes.Count(out, []byte("\n")), bytes.Count(want, []byte("\n")), firstDiff(out, want))
			}
			if v != version {
				t.Errorf("baseline version %d, the clean sample's %d: the record was learned", v, version)
			}
			if st.FutureRows != c.future || st.UnclockedRows != c.unclocked || st.LateRows != c.late || st.Rows != clean.Rows+c.judged {
				t.Errorf("future %d, unclocked %d, late %d, rows %d; want %d, %d, %d, %d",
					st.FutureRows, st.UnclockedRows, st.LateRows, st.Rows, c.future, c.unclocked, c.late, clean.Rows+c.judged)
			}
		})
	}
}
