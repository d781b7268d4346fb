package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/detect/score"
	"github.com/vigil-ot/vigil/ingest/simulate/attackgen"
)

// TestRunWritesEachScenario writes both scenarios with a short clean
// period: the labels read back as vigil score's incidents, and the first
// attack starts within two minutes of the clean period's end.
func TestRunWritesEachScenario(t *testing.T) {
	for _, c := range []struct {
		scenario string
		start    time.Time
		attacks  int
	}{
		{"attack", attackgen.DefaultScenario().Start, 4},
		{"otday", attackgen.DefaultOTDayScenario().Start, 13},
	} {
		scenario := c.scenario
		t.Run(scenario, func(t *testing.T) {
			generate, err := generator(scenario, 45*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			capture, labels := filepath.Join(dir, "c.pcap"), filepath.Join(dir, "c.labels.csv")
			if err := run(generate, capture, labels); err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(capture); err != nil || fi.Size() < 1000 {
				t.Fatalf("capture: %v, %v", fi, err)
			}
			f, err := os.Open(labels)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			incs, err := score.ParseIncidents(labels, f)
			if err != nil {
				t.Fatal(err)
			}
			if len(incs) != c.attacks {
				t.Fatalf("%d incidents, want %d", len(incs), c.attacks)
			}
			if after := incs[0].Start.Sub(c.start); after < 45*time.Minute || after >= 47*time.Minute {
				t.Errorf("first attack %v after the start, want 45 to 47 minutes", after)
			}
		})
	}
}

func TestGeneratorRejects(t *testing.T) {
	for _, c := range []struct {
		scenario string
		clean    time.Duration
		want     string
	}{
		{"otdays", 0, `unknown -scenario "otdays"; use attack or otday`},
		{"otday", -time.Hour, "-clean -1h0m0s is negative"},
	} {
		if _, err := generator(c.scenario, c.clean); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("generator(%q, %v): %v, want %q", c.scenario, c.clean, err, c.want)
		}
	}
}
