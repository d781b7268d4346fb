package ingest

import (
	"fmt"
	"time"
)

// PacketConfig configures packet input: feature windows, the caps that
// bound memory under a flood of new flows and hosts, and the thresholds of
// the scan and flood findings the feature extractor makes on its own.
type PacketConfig struct {
	// Windows are the event-time windows features are computed over; each
	// must be a multiple of the first (the shortest), which also sets how
	// often a batch is emitted.
	Windows []time.Duration `yaml:"windows"`
	// MaxFlows caps the flow table; the least recently seen flow is
	// evicted (and counted) to make room.
	MaxFlows int `yaml:"max_flows"`
	// MaxHosts caps the host table the same way.
	MaxHosts int `yaml:"max_hosts"`
	// FlowIdleTimeout forgets flows idle for longer (event time).
	FlowIdleTimeout time.Duration `yaml:"flow_idle_timeout"`
	// MaxStreamBuffer caps the bytes kept per TCP direction while a PDU
	// spans segments; longer PDUs are skipped and counted.
	MaxStreamBuffer int `yaml:"max_stream_buffer"`
	// MaxBufferedBytes caps stream buffers over all flows.
	MaxBufferedBytes int `yaml:"max_buffered_bytes"`
	// MaxDistinct caps the distinct peers and ports counted exactly per
	// host and window; counts saturate there.
	MaxDistinct int `yaml:"max_distinct"`
	// ScanPorts and ScanHosts: a host that opens flows to at least this many
	// distinct destination ports (or hosts) in the shortest window is
	// reported as scanning (ATT&CK for ICS T0846).
	ScanPorts int `yaml:"scan_ports"`
	ScanHosts int `yaml:"scan_hosts"`
	// FloodPacketsPerSecond and FloodSYNPerSecond: a host receiving more
	// than this many packets (or TCP SYNs) per second over the shortest
	// window is reported as flooded (T0814 / T1498).
	FloodPacketsPerSecond float64 `yaml:"flood_packets_per_second"`
	FloodSYNPerSecond     float64 `yaml:"flood_syn_per_second"`
	// FloodSources: a host receiving TCP SYNs from at least this many
	// distinct sources in the shortest window is flooded whatever the
	// rate (a spoofed-source flood below the rate thresholds: each forged
	// address sends once, so the sources, not the rate, give it away).
	FloodSources int `yaml:"flood_sources"`
	// ScanWindowLong is the long window of the slow-scan, sweep and OT
	// reconnaissance rules, beside the shortest window; a multiple of it.
	// Each host is reported at most once per kind and long window.
	ScanWindowLong time.Duration `yaml:"scan_window_long"`
	// ScanPortsLong and ScanHostsLong: a host whose connection attempts
	// (TCP, UDP) failed or went unanswered on at least this many distinct
	// ports (or hosts) in the long window, more failed targets than
	// answered ones, is reported as scanning slowly (scan_ports_slow,
	// scan_hosts_slow); unanswered ARP requests and ICMP echoes to
	// ScanHostsLong distinct hosts are a slow sweep_arp/sweep_icmp.
	ScanPortsLong int `yaml:"scan_ports_long"`
	ScanHostsLong int `yaml:"scan_hosts_long"`
	// ScanFailedProbes and ScanFailedWindow: a host whose attempts to at
	// least this many distinct targets (host and port; hosts for ARP and
	// ICMP) failed or went unanswered within ScanFailedWindow, at least
	// half of the targets it tried then, is reported even when it probes
	// slowly: inside an OT segment, where every host talks to the same few
	// peers, eight refused probes are a scan.
	ScanFailedProbes int           `yaml:"scan_failed_probes"`
	ScanFailedWindow time.Duration `yaml:"scan_failed_window"`
	// IdentifyHosts: a host that sends device-identification requests
	// (Modbus read device identification, S7 SZL read, BACnet Who-Is,
	// CIP ListIdentity, DNP3 reads to a broadcast address) to at least
	// this many distinct unicast hosts in the long window, not more than 8
	// per host on average (an HMI polling diagnostics asks more often), is
	// reported (identify, T0888). Broadcast discovery is not counted.
	IdentifyHosts int `yaml:"identify_hosts"`
	// EnumerateAddresses: a Modbus client that reads at least this many
	// distinct start addresses in the long window, with fewer than two
	// reads per address on average (a poller repeats its reads), is
	// reported as walking the register map (enumerate, T0861).
	EnumerateAddresses int `yaml:"enumerate_addresses"`
	// ExceptionStorm: a client that receives at least this many error
	// responses in the shortest window, at least half of its responses,
	// is reported (exception_storm).
	ExceptionStorm int `yaml:"exception_storm"`
	// GroupRows adds one row per group and window with the group's totals
	// (device "<group>/*"). Off by default: the totals of a group of
	// unlike hosts (an unmanaged subnet) move with whichever host is
	// chatty, and on a clean day of OT traffic their alarms were most of
	// the noise (107 of 142 false alarms on attackgen's OT day).
	GroupRows bool `yaml:"group_rows"`
	// UnmanagedPrefixV4 and UnmanagedPrefixV6: hosts not in the inventory
	// are grouped as "unmanaged/<subnet>" with these prefix lengths.
	UnmanagedPrefixV4 int `yaml:"unmanaged_prefix_v4"`
	UnmanagedPrefixV6 int `yaml:"unmanaged_prefix_v6"`
	// FlagUnknownAssets reports a host that sends traffic but is not in the
	// inventory (only when an inventory is configured).
	FlagUnknownAssets bool `yaml:"flag_unknown_assets"`
	// MaxTimeJump: a packet whose timestamp lies further than this from the
	// packet before it (forward or back) is suspect until the next packets
	// confirm the step (a real gap); until then, and for good when they do
	// not (a corrupt timestamp), it is counted at the time of the packet
	// before it, so it neither opens windows nor ends learning. Set it
	// above the longest silence of the monitored traffic.
	MaxTimeJump time.Duration `yaml:"max_time_jump"`
}

