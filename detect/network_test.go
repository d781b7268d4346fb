package detect

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/ingest"
)

func TestFunctionTechnique(t *testing.T) {
	cases := []struct{ class, name, want string }{
		{"control", "plc_stop", TechniqueChangeOperatingMode},
		{"control", "umas_start_plc", TechniqueChangeOperatingMode},
		{"control", "plc_control", TechniqueChangeOperatingMode},
		{"control", "cold_restart", TechniqueDeviceRestart},
		{"control", "reinitialize_device", TechniqueDeviceRestart},
		{"control", "reset", TechniqueDeviceRestart},
		{"control", "download_block", TechniqueProgramDownload},
		{"control", "start_upload", TechniqueProgramUpload},
		{"control", "vendor_firmware_service", TechniqueSystemFirmware},
		{"control", "delete_file", TechniqueUnauthorizedCommand},
		{"write", "write_single_register", TechniqueUnauthorizedCommand},
		{"read", "read_holding_registers", ""},
		{"diagnostic", "read_device_identification", ""},
	}
	for _, c := range cases {
		if got := FunctionTechnique(c.class, c.name); got != c.want {
			t.Errorf("%s %s: %q, want %q", c.class, c.name, got, c.want)
		}
	}
}

var (
	hmi  = netip.MustParseAddr("10.0.0.10")
	plc  = netip.MustParseAddr("10.0.0.20")
	base = time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC).UnixNano()
)

func comm(at time.Duration, src, dst netip.Addr, group string, port uint16, proto, fn, class string) ingest.Communication {
	return ingest.Communication{
		FirstNanos: base + int64(at), LastNanos: base + int64(at), Device: src.String(), Group: group,
		SrcIP: src, DstIP: dst, Transport: 6, SrcPort: 40000, DstPort: port, Protocol: proto,
		Function: fn, FunctionClass: class, Packets: 1,
	}
}

func detectComms(t *testing.T, d *NetworkDetector, comms ...ingest.Communication) []Alert {
	t.Helper()
	var out Output
	d.DetectBatch(&ingest.Batch{Comms: comms}, &out)
	return out.Alerts
}

