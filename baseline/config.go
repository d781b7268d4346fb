package baseline

import (
	"fmt"
	"time"
)

// MaxHalfLives is the most half-lives baseline.half_lives may list. Each one
// costs 16 bytes per device and metric, and the budget is 2 KiB per device
// with ten metrics.
const MaxHalfLives = 4

// Config is the "baseline" section of the YAML configuration. Defaults are set by
// DefaultConfig, not by YAML; Validate explains what is wrong and how to fix it.
// Durations are written as Go durations ("90s", "1h", "168h"), which yaml.v3
// decodes into time.Duration.
type Config struct {
	// HalfLives are the time scales of the decayed mean and variance kept
	// per device and per group, on event time. A sample's weight halves
	// every half-life.
	HalfLives []time.Duration `yaml:"half_lives"`
	// PrimaryHalfLife is the one of HalfLives that Expect reports as a
	// device's and a group's mean and spread.
	PrimaryHalfLife time.Duration `yaml:"primary_half_life"`

	// A group is learning until it has learned MinSamples rows over at
	// least MinDuration of event time; then it is protecting for good.
	// MinDuration 0 (the default) derives the duration from the devices'
	// own cadence: the group protects once one of its devices has learned
	// MinSamples values itself, so learning ends for any sampling rate.
	MinSamples  int64         `yaml:"min_samples"`
	MinDuration time.Duration `yaml:"min_duration"`

	// DeviceMinSamples: until a device has learned this many values of a
	// metric, Expect reports its group's mean and spread for it
	// (Expectation.FromGroup), so a new device starts from its group.
	DeviceMinSamples int `yaml:"device_min_samples"`
	// DevicePriorWeight is the weight, in samples, of the group baseline a
	// new device's own moments are seeded with, so its first values do not
	// make a spread of zero.
	DevicePriorWeight float64 `yaml:"device_prior_weight"`

	// QuantileHalfLife is the time scale of the per-group quantile sketches
	// (fleet percentiles).
	QuantileHalfLife time.Duration `yaml:"quantile_half_life"`

	// The hour-of-week profile of a group metric is trusted once the group
	// has SeasonalMinHistory of event time and the hour-of-week bucket has
	// SeasonalMinSamples of decayed weight, or, for a group that learns
	// fewer rows an hour than that, one hour's worth of its rows (at least
	// two): a slow series is trusted by the time its buckets cover, not
	// held to a count it takes months to reach. Buckets decay with
	// SeasonalHalfLife. SeasonalUTCOffset shifts hours from UTC to the
	// plant's local time (a fixed offset: OT sites seldom follow DST in
	// their shift plans, and a fixed offset keeps replay deterministic).
	SeasonalMinHistory time.Duration `yaml:"seasonal_min_history"`
	// DailyMinHistory: from this much history until SeasonalMinHistory, a
	// group metric is expected to follow an hour-of-day profile, its
	// hour-of-week buckets of the same hour pooled (every weekday alike),
	// trusted as a bucket is (buckets learn from SeasonalWarmup on, so the
	// default 48h is one day of profile after the default warm-up). A
	// plant's day shift is then expected from its third day, not its
	// fifteenth. 0: no hour-of-day profile.
	DailyMinHistory time.Duration `yaml:"daily_min_history"`
	// SeasonalWarmup: a group's rows teach its hour-of-week profile only
	// once the group has learned for this long. A bucket holds residuals
	// against the device levels of the time it learned; in a cold start
	// those levels are the average of the first hours only (night values,
	// say) and move for a day until they span a whole daily cycle, so the
	// buckets of the first hours would keep offsets against a level that
	// no longer exists and raise false alarms on their next visit a week
	// later. After a full day the level moves by a few per cent at most.
	SeasonalWarmup     time.Duration `yaml:"seasonal_warmup"`
	SeasonalMinSamples float64       `yaml:"seasonal_min_samples"`
	SeasonalHalfLife   time.Duration `yaml:"seasonal_half_life"`
	SeasonalUTCOffset  time.Duration `yaml:"seasonal_utc_offset"`

	// CheckpointPath is where the state is checkpointed (Arrow IPC file)
	// every CheckpointInterval of processing time, and restored from on
	// start-up. Empty disables checkpoints.
	CheckpointPath     string        `yaml:"checkpoint_path"`
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
}

