package detect

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/ingest"
)

// ATT&CK for ICS techniques of the network detectors.
//
//	detector   behavior                        technique
//	novelty    new_function:<name>, control:   T0858 Change Operating Mode  (stop, start, run/program mode, S7 plc_control)
//	                                           T0816 Device Restart/Shutdown (restart, reset, reinitialize)
//	                                           T0843 Program Download        (download)
//	                                           T0845 Program Upload          (upload)
//	                                           T0857 System Firmware         (firmware)
//	                                           T0855 Unauthorized Command Message (any other control or write)
//	novelty    new_asset, new_edge, new_service  "" (a new conversation is not yet a technique)
//	scan       scan_ports, scan_hosts,         T0846 Remote System Discovery
//	           scan_ports_slow, scan_hosts_slow,
//	           sweep_arp, sweep_icmp
//	scan       identify_<protocol>             T0888 Remote System Information Discovery (Modbus 0x2B/0x0E, S7 SZL, BACnet Who-Is, CIP ListIdentity)
//	scan       enumerate_<protocol>,           T0861 Point & Tag Identification (register or coil sweeps, and the
//	           exception_storm_<protocol>            exception replies a sweep of absent points draws)
//	flood      flood                           T0814 Denial of Service (also: many new sources toward one destination, folded)
//	mitm       mitm_tcp_retransmission,        T0830 Adversary-in-the-Middle (a retransmission whose payload differs,
//	           mitm_arp_rebinding                    an ARP reply that moves an IP address to another MAC)
//	malformed  malformed_<protocol>            "" (a protocol violation may be a fuzzer, an exploit or a broken device)
//	novelty    unknown_asset                   "" (inventory drift or a rogue device)
const (
	TechniqueChangeOperatingMode = "T0858"
	TechniqueDeviceRestart       = "T0816"
	TechniqueProgramDownload     = "T0843"
	TechniqueProgramUpload       = "T0845"
	TechniqueUnauthorizedCommand = "T0855"
	TechniqueRemoteDiscovery     = "T0846"
	TechniqueRemoteSystemInfo    = "T0888"
	TechniquePointIdentification = "T0861"
	TechniqueDenialOfService     = "T0814"
	TechniqueAdversaryInMiddle   = "T0830"
)

// Behaviors of the network detectors.
const (
	BehaviorNewAsset         = "new_asset"
	BehaviorNewEdge          = "new_edge"
	BehaviorNewService       = "new_service"
	BehaviorNewFunction      = "new_function" // followed by ":" and the function name
	BehaviorUnknownAsset     = "unknown_asset"
	BehaviorScanPorts        = "scan_ports"
	BehaviorScanHosts        = "scan_hosts"
	BehaviorScanPortsSlow    = "scan_ports_slow"
	BehaviorScanHostsSlow    = "scan_hosts_slow"
	BehaviorSweepARP         = "sweep_arp"
	BehaviorSweepICMP        = "sweep_icmp"
	BehaviorIdentify         = "identify"        // followed by "_" and the protocol
	BehaviorEnumerate        = "enumerate"       // followed by "_" and the protocol
	BehaviorExceptionStorm   = "exception_storm" // followed by "_" and the protocol
	BehaviorFlood            = "flood"
	BehaviorMITMRetransmit   = "mitm_tcp_retransmission"
	BehaviorMITMARPRebinding = "mitm_arp_rebinding"
	BehaviorMalformed        = "malformed" // followed by "_" and the protocol
)

