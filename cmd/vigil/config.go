package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"

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
		return Config{}, err
	}
	return cfg, nil
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
