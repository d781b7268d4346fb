package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"

	"github.com/VictoriaMetrics/metrics"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/detect"
)

// instanceMetrics are the engine's and the baseline store's figures on
// /metrics. Neither may be read while the engine judges, so they are
// copied on the consumer's engine goroutine (SampleBetweenBatches) into
// the instance's set, which the HTTP handler reads.
type instanceMetrics struct {
	set                                *metrics.Set
	rows, notLearned, cleared          *metrics.Counter
	suppressed, maintenance            *metrics.Counter
	rateLimited, folded                *metrics.Counter
	rejectedSchema, rejectedSetMember  *metrics.Counter
	rejectedFuture, rejectedUnclocked  *metrics.Counter
	rejectedDeviceCap, devicesEvicted  *metrics.Counter
	lateRows                           *metrics.Counter
	unlearnable                        *metrics.Counter
	devices, groups, learning, names   *metrics.Gauge
	deviceBytes, peerSummaries, commKs *metrics.Gauge

	alarms     map[string]*metrics.Counter // by detector
	quarantine map[string]*metrics.Counter // by action
	severity   [len(detect.Stats{}.Severity)]*metrics.Counter
}

// publishInstanceMetrics makes inst's consumer copy the engine's, the
// store's and the network detectors' figures into inst.metrics.Set between
// batches. Call it before the consumer runs; calling it again is harmless.
func publishInstanceMetrics(inst *instance) {
	inst.metrics.SampleBetweenBatches(instanceSampler(inst))
}

// instanceSampler returns the function that copies inst's figures into
// inst.metrics.Set; the series exist, at zero, once it is made.
func instanceSampler(inst *instance) func() {
	im := newInstanceMetrics(inst.metrics.Set)
	var nm *networkMetrics
	if inst.network != nil {
		nm = newNetworkMetrics(inst.metrics.Set)
	}
	return func() {
		im.publish(inst.engine.Stats(), inst.pipe.StoreStats())
		if nm != nil {
			nm.publish(inst.network.Stats())
		}
	}
}

// networkMetrics are the network detectors' counters: what they folded
// into flood incidents and what their bounded tables refused.
type networkMetrics struct {
	floods, foldedSources, foldedUnlearned *metrics.Counter
	scanQuiet, scanners, names, unknown    *metrics.Counter
}

func newNetworkMetrics(s *metrics.Set) *networkMetrics {
	return &networkMetrics{
		floods:          s.GetOrCreateCounter("vigil_network_flood_incidents_total"),
		foldedSources:   s.GetOrCreateCounter("vigil_network_folded_sources_total"),
		foldedUnlearned: s.GetOrCreateCounter("vigil_network_folded_unlearned_total"),
		scanQuiet:       s.GetOrCreateCounter("vigil_network_scan_quiet_total"),
		scanners:        s.GetOrCreateCounter("vigil_network_scanners_refused_total"),
		names:           s.GetOrCreateCounter("vigil_network_names_refused_total"),
		unknown:         s.GetOrCreateCounter("vigil_network_unknown_assets_refused_total"),
	}
}

func (nm *networkMetrics) publish(st detect.NetworkStats) {
	nm.floods.Set(uint64(st.FloodIncidents))
	nm.foldedSources.Set(uint64(st.FoldedSources))
	nm.foldedUnlearned.Set(uint64(st.FoldedUnlearned))
	nm.scanQuiet.Set(uint64(st.ScanQuiet))
	nm.scanners.Set(uint64(st.ScannersRefused))
	nm.names.Set(uint64(st.NamesRefused))
	nm.unknown.Set(uint64(st.UnknownRefused))
}

const quarantineSeries = `vigil_quarantine_events_total{action=%q}`

