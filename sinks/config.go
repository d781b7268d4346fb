package sinks

// Config is the "sinks" section of the YAML configuration. Defaults are set by
// DefaultConfig, not by YAML; Validate explains what is wrong and how to fix it.
type Config struct{}

// DefaultConfig returns the defaults of the "sinks" section.
func DefaultConfig() Config { return Config{} }

// Validate checks c.
func (c *Config) Validate() error { return nil }