// FunctionTechnique returns the ATT&CK for ICS technique for a newly seen
// OT function of class ("read", "write", "control", …) and snake_case
// name, or "" for reads, diagnostics and others.
func FunctionTechnique(class, name string) string {
	switch class {
	case "control":
		switch {
		case strings.Contains(name, "firmware"):
			return TechniqueSystemFirmware
		case strings.Contains(name, "download"):
			return TechniqueProgramDownload
		case strings.Contains(name, "upload"):
			return TechniqueProgramUpload
		case strings.Contains(name, "restart"), strings.Contains(name, "reset"),
			strings.Contains(name, "reinitialize"), strings.Contains(name, "reboot"):
			return TechniqueDeviceRestart
		case strings.Contains(name, "stop"), strings.Contains(name, "start"),
			strings.Contains(name, "run"), strings.Contains(name, "mode"),
			name == "plc_control": // S7 PI service: start, compress, copy RAM to ROM

			return TechniqueChangeOperatingMode
		}
		return TechniqueUnauthorizedCommand
	case "write":
		return TechniqueUnauthorizedCommand
	}
	return ""
}

// NetworkDetector is the BatchDetector of network batches (Batch.Comms and
// Batch.Events, made by ingest/packet): novelty against a communication
// allowlist learned per group, and alerts for the extractor's findings —
// scans, sweeps, device identification, point enumeration, floods, signs
// of an adversary in the middle, malformed OT frames, hosts missing from
// the inventory.
//
// The allowlist holds, per group of the initiating device: the devices
// (new_asset), their peers (new_edge), the services on each edge —
// transport, port and protocol — (new_service) and the OT functions used on
// each service (new_function). Each group learns for NetworkConfig.Learning
// of event time from its own first communication (baseline.CommSet);
// afterwards anything new is reported once and remembered, so an attack is
// not learned as normal and is not reported again.
//
// One attack is one incident, not one alert per packet or peer:
//   - When at least NetworkConfig.FoldSources sources never seen before
//     (new assets or edges in a protecting group, or hosts of groups first
//     seen in the window once some group has finished learning) talk to
//     one unicast destination within one batch, they make one flood alert
//     on the destination (a spoofed-source flood, backscatter) and no
//     novelty alert of their own; they are remembered (those of groups
//     never seen are not learned: forged addresses must not fill the
//     allowlist), and their unknown_asset findings of the batch are
//     dropped.
//   - A source the batch's events report scanning (scans, sweeps,
//     identification, enumeration; with NetworkConfig.Scans on) gets no
//     structural novelty alert for what it touches while its scan alarm is
//     open (detect.alarm.repeat_window after its last scan finding): the
//     scan alarm is the incident. New write and control functions are
//     still reported: their technique matters on its own.
//
// A device's further new ports or peers each make an alert here; the engine
// folds the repeats of one (detector, device, behavior) within
// alarm.repeat_window of event time into the first, so they make one alarm
// however the communications were cut into batches. Alerts come out in the
// order of the batch's communications, then its events. Every table is
// bounded; what does not fit is counted in Stats. Not safe for concurrent
// use (the Engine calls it from one goroutine).
type NetworkDetector struct {
	cfg   NetworkConfig
	reg   *ingest.Registry
	comms *baseline.CommSet

	// scanning: device of a source reported scanning -> event time until
	// which its novelty is part of the scan incident.
	scanning map[string]int64
	// servers: inventory-named hosts by address, from the communications
	// they initiate, to name a flood's target as the extractor does.
	servers map[netip.Addr]hostName
	// established: some group has finished learning, so a burst of hosts
	// of groups never seen is news rather than the network's first hour
	// (kept once true).
	established bool
	// unknown: hosts reported missing from the inventory. The packet
	// extractor reports a host once, but there is one extractor per Kafka
	// partition and consumer generation: the same host seen in two
	// partitions, or again after a rebalance (more of them on a loaded
	// machine), was reported again, so the count of alarms depended on
	// the load. Kept here, a host is reported once per process, as a
	// replay's single extractor does.
	unknown map[string]struct{}
	stats   NetworkStats

	// per batch, reused
	keys    []commKeys
	cands   []foldCand
	fold    []int32 // by communication: index into targets, or -1
	targets []foldTarget
	folded  []string // devices of the folded sources, sorted
}

