package ingest

// InventoryConfig configures inventory input.
type InventoryConfig struct{}

// DefaultInventoryConfig returns the defaults.
func DefaultInventoryConfig() InventoryConfig { return InventoryConfig{} }

// Validate checks c.
func (c *InventoryConfig) Validate() error { return nil }
