package detect

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// parseDetect decodes a "detect" section strictly over the defaults, as
// cmd/vigil does for the whole file.
func parseDetect(t *testing.T, src string) (Config, error) {
	t.Helper()
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader([]byte(src)))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

const fullDetectYAML = `
self:
  threshold: 5
  direction: up
  datapoints_to_alarm: 3
peer:
  statistic: p99
  min_score: 1.5
metrics:
  msgs_sent: {direction: down, threshold: 8}
  auth_failures: {disable_peer: true, technique: T1110}
rules:
  - name: auth-bruteforce
    metric: auth_failures
    comparison_operator: greater-than
    value: 10
    duration: 5m
    consecutive_datapoints_to_clear: 2
    severity: 8
  - name: allowed-ports
    metric: listening_tcp_ports
    comparison_operator: not-in-port-set
    ports: [22, 502]
    groups: ["plant-a/*"]
  - name: no-internet
    metric: remote_addrs
    comparison_operator: not-in-cidr-set
    cidrs: [10.0.0.0/8, "fd00::/8"]
silence: {missed_reports: 3, min_reports: 5, min_interval: 10s}
identity: {window: 15m, max_src_ips: 2}
fleet: {window: 5m, period: 15m, threshold: 3}
alarm: {repeat_window: 30m}
suppress:
  - {device: "lab-*", reason: test bench}
  - {group: "plant-b/*", behavior: "bytes_*", until: "2026-12-01T00:00:00Z"}
maintenance:
  - {name: rollout, group: "plant-a/*", start: "2026-11-21T02:00:00Z", end: "2026-11-21T04:00:00Z"}
  - {name: weekly, weekly: "sat,sun 01:00-03:00"}
rate_limit: {burst: 20, refill: 30s}
severity:
  base: {self: 5}
  criticality: {safety-critical: 3}
quarantine:
  enabled: true
  detectors: [identity, rule]
  min_severity: 8
  target_group: "isolated-{group}"
  max_group_fraction: 0.05
  max_per_minute: 2
  release_after_clear_datapoints: 10
  expiry: 12h
`

