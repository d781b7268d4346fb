package ingest

// PacketConfig configures packet input.
type PacketConfig struct{}

// DefaultPacketConfig returns the defaults.
func DefaultPacketConfig() PacketConfig { return PacketConfig{} }

// Validate checks c.
func (c *PacketConfig) Validate() error { return nil }
