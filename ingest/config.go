package ingest

// Config is the "input" section of the YAML configuration. Defaults are
// set by DefaultConfig, not by YAML; Validate explains what is wrong and how
// to fix it. Each part lives beside the code that uses it.
type Config struct {
	Telemetry TelemetryConfig `yaml:"telemetry"`
	Inventory InventoryConfig `yaml:"inventory"`
	Packets   PacketConfig    `yaml:"packets"`
}

// DefaultConfig returns the defaults of the "input" section.
func DefaultConfig() Config {
	return Config{
		Telemetry: DefaultTelemetryConfig(),
		Inventory: DefaultInventoryConfig(),
		Packets:   DefaultPacketConfig(),
	}
}

// Validate checks c.
func (c *Config) Validate() error {
	if err := c.Telemetry.Validate(); err != nil {
		return err
	}
	if err := c.Inventory.Validate(); err != nil {
		return err
	}
	return c.Packets.Validate()
}
