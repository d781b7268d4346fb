package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/detect/pipeline"
	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/sinks"
	"github.com/vigil-ot/vigil/sinks/console"
)

// Config is the whole YAML configuration. Each section is owned by the
// package that uses it, which also owns its defaults and validation.
type Config struct {
	Input    ingest.Config      `yaml:"input"`
	Baseline baseline.Config    `yaml:"baseline"`
	Detect   detect.Config      `yaml:"detect"`
	Sinks    sinks.Config       `yaml:"sinks"`
	Kafka    ingest.KafkaConfig `yaml:"kafka"`
	Console  console.Config     `yaml:"console"`
	Drill    ingest.DrillConfig `yaml:"drill"`
	// shards is vigil run's --shards (pipeline.Deps.Shards), not a
	// setting of the file.
	shards int
}

// DefaultConfig returns the configuration used when no file is given.
func DefaultConfig() Config {
	return Config{
		Input:    ingest.DefaultConfig(),
		Baseline: baseline.DefaultConfig(),
		Detect:   detect.DefaultConfig(),
		Sinks:    sinks.DefaultConfig(),
		Kafka:    ingest.DefaultKafkaConfig(),
		Console:  console.DefaultConfig(),
		Drill:    ingest.DefaultDrillConfig(),
	}
}

// pipeline returns the sections the engine's pipeline is built from.
func (c *Config) pipeline() pipeline.Config {
	return pipeline.Config{Inventory: c.Input.Inventory, Telemetry: c.Input.Telemetry, Packets: c.Input.Packets, Baseline: c.Baseline, Detect: c.Detect, Drill: c.Drill}
}

// LoadConfig reads path strictly over the defaults: unknown keys and type
// mismatches fail with their line number. Relative file names in it are
// taken from the config's folder (see resolvePath).
func LoadConfig(path string) (Config, error) { return loadConfig(path, nil) }

// ParseConfig parses YAML data strictly over the defaults and validates it.
// Relative file names in it stay relative to the working directory.
func ParseConfig(data []byte) (Config, error) { return parseConfigIn(data, "") }

// parseConfigIn is ParseConfig for a config read from the folder dir, its
// relative file names resolved against dir before validation.
func parseConfigIn(data []byte, dir string) (Config, error) {
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) { // an empty file is the defaults
		return Config{}, explainDecodeError(data, err)
	}
	if dir != "" {
		for _, f := range cfg.files() {
			*f.name = resolvePath(dir, *f.name)
		}
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, locateSetting(data, err)
	}
	return cfg, nil
}

// fileSetting is a setting that names a file.
type fileSetting struct {
	path string  // the setting's dotted path: "input.inventory.path"
	name *string // the file name, "" when unset
}

// files returns every setting of c that names a file, set or not.
func (c *Config) files() []fileSetting {
	fs := []fileSetting{
		{"input.inventory.path", &c.Input.Inventory.Path},
		{"baseline.checkpoint_path", &c.Baseline.CheckpointPath},
		{"kafka.tls.ca_file", &c.Kafka.TLS.CAFile},
		{"kafka.tls.cert_file", &c.Kafka.TLS.CertFile},
		{"kafka.tls.key_file", &c.Kafka.TLS.KeyFile},
	}
	for i := range c.Sinks {
		s := &c.Sinks[i]
		at := fmt.Sprintf("sinks[%d].", i)
		fs = append(fs, fileSetting{at + "path", &s.Path},
			fileSetting{at + "syslog.tls.ca_file", &s.Syslog.TLS.CAFile},
			fileSetting{at + "syslog.tls.cert_file", &s.Syslog.TLS.CertFile},
			fileSetting{at + "syslog.tls.key_file", &s.Syslog.TLS.KeyFile})
		if t := s.Kafka.TLS; t != nil {
			fs = append(fs, fileSetting{at + "kafka.tls.ca_file", &t.CAFile},
				fileSetting{at + "kafka.tls.cert_file", &t.CertFile},
				fileSetting{at + "kafka.tls.key_file", &t.KeyFile})
		}
	}
	return fs
}

// resolvePath takes a relative file name of a config in the folder dir
// from that folder, so the config means the same whatever the working
// directory. A name that is not there but is in the working directory,
// where relative names were taken from before, is kept as it is, so
// configs written that way go on working.
func resolvePath(dir, name string) string {
	if name == "" || filepath.IsAbs(name) {
		return name
	}
	inDir := filepath.Join(dir, name)
	if _, err := os.Stat(inDir); err != nil {
		if _, err := os.Stat(name); err == nil {
			return name
		}
	}
	return inDir
}