// NetworkStats counts what the network detectors folded into incidents and
// what their bounded tables refused (for /metrics and the replay summary).
type NetworkStats struct {
	FloodIncidents  int64 // flood alerts made of many new sources toward one destination
	FoldedSources   int64 // new sources folded into those alerts (not reported one by one)
	FoldedUnlearned int64 // folded communications of groups never seen, left unlearned
	ScanQuiet       int64 // novelty alerts of scanning sources left to their scan alarm
	ScannersRefused int64 // scanning sources not remembered: the table was full
	NamesRefused    int64 // inventory hosts not remembered to name flood targets: the table was full
	UnknownRefused  int64 // hosts missing from the inventory not remembered as reported: the table was full
}

type hostName struct{ device, group string }

type commKeys struct {
	g                    int32 // -1: the communication has no group or device
	asset, edge, service uint64
}

type foldCand struct {
	dst netip.Addr
	dev string
	i   int32
}

type foldTarget struct {
	sources   int
	first     int32 // the first folded communication: the alert's position and context
	mixedPort bool
}

// Bounds of the detector's tables. Scanners are few at a time; host names
// are those of the inventory (hosts named by their address are not kept,
// so forged sources cannot fill the table).
const (
	maxScanners      = 1024
	maxServerNames   = 1 << 14
	maxUnknownAssets = 1 << 14
)

// NewNetworkDetector returns a detector whose allowlist is set; set may
// be shared with the baseline store (for checkpoints), or nil for a new one
// learning for cfg.Learning. reg interns group names (the engine's).
func NewNetworkDetector(cfg NetworkConfig, reg *ingest.Registry, set *baseline.CommSet) (*NetworkDetector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot create network detector: %w", err)
	}
	if reg == nil {
		return nil, fmt.Errorf("cannot create network detector: a registry is required")
	}
	if set == nil {
		set = baseline.NewCommSet(cfg.Learning)
	}
	return &NetworkDetector{cfg: cfg, reg: reg, comms: set,
		scanning: make(map[string]int64), servers: make(map[netip.Addr]hostName), unknown: make(map[string]struct{})}, nil
}

// CommSet returns the learned allowlist (for checkpoints, inspection and
// the summary: CommSet().LearningUntil, CommSet().Stale).
func (d *NetworkDetector) CommSet() *baseline.CommSet { return d.comms }

// Stats returns the detector's counters.
func (d *NetworkDetector) Stats() NetworkStats { return d.stats }

var (
	keyAsset    = baseline.HashString("asset")
	keyEdge     = baseline.HashString("edge")
	keyService  = baseline.HashString("service")
	keyFunction = baseline.HashString("function")
)

// DetectBatch implements BatchDetector.
func (d *NetworkDetector) DetectBatch(b *ingest.Batch, out *Output) {
	d.markScanners(b.Events)
	d.folded = d.folded[:0]
	if d.cfg.Novelty {
		d.hashComms(b.Comms)
		d.planFolds(b.Comms)
		for i := range b.Comms {
			d.communication(b.Comms, int32(i), out)
		}
	}
	for i := range b.Events {
		d.event(&b.Events[i], out)
	}
}

// scanKind reports whether a finding of kind says its device is scanning.
func scanKind(kind string) bool {
	return strings.HasPrefix(kind, "scan_") || strings.HasPrefix(kind, "sweep_") ||
		kind == "identify" || kind == "enumerate"
}

// markScanners remembers the sources the batch's events report scanning,
// until the scan alarm they raise would fold no more repeats.
func (d *NetworkDetector) markScanners(events []ingest.NetEvent) {
	if !d.cfg.Scans {
		return
	}
	for i := range events {
		e := &events[i]
		if e.Device == "" || !scanKind(e.Kind) {
			continue
		}
		until := addSat(e.TimeNanos, max(int64(d.cfg.scanHorizon), 0))
		if old, ok := d.scanning[e.Device]; ok {
			d.scanning[e.Device] = max(old, until)
			continue
		}
		if len(d.scanning) >= maxScanners {
			for dev, u := range d.scanning {
				if u < e.TimeNanos {
					delete(d.scanning, dev)
				}
			}
			if len(d.scanning) >= maxScanners {
				d.stats.ScannersRefused++
				continue
			}
		}
		d.scanning[e.Device] = until
	}
}