// MaxScanFailedProbes bounds ScanFailedProbes: the recent probes of a
// host are kept in an array of this size.
const MaxScanFailedProbes = 32

// DefaultPacketConfig returns the defaults.
func DefaultPacketConfig() PacketConfig {
	return PacketConfig{
		Windows:               []time.Duration{10 * time.Second, time.Minute},
		MaxFlows:              65536,
		MaxHosts:              16384,
		FlowIdleTimeout:       5 * time.Minute,
		MaxStreamBuffer:       64 << 10,
		MaxBufferedBytes:      64 << 20,
		MaxDistinct:           4096,
		ScanPorts:             50,
		ScanHosts:             50,
		FloodPacketsPerSecond: 5000,
		FloodSYNPerSecond:     500,
		FloodSources:          100,
		ScanWindowLong:        15 * time.Minute,
		ScanPortsLong:         30,
		ScanHostsLong:         30,
		ScanFailedProbes:      8,
		ScanFailedWindow:      time.Minute,
		IdentifyHosts:         3,
		EnumerateAddresses:    64,
		ExceptionStorm:        20,
		UnmanagedPrefixV4:     24,
		UnmanagedPrefixV6:     64,
		FlagUnknownAssets:     true,
		MaxTimeJump:           5 * time.Minute,
	}
}

