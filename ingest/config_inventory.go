package ingest

import (
	"fmt"
	"strings"
	"time"
)

// InventoryConfig is input.inventory: the asset inventory file and how
// devices are grouped.
type InventoryConfig struct {
	// Path is a CSV or JSON inventory file; empty means no inventory, and
	// groups come from telemetry attributes alone.
	Path string `yaml:"path"`
	// Format is auto (by file extension, .json or else CSV), csv or json.
	Format string `yaml:"format"`
	// GroupBy lists the attributes whose values, joined by "/", form a
	// device's group key; a missing value counts as "unknown".
	GroupBy []string `yaml:"group_by"`
	// ReloadInterval is how often the file's modification time is polled;
	// 0 disables polling, leaving SIGHUP as the only reload trigger.
	ReloadInterval time.Duration `yaml:"reload_interval"`
}

// DefaultInventoryConfig returns the defaults.
func DefaultInventoryConfig() InventoryConfig {
	return InventoryConfig{
		Format:         "auto",
		GroupBy:        []string{"site", "hw"},
		ReloadInterval: 2 * time.Second,
	}
}

// Validate checks c and says how to fix it.
func (c *InventoryConfig) Validate() error {
	switch c.Format {
	case "auto", "csv", "json":
	default:
		return fmt.Errorf("inventory: unknown format %q; use auto, csv or json", c.Format)
	}
	if len(c.GroupBy) == 0 {
		return fmt.Errorf("inventory: group_by is empty; list at least one attribute, e.g. [site, hw]")
	}
	seen := make(map[string]bool, len(c.GroupBy))
	for _, k := range c.GroupBy {
		if strings.TrimSpace(k) == "" || strings.Contains(k, "/") {
			return fmt.Errorf("inventory: group_by entry %q is not an attribute name; use names such as site or hw, without \"/\"", k)
		}
		if seen[k] {
			return fmt.Errorf("inventory: group_by lists %q twice; remove one", k)
		}
		seen[k] = true
	}
	if c.ReloadInterval < 0 || (c.ReloadInterval > 0 && c.ReloadInterval < 100*time.Millisecond) {
		return fmt.Errorf("inventory: reload_interval %s is too short; use 0 (SIGHUP only) or at least 100ms (default 2s)", c.ReloadInterval)
	}
	return nil
}
