package detect

// Config is the "detect" section of the YAML configuration. Defaults are
// set by DefaultConfig, not by YAML; Validate explains what is wrong and how
// to fix it.
type Config struct {
	Network NetworkConfig `yaml:"network"`
}

// DefaultConfig returns the defaults of the "detect" section.
func DefaultConfig() Config {
	return Config{Network: DefaultNetworkConfig()}
}

// Validate checks c.
func (c *Config) Validate() error { return c.Network.Validate() }