func newInstanceMetrics(s *metrics.Set) *instanceMetrics {
	g := func(name string) *metrics.Gauge { return s.GetOrCreateGauge(name, nil) }
	im := &instanceMetrics{
		set:               s,
		rows:              s.GetOrCreateCounter("vigil_engine_rows_total"),
		notLearned:        s.GetOrCreateCounter("vigil_engine_rows_not_learned_total"),
		cleared:           s.GetOrCreateCounter("vigil_alarms_cleared_total"),
		suppressed:        s.GetOrCreateCounter(`vigil_alarms_withheld_total{reason="suppressed"}`),
		maintenance:       s.GetOrCreateCounter(`vigil_alarms_withheld_total{reason="maintenance"}`),
		rateLimited:       s.GetOrCreateCounter(`vigil_alarms_withheld_total{reason="rate_limited"}`),
		folded:            s.GetOrCreateCounter(`vigil_alarms_withheld_total{reason="folded"}`),
		rejectedSchema:    s.GetOrCreateCounter(`vigil_engine_rejected_total{reason="schema"}`),
		rejectedSetMember: s.GetOrCreateCounter(`vigil_engine_rejected_total{reason="set_member"}`),
		rejectedFuture:    s.GetOrCreateCounter(`vigil_engine_rejected_total{reason="future_time"}`),
		rejectedUnclocked: s.GetOrCreateCounter(`vigil_engine_rejected_total{reason="unclocked_time"}`),
		rejectedDeviceCap: s.GetOrCreateCounter(`vigil_engine_rejected_total{reason="device_cap"}`),
		devicesEvicted:    s.GetOrCreateCounter("vigil_engine_devices_evicted_total"),
		lateRows:          s.GetOrCreateCounter("vigil_engine_rows_late_total"),
		unlearnable:       s.GetOrCreateCounter("vigil_state_unlearnable_values_total"),
		devices:           g("vigil_state_devices"),
		groups:            g("vigil_state_groups"),
		learning:          g("vigil_state_learning_groups"),
		names:             g("vigil_state_metrics"),
		deviceBytes:       g("vigil_state_device_bytes"),
		peerSummaries:     g("vigil_state_peer_summaries"),
		commKs:            g("vigil_state_comm_keys"),
		alarms:            map[string]*metrics.Counter{},
		quarantine:        map[string]*metrics.Counter{},
	}
	// Every severity and quarantine action exists from the start, at zero,
	// so that increase() over them is 0 rather than nothing before the
	// first event.
	for sev := range im.severity {
		im.severity[sev] = s.GetOrCreateCounter(fmt.Sprintf(`vigil_alarms_by_severity_total{severity=%q}`, detect.SeverityName(sev)))
	}
	for _, a := range []string{detect.ActionQuarantine, detect.ActionRelease, detect.ActionRecommend} {
		counterFor(s, im.quarantine, quarantineSeries, a)
	}
	return im
}

// publish copies st and bs. Severities share a counter per name, so the
// counters are set from sums rather than added to.
func (im *instanceMetrics) publish(st detect.Stats, bs baseline.Stats) {
	im.rows.Set(uint64(st.Rows))
	im.notLearned.Set(uint64(st.NotLearned))
	im.cleared.Set(uint64(st.Cleared))
	im.suppressed.Set(uint64(st.Suppressed))
	im.maintenance.Set(uint64(st.Maintenance))
	im.rateLimited.Set(uint64(st.RateLimited))
	im.folded.Set(uint64(st.Folded))
	im.rejectedSchema.Set(uint64(st.BadBatches))
	im.rejectedSetMember.Set(uint64(st.BadSetMembers))
	im.rejectedFuture.Set(uint64(st.FutureRows))
	im.rejectedUnclocked.Set(uint64(st.UnclockedRows))
	im.rejectedDeviceCap.Set(uint64(st.DeviceCapRows))
	im.devicesEvicted.Set(uint64(st.DevicesEvicted))
	im.lateRows.Set(uint64(st.LateRows))
	for d, n := range st.Alerts {
		counterFor(im.set, im.alarms, `vigil_alarms_total{detector=%q}`, d).Set(uint64(n))
	}
	for a, n := range st.Quarantine {
		counterFor(im.set, im.quarantine, quarantineSeries, a).Set(uint64(n))
	}
	sums := map[*metrics.Counter]uint64{}
	for sev, n := range st.Severity {
		sums[im.severity[sev]] += uint64(n)
	}
	for c, n := range sums {
		c.Set(n)
	}

	im.unlearnable.Set(bs.Unlearnable)
	im.devices.Set(float64(bs.Devices))
	im.groups.Set(float64(bs.Groups))
	im.learning.Set(float64(bs.LearningGroups))
	im.names.Set(float64(bs.Metrics))
	im.deviceBytes.Set(float64(bs.DeviceBytes))
	im.peerSummaries.Set(float64(bs.PeerSummaries))
	im.commKs.Set(float64(bs.CommSetKeys))
}

