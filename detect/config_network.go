package detect

import (
	"fmt"
	"time"
)

// NetworkConfig configures the network detectors (novelty, scans, floods,
// signs of an adversary in the middle, malformed OT frames). The
// thresholds of scans and floods belong to the feature extractor that
// counts them (input.packets); these switches say which findings become
// alerts.
type NetworkConfig struct {
	// Learning is how long (event time, from a group's own first
	// communication) the communication allowlist of a group learns before
	// anything new in it is reported. A group keeps the end of learning it
	// started with across checkpoints: a restored group that had finished
	// learning protects whatever this value is now.
	Learning time.Duration `yaml:"learning"`
	// Novelty reports new assets, edges, services (transport, port,
	// protocol) and OT functions after learning.
	Novelty bool `yaml:"novelty"`
	// Scans (scans, sweeps, device identification, point enumeration and
	// exception storms), Floods, MITM (TCP retransmissions whose payload
	// differs, ARP replies that move an address to another MAC) and
	// Malformed turn the extractor's findings into alerts.
	Scans     bool `yaml:"scans"`
	Floods    bool `yaml:"floods"`
	MITM      bool `yaml:"mitm"`
	Malformed bool `yaml:"malformed"`
	// UnknownAssets reports hosts that send traffic but are not in the
	// asset inventory.
	UnknownAssets bool `yaml:"unknown_assets"`
	// FoldSources: when at least this many sources never seen before talk
	// to one (unicast) destination within one window, they are one flood
	// incident on the destination (a spoofed-source flood, backscatter)
	// instead of one novelty alert each. 0 turns folding off.
	FoldSources int `yaml:"fold_sources"`

	// scanHorizon is how long after a scan finding the scanner's novelty
	// stays part of its scan alarm: detect.alarm.repeat_window, set by
	// Config.Validate.
	scanHorizon time.Duration
}

// DefaultNetworkConfig returns the defaults.
func DefaultNetworkConfig() NetworkConfig {
	return NetworkConfig{
		Learning:      time.Hour,
		Novelty:       true,
		Scans:         true,
		Floods:        true,
		MITM:          true,
		Malformed:     true,
		UnknownAssets: true,
		FoldSources:   10,
		scanHorizon:   10 * time.Minute, // the default alarm.repeat_window
	}
}

// Validate checks c. Its errors name the keys inside detect.network (the
// caller says where the section is).
func (c *NetworkConfig) Validate() error {
	if c.Learning < 0 {
		return fmt.Errorf("learning: %v is negative; use a duration such as 1h (0 protects from the first packet)", c.Learning)
	}
	if c.FoldSources < 0 || c.FoldSources == 1 {
		return fmt.Errorf("fold_sources is %d: use 0 (off) or at least 2 sources toward one destination, such as 10", c.FoldSources)
	}
	return nil
}
