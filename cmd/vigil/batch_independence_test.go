package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// configWithBatchRows writes testdata/config/fleet.yaml with
// input.telemetry.batch_rows set to rows into a temporary directory and
// returns its path. The test must run from the repository root, where the
// config finds its inventory.
func configWithBatchRows(t *testing.T, rows int) string {
	t.Helper()
	data, err := os.ReadFile("testdata/config/fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const at = "  telemetry:\n    format: native\n"
	if !bytes.Contains(data, []byte(at)) {
		t.Fatalf("testdata/config/fleet.yaml no longer has %q: update this test", at)
	}
	data = bytes.Replace(data, []byte(at), []byte(at+"    batch_rows: "+strconv.Itoa(rows)+"\n"), 1)
	path := filepath.Join(t.TempDir(), "fleet-"+strconv.Itoa(rows)+".yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReplayBatchIndependence replays the fleet sample cut into batches of
// 1, 7 and 4096 rows, on one engine and on engine shards: every row is
// judged against the state as of that row, so a live stream (small
// batches) and a replay (large ones) raise byte-identical alerts, however
// many engines judge them.
func TestReplayBatchIndependence(t *testing.T) {
	if testing.Short() {
		t.Skip("replays the fleet sample four times, twice row by row")
	}
	t.Chdir(repoRoot)
	want, stderr := runReplayTest(t, "--shards", "1", "--config", configWithBatchRows(t, 4096), "testdata/fleet/telemetry.jsonl.gz")
	if n := len(parseAlerts(t, want)); n == 0 {
		t.Fatalf("the fleet sample raised no alerts:\n%s", stderr)
	}
	for _, c := range []struct{ rows, shards int }{{7, 1}, {1, 1}, {7, 2}, {1, 4}} {
		out, _ := runReplayTest(t, "--shards", strconv.Itoa(c.shards), "--config", configWithBatchRows(t, c.rows), "testdata/fleet/telemetry.jsonl.gz")
		if !bytes.Equal(out, want) {
			t.Errorf("batch_rows %d, %d shards: alerts differ from batch_rows 4096 on one engine (%d and %d lines): %s", c.rows, c.shards,
				bytes.Count(out, []byte("\n")), bytes.Count(want, []byte("\n")), firstDiff(out, want))
		}
	}
}

// TestReplayShardsIdentical replays the fleet sample and the judgement
// set on 1, 2 and 4 engine shards: byte-identical alerts.
func TestReplayShardsIdentical(t *testing.T) {
	if testing.Short() {
		t.Skip("replays the fleet sample and the judgement set three times each")
	}
	t.Chdir(repoRoot)
	for _, set := range []struct{ config, input string }{
		{"testdata/config/fleet.yaml", "testdata/fleet/telemetry.jsonl.gz"},
		{"testdata/judgement/vigil.yaml", "testdata/judgement/telemetry.jsonl.gz"},
	} {
		want, stderr := runReplayTest(t, "--shards", "1", "--config", set.config, set.input)
		if len(parseAlerts(t, want)) == 0 {
			t.Fatalf("%s raised no alerts:\n%s", set.input, stderr)
		}
		for _, shards := range []string{"2", "4"} {
			out, stderr := runReplayTest(t, "--shards", shards, "--config", set.config, set.input)
			if !bytes.Equal(out, want) {
				t.Errorf("%s on %s shards: alerts differ from one engine's (%d and %d lines): %s", set.input, shards,
					bytes.Count(out, []byte("\n")), bytes.Count(want, []byte("\n")), firstDiff(out, want))
			}
			if !bytes.Contains(stderr, []byte("engine shards: "+shards)) {
				t.Errorf("%s: the summary does not say %s engine shards judged it:\n%s", set.input, shards, stderr)
			}
		}
	}
}
