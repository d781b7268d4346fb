package kafka

import (
	"fmt"
	"time"

	"github.com/VictoriaMetrics/metrics"
	kafkago "github.com/segmentio/kafka-go"
)

// Metrics are the consumer's Prometheus metrics, kept in their own set so
// that several consumers (tests, the demo) do not collide; the command
// registers the set for /metrics.
type Metrics struct {
	Set *metrics.Set

	commits, commitErrors, rebalances, nacks *metrics.Counter
	skipped, changelogWrites, changelogErrs  *metrics.Counter
	groupPublished, groupMerged              *metrics.Counter
	batchLatency, restoreSeconds             *histogram
	engineQueue, stateDevices, stateBytes    *metrics.Gauge
	assigned                                 *metrics.Gauge
	alignTimeouts                            *metrics.Counter
	// repartition_by_group: records the repartition stage wrote, its
	// failed writes, devices it saw change group, and records the mergers
	// dropped as written twice.
	repartitioned, repartitionErrors, repartitionMoves, repartitionDups *metrics.Counter

	sampler    func() // see SampleBetweenBatches
	lastSample time.Time
}

// Bucket bounds in seconds. A batch's latency runs from its first record
// fetched to its acknowledgement: batch_linger, the engine queue, judging
// and delivery to every required sink.
var (
	batchLatencyBounds = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	restoreBounds      = []float64{.01, .1, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
)

// NewMetrics returns a fresh set of consumer metrics.
func NewMetrics() *Metrics {
	s := metrics.NewSet()
	return &Metrics{
		Set:             s,
		commits:         s.NewCounter("vigil_kafka_commits_total"),
		commitErrors:    s.NewCounter("vigil_kafka_commit_errors_total"),
		rebalances:      s.NewCounter("vigil_kafka_rebalances_total"),
		nacks:           s.NewCounter("vigil_kafka_nacked_batches_total"),
		skipped:         s.NewCounter("vigil_kafka_records_covered_by_state_total"),
		changelogWrites: s.NewCounter("vigil_kafka_changelog_records_total"),
		changelogErrs:   s.NewCounter("vigil_kafka_changelog_errors_total"),
		groupPublished:  s.NewCounter("vigil_kafka_group_summaries_published_total"),
		groupMerged:     s.NewCounter("vigil_kafka_group_summaries_merged_total"),
		batchLatency:    newHistogram(s, "vigil_kafka_batch_latency_seconds", batchLatencyBounds),
		restoreSeconds:  newHistogram(s, "vigil_kafka_changelog_restore_seconds", restoreBounds),
		engineQueue:     s.NewGauge("vigil_kafka_engine_queue_depth", nil),
		stateDevices:    s.NewGauge("vigil_kafka_state_devices", nil),
		stateBytes:      s.NewGauge("vigil_kafka_state_snapshot_bytes", nil),
		assigned:        s.NewGauge("vigil_kafka_assigned_partitions", nil),
		alignTimeouts:   s.NewCounter("vigil_kafka_event_time_alignment_timeouts_total"),

		repartitioned:     s.NewCounter("vigil_kafka_repartitioned_records_total"),
		repartitionErrors: s.NewCounter("vigil_kafka_repartition_write_errors_total"),
		repartitionMoves:  s.NewCounter("vigil_kafka_repartition_group_changes_total"),
		repartitionDups:   s.NewCounter("vigil_kafka_repartition_duplicates_total"),
	}
}

// partitionMetrics are the per-partition series, created once per
// assignment so the hot path only touches pointers.
type partitionMetrics struct {
	records, bytes *metrics.Counter
	lag            *metrics.Gauge
}

func (m *Metrics) partition(topic string, p int32) partitionMetrics {
	return partitionMetrics{
		records: m.Set.GetOrCreateCounter(fmt.Sprintf(`vigil_kafka_records_total{topic=%q}`, topic)),
		bytes:   m.Set.GetOrCreateCounter(fmt.Sprintf(`vigil_kafka_bytes_total{topic=%q}`, topic)),
		lag:     m.Set.GetOrCreateGauge(fmt.Sprintf(`vigil_kafka_lag{topic=%q,partition="%d"}`, topic, p), nil),
	}
}

// dropPartition removes the partition's lag once it is no longer
// assigned here, so a revoked partition does not keep reporting the lag it
// had when it left.
func (m *Metrics) dropPartition(topic string, p int32) {
	m.Set.UnregisterMetric(fmt.Sprintf(`vigil_kafka_lag{topic=%q,partition="%d"}`, topic, p))
}

// SampleBetweenBatches makes the consumer call f on its engine goroutine,
// the only one that may read the engine's and the state's counters, so f
// can copy them into this set. f runs whenever the engine queue is empty
// (so an idle consumer shows what it last judged) and otherwise at most
// once a second. Call it before Run.
func (m *Metrics) SampleBetweenBatches(f func()) { m.sampler = f }

func (m *Metrics) sample(idle bool) {
	if m.sampler == nil {
		return
	}
	now := time.Now()
	if !idle && now.Sub(m.lastSample) < time.Second {
		return
	}
	m.lastSample = now
	m.sampler()
}

func (m *Metrics) decodeError(topic, reason string) {
	m.Set.GetOrCreateCounter(fmt.Sprintf(`vigil_kafka_decode_errors_total{topic=%q,reason=%q}`, topic, reason)).Inc()
}

// deadLettered counts msgs, written to the dead-letter topic, by the
// reason in their header.
func (m *Metrics) deadLettered(topic string, msgs []kafkago.Message) {
	for i := 0; i < len(msgs); {
		reason := string(msgs[i].Headers[0].Value) // HeaderReason: see deadLetterMessage
		n := 1
		for i+n < len(msgs) && string(msgs[i+n].Headers[0].Value) == reason {
			n++
		}
		m.Set.GetOrCreateCounter(fmt.Sprintf(`vigil_kafka_dead_letters_total{topic=%q,reason=%q}`, topic, reason)).Add(n)
		i += n
	}
}
