package baseline

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestConfigYAMLDurations(t *testing.T) {
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(strings.NewReader("half_lives: [90s, 1h, 168h]\nprimary_half_life: 1h\nmin_duration: 30m\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.HalfLives[0] != 90*time.Second || cfg.PrimaryHalfLife != time.Hour || cfg.MinDuration != 30*time.Minute {
		t.Fatalf("decoded %+v", cfg)
	}
	if cfg.MinSamples != DefaultConfig().MinSamples {
		t.Fatal("defaults were lost")
	}
	bad := DefaultConfig()
	if err := yaml.Unmarshal([]byte("min_duration: 3600\n"), &bad); err == nil {
		t.Fatal("a bare number for a duration was accepted; it must say its unit")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.HalfLives = nil }, "half_lives lists 0"},
		{func(c *Config) { c.PrimaryHalfLife = 2 * time.Hour }, "primary_half_life 2h0m0s is not one of"},
		{func(c *Config) { c.HalfLives = append(c.HalfLives, time.Hour) }, "twice"},
		{func(c *Config) { c.HalfLives[0] = time.Millisecond }, "at least 1s"},
		{func(c *Config) { c.SeasonalMinHistory = time.Hour }, "at least one week"},
		{func(c *Config) { c.SeasonalWarmup = -time.Hour }, "seasonal_warmup"},
		{func(c *Config) { c.SeasonalWarmup = 15 * 24 * time.Hour }, "seasonal_warmup is 360h0m0s"},
		{func(c *Config) { c.DailyMinHistory = 12 * time.Hour }, "daily_min_history is 12h0m0s; use 0 (off) or from 24h"},
		{func(c *Config) { c.DailyMinHistory = 15 * 24 * time.Hour }, "daily_min_history"},
		{func(c *Config) { c.SeasonalUTCOffset = 30 * time.Second }, "whole minutes"},
		{func(c *Config) { c.CheckpointPath = "x"; c.CheckpointInterval = 0 }, "checkpoint_interval"},
		{func(c *Config) { c.MinSamples = -1 }, "min_samples"},
	} {
		c := DefaultConfig()
		c.HalfLives = append([]time.Duration(nil), c.HalfLives...)
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want one containing %q", err, tc.want)
		}
	}
	d := DefaultConfig()
	if err := d.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
}
