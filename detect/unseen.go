package detect

import (
	"fmt"
	"sort"
)

// UnseenMetrics lists the settings of c that name a metric no input had:
// a per-metric override (detect.metrics.NAME), a numeric rule's metric, a
// joint metric, or a KPI of the rollout guard when it is on. seen reports whether a metric was in the input. A typo
// in a metric name otherwise fails silently: the rule never fires. Set
// rules name sets, not metrics, and are not checked here.
func (c *Config) UnseenMetrics(seen func(metric string) bool) []string {
	var out []string
	names := make([]string, 0, len(c.Metrics))
	for name := range c.Metrics {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !seen(name) {
			out = append(out, fmt.Sprintf("detect.metrics.%s: no input has a metric %q", name, name))
		}
	}
	for i, r := range c.Rules {
		switch r.ComparisonOperator {
		case OpInCIDRSet, OpNotInCIDRSet, OpInPortSet, OpNotInPortSet:
			continue
		}
		if !seen(r.Metric) {
			out = append(out, fmt.Sprintf("detect.rules[%d] (%s): no input has a metric %q; the rule never fires", i, r.Name, r.Metric))
		}
	}
	for _, m := range c.Joint.Metrics {
		if !seen(m) {
			out = append(out, fmt.Sprintf("detect.joint.metrics: no input has a metric %q", m))
		}
	}
	for i, k := range c.Rollout.KPIs {
		if c.Rollout.Enabled && !seen(k.Metric) {
			out = append(out, fmt.Sprintf("detect.rollout.kpis[%d]: no input has a metric %q; rollouts are never judged on it", i, k.Metric))
		}
	}
	return out
}