// counterFor returns the counter of label value v, creating it once.
func counterFor(s *metrics.Set, cache map[string]*metrics.Counter, format, v string) *metrics.Counter {
	c := cache[v]
	if c == nil {
		c = s.GetOrCreateCounter(fmt.Sprintf(format, v))
		cache[v] = c
	}
	return c
}

// writeMetrics writes every registered set in the Prometheus text format,
// with the HELP text of metricHelp: the library writes HELP lines without
// text.
func writeMetrics(w io.Writer) {
	var buf bytes.Buffer
	metrics.WritePrometheus(&buf, true)
	bw := bufio.NewWriter(w)
	for line := range bytes.Lines(buf.Bytes()) {
		name, ok := bytes.CutPrefix(line, []byte("# HELP "))
		name = bytes.TrimSuffix(name, []byte("\n"))
		if help := metricHelp[string(name)]; ok && help != "" {
			fmt.Fprintf(bw, "# HELP %s %s\n", name, help)
			continue
		}
		bw.Write(line)
	}
	bw.Flush()
}

// metricHelp is the HELP text of every Vigil metric family, by name.
// docs/operations.md lists the same families; a test keeps the two, and
// what /metrics exports, in step.
var metricHelp = map[string]string{
	// Input: the Kafka consumer.
	"vigil_kafka_records_total":                       "Records fetched from the topic, redeliveries included.",
	"vigil_kafka_bytes_total":                         "Bytes of record values fetched from the topic.",
	"vigil_kafka_lag":                                 "Records between the last batch fetched and the partition's high watermark, as of that batch.",
	"vigil_kafka_decode_errors_total":                 "Records rejected by the decoder, by reason; each is sent to the dead-letter topic if one is set.",
	"vigil_kafka_dead_letters_total":                  "Rejected records written to the dead-letter topic, by topic and reason (the decoder's reasons, as in vigil_kafka_decode_errors_total, or the engine's future_time, unclocked_time, device_cap).",
	"vigil_kafka_records_covered_by_state_total":      "Records skipped after a restore because the restored state already includes them.",
	"vigil_kafka_batch_latency_seconds":               "Seconds from a batch's first record fetched to its acknowledgement (linger, engine queue, judging, delivery to the sinks).",
	"vigil_kafka_engine_queue_depth":                  "Batches waiting for the engine.",
	"vigil_kafka_nacked_batches_total":                "Batches acknowledged with an error (not judged or not delivered); they are judged or delivered again.",
	"vigil_kafka_commits_total":                       "Offset commits that succeeded.",
	"vigil_kafka_commit_errors_total":                 "Offset commits that failed; the next commit covers their offsets.",
	"vigil_kafka_rebalances_total":                    "Consumer group generations this instance joined.",
	"vigil_kafka_assigned_partitions":                 "Input partitions assigned to this instance.",
	"vigil_kafka_event_time_alignment_timeouts_total": "Batches sent after waiting 5 s for a slower partition's event time (max_event_time_skew), and records merged after waiting 5 s for a caught-up source (repartition_by_group).",
	"vigil_kafka_repartitioned_records_total":         "Records the repartition stage wrote to the by-group topic (repartition_by_group).",
	"vigil_kafka_repartition_write_errors_total":      "Failed writes to the by-group topic, retried (repartition_by_group).",
	"vigil_kafka_repartition_group_changes_total":     "Devices the repartition stage saw report a new group: they move to its partition (repartition_by_group).",
	"vigil_kafka_repartition_duplicates_total":        "Records the merge dropped because the repartition stage wrote them twice (repartition_by_group).",
	"vigil_kafka_state_devices":                       "Devices of the assigned partitions whose state follows them through the changelog.",
	"vigil_kafka_state_snapshot_bytes":                "Bytes of device state in the last partition checkpoint written to the changelog.",
	"vigil_kafka_changelog_records_total":             "Records written to the state changelog.",
	"vigil_kafka_changelog_errors_total":              "Writes to the state changelog that failed; the next checkpoint writes every device again.",
	"vigil_kafka_changelog_restore_seconds":           "Seconds to restore a partition's device state from the changelog.",
	"vigil_kafka_group_summaries_published_total":     "Group summaries published to peers on the group state topic.",
	"vigil_kafka_group_summaries_merged_total":        "Group summaries from peers merged into the local view.",

	// The engine.
	"vigil_engine_rows_total":             "Rows (one device's report at one time) judged.",
	"vigil_engine_rows_not_learned_total": "Rows judged but not learned: the device was in alarm or the row breached.",
	"vigil_engine_rejected_total":         "Input the engine could not use, by reason: schema (a record without the observation schema), set_member (a value a set rule could not parse), future_time (dated further ahead of the stream or the wall clock than clock.max_skew, not confirmed), unclocked_time (came before the stream had a clock, not confirmed), device_cap (rows of a new device refused past detect.max_devices).",
	"vigil_engine_devices_evicted_total":  "Devices evicted past detect.max_devices to make room for new ones (detect.when_full: evict_idle): the longest idle without an open alarm or quarantine.",
	"vigil_engine_rows_late_total":        "Rows judged but not learned because they were further behind their partition than clock.max_lateness.",
	"vigil_alarms_total":                  "Alarms sent, by detector.",
	"vigil_alarms_by_severity_total":      "Alarms sent, by severity (low 0-3, medium 4-6, high 7-8, critical 9-10).",
	"vigil_alarms_cleared_total":          "Clear alerts sent (an alarm ended).",
	"vigil_alarms_withheld_total":         "Alarms raised but not sent, by reason: suppressed, maintenance, rate_limited, folded (a repeat folded into an earlier alert).",
	"vigil_quarantine_events_total":       "Quarantine events sent, by action (quarantine, release, recommend).",

	"vigil_batch_double_acks_total": "Batches acknowledged a second time; each is a bug (the second acknowledgement is ignored).",

	// The packet path: one series per packet topic (source), its
	// partitions' extractors adding to it.
	"vigil_packets_total":                                "Packets read from the topic, by decode outcome: decoded, unknown_protocol, malformed, skipped_link_type.",
	"vigil_packet_bytes_total":                           "Bytes of the packets read (as captured).",
	"vigil_packet_ot_pdus_total":                         "OT protocol PDUs decoded.",
	"vigil_packet_ot_malformed_pdus_total":               "OT protocol PDUs that did not parse.",
	"vigil_packet_ipv4_fragments_total":                  "IPv4 fragments read.",
	"vigil_packet_ipv4_reassembled_total":                "IPv4 datagrams reassembled from fragments.",
	"vigil_packet_ipv4_fragments_dropped_total":          "IPv4 datagrams dropped incomplete (timed out, table full) or fragments past 64 KiB.",
	"vigil_packet_late_total":                            "Packets older than the window being filled, counted in it.",
	"vigil_packet_tcp_retransmissions_total":             "TCP segments already seen.",
	"vigil_packet_tcp_conflicting_retransmissions_total": "TCP retransmissions whose bytes differ from those first delivered at the same sequence numbers.",
	"vigil_packet_tcp_gaps_total":                        "TCP segments after a hole in the stream: reassembly restarted.",
	"vigil_packet_tcp_unsynced_segments_total":           "TCP segments skipped after a hole until one starts a PDU.",
	"vigil_packet_tcp_half_open_flows_total":             "TCP flows forgotten before both ends took part (unanswered, refused or forged SYNs, backscatter); their sources became no asset.",
	"vigil_packet_reassembly_overflow_total":             "PDUs longer than packets.max_stream_buffer, skipped.",
	"vigil_packet_flows_evicted_total":                   "Flows evicted because the flow table was full (packets.max_flows).",
	"vigil_packet_hosts_evicted_total":                   "Hosts evicted because the host table was full (packets.max_hosts).",
	"vigil_packet_non_asset_hosts_evicted_total":         "Evicted hosts that never proved they exist (scan targets, forged addresses); also in vigil_packet_hosts_evicted_total.",
	"vigil_packet_communications_dropped_total":          "Communications not reported because the batch already held packets.max_flows.",
	"vigil_packet_findings_dropped_total":                "Packet findings (scans, floods, malformed PDUs) not reported because the batch was full.",
	"vigil_packet_set_members_dropped_total":             "Set members (remote addresses, listening ports) not reported because the batch was full.",
	"vigil_packet_distinct_overflow_total":               "Distinct counts (peers, ports) counted without deduplication because the window's table was full.",
	"vigil_packet_time_outliers_total":                   "Packets whose timestamp lay more than packets.max_time_jump from their neighbours'; each was counted at the previous packet's time.",
	"vigil_packet_time_jumps_total":                      "Steps of the capture clock beyond packets.max_time_jump that the packets after confirmed, taken as a gap.",
	"vigil_packet_arp_rebindings_total":                  "ARP messages that bound a known IP address to another MAC.",
	"vigil_packet_arp_bindings_evicted_total":            "IP-to-MAC bindings forgotten because the ARP table was full.",
	"vigil_packet_scan_states_evicted_total":             "Per-host reconnaissance state evicted because the scan table was full.",
	"vigil_packet_scan_sketches_refused_total":           "Distinct counts of scan detection left exact (saturated) because the sketch budget was spent.",
	"vigil_packet_probes_untracked_total":                "Connection attempts never checked for an answer because the probe queue was full.",

	// The network detectors.
	"vigil_network_flood_incidents_total":        "Flood alerts, each folding many new sources toward one destination into one alert.",
	"vigil_network_folded_sources_total":         "New sources folded into flood alerts instead of being reported one by one.",
	"vigil_network_folded_unlearned_total":       "Folded communications of groups never seen, left unlearned so that forged sources take no memory.",
	"vigil_network_scan_quiet_total":             "Novelty alerts of scanning sources not sent: their scan alarm stands for them.",
	"vigil_network_scanners_refused_total":       "Scanning sources not remembered because the scanner table was full; their novelty alerts are sent one by one.",
	"vigil_network_names_refused_total":          "Inventory hosts not remembered for naming flood targets because the table was full; such a target is named by its address.",
	"vigil_network_unknown_assets_refused_total": "Hosts missing from the inventory not remembered as reported because the table was full; such a host may be reported again.",

	// Baseline state.
	"vigil_state_devices":                  "Devices with baseline state held by this instance.",
	"vigil_state_groups":                   "Groups with baseline state.",
	"vigil_state_learning_groups":          "Groups still learning (not yet judging against their baseline).",
	"vigil_state_metrics":                  "Distinct metric names learned.",
	"vigil_state_device_bytes":             "Bytes held by per-device baseline state.",
	"vigil_state_peer_summaries":           "Latest group summaries held from other instances.",
	"vigil_state_comm_keys":                "Keys in the communication allowlists (network learning).",
	"vigil_state_unlearnable_values_total": "Values the baseline refused to learn (not finite, or out of range).",

	// Sinks.
	"vigil_sink_delivered_total":  "Items (alerts and quarantine events) the sink's destination accepted.",
	"vigil_sink_failed_total":     "Items a write to the sink did not get accepted; a required sink's are retried.",
	"vigil_sink_retries_total":    "Writes to the sink tried again after a failure.",
	"vigil_sink_pending_items":    "Items of the current write the sink has not accepted yet; above zero only while retrying.",
	"vigil_sink_queue_depth":      "Syslog messages queued and not yet written to the connection.",
	"vigil_sink_reconnects_total": "Syslog connections made again after a failure.",
	"vigil_sink_resent_total":     "Syslog messages written again after a reconnect (the receiver dedupes on the id).",
	"vigil_sink_truncated_total":  "Syslog messages cut to the transport's size limit.",

	// Drills.
	"vigil_drill_alerts_delivered_total": "Drill alerts the sink's destination accepted (vigil drill --metrics reads it).",
	"vigil_drill_last_success":           "1 when the last scheduled drill got every canary's alert through every sink, else 0.",
	"vigil_drill_last_duration_seconds":  "Seconds from the last scheduled drill's injection to its end.",
}