// Validate checks c.
func (c *PacketConfig) Validate() error {
	if len(c.Windows) == 0 || len(c.Windows) > 4 {
		return fmt.Errorf("packets.windows: %d windows; give 1 to 4, e.g. [10s, 1m]", len(c.Windows))
	}
	for i, w := range c.Windows {
		if w < time.Millisecond {
			return fmt.Errorf("packets.windows[%d]: %v is too short; use at least 1ms", i, w)
		}
		if w%c.Windows[0] != 0 || (i > 0 && w <= c.Windows[i-1]) {
			return fmt.Errorf("packets.windows[%d]: %v must be a multiple of %v and longer than the window before it", i, w, c.Windows[0])
		}
	}
	switch {
	case c.MaxFlows < 16:
		return fmt.Errorf("packets.max_flows: %d; use at least 16", c.MaxFlows)
	case c.MaxHosts < 16:
		return fmt.Errorf("packets.max_hosts: %d; use at least 16", c.MaxHosts)
	case c.FlowIdleTimeout <= 0:
		return fmt.Errorf("packets.flow_idle_timeout: %v; use a positive duration such as 5m", c.FlowIdleTimeout)
	case c.MaxStreamBuffer < 256:
		return fmt.Errorf("packets.max_stream_buffer: %d bytes; use at least 256 (a Modbus PDU)", c.MaxStreamBuffer)
	case c.MaxBufferedBytes < c.MaxStreamBuffer:
		return fmt.Errorf("packets.max_buffered_bytes: %d is below max_stream_buffer %d", c.MaxBufferedBytes, c.MaxStreamBuffer)
	case c.MaxDistinct < 1:
		return fmt.Errorf("packets.max_distinct: %d; use at least 1", c.MaxDistinct)
	case c.ScanPorts < 2 || c.ScanHosts < 2:
		return fmt.Errorf("packets.scan_ports/scan_hosts: %d/%d; use at least 2", c.ScanPorts, c.ScanHosts)
	case c.ScanWindowLong < c.Windows[0] || c.ScanWindowLong%c.Windows[0] != 0:
		return fmt.Errorf("packets.scan_window_long: %v must be a multiple of the shortest window %v, e.g. 15m", c.ScanWindowLong, c.Windows[0])
	case c.ScanPortsLong < 2 || c.ScanHostsLong < 2:
		return fmt.Errorf("packets.scan_ports_long/scan_hosts_long: %d/%d; use at least 2", c.ScanPortsLong, c.ScanHostsLong)
	case c.ScanFailedProbes < 2 || c.ScanFailedProbes > MaxScanFailedProbes:
		return fmt.Errorf("packets.scan_failed_probes: %d; use 2 to %d", c.ScanFailedProbes, MaxScanFailedProbes)
	case c.ScanFailedWindow < c.Windows[0] || c.ScanFailedWindow > c.ScanWindowLong:
		return fmt.Errorf("packets.scan_failed_window: %v; use from the shortest window %v to scan_window_long %v, e.g. 1m", c.ScanFailedWindow, c.Windows[0], c.ScanWindowLong)
	case c.IdentifyHosts < 1:
		return fmt.Errorf("packets.identify_hosts: %d; use at least 1, e.g. 3", c.IdentifyHosts)
	case c.EnumerateAddresses < 2:
		return fmt.Errorf("packets.enumerate_addresses: %d; use at least 2, e.g. 64", c.EnumerateAddresses)
	case c.ExceptionStorm < 1:
		return fmt.Errorf("packets.exception_storm: %d; use at least 1, e.g. 20", c.ExceptionStorm)
	case c.FloodSources < 2:
		return fmt.Errorf("packets.flood_sources: %d; use at least 2, e.g. 100 distinct sources of SYNs in the shortest window", c.FloodSources)
	case c.FloodPacketsPerSecond <= 0 || c.FloodSYNPerSecond <= 0:
		return fmt.Errorf("packets.flood_packets_per_second/flood_syn_per_second must be positive")
	case c.MaxTimeJump <= 0:
		return fmt.Errorf("packets.max_time_jump: %v; use a positive duration above the longest silence of the traffic, e.g. 5m", c.MaxTimeJump)
	case c.UnmanagedPrefixV4 < 0 || c.UnmanagedPrefixV4 > 32 || c.UnmanagedPrefixV6 < 0 || c.UnmanagedPrefixV6 > 128:
		return fmt.Errorf("packets.unmanaged_prefix_v4/v6: %d/%d out of range 0-32/0-128", c.UnmanagedPrefixV4, c.UnmanagedPrefixV6)
	}
	return nil
}
