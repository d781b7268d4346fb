package main

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/telemetry"
)

// The generated fleet is what Vigil's own decoder reads: every line one
// row of the right device, time and metrics, in time order; every round
// in the same order of devices, unless with jitter.
func TestWriteFleetDecodes(t *testing.T) {
	for _, jitter := range []time.Duration{0, 5 * time.Second} {
		t.Run(jitter.String(), func(t *testing.T) {
			orders := writeAndDecode(t, jitter)
			same := true
			for _, o := range orders[1:] {
				same = same && slices.Equal(o, orders[0])
			}
			if same != (jitter == 0) {
				t.Fatalf("jitter %v: every round in the same order is %v; orders %v", jitter, same, orders)
			}
		})
	}
}

// writeAndDecode writes a small fleet with jitter, checks each line and
// returns the order of devices of each round.
func writeAndDecode(t *testing.T, jitter time.Duration) [][]string {
	path := filepath.Join(t.TempDir(), "fleet.jsonl")
	const devices, reports = 37, 4
	if err := writeFleet(path, devices, reports, len(metricNames), jitter); err != nil {
		t.Fatal(err)
	}
	dec, err := telemetry.NewDecoder(ingest.DefaultConfig().Telemetry)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	seen := map[string]int{}
	orders := make([][]string, reports)
	var last int64
	lines := 0
	for sc.Scan() {
		rows, err := dec.Decode(nil, sc.Bytes(), 0)
		if err != nil {
			t.Fatalf("line %d: %v: %s", lines+1, err, sc.Text())
		}
		lines++
		if len(rows) != 1 || len(rows[0].Metrics) != len(metricNames) {
			t.Fatalf("line %d: %d rows, want one with %d metrics: %s", lines, len(rows), len(metricNames), sc.Text())
		}
		r := rows[0]
		if r.TimeNanos < last {
			t.Fatalf("line %d goes back in time", lines)
		}
		last = r.TimeNanos
		name := strings.Clone(r.Device) // rows point into the line, which the scanner reuses
		seen[name]++
		round := (lines - 1) / devices
		orders[round] = append(orders[round], name)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if lines != devices*reports || len(seen) != devices {
		t.Fatalf("%d lines of %d devices, want %d of %d", lines, len(seen), devices*reports, devices)
	}
	for d, n := range seen {
		if n != reports {
			t.Fatalf("device %s has %d reports, want %d", d, n, reports)
		}
	}
	for i, o := range orders {
		if len(slices.Compact(slices.Sorted(slices.Values(o)))) != devices {
			t.Fatalf("round %d does not hold every device once: %v", i, o)
		}
	}
	return orders
}

func TestParseSizes(t *testing.T) {
	if s, err := parseSizes("-devices", "1000, 1000000"); err != nil || len(s) != 2 || s[1] != 1000000 {
		t.Fatalf("parseSizes: %v, %v", s, err)
	}
	for _, bad := range []string{"", "1k", "0", "10,-1"} {
		if _, err := parseSizes("-devices", bad); err == nil {
			t.Errorf("parseSizes(%q) accepted", bad)
		}
	}
}

// A -jitter outside 0 to 30s is refused, naming the flag, before any file
// is written or binary built.
func TestRunRefusesBadJitter(t *testing.T) {
	for _, j := range []time.Duration{-time.Second, 31 * time.Second} {
		err := run(10, "10", 5, 1, "", "", t.TempDir(), false, j, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "-jitter") {
			t.Errorf("jitter %v: %v, want an error naming -jitter", j, err)
		}
	}
}