// TestNetworkNovelty: what a group shows while learning is its allowlist;
// afterwards each new level is reported once with its technique.
func TestNetworkNovelty(t *testing.T) {
	cfg := DefaultNetworkConfig()
	cfg.Learning = 10 * time.Minute
	d, err := NewNetworkDetector(cfg, ingest.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	g := "plant-a"
	if a := detectComms(t, d,
		comm(0, hmi, plc, g, 502, "modbus", "", ""),
		comm(time.Second, hmi, plc, g, 502, "modbus", "read_holding_registers", "read")); len(a) != 0 {
		t.Fatalf("alerts while learning: %+v", a)
	}
	// After learning: the known read is quiet, a write is new.
	a := detectComms(t, d,
		comm(20*time.Minute, hmi, plc, g, 502, "modbus", "read_holding_registers", "read"),
		comm(20*time.Minute, hmi, plc, g, 502, "modbus", "write_single_register", "write"))
	if len(a) != 1 || a[0].Behavior != "new_function:write_single_register" || a[0].Technique != TechniqueUnauthorizedCommand ||
		a[0].SrcIP != "10.0.0.10" || a[0].DstIP != "10.0.0.20" || a[0].DstPort != 502 || a[0].Transport != "tcp" {
		t.Fatalf("write: %+v", a)
	}
	// Reported once: the same write again is quiet.
	if a := detectComms(t, d, comm(21*time.Minute, hmi, plc, g, 502, "modbus", "write_single_register", "write")); len(a) != 0 {
		t.Errorf("repeat reported: %+v", a)
	}
	// A new service on a known edge, a new edge, a new asset.
	a = detectComms(t, d,
		comm(22*time.Minute, hmi, plc, g, 102, "s7comm", "", ""),
		comm(22*time.Minute, hmi, netip.MustParseAddr("10.0.0.21"), g, 502, "modbus", "", ""),
		comm(22*time.Minute, netip.MustParseAddr("10.0.0.66"), plc, g, 502, "modbus", "", ""))
	want := []string{BehaviorNewService, BehaviorNewEdge, BehaviorNewAsset}
	if len(a) != 3 {
		t.Fatalf("got %d alerts: %+v", len(a), a)
	}
	for i, w := range want {
		if a[i].Behavior != w || a[i].Detector != DetectorNovelty {
			t.Errorf("alert %d: %s/%s, want novelty/%s", i, a[i].Detector, a[i].Behavior, w)
		}
	}
	// A group first seen after the network learned is protecting at once.
	a = detectComms(t, d, comm(30*time.Minute, netip.MustParseAddr("192.168.9.9"), plc, "unmanaged/192.168.9.0/24", 502, "modbus", "", ""))
	if len(a) != 1 || a[0].Behavior != BehaviorNewAsset {
		t.Errorf("late group: %+v", a)
	}
}

// TestNetworkEvents maps the extractor's findings to alerts and honours
// the switches.
func TestNetworkEvents(t *testing.T) {
	events := []ingest.NetEvent{
		{TimeNanos: base, Kind: "scan_ports", Device: "10.0.0.99", Group: "g", SrcIP: hmi, DstIP: plc, Transport: 6, DstPort: 22, Value: 200, Threshold: 50},
		{TimeNanos: base, Kind: "flood", Device: "10.0.0.20", Group: "g", DstIP: plc, Transport: 6, DstPort: 502, Value: 2000, Threshold: 500},
		{TimeNanos: base, Kind: "malformed", Device: "10.0.0.10", Group: "g", Protocol: "dnp3", Detail: "dnp3 link header crc mismatch", Value: 3},
		{TimeNanos: base, Kind: "unknown_asset", Device: "10.0.0.66", Group: "g", Value: 1},
		{TimeNanos: base, Kind: "something_else", Device: "x"},
	}
	d, _ := NewNetworkDetector(DefaultNetworkConfig(), ingest.NewRegistry(), nil)
	var out Output
	d.DetectBatch(&ingest.Batch{Events: events}, &out)
	want := []struct{ detector, behavior, technique string }{
		{DetectorScan, BehaviorScanPorts, TechniqueRemoteDiscovery},
		{DetectorFlood, BehaviorFlood, TechniqueDenialOfService},
		{DetectorMalformed, "malformed_dnp3", ""},
		{DetectorNovelty, BehaviorUnknownAsset, ""},
	}
	if len(out.Alerts) != len(want) {
		t.Fatalf("%d alerts: %+v", len(out.Alerts), out.Alerts)
	}
	for i, w := range want {
		a := out.Alerts[i]
		if a.Detector != w.detector || a.Behavior != w.behavior || a.Technique != w.technique {
			t.Errorf("alert %d: %s/%s %s, want %s/%s %s", i, a.Detector, a.Behavior, a.Technique, w.detector, w.behavior, w.technique)
		}
	}
	if a := out.Alerts[0]; a.Observed != 200 || a.Upper != 50 || a.Score != 4 || a.DstPort != 22 {
		t.Errorf("scan alert values: %+v", a)
	}
	cfg := DefaultNetworkConfig()
	cfg.Scans, cfg.Floods, cfg.Malformed, cfg.UnknownAssets = false, false, false, false
	d, _ = NewNetworkDetector(cfg, ingest.NewRegistry(), nil)
	out.Reset()
	d.DetectBatch(&ingest.Batch{Events: events}, &out)
	if len(out.Alerts) != 0 {
		t.Errorf("disabled findings alerted: %+v", out.Alerts)
	}
}

// New control functions that change what a controller does are high
// severity before any asset criticality; writes medium-high; a new read
// or edge keeps the novelty base.
func TestNoveltyFunctionSeverity(t *testing.T) {
	reg := ingest.NewRegistry()
	ncfg := DefaultNetworkConfig()
	ncfg.Learning = 10 * time.Minute
	nd, err := NewNetworkDetector(ncfg, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	sink := &collectSink{}
	cfg := DefaultConfig()
	cfg.RateLimit.Enabled = false
	eng, err := NewEngine(cfg, Deps{Registry: reg, Baseline: baseline.NewStore(testBaselineConfig(), reg), Sink: sink, Extra: []BatchDetector{nd}})
	if err != nil {
		t.Fatal(err)
	}
	process := func(comms ...ingest.Communication) {
		t.Helper()
		b := ingest.NewBatch(nil, nil)
		b.Comms = comms
		if err := eng.Process(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	g := "plant-a"
	process(comm(0, hmi, plc, g, 102, "s7comm", "read_var", "read"))
	at := 20 * time.Minute
	cases := []struct {
		fn, class string
		want      int
	}{
		{"plc_stop", "control", 8},
		{"cold_restart", "control", 8},
		{"download_block", "control", 8},
		{"vendor_firmware_service", "control", 8},
		{"delete_file", "control", 7},
		{"write_var", "write", 7},
		{"start_upload", "control", cfg.Severity.Base[DetectorNovelty]},
	}
	for _, c := range cases {
		process(comm(at, hmi, plc, g, 102, "s7comm", c.fn, c.class))
		at += time.Minute
	}
	for _, c := range cases {
		a := sink.find(DetectorNovelty, BehaviorNewFunction+":"+c.fn, "", StateAlarm)
		if len(a) != 1 || a[0].Severity != c.want {
			t.Errorf("new %s function %s: want one alarm at severity %d:\n%s", c.class, c.fn, c.want, sink.dump())
		}
	}
	process(comm(at, netip.MustParseAddr("10.0.0.66"), plc, g, 102, "s7comm", "", ""))
	if a := sink.find(DetectorNovelty, BehaviorNewAsset, "", StateAlarm); len(a) != 1 || a[0].Severity != cfg.Severity.Base[DetectorNovelty] {
		t.Errorf("new asset: want severity %d:\n%s", cfg.Severity.Base[DetectorNovelty], sink.dump())
	}
}
