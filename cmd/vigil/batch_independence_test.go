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
// 1, 7 and 4096 rows: every row is judged against the state as of that
// row, so a live stream (small batches) and a replay (large ones) raise
// byte-identical alerts.
func TestReplayBatchIndependence(t *testing.T) {
	if testing.Short() {
		t.Skip("replays the fleet sample three times, once row by row")
	}
	t.Chdir(repoRoot)
	var want []byte
	for _, rows := range []int{4096, 7, 1} {
		out, stderr := runReplayTest(t, "--config", configWithBatchRows(t, rows), "testdata/fleet/telemetry.jsonl.gz")
		if rows == 4096 {
			want = out
			if n := len(parseAlerts(t, out)); n == 0 {
				t.Fatalf("the fleet sample raised no alerts:\n%s", stderr)
			}
			continue
		}
		if !bytes.Equal(out, want) {
			t.Errorf("batch_rows %d: alerts differ from batch_rows 4096 (%d and %d lines): %s", rows,
				bytes.Count(out, []byte("\n")), bytes.Count(want, []byte("\n")), firstDiff(out, want))
		}
	}
}