func TestConfigFullExample(t *testing.T) {
	cfg, err := parseDetect(t, fullDetectYAML)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Self.Threshold != 5 || cfg.Self.ToAlarm != 3 || cfg.Self.ToClear != 3 || cfg.Peer.Statistic != "p99" {
		t.Fatalf("self/peer %+v %+v", cfg.Self, cfg.Peer)
	}
	if r := cfg.Rules[0]; r.Duration != 5*time.Minute || *r.Value != 10 || r.ToAlarm != 1 || r.ToClear != 2 || r.Aggregation != "sum" {
		t.Fatalf("rule defaults %+v", r)
	}
	if cfg.Rules[1].Aggregation != "last" {
		t.Fatalf("a rule without duration aggregates with last, got %q", cfg.Rules[1].Aggregation)
	}
	if cfg.Silence.MinInterval != 10*time.Second || cfg.Fleet.Period != 15*time.Minute || cfg.Quarantine.Expiry != 12*time.Hour {
		t.Fatalf("durations %+v %+v", cfg.Silence, cfg.Fleet)
	}
	// maps merge over the defaults
	if cfg.Severity.Base[DetectorSelf] != 5 || cfg.Severity.Base[DetectorRule] != 5 || cfg.Severity.Criticality["high"] != 1 {
		t.Fatalf("severity %+v", cfg.Severity)
	}
	if !cfg.Maintenance[1].active(time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC).UnixNano()) || // Sunday 02:00
		cfg.Maintenance[1].active(time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC).UnixNano()) { // Monday
		t.Fatal("weekly window")
	}
	if _, err := NewEngine(cfg, Deps{}); err == nil || !strings.Contains(err.Error(), "required") {
		t.Fatalf("engine without deps: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown key", "self: {treshold: 3}", "field treshold not found"},
		{"unknown rule key", "rules: [{name: a, metric: m, comparison_operator: greater-than, value: 1, durationSeconds: 300}]", "field durationSeconds not found"},
		{"bad duration", "fleet: {window: 5 minutes}", "time.Duration"},
		{"bad direction", "metrics: {cpu: {direction: sideways}}", "metrics.cpu.direction is \"sideways\": use up, down or both"},
		{"bad statistic", "peer: {statistic: p90}", "unknown statistic \"p90\""},
		{"threshold", "self: {threshold: 0}", "self.threshold is 0"},
		{"rule operator", "rules: [{name: a, metric: m, comparison_operator: gt, value: 1}]", "unknown comparison_operator \"gt\""},
		{"rule value", "rules: [{name: a, metric: m, comparison_operator: less-than}]", "needs a numeric value"},
		{"rule cidr", "rules: [{name: a, metric: m, comparison_operator: in-cidr-set, cidrs: [10.0.0.0/33]}]", "cannot parse cidr \"10.0.0.0/33\""},
		{"rule port", "rules: [{name: a, metric: m, comparison_operator: in-port-set, ports: [70000]}]", "port 70000 is out of range"},
		{"rule name", "rules: [{metric: m, comparison_operator: less-than, value: 1}]", "missing name"},
		{"dup rule", "rules: [{name: a, metric: m, comparison_operator: less-than, value: 1}, {name: a, metric: n, comparison_operator: less-than, value: 1}]", "duplicate rule name \"a\""},
		{"rule aggregation", "rules: [{name: a, metric: m, comparison_operator: less-than, value: 1, duration: 1m, aggregation: p50}]", "aggregation \"p50\""},
		{"set duration", "rules: [{name: a, metric: m, comparison_operator: in-port-set, ports: [1], duration: 1m}]", "drop duration"},
		{"bad technique", "rules: [{name: a, metric: m, comparison_operator: less-than, value: 1, technique: bruteforce}]", "ATT&CK technique id"},
		{"bad glob", "suppress: [{device: \"[\"}]", "not a valid glob"},
		{"empty suppression", "suppress: [{reason: x}]", "would silence everything"},
		{"bad until", "suppress: [{device: x, until: tomorrow}]", "cannot parse until \"tomorrow\""},
		{"maintenance times", "maintenance: [{name: m, start: \"2026-11-21T04:00:00Z\", end: \"2026-11-21T02:00:00Z\"}]", "is not after start"},
		{"maintenance weekly", "maintenance: [{name: m, weekly: \"someday 1-2\"}]", "cannot parse weekly"},
		{"maintenance none", "maintenance: [{name: m}]", "needs start and end"},
		{"rate limit", "rate_limit: {burst: 0}", "burst must be at least 1"},
		{"fleet period", "fleet: {window: 5m, period: 1m}", "period at least one window"},
		{"severity", "severity: {base: {self: 11}}", "severity.base.self is 11"},
		{"criticality", "severity: {criticality: {extreme: 3}}", "unknown criticality \"extreme\""},
		{"quarantine detector", "quarantine: {enabled: true, detectors: [magic]}", "unknown detector \"magic\""},
		{"quarantine fraction", "quarantine: {enabled: true, max_group_fraction: 2}", "max_group_fraction is 2"},
		{"quarantine mode", "quarantine: {enabled: true, mode: yolo}", "quarantine.mode is \"yolo\""},
		{"identity", "identity: {max_src_ips: 0}", "identity: window must be positive"},
		{"silence", "silence: {missed_reports: 0}", "silence: missed_reports must be at least 1"},
		{"clock skew", "clock: {max_skew: -1m}", "clock.max_skew is -1m0s"},
		{"clock lateness", "clock: {max_lateness: 0s}", "clock.max_lateness is 0s"},
		{"clock confirm", "clock: {confirm_rows: 1}", "clock.confirm_rows is 1: use 2 to 8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseDetect(t, c.yaml)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestFormatValue(t *testing.T) {
	cases := map[[2]string]string{
		{"bytes_out", "9400000"}: "9.4 MB", {"bytes_out", "812"}: "812 B", {"cpu", "12"}: "12",
		{"cpu", "0.35"}: "0.35", {"msgs", "1234"}: "1.2k", {"temp", "45.55"}: "45.5",
	}
	for in, want := range cases {
		var v float64
		if err := yaml.Unmarshal([]byte(in[1]), &v); err != nil {
			t.Fatal(err)
		}
		if got := formatValue(in[0], v); got != want {
			t.Errorf("formatValue(%s, %v) = %q, want %q", in[0], v, got, want)
		}
	}
	msg := deviationMessage("plc-17", "plant-a/s7-1500", "bytes_out", 9.4e6, 0.8e6, "p99", 1.1e6)
	if want := "plc-17 (plant-a/s7-1500) bytes_out 9.4 MB, 12× its usual 800 kB (p99 of peers 1.1 MB)"; msg != want {
		t.Fatalf("message\n got %q\nwant %q", msg, want)
	}
}
