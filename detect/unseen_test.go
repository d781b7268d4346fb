package detect

import (
	"strings"
	"testing"
)

// TestUnseenMetrics: settings naming a metric the input never had are
// reported, those naming one it had and set rules are not.
func TestUnseenMetrics(t *testing.T) {
	v := 5.0
	cfg := DefaultConfig()
	cfg.Metrics = map[string]MetricConfig{"bytes_out": {}, "bytes_ot": {}}
	cfg.Rules = []RuleConfig{
		{Name: "brute", Metric: "auth_failurs", ComparisonOperator: OpGreaterThan, Value: &v},
		{Name: "ok", Metric: "auth_failures", ComparisonOperator: OpGreaterThan, Value: &v},
		{Name: "ports", Metric: "listening_tcp_ports", ComparisonOperator: OpNotInPortSet, Ports: []int{502}},
	}
	cfg.Joint.Metrics = []string{"flow", "current"}
	seen := map[string]bool{"bytes_out": true, "auth_failures": true, "flow": true}
	got := cfg.UnseenMetrics(func(m string) bool { return seen[m] })
	want := []string{`detect.metrics.bytes_ot`, `detect.rules[0] (brute): no input has a metric "auth_failurs"`, `detect.joint.metrics: no input has a metric "current"`}
	if len(got) != len(want) {
		t.Fatalf("got %q, want %d warnings", got, len(want))
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("warning %d: %q, want it to say %q", i, got[i], want[i])
		}
	}
}
