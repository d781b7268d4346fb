package detect

import (
	"fmt"
	"time"
)

// NetworkConfig configures the network detectors (novelty, scans, floods,
// malformed OT frames). The thresholds of scans and floods belong to the
// feature extractor that counts them (input.packets); these switches say
// which findings become alerts.
type NetworkConfig struct {
	// Learning is how long (event time, from a group's first
	// communication) the communication allowlist of a group learns before
	// anything new in it is reported.
	Learning time.Duration `yaml:"learning"`
	// Novelty reports new assets, edges, services (transport, port,
	// protocol) and OT functions after learning.
	Novelty bool `yaml:"novelty"`
	// Scans, Floods and Malformed turn the extractor's findings into alerts.
	Scans     bool `yaml:"scans"`
	Floods    bool `yaml:"floods"`
	Malformed bool `yaml:"malformed"`
	// UnknownAssets reports hosts that send traffic but are not in the
	// asset inventory.
	UnknownAssets bool `yaml:"unknown_assets"`
}

// DefaultNetworkConfig returns the defaults.
func DefaultNetworkConfig() NetworkConfig {
	return NetworkConfig{
		Learning:      time.Hour,
		Novelty:       true,
		Scans:         true,
		Floods:        true,
		Malformed:     true,
		UnknownAssets: true,
	}
}

// Validate checks c.
func (c *NetworkConfig) Validate() error {
	if c.Learning < 0 {
		return fmt.Errorf("network.learning: %v is negative; use a duration such as 1h (0 protects from the first packet)", c.Learning)
	}
	return nil
}
