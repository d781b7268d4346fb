package ingest

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestPacketConfigYAML(t *testing.T) {
	c := DefaultPacketConfig()
	dec := yaml.NewDecoder(strings.NewReader("windows: [5s, 30s, 5m]\nmax_flows: 1000\nflood_syn_per_second: 50\nscan_window_long: 30m\nscan_failed_probes: 8\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.Windows) != 3 || c.Windows[2] != 5*time.Minute || c.MaxFlows != 1000 || c.FloodSYNPerSecond != 50 || c.MaxHosts != 16384 ||
		c.ScanWindowLong != 30*time.Minute || c.ScanFailedProbes != 8 || c.IdentifyHosts != 3 {
		t.Errorf("decoded %+v", c)
	}
}

// TestPacketConfigInvalid: every way to get the packets section wrong is
// refused with an error that names the key and says what to use.
func TestPacketConfigInvalid(t *testing.T) {
	cases := []struct {
		mod  func(*PacketConfig)
		want string
	}{
		{func(c *PacketConfig) { c.Windows = nil }, "packets.windows: 0 windows"},
		{func(c *PacketConfig) { c.Windows = []time.Duration{10 * time.Second, 15 * time.Second} }, "must be a multiple of 10s"},
		{func(c *PacketConfig) { c.Windows = []time.Duration{time.Minute, 10 * time.Second} }, "must be a multiple of 1m0s"},
		{func(c *PacketConfig) { c.Windows = []time.Duration{time.Microsecond} }, "too short"},
		{func(c *PacketConfig) { c.MaxFlows = 0 }, "packets.max_flows"},
		{func(c *PacketConfig) { c.MaxHosts = 3 }, "packets.max_hosts"},
		{func(c *PacketConfig) { c.FlowIdleTimeout = 0 }, "packets.flow_idle_timeout"},
		{func(c *PacketConfig) { c.MaxStreamBuffer = 100 }, "packets.max_stream_buffer"},
		{func(c *PacketConfig) { c.MaxBufferedBytes = 1000 }, "packets.max_buffered_bytes"},
		{func(c *PacketConfig) { c.MaxDistinct = 0 }, "packets.max_distinct"},
		{func(c *PacketConfig) { c.ScanPorts = 1 }, "packets.scan_ports"},
		{func(c *PacketConfig) { c.FloodPacketsPerSecond = 0 }, "packets.flood_packets_per_second"},
		{func(c *PacketConfig) { c.ScanWindowLong = 15 * time.Second }, "packets.scan_window_long: 15s must be a multiple"},
		{func(c *PacketConfig) { c.ScanWindowLong = 5 * time.Second }, "packets.scan_window_long"},
		{func(c *PacketConfig) { c.ScanHostsLong = 1 }, "packets.scan_ports_long/scan_hosts_long"},
		{func(c *PacketConfig) { c.ScanFailedProbes = 33 }, "packets.scan_failed_probes: 33; use 2 to 32"},
		{func(c *PacketConfig) { c.FloodSources = 1 }, "packets.flood_sources: 1; use at least 2"},
		{func(c *PacketConfig) { c.ScanFailedWindow = time.Hour }, "packets.scan_failed_window"},
		{func(c *PacketConfig) { c.IdentifyHosts = 0 }, "packets.identify_hosts"},
		{func(c *PacketConfig) { c.EnumerateAddresses = 1 }, "packets.enumerate_addresses"},
		{func(c *PacketConfig) { c.ExceptionStorm = 0 }, "packets.exception_storm"},
		{func(c *PacketConfig) { c.UnmanagedPrefixV4 = 33 }, "packets.unmanaged_prefix_v4"},
	}
	for _, c := range cases {
		cfg := DefaultPacketConfig()
		c.mod(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want it to contain %q", err, c.want)
		}
	}
	d := DefaultPacketConfig()
	if err := d.Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
}
