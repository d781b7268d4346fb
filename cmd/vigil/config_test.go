package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
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

// TestPrintedConfigLoadsBack checks 'vigil validate --print': what it prints
// for each example config loads back to the same configuration, so the
// printout is a faithful, complete starting point for a new file.
func TestPrintedConfigLoadsBack(t *testing.T) {
	t.Chdir("../..")
	paths, err := filepath.Glob("testdata/config/*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no example configs: %v", err)
	}
	for _, p := range append(paths, "deploy/vigil.yaml") {
		cfg, err := LoadConfig(p)
		if err != nil {
			t.Fatal(err)
		}
		printed, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatalf("%s: cannot print: %v", p, err)
		}
		again, err := ParseConfig(printed)
		if err != nil {
			t.Fatalf("%s: the printed config does not load: %v\n%s", p, err, printed)
		}
		// Compared as printed: a nil and an empty list are the same setting.
		reprinted, err := yaml.Marshal(again)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(printed, reprinted) {
			t.Errorf("%s: the printed config loads to something else:\n%s", p, firstDiff(printed, reprinted))
		}
	}
}

// pathError is a validation error that names its setting, as a section's
// Validate may return.
type pathError struct{ path string }

func (e pathError) Error() string       { return "cannot use it" }
func (e pathError) SettingPath() string { return e.path }

// TestLocateSetting checks where a validation error is placed in the file:
// at the setting its section names structurally, else at the deepest
// setting its message names, else nowhere (the error is about a default).
func TestLocateSetting(t *testing.T) {
	data := []byte(`detect:
  self:
    threshold: 6
  rules:
    - {name: hot, metric: cpu_pct, comparison_operator: greater-than, value: 90}
    - name: cold
      metric: cpu_pct
      comparison_operator: less-than
      value: 5
`)
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&settingError{path: "detect", err: pathError{"rules[1].value"}}, "line 9: detect: cannot use it"},
		{&settingError{path: "detect", err: pathError{"rules[0]"}}, "line 5: detect: cannot use it"},
		{&settingError{path: "detect", err: pathError{"rules[7]"}}, "line 1: detect: cannot use it"},
		{&settingError{path: "detect", err: errors.New("self.threshold is 0: set a positive robust score")}, "line 3: detect: self.threshold"},
		{&settingError{path: "detect", err: errors.New("rules[1]: duplicate rule name")}, "line 6: detect: rules[1]"},
		{&settingError{path: "kafka", err: errors.New("group_id is empty")}, "kafka: group_id is empty"},
		{errors.New("no setting"), "no setting"},
	} {
		got := locateSetting(data, tc.err).Error()
		if got != tc.want && !strings.HasPrefix(got, tc.want) {
			t.Errorf("%v placed as %q, want %q", tc.err, got, tc.want)
		}
		if strings.HasPrefix(tc.want, "kafka") && strings.HasPrefix(got, "line") {
			t.Errorf("an error about a default got a line: %q", got)
		}
	}
}

// TestConfigFilesFromItsFolder checks that a config's relative file names
// are taken from its folder whatever the working directory, and that a
// name found only in the working directory (the rule before) still works.
func TestConfigFilesFromItsFolder(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	write := func(path, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "etc", "inventory.csv"), "device,site,hw\n")
	write(filepath.Join(elsewhere, "old.csv"), "device,site,hw\n")
	cfgPath := filepath.Join(dir, "etc", "vigil.yaml")
	write(cfgPath, `input:
  inventory:
    path: inventory.csv
baseline:
  checkpoint_path: state/baseline.arrow
kafka:
  tls: {enabled: true, ca_file: ca.pem, cert_file: /abs/client.pem, key_file: /abs/client-key.pem}
sinks:
  - kind: file
    path: alerts.jsonl
`)
	t.Chdir(elsewhere)
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	etc := filepath.Join(dir, "etc")
	for _, c := range []struct{ setting, got, want string }{
		{"input.inventory.path", cfg.Input.Inventory.Path, filepath.Join(etc, "inventory.csv")},
		{"baseline.checkpoint_path", cfg.Baseline.CheckpointPath, filepath.Join(etc, "state", "baseline.arrow")},
		{"kafka.tls.ca_file", cfg.Kafka.TLS.CAFile, filepath.Join(etc, "ca.pem")},
		{"kafka.tls.cert_file", cfg.Kafka.TLS.CertFile, "/abs/client.pem"},
		{"sinks[0].path", cfg.Sinks[0].Path, filepath.Join(etc, "alerts.jsonl")},
	} {
		if c.got != c.want {
			t.Errorf("%s is %q, want %q", c.setting, c.got, c.want)
		}
	}

	// A name that exists only from the working directory keeps working.
	write(cfgPath, "input:\n  inventory:\n    path: old.csv\n")
	if cfg, err = LoadConfig(cfgPath); err != nil {
		t.Fatal(err)
	}
	if cfg.Input.Inventory.Path != "old.csv" {
		t.Errorf("input.inventory.path is %q, want old.csv from the working directory", cfg.Input.Inventory.Path)
	}
	// Without a file, names stay relative to the working directory.
	if cfg, err = ParseConfig([]byte("input:\n  inventory:\n    path: inventory.csv\n")); err != nil || cfg.Input.Inventory.Path != "inventory.csv" {
		t.Errorf("ParseConfig: path %q, err %v; want inventory.csv unchanged", cfg.Input.Inventory.Path, err)
	}
}
