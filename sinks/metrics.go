package sinks

import (
	"fmt"

	"github.com/VictoriaMetrics/metrics"
)

// sinkStats are the counters every sink keeps, labelled by sink name, on
// the default VictoriaMetrics set that /metrics exposes.
type sinkStats struct {
	delivered *metrics.Counter // items the destination accepted
	failed    *metrics.Counter // items reported back as not accepted
	retries   *metrics.Counter // attempts after the first, per item batch
	truncated *metrics.Counter // syslog messages cut to the transport's size limit
	pending   *metrics.Gauge   // items of the current write not accepted yet, while the fan-out retries
	drills    *metrics.Counter // drill alerts the destination accepted (vigil drill reads it)
}

func newSinkStats(name string) *sinkStats {
	return &sinkStats{
		delivered: metrics.GetOrCreateCounter(fmt.Sprintf(`vigil_sink_delivered_total{sink=%q}`, name)),
		failed:    metrics.GetOrCreateCounter(fmt.Sprintf(`vigil_sink_failed_total{sink=%q}`, name)),
		retries:   metrics.GetOrCreateCounter(fmt.Sprintf(`vigil_sink_retries_total{sink=%q}`, name)),
		truncated: metrics.GetOrCreateCounter(fmt.Sprintf(`vigil_sink_truncated_total{sink=%q}`, name)),
		pending:   metrics.GetOrCreateGauge(fmt.Sprintf(`vigil_sink_pending_items{sink=%q}`, name), nil),
		drills:    metrics.GetOrCreateCounter(fmt.Sprintf(`vigil_drill_alerts_delivered_total{sink=%q}`, name)),
	}
}