func (d *NetworkDetector) scanningAt(device string, t int64) bool {
	until, ok := d.scanning[device]
	return ok && t <= until
}

// hashComms computes each communication's group and keys once.
func (d *NetworkDetector) hashComms(comms []ingest.Communication) {
	d.keys = slices.Grow(d.keys[:0], len(comms))[:len(comms)]
	for i := range comms {
		c, k := &comms[i], &d.keys[i]
		if c.Group == "" || c.Device == "" {
			k.g = -1
			continue
		}
		k.g = d.reg.GroupID(c.Group)
		k.asset = baseline.HashCombine(keyAsset, baseline.HashString(c.Device))
		k.edge = baseline.HashCombine(baseline.HashCombine(keyEdge, k.asset), hashAddr(c.DstIP))
		k.service = baseline.HashCombine(baseline.HashCombine(keyService, k.edge),
			baseline.HashCombine(uint64(c.Transport)<<16|uint64(c.DstPort), baseline.HashString(c.Protocol)))
		d.nameServer(c)
	}
}

// nameServer remembers the inventory name and group of a host that
// initiates a communication, so a flood toward it names it as the
// extractor does. Hosts named by their address are not kept.
func (d *NetworkDetector) nameServer(c *ingest.Communication) {
	if s, ok := d.servers[c.SrcIP]; ok && s.device == c.Device && s.group == c.Group {
		return
	}
	if a, err := netip.ParseAddr(c.Device); err == nil && a == c.SrcIP {
		return
	}
	if _, ok := d.servers[c.SrcIP]; !ok && len(d.servers) >= maxServerNames {
		d.stats.NamesRefused++
		return
	}
	d.servers[c.SrcIP] = hostName{c.Device, c.Group}
}

// foldable reports whether many sources toward dst can be an attack on
// one host: not toward a multicast or broadcast address, where many
// talkers are the normal case (mDNS, SSDP, NetBIOS, DHCP).
func foldable(dst netip.Addr) bool {
	if !dst.IsValid() || dst.IsMulticast() || dst.IsUnspecified() {
		return false
	}
	if dst.Is4() {
		return dst.As4()[3] != 255
	}
	return true
}

// planFolds finds the destinations at least cfg.FoldSources new sources
// talk to in the batch and marks their communications (d.fold, d.targets).
func (d *NetworkDetector) planFolds(comms []ingest.Communication) {
	d.fold = slices.Grow(d.fold[:0], len(comms))[:len(comms)]
	for i := range d.fold {
		d.fold[i] = -1
	}
	d.targets, d.cands = d.targets[:0], d.cands[:0]
	if d.cfg.FoldSources == 0 || len(comms) < d.cfg.FoldSources {
		return
	}
	for i := range comms {
		c, k := &comms[i], &d.keys[i]
		if k.g < 0 || !foldable(c.DstIP) || d.scanningAt(c.Device, c.FirstNanos) {
			continue
		}
		t := c.FirstNanos
		protecting := !d.comms.Learning(k.g, t) || d.comms.Older(k.g, t)
		fresh := d.comms.Len(k.g) == 0 // a group first seen in this batch
		if !protecting && !fresh || d.comms.Contains(k.g, k.asset) && d.comms.Contains(k.g, k.edge) {
			continue
		}
		d.cands = append(d.cands, foldCand{dst: c.DstIP, dev: c.Device, i: int32(i)})
	}
	if len(d.cands) < d.cfg.FoldSources {
		return
	}
	if !d.established {
		d.established = d.comms.AnyProtecting(comms[d.cands[0].i].FirstNanos)
		if !d.established {
			return
		}
	}
	slices.SortFunc(d.cands, func(a, b foldCand) int {
		if n := a.dst.Compare(b.dst); n != 0 {
			return n
		}
		if n := strings.Compare(a.dev, b.dev); n != 0 {
			return n
		}
		return int(a.i - b.i)
	})
	for lo := 0; lo < len(d.cands); {
		hi, sources := lo+1, 1
		for ; hi < len(d.cands) && d.cands[hi].dst == d.cands[lo].dst; hi++ {
			if d.cands[hi].dev != d.cands[hi-1].dev {
				sources++
			}
		}
		if sources >= d.cfg.FoldSources {
			d.foldRun(comms, d.cands[lo:hi], sources)
		}
		lo = hi
	}
	slices.Sort(d.folded)
}

