package detect

// NetworkConfig configures the network detectors (novelty, scans, floods,
// malformed OT frames).
type NetworkConfig struct{}

// DefaultNetworkConfig returns the defaults.
func DefaultNetworkConfig() NetworkConfig { return NetworkConfig{} }

// Validate checks c.
func (c *NetworkConfig) Validate() error { return nil }
