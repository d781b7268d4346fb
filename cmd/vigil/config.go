package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/sinks"
)

// Config is the whole YAML configuration. Each section is owned by the
// package that uses it, which also owns its defaults and validation.
type Config struct {
	Input    ingest.Config      `yaml:"input"`
	Baseline baseline.Config    `yaml:"baseline"`
	Detect   detect.Config      `yaml:"detect"`
	Sinks    sinks.Config       `yaml:"sinks"`
	Kafka    ingest.KafkaConfig `yaml:"kafka"`
}

// DefaultConfig returns the configuration used when no file is given.
func DefaultConfig() Config {
	return Config{
		Input:    ingest.DefaultConfig(),
		Baseline: baseline.DefaultConfig(),
		Detect:   detect.DefaultConfig(),
		Sinks:    sinks.DefaultConfig(),
		Kafka:    ingest.DefaultKafkaConfig(),
	}
}

// LoadConfig reads path strictly over the defaults: unknown keys and type
// mismatches fail with their line number.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("cannot read config: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("cannot load config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses YAML data strictly over the defaults and validates it.
func ParseConfig(data []byte) (Config, error) {
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) { // an empty file is the defaults
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		if line := lineOfSetting(data, err.Error()); line > 0 {
			return Config{}, fmt.Errorf("line %d: %w", line, err)
		}
		return Config{}, err
	}
	return cfg, nil
}

// settingPath matches the setting names a validation error mentions:
// "detect", "self.direction", "rules[1]".
var settingPath = regexp.MustCompile(`[a-z_]+(\[[0-9]+\])?(\.[a-z_]+(\[[0-9]+\])?)*`)

// lineOfSetting finds the line of the setting a validation error is about.
// Validation errors name their setting from the top ("detect: rules[1]:
// duplicate rule name", "input: inventory: group_by is empty"); the names
// are followed through the YAML document as far as they go, and the line of
// the deepest setting reached is returned, or 0 when not even the section
// is in the file (the error is then about a default).
func lineOfSetting(data []byte, msg string) int {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return 0
	}
	node, line := doc.Content[0], 0
	for _, token := range settingPath.FindAllString(msg, -1) {
		next, nextLine := node, line
		for _, part := range strings.Split(token, ".") {
			key, index := part, -1
			if i := strings.IndexByte(part, '['); i >= 0 {
				key = part[:i]
				index, _ = strconv.Atoi(strings.TrimSuffix(part[i+1:], "]"))
			}
			child, childLine := mappingValue(next, key)
			if child == nil {
				next = nil
				break
			}
			next, nextLine = child, childLine
			if index >= 0 && child.Kind == yaml.SequenceNode && index < len(child.Content) {
				next, nextLine = child.Content[index], child.Content[index].Line
			}
		}
		if next != nil {
			node, line = next, nextLine
		}
	}
	return line
}

// mappingValue returns the value of key in a mapping node, and the line of
// the key.
func mappingValue(n *yaml.Node, key string) (*yaml.Node, int) {
	if n.Kind != yaml.MappingNode {
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
		return fmt.Errorf("input: %w", err)
	}
	if err := c.Baseline.Validate(); err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	if err := c.Detect.Validate(); err != nil {
		return fmt.Errorf("detect: %w", err)
	}
	if err := c.Sinks.Validate(); err != nil {
		return fmt.Errorf("sinks: %w", err)
	}
	if err := c.Kafka.Validate(); err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	return nil
}