func (d *NetworkDetector) foldRun(comms []ingest.Communication, run []foldCand, sources int) {
	tg := foldTarget{sources: sources, first: run[0].i}
	port := comms[run[0].i].DstPort
	for j, f := range run {
		d.fold[f.i] = int32(len(d.targets))
		tg.first = min(tg.first, f.i)
		tg.mixedPort = tg.mixedPort || comms[f.i].DstPort != port
		if j == 0 || f.dev != run[j-1].dev {
			d.folded = append(d.folded, f.dev)
		}
	}
	d.targets = append(d.targets, tg)
	d.stats.FloodIncidents++
	d.stats.FoldedSources += int64(sources)
}

// communication judges comms[i] against the allowlist, learning it.
func (d *NetworkDetector) communication(comms []ingest.Communication, i int32, out *Output) {
	c, k := &comms[i], &d.keys[i]
	if k.g < 0 {
		return
	}
	d.comms.Admit(k.g, c.FirstNanos)
	if f := d.fold[i]; f >= 0 {
		if d.comms.Len(k.g) == 0 {
			// A host of a group never seen: not learned, so forged
			// addresses take no memory (unlearned, it is no novelty
			// later either: its group would start learning).
			d.stats.FoldedUnlearned++
		} else {
			d.learnAll(c, k)
		}
		if tg := &d.targets[f]; tg.first == i {
			out.Alerts = append(out.Alerts, d.floodAlert(c, tg))
		}
		return
	}
	d.novelty(c, k, d.scanningAt(c.Device, c.FirstNanos), out)
}

// learnAll remembers every level of c without reporting it.
func (d *NetworkDetector) learnAll(c *ingest.Communication, k *commKeys) {
	t := c.FirstNanos
	d.comms.Observe(k.g, k.asset, t)
	d.comms.Observe(k.g, k.edge, t)
	d.comms.Observe(k.g, k.service, t)
	if c.Function != "" {
		d.comms.Observe(k.g, functionKey(k.service, c.Function), t)
	}
}

func functionKey(service uint64, fn string) uint64 {
	return baseline.HashCombine(baseline.HashCombine(keyFunction, service), baseline.HashString(fn))
}

// novelty reports what is new in c; a scanning source (quiet) only gets
// its new write and control functions reported.
func (d *NetworkDetector) novelty(c *ingest.Communication, k *commKeys, quiet bool, out *Output) {
	g, t := k.g, c.FirstNanos
	// Report the most general novelty of the conversation once; a new
	// write or control function is reported on its own too, because its
	// technique matters even on a new edge.
	structural := ""
	switch {
	case d.comms.Observe(g, k.asset, t) == baseline.Novel:
		structural = BehaviorNewAsset
	case d.comms.Observe(g, k.edge, t) == baseline.Novel:
		structural = BehaviorNewEdge
	case d.comms.Observe(g, k.service, t) == baseline.Novel:
		structural = BehaviorNewService
	}
	if structural != "" {
		// Learn the lower levels too, so they are not reported one by one.
		d.comms.Observe(g, k.edge, t)
		d.comms.Observe(g, k.service, t)
		if quiet {
			d.stats.ScanQuiet++
		} else {
			a := d.netAlert(c, DetectorNovelty, structural, "")
			a.Message = fmt.Sprintf("%s: %s talks to %s over %s after the group %s finished learning",
				strings.ReplaceAll(structural, "_", " "), c.Device, c.DstIP, service4(c), c.Group)
			out.Alerts = append(out.Alerts, a)
		}
	}
	if c.Function == "" {
		return
	}
	if d.comms.Observe(g, functionKey(k.service, c.Function), t) != baseline.Novel {
		return
	}
	tech := FunctionTechnique(c.FunctionClass, c.Function)
	if (structural != "" || quiet) && tech == "" {
		if quiet && structural == "" {
			d.stats.ScanQuiet++
		}
		return // a read on a new edge: the edge alert says it; a scanner's read: its scan alarm
	}
	a := d.netAlert(c, DetectorNovelty, BehaviorNewFunction+":"+c.Function, tech)
	a.ObservedText = c.Function
	a.Observed = float64(c.Packets)
	a.Message = fmt.Sprintf("new OT function %s (%s) from %s to %s over %s, never seen in group %s",
		c.Function, c.FunctionClass, c.Device, c.DstIP, service4(c), c.Group)
	out.Alerts = append(out.Alerts, a)
}

