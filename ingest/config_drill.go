package ingest

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// DrillGroupPrefix starts the group key of every drill device: drill
// devices learn and are judged in groups of their own, never in a real
// group's baseline. A real group key never starts with it (see
// inventory.Inventory.Group).
const DrillGroupPrefix = "drill/"

// DrillConfig is the "drill" section: incident-response drills, canary
// records marked by an HMAC tag that run through the live pipeline.
type DrillConfig struct {
	// KeyEnv names the environment variable holding the shared key that
	// tags drill records (HMAC-SHA256). The key itself is never in the
	// config or the logs. Without it every drill header is refused.
	KeyEnv string `yaml:"key_env"`
	// DevicePrefix starts the name of every drill device. A record of a
	// device with this prefix must carry a valid drill tag, and a tagged
	// record must name such devices: a device can neither fake a drill
	// nor hide in one.
	DevicePrefix string `yaml:"device_prefix"`
	// Interval runs a drill from inside vigil run this often; 0: never.
	Interval time.Duration `yaml:"interval"`
	// Deadline is how long a drill waits for its alerts.
	Deadline time.Duration `yaml:"deadline"`
}

// DefaultDrillConfig returns the defaults of the "drill" section.
func DefaultDrillConfig() DrillConfig {
	return DrillConfig{KeyEnv: "VIGIL_DRILL_KEY", DevicePrefix: "vigil-drill-", Deadline: 2 * time.Minute}
}

// Validate checks c.
func (c *DrillConfig) Validate() error {
	switch {
	case c.KeyEnv == "":
		return errors.New("key_env is empty; name the environment variable that holds the drill key, e.g. VIGIL_DRILL_KEY")
	case len(c.DevicePrefix) < 4 || strings.Contains(c.DevicePrefix, "/"):
		return fmt.Errorf("device_prefix %q is too short to be reserved for drills (or has a /); use e.g. vigil-drill-", c.DevicePrefix)
	case c.Interval < 0:
		return fmt.Errorf("interval %s is negative; use 0 to schedule no drills", c.Interval)
	case c.Deadline <= 0:
		return fmt.Errorf("deadline %s must be positive, e.g. 2m", c.Deadline)
	case c.Interval > 0 && c.Interval < c.Deadline:
		return fmt.Errorf("interval %s is shorter than deadline %s: drills would overlap; raise interval", c.Interval, c.Deadline)
	}
	return nil
}
