package ingest

// Config is the "ingest" section of the YAML configuration. Defaults are set by
// DefaultConfig, not by YAML; Validate explains what is wrong and how to fix it.
type Config struct{}

// DefaultConfig returns the defaults of the "ingest" section.
func DefaultConfig() Config { return Config{} }

// Validate checks c.
func (c *Config) Validate() error { return nil }