// floodAlert is the one alert of the new sources folded toward c's
// destination.
func (d *NetworkDetector) floodAlert(c *ingest.Communication, tg *foldTarget) Alert {
	dst := addrText(c.DstIP)
	target := dst
	a := d.netAlert(c, DetectorFlood, BehaviorFlood, TechniqueDenialOfService)
	a.Device, a.Group = dst, ""
	if s, ok := d.servers[c.DstIP]; ok {
		a.Device, a.Group = s.device, s.group
		target = s.device + " (" + dst + ")"
	}
	over := service4(c)
	if tg.mixedPort {
		a.DstPort = 0
		over = transportName(c.Transport) + " to several ports"
	}
	a.SrcIP, a.SrcPort, a.SrcMAC = "", 0, ""
	a.Observed, a.Upper = float64(tg.sources), float64(d.cfg.FoldSources)
	a.Score = a.Observed / a.Upper
	a.ObservedText = strconv.Itoa(tg.sources) + " new sources -> " + dst + " " + over
	a.Message = fmt.Sprintf("flood: %d sources never seen before talk to %s over %s within one window "+
		"(network.fold_sources %d): a spoofed-source flood or backscatter; one incident, not one new-asset alert per source",
		tg.sources, target, over, d.cfg.FoldSources)
	return a
}

func hashAddr(a netip.Addr) uint64 {
	b := a.As16()
	return baseline.HashCombine(baseline.HashUint64(beUint64(b[:8])), baseline.HashUint64(beUint64(b[8:])))
}

func beUint64(b []byte) uint64 {
	var v uint64
	for _, c := range b[:8] {
		v = v<<8 | uint64(c)
	}
	return v
}

// service4 spells a communication's service: "tcp/502 modbus".
func service4(c *ingest.Communication) string {
	s := transportName(c.Transport) + "/" + strconv.Itoa(int(c.DstPort))
	if c.Protocol != "" {
		s += " " + c.Protocol
	}
	return s
}

func transportName(p uint8) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 1:
		return "icmp"
	case 58:
		return "icmpv6"
	case 0:
		return ""
	}
	return strconv.Itoa(int(p))
}

func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func macText(m [6]byte) string {
	if m == ([6]byte{}) {
		return ""
	}
	const hexd = "0123456789abcdef"
	b := make([]byte, 0, 17)
	for i, c := range m {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, hexd[c>>4], hexd[c&15])
	}
	return string(b)
}

// netAlert fills the fields every network alert of a communication has.
func (d *NetworkDetector) netAlert(c *ingest.Communication, detector, behavior, technique string) Alert {
	t := time.Unix(0, c.FirstNanos).UTC()
	return Alert{
		EventTime: t, ProcessingTime: t, State: StateAlarm,
		Device: c.Device, Group: c.Group, Detector: detector, Behavior: behavior,
		Observed: 1, Expected: 0, Upper: 0, Score: 1, Technique: technique,
		ObservedText: addrText(c.SrcIP) + " -> " + addrText(c.DstIP) + " " + service4(c),
		SrcIP:        addrText(c.SrcIP), DstIP: addrText(c.DstIP), SrcPort: c.SrcPort, DstPort: c.DstPort,
		Transport: transportName(c.Transport), Protocol: c.Protocol,
		SrcMAC: macText(c.SrcMAC), DstMAC: macText(c.DstMAC),
		Partition: c.Partition, Offset: c.Offset,
	}
}

