package sinks

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// parseSinksYAML parses a file's "sinks" section the way cmd/vigil does:
// strictly, over the defaults, then Validate.
func parseSinksYAML(data []byte) (Config, error) {
	doc := struct {
		Sinks Config `yaml:"sinks"`
	}{Sinks: DefaultConfig()}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	return doc.Sinks, doc.Sinks.Validate()
}

// TestConfigFiles walks testdata/sinks/config: every *.good.yml must load,
// every *.bad.yml must fail with the error on its first line.
func TestConfigFiles(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(goldenDir, "config", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no config cases: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			_, err = parseSinksYAML(data)
			if strings.HasSuffix(path, ".good.yml") {
				if err != nil {
					t.Fatalf("good config fails: %v", err)
				}
				return
			}
			first, _, _ := strings.Cut(string(data), "\n")
			want, ok := strings.CutPrefix(first, "# error: ")
			if !ok {
				t.Fatalf("a .bad.yml starts with '# error: <expected text>'")
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("got error %v, want one containing %q", err, want)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := parseSinksYAML([]byte("sinks:\n  - kind: syslog\n    syslog: {address: \"siem:514\"}\n  - kind: syslog\n    syslog: {address: \"siem:514\", transport: udp}\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.resolved()
	if r[0].Name != "syslog" || r[1].Name != "syslog-2" {
		t.Errorf("names %q %q", r[0].Name, r[1].Name)
	}
	s := r[0]
	if s.Format != FormatCEF || s.Optional || s.Syslog.Transport != TransportTCP || s.Syslog.Framing != FramingOctetCounting ||
		s.Syslog.Profile != ProfileRFC5424 || s.Syslog.MaxMessageSize != 8192 || s.Syslog.TLS.InsecureSkipVerify {
		t.Errorf("syslog defaults: %+v", s)
	}
	if r[1].Syslog.MaxMessageSize != 2048 {
		t.Errorf("UDP max message size %d, want 2048", r[1].Syslog.MaxMessageSize)
	}
	def := DefaultConfig()
	if err := def.Validate(); err != nil || def[0].Kind != KindStdout {
		t.Errorf("default config %+v: %v", def, err)
	}
}