// DefaultConfig returns the defaults of the "baseline" section.
func DefaultConfig() Config {
	return Config{
		HalfLives:          []time.Duration{time.Hour, 24 * time.Hour, 7 * 24 * time.Hour},
		PrimaryHalfLife:    24 * time.Hour,
		MinSamples:         300,
		MinDuration:        0,
		DeviceMinSamples:   30,
		DevicePriorWeight:  5,
		QuantileHalfLife:   24 * time.Hour,
		SeasonalMinHistory: 14 * 24 * time.Hour,
		DailyMinHistory:    48 * time.Hour,
		SeasonalWarmup:     24 * time.Hour,
		SeasonalMinSamples: 20,
		SeasonalHalfLife:   28 * 24 * time.Hour,
		CheckpointInterval: time.Minute,
	}
}

// Validate checks c.
func (c *Config) Validate() error {
	if len(c.HalfLives) == 0 || len(c.HalfLives) > MaxHalfLives {
		return fmt.Errorf("half_lives lists %d durations; list 1 to %d, e.g. [1h, 24h, 168h]", len(c.HalfLives), MaxHalfLives)
	}
	for i, h := range c.HalfLives {
		if h < time.Second {
			return fmt.Errorf("half_lives[%d] is %s; use at least 1s", i, h)
		}
		for _, o := range c.HalfLives[:i] {
			if o == h {
				return fmt.Errorf("half_lives lists %s twice; list each time scale once", h)
			}
		}
	}
	if c.primaryIndex() < 0 {
		return fmt.Errorf("primary_half_life %s is not one of half_lives %v; set it to one of them", c.PrimaryHalfLife, c.HalfLives)
	}
	if c.MinSamples < 0 {
		return fmt.Errorf("min_samples is %d; use 0 or more", c.MinSamples)
	}
	if c.MinDuration < 0 {
		return fmt.Errorf("min_duration is %s; use 0 or more", c.MinDuration)
	}
	if c.DeviceMinSamples < 0 {
		return fmt.Errorf("device_min_samples is %d; use 0 or more", c.DeviceMinSamples)
	}
	if c.DevicePriorWeight < 0 || c.DevicePriorWeight > 1e6 {
		return fmt.Errorf("device_prior_weight is %g; use 0 (no prior) to 1e6", c.DevicePriorWeight)
	}
	if c.QuantileHalfLife < time.Second {
		return fmt.Errorf("quantile_half_life is %s; use at least 1s, e.g. 24h", c.QuantileHalfLife)
	}
	if c.SeasonalMinHistory < 7*24*time.Hour {
		return fmt.Errorf("seasonal_min_history is %s; an hour-of-week profile needs at least one week (168h), e.g. 336h", c.SeasonalMinHistory)
	}
	if c.SeasonalWarmup < 0 || c.SeasonalWarmup > c.SeasonalMinHistory {
		return fmt.Errorf("seasonal_warmup is %s; use 0 to seasonal_min_history (%s), e.g. 24h", c.SeasonalWarmup, c.SeasonalMinHistory)
	}
	if c.DailyMinHistory != 0 && (c.DailyMinHistory < 24*time.Hour || c.DailyMinHistory > c.SeasonalMinHistory) {
		return fmt.Errorf("daily_min_history is %s; use 0 (off) or from 24h to seasonal_min_history (%s), e.g. 48h",
			c.DailyMinHistory, c.SeasonalMinHistory)
	}
	if c.SeasonalMinSamples < 1 {
		return fmt.Errorf("seasonal_min_samples is %g; use at least 1, e.g. 20", c.SeasonalMinSamples)
	}
	if c.SeasonalHalfLife < 7*24*time.Hour {
		return fmt.Errorf("seasonal_half_life is %s; a bucket is visited once a week, so use at least 168h, e.g. 672h", c.SeasonalHalfLife)
	}
	if c.SeasonalUTCOffset <= -24*time.Hour || c.SeasonalUTCOffset >= 24*time.Hour || c.SeasonalUTCOffset%time.Minute != 0 {
		return fmt.Errorf("seasonal_utc_offset is %s; use whole minutes between -23h59m and 23h59m, e.g. 1h", c.SeasonalUTCOffset)
	}
	if c.CheckpointPath != "" && c.CheckpointInterval < time.Second {
		return fmt.Errorf("checkpoint_interval is %s; use at least 1s, e.g. 1m", c.CheckpointInterval)
	}
	return nil
}

// primaryIndex returns the index of PrimaryHalfLife in HalfLives, or -1.
func (c *Config) primaryIndex() int {
	for i, h := range c.HalfLives {
		if h == c.PrimaryHalfLife {
			return i
		}
	}
	return -1
}
