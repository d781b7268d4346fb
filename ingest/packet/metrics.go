package packet

import (
	"fmt"

	"github.com/VictoriaMetrics/metrics"
)

// packetMetrics mirrors Stats into Prometheus counters. The hot path never
// touches them: the deltas since the last publication are added when a
// window closes, so several extractors (one per Kafka partition) can share
// the same series and the HTTP handler reads only atomics.
type packetMetrics struct {
	outcomes                     [numOutcomes]*metrics.Counter
	bytes, pdus, malformedPDUs   *metrics.Counter
	fragments, late, retransmits *metrics.Counter
	gaps, overflow               *metrics.Counter
	flowsEvicted, hostsEvicted   *metrics.Counter
	commsDropped, eventsDropped  *metrics.Counter
	distinctOverflow             *metrics.Counter
	reassembled, fragsDropped    *metrics.Counter
	unsynced                     *metrics.Counter
	halfOpen, nonAssetsEvicted   *metrics.Counter
	timeOutliers, timeJumps      *metrics.Counter
	conflictingRetransmits       *metrics.Counter
	arpRebindings, arpEvicted    *metrics.Counter
	setMembersDropped            *metrics.Counter
	scanEvicted, sketchesRefused *metrics.Counter
	probesUntracked              *metrics.Counter
	last                         Stats
}

// RegisterMetrics publishes the extractor's counters in set, labelled with
// source (e.g. "replay" or a topic), as vigil_packets_total{outcome=…} and
// vigil_packet_*_total. They are updated at every closed window and on
// Flush.
func (x *Extractor) RegisterMetrics(set *metrics.Set, source string) {
	c := func(name, extra string) *metrics.Counter {
		return set.GetOrCreateCounter(fmt.Sprintf(`%s{source=%q%s}`, name, source, extra))
	}
	m := &packetMetrics{}
	for o := range m.outcomes {
		m.outcomes[o] = c("vigil_packets_total", fmt.Sprintf(",outcome=%q", Outcome(o).String()))
	}
	m.bytes = c("vigil_packet_bytes_total", "")
	m.pdus = c("vigil_packet_ot_pdus_total", "")
	m.malformedPDUs = c("vigil_packet_ot_malformed_pdus_total", "")
	m.fragments = c("vigil_packet_ipv4_fragments_total", "")
	m.late = c("vigil_packet_late_total", "")
	m.retransmits = c("vigil_packet_tcp_retransmissions_total", "")
	m.gaps = c("vigil_packet_tcp_gaps_total", "")
	m.overflow = c("vigil_packet_reassembly_overflow_total", "")
	m.flowsEvicted = c("vigil_packet_flows_evicted_total", "")
	m.hostsEvicted = c("vigil_packet_hosts_evicted_total", "")
	m.commsDropped = c("vigil_packet_communications_dropped_total", "")
	m.eventsDropped = c("vigil_packet_findings_dropped_total", "")
	m.distinctOverflow = c("vigil_packet_distinct_overflow_total", "")
	m.reassembled = c("vigil_packet_ipv4_reassembled_total", "")
	m.fragsDropped = c("vigil_packet_ipv4_fragments_dropped_total", "")
	m.unsynced = c("vigil_packet_tcp_unsynced_segments_total", "")
	m.halfOpen = c("vigil_packet_tcp_half_open_flows_total", "")
	m.nonAssetsEvicted = c("vigil_packet_non_asset_hosts_evicted_total", "")
	m.timeOutliers = c("vigil_packet_time_outliers_total", "")
	m.timeJumps = c("vigil_packet_time_jumps_total", "")
	m.conflictingRetransmits = c("vigil_packet_tcp_conflicting_retransmissions_total", "")
	m.arpRebindings = c("vigil_packet_arp_rebindings_total", "")
	m.arpEvicted = c("vigil_packet_arp_bindings_evicted_total", "")
	m.setMembersDropped = c("vigil_packet_set_members_dropped_total", "")
	m.scanEvicted = c("vigil_packet_scan_states_evicted_total", "")
	m.sketchesRefused = c("vigil_packet_scan_sketches_refused_total", "")
	m.probesUntracked = c("vigil_packet_probes_untracked_total", "")
	x.metrics = m
}

// publishMetrics adds what changed since the last publication.
func (x *Extractor) publishMetrics() {
	m := x.metrics
	if m == nil {
		return
	}
	full := x.Stats()
	st := &full
	add := func(c *metrics.Counter, now, before int64) {
		if now > before {
			c.AddInt64(now - before)
		}
	}
	for o := range m.outcomes {
		add(m.outcomes[o], st.Outcomes[o], m.last.Outcomes[o])
	}
	add(m.bytes, st.Bytes, m.last.Bytes)
	add(m.pdus, st.PDUs, m.last.PDUs)
	add(m.malformedPDUs, st.MalformedPDUs, m.last.MalformedPDUs)
	add(m.fragments, st.Fragments, m.last.Fragments)
	add(m.late, st.Late, m.last.Late)
	add(m.retransmits, st.Retransmissions, m.last.Retransmissions)
	add(m.gaps, st.Gaps, m.last.Gaps)
	add(m.overflow, st.ReassemblyOverflow, m.last.ReassemblyOverflow)
	add(m.commsDropped, st.CommsDropped, m.last.CommsDropped)
	add(m.eventsDropped, st.EventsDropped, m.last.EventsDropped)
	add(m.distinctOverflow, st.DistinctOverflow, m.last.DistinctOverflow)
	add(m.reassembled, st.Reassembled, m.last.Reassembled)
	add(m.fragsDropped, st.FragmentsDropped, m.last.FragmentsDropped)
	add(m.unsynced, st.Unsynced, m.last.Unsynced)
	add(m.flowsEvicted, st.FlowsEvicted, m.last.FlowsEvicted)
	add(m.hostsEvicted, st.HostsEvicted, m.last.HostsEvicted)
	add(m.halfOpen, st.HalfOpenFlows, m.last.HalfOpenFlows)
	add(m.nonAssetsEvicted, st.NonAssetHostsEvicted, m.last.NonAssetHostsEvicted)
	add(m.timeOutliers, st.TimeOutliers, m.last.TimeOutliers)
	add(m.timeJumps, st.TimeJumps, m.last.TimeJumps)
	add(m.conflictingRetransmits, st.ConflictingRetransmissions, m.last.ConflictingRetransmissions)
	add(m.arpRebindings, st.ARPRebindings, m.last.ARPRebindings)
	add(m.arpEvicted, st.ARPBindingsEvicted, m.last.ARPBindingsEvicted)
	add(m.setMembersDropped, st.SetMembersDropped, m.last.SetMembersDropped)
	add(m.scanEvicted, st.ScanStatesEvicted, m.last.ScanStatesEvicted)
	add(m.sketchesRefused, st.ScanSketchesRefused, m.last.ScanSketchesRefused)
	add(m.probesUntracked, st.ProbesUntracked, m.last.ProbesUntracked)
	m.last = *st
	m.last.SkippedLinkTypes = nil
}