// classify maps a finding to its alert (the table at the top of this
// file); ok is false for kinds not reported or switched off.
func (d *NetworkDetector) classify(e *ingest.NetEvent) (detector, behavior, technique string, ok bool) {
	switch {
	case strings.HasPrefix(e.Kind, "scan_"), strings.HasPrefix(e.Kind, "sweep_"):
		return DetectorScan, e.Kind, TechniqueRemoteDiscovery, d.cfg.Scans
	case e.Kind == "identify":
		return DetectorScan, withProtocol(BehaviorIdentify, e.Protocol), TechniqueRemoteSystemInfo, d.cfg.Scans
	case e.Kind == "enumerate":
		return DetectorScan, withProtocol(BehaviorEnumerate, e.Protocol), TechniquePointIdentification, d.cfg.Scans
	case e.Kind == "exception_storm":
		return DetectorScan, withProtocol(BehaviorExceptionStorm, e.Protocol), TechniquePointIdentification, d.cfg.Scans
	case e.Kind == "flood":
		return DetectorFlood, BehaviorFlood, TechniqueDenialOfService, d.cfg.Floods
	case e.Kind == "mitm_tcp":
		return DetectorMITM, BehaviorMITMRetransmit, TechniqueAdversaryInMiddle, d.cfg.MITM
	case e.Kind == "mitm_arp":
		return DetectorMITM, BehaviorMITMARPRebinding, TechniqueAdversaryInMiddle, d.cfg.MITM
	case e.Kind == "malformed":
		return DetectorMalformed, BehaviorMalformed + "_" + e.Protocol, "", d.cfg.Malformed
	case e.Kind == "unknown_asset":
		return DetectorNovelty, BehaviorUnknownAsset, "", d.cfg.UnknownAssets
	}
	return "", "", "", false
}

func withProtocol(behavior, protocol string) string {
	if protocol == "" {
		return behavior
	}
	return behavior + "_" + protocol
}

func (d *NetworkDetector) event(e *ingest.NetEvent, out *Output) {
	detector, behavior, technique, ok := d.classify(e)
	if !ok || e.Device == "" {
		return
	}
	if e.Kind == "unknown_asset" {
		if _, folded := slices.BinarySearch(d.folded, e.Device); folded {
			return // a source of this batch's flood incident (forged, most likely)
		}
		if _, seen := d.unknown[e.Device]; seen {
			return
		}
		if len(d.unknown) < maxUnknownAssets {
			d.unknown[e.Device] = struct{}{}
		} else {
			d.stats.UnknownRefused++ // reported again if seen again: never suppressed unseen
		}
	}
	t := time.Unix(0, e.TimeNanos).UTC()
	score := 1.0
	if e.Threshold > 0 {
		score = e.Value / e.Threshold
	}
	a := Alert{
		EventTime: t, ProcessingTime: t, State: StateAlarm,
		Device: e.Device, Group: e.Group, Detector: detector, Behavior: behavior,
		Observed: e.Value, Expected: math.NaN(), Lower: math.NaN(), Upper: e.Threshold, Score: score,
		Technique: technique, Message: e.Detail, ObservedText: e.Detail,
		SrcIP: addrText(e.SrcIP), DstIP: addrText(e.DstIP), SrcPort: e.SrcPort, DstPort: e.DstPort,
		Transport: transportName(e.Transport), Protocol: e.Protocol, Partition: e.Partition, Offset: e.Offset,
	}
	if e.Threshold == 0 {
		a.Expected, a.Lower = 0, 0
	}
	out.Alerts = append(out.Alerts, a)
}