// settingError is an error about one setting of the config, named by its
// dotted path from the top of the file: "detect", "detect.rules[1]",
// "input.inventory.path". line is where the file sets it; 0 when the file
// does not (the error is then about a default) or before locateSetting.
type settingError struct {
	path string
	line int
	err  error
}

func (e *settingError) Error() string {
	if e.line > 0 {
		return fmt.Sprintf("line %d: %s: %v", e.line, e.path, e.err)
	}
	return fmt.Sprintf("%s: %v", e.path, e.err)
}

func (e *settingError) Unwrap() error { return e.err }

// settingPather is an error that names the setting it is about, relative
// to the section that returned it ("rules[1]", "self.direction"). A
// section's Validate may return one to place its errors exactly; the
// errors of sections that do not yet are placed by lineOfNamesIn.
type settingPather interface {
	error
	SettingPath() string
}

// locateSetting sets the line of the setting err is about, found by
// walking data's node tree along the setting's path as far as the file
// goes. err is returned as it is when it names no setting.
func locateSetting(data []byte, err error) error {
	var se *settingError
	if !errors.As(err, &se) || se.line > 0 {
		return err
	}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return err
	}
	n, line := walkPath(doc.Content[0], se.path)
	if n == nil {
		return err
	}
	var inner settingPather
	if errors.As(se.err, &inner) {
		if _, l := walkPath(n, inner.SettingPath()); l > 0 {
			line = l
		}
	} else {
		line = lineOfNamesIn(n, line, se.err.Error())
	}
	se.line = line
	return err
}

// lineOfNamesIn places an error of a section that does not name its
// setting structurally: it follows the setting names in msg ("telemetry:
// unknown format", "rules[1]: duplicate rule name") down from the
// section's node n, at line, skipping words the file has no setting for,
// and returns the line of the deepest setting reached. It goes once every
// section's Validate returns a settingPather.
func lineOfNamesIn(n *yaml.Node, line int, msg string) int {
	words := strings.FieldsFunc(msg, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("_.[]", r))
	})
	for _, w := range words {
		if next, l := walkPath(n, strings.Trim(w, ".")); next != nil {
			n, line = next, l
		}
	}
	return line
}

// walkPath follows a dotted path ("detect.rules[1]",
// "telemetry.csv.time_layout") down from the mapping node n and returns
// the node it names with its line: the line of the key, or of the list item
// for an index. It returns nil when the file does not have the whole path.
func walkPath(n *yaml.Node, path string) (*yaml.Node, int) {
	line := 0
	for _, part := range strings.Split(path, ".") {
		key, index := part, -1
		if i := strings.IndexByte(part, '['); i >= 0 && strings.HasSuffix(part, "]") {
			key = part[:i]
			var err error
			if index, err = strconv.Atoi(part[i+1 : len(part)-1]); err != nil || index < 0 {
				return nil, 0
			}
		}
		if n, line = mappingValue(n, key); n == nil {
			return nil, 0
		}
		if index >= 0 {
			if n.Kind != yaml.SequenceNode || index >= len(n.Content) {
				return nil, 0
			}
			n, line = n.Content[index], n.Content[index].Line
		}
	}
	return n, line
}

// mappingValue returns the value of key in a mapping node, and the line of
// the key.
func mappingValue(n *yaml.Node, key string) (*yaml.Node, int) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, 0
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1], n.Content[i].Line
		}
	}
	return nil, 0
}

// Validate checks every section.
func (c *Config) Validate() error {
	if err := c.Input.Validate(); err != nil {
		return &settingError{path: "input", err: err}
	}
	if err := c.Baseline.Validate(); err != nil {
		return &settingError{path: "baseline", err: err}
	}
	if err := c.Detect.Validate(); err != nil {
		return &settingError{path: "detect", err: err}
	}
	if err := c.Sinks.Validate(); err != nil {
		return &settingError{path: "sinks", err: err}
	}
	if err := c.Kafka.Validate(); err != nil {
		return &settingError{path: "kafka", err: err}
	}
	if err := c.Drill.Validate(); err != nil {
		return &settingError{path: "drill", err: err}
	}
	if c.Detect.Rollout.Enabled && slices.Contains(c.Input.Inventory.GroupBy, ingest.ColFirmware) {
		return &settingError{path: "detect.rollout.enabled", err: fmt.Errorf(
			"the rollout guard compares a group's firmware versions, but input.inventory.group_by lists %q, so every version is a group of its own; remove it from group_by", ingest.ColFirmware)}
	}
	if err := c.Console.Validate(); err != nil {
		return &settingError{path: "console", err: err}
	}
	return nil
}
