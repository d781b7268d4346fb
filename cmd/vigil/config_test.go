package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExampleConfigs walks testdata/config: every *.yaml validates, and
// every NAME.bad.yml fails with the substring in NAME.bad.err.
func TestExampleConfigs(t *testing.T) {
	t.Chdir(repoRoot) // the configs name their files from the repository root
	good, err := filepath.Glob("testdata/config/*.yaml")
	if err != nil || len(good) == 0 {
		t.Fatalf("no good configs found: %v", err)
	}
	for _, path := range good {
		if _, err := LoadConfig(path); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
	bad, err := filepath.Glob("testdata/config/*.bad.yml")
	if err != nil || len(bad) == 0 {
		t.Fatalf("no bad configs found: %v", err)
	}
	for _, path := range bad {
		t.Run(filepath.Base(path), func(t *testing.T) {
			want, err := os.ReadFile(strings.TrimSuffix(path, ".yml") + ".err")
			if err != nil {
				t.Fatalf("every bad config needs its expected error: %v", err)
			}
			_, err = LoadConfig(path)
			if err == nil {
				t.Fatalf("%s loaded without error; want %q", path, want)
			}
			if w := strings.TrimSpace(string(want)); w == "" || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error\n  %v\nwant it to contain\n  %s", path, err, w)
			}
		})
	}
	orphans, _ := filepath.Glob("testdata/config/*.err")
	for _, e := range orphans {
		if _, err := os.Stat(strings.TrimSuffix(e, ".err") + ".yml"); err != nil {
			t.Errorf("%s has no config next to it", e)
		}
	}
}

// FuzzParseConfig feeds arbitrary YAML to the strict loader: whatever the
// input, it returns a config or an error, never a panic, and a config it
// accepts passes validation again.
func FuzzParseConfig(f *testing.F) {
	paths, _ := filepath.Glob("../../testdata/config/*.y*ml")
	for _, p := range paths {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted config fails validation on a second look: %v", err)
		}
	})
}
