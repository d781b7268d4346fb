package detect

import (
	"fmt"
	"math"
	"net/netip"
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
//	scan       scan_ports, scan_hosts          T0846 Remote System Discovery
//	flood      flood                           T0814 Denial of Service
//	malformed  malformed_<protocol>            "" (a protocol violation may be a fuzzer, an exploit or a broken device)
//	novelty    unknown_asset                   "" (inventory drift or a rogue device)
const (
	TechniqueChangeOperatingMode = "T0858"
	TechniqueDeviceRestart       = "T0816"
	TechniqueProgramDownload     = "T0843"
	TechniqueProgramUpload       = "T0845"
	TechniqueUnauthorizedCommand = "T0855"
	TechniqueRemoteDiscovery     = "T0846"
	TechniqueDenialOfService     = "T0814"
)

// Behaviors of the network detectors.
const (
	BehaviorNewAsset     = "new_asset"
	BehaviorNewEdge      = "new_edge"
	BehaviorNewService   = "new_service"
	BehaviorNewFunction  = "new_function" // followed by ":" and the function name
	BehaviorUnknownAsset = "unknown_asset"
	BehaviorScanPorts    = "scan_ports"
	BehaviorScanHosts    = "scan_hosts"
	BehaviorFlood        = "flood"
	BehaviorMalformed    = "malformed" // followed by "_" and the protocol
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
// scans, floods, malformed OT frames, hosts missing from the inventory.
//
// The allowlist holds, per group of the initiating device: the devices
// (new_asset), their peers (new_edge), the services on each edge —
// transport, port and protocol — (new_service) and the OT functions used on
// each service (new_function). A group learns for NetworkConfig.Learning of
// event time from its first communication; afterwards anything new is
// reported once and remembered, so an attack is not learned as normal and
// is not reported again. A device's many new ports or peers each make an
// alert here; the engine folds the repeats of one (detector, device,
// behavior) within alarm.repeat_window of event time into the first, so
// they make one alarm however the communications were cut into batches.
// Not safe for concurrent use (the Engine calls it from one goroutine).
type NetworkDetector struct {
	cfg   NetworkConfig
	reg   *ingest.Registry
	comms *baseline.CommSet

	started bool
	start   int64  // event time of the first communication
	known   []bool // by group id: the group was seen
}

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
	return &NetworkDetector{cfg: cfg, reg: reg, comms: set}, nil
}

// CommSet returns the learned allowlist (for checkpoints and inspection).
func (d *NetworkDetector) CommSet() *baseline.CommSet { return d.comms }

var (
	keyAsset    = baseline.HashString("asset")
	keyEdge     = baseline.HashString("edge")
	keyService  = baseline.HashString("service")
	keyFunction = baseline.HashString("function")
)

// DetectBatch implements BatchDetector.
func (d *NetworkDetector) DetectBatch(b *ingest.Batch, out *Output) {
	if d.cfg.Novelty {
		for i := range b.Comms {
			d.novelty(&b.Comms[i], out)
		}
	}
	for i := range b.Events {
		d.event(&b.Events[i], out)
	}
}

func (d *NetworkDetector) novelty(c *ingest.Communication, out *Output) {
	if c.Group == "" || c.Device == "" {
		return
	}
	g := d.reg.GroupID(c.Group)
	t := c.FirstNanos
	d.admitGroup(g, t)
	asset := baseline.HashCombine(keyAsset, baseline.HashString(c.Device))
	edge := baseline.HashCombine(baseline.HashCombine(keyEdge, asset), hashAddr(c.DstIP))
	service := baseline.HashCombine(baseline.HashCombine(keyService, edge),
		baseline.HashCombine(uint64(c.Transport)<<16|uint64(c.DstPort), baseline.HashString(c.Protocol)))

	// Report the most general novelty of the conversation once; a new
	// write or control function is reported on its own too, because its
	// technique matters even on a new edge.
	structural := ""
	switch {
	case d.comms.Observe(g, asset, t) == baseline.Novel:
		structural = BehaviorNewAsset
	case d.comms.Observe(g, edge, t) == baseline.Novel:
		structural = BehaviorNewEdge
	case d.comms.Observe(g, service, t) == baseline.Novel:
		structural = BehaviorNewService
	}
	if structural != "" {
		// Learn the lower levels too, so they are not reported one by one.
		d.comms.Observe(g, edge, t)
		d.comms.Observe(g, service, t)
		a := d.netAlert(c, DetectorNovelty, structural, "")
		a.Message = fmt.Sprintf("%s: %s talks to %s over %s after the group %s finished learning",
			strings.ReplaceAll(structural, "_", " "), c.Device, c.DstIP, service4(c), c.Group)
		out.Alerts = append(out.Alerts, a)
	}
	if c.Function == "" {
		return
	}
	fn := baseline.HashCombine(baseline.HashCombine(keyFunction, service), baseline.HashString(c.Function))
	if d.comms.Observe(g, fn, t) != baseline.Novel {
		return
	}
	tech := FunctionTechnique(c.FunctionClass, c.Function)
	if structural != "" && tech == "" {
		return // a read on a new edge: the edge alert says it
	}
	a := d.netAlert(c, DetectorNovelty, BehaviorNewFunction+":"+c.Function, tech)
	a.ObservedText = c.Function
	a.Observed = float64(c.Packets)
	a.Message = fmt.Sprintf("new OT function %s (%s) from %s to %s over %s, never seen in group %s",
		c.Function, c.FunctionClass, c.Device, c.DstIP, service4(c), c.Group)
	out.Alerts = append(out.Alerts, a)
}

// admitGroup starts a group's learning clock, unless the network as a
// whole has finished learning: a group (a subnet of unmanaged hosts) that
// first appears then is protecting at once, or an attacker from a new
// subnet would be learned as normal.
func (d *NetworkDetector) admitGroup(g int32, t int64) {
	if !d.started {
		d.started, d.start = true, t
	}
	for int(g) >= len(d.known) {
		d.known = append(d.known, false)
	}
	if d.known[g] {
		return
	}
	d.known[g] = true
	if d.comms.Len(g) == 0 && t-d.start >= int64(d.cfg.Learning) {
		d.comms.SetLearning(g, false)
	}
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

func (d *NetworkDetector) event(e *ingest.NetEvent, out *Output) {
	var detector, behavior, technique string
	switch e.Kind {
	case "scan_ports", "scan_hosts":
		if !d.cfg.Scans {
			return
		}
		detector, behavior, technique = DetectorScan, e.Kind, TechniqueRemoteDiscovery
	case "flood":
		if !d.cfg.Floods {
			return
		}
		detector, behavior, technique = DetectorFlood, BehaviorFlood, TechniqueDenialOfService
	case "malformed":
		if !d.cfg.Malformed {
			return
		}
		detector, behavior = DetectorMalformed, BehaviorMalformed+"_"+e.Protocol
	case "unknown_asset":
		if !d.cfg.UnknownAssets {
			return
		}
		detector, behavior = DetectorNovelty, BehaviorUnknownAsset
	default:
		return
	}
	if e.Device == "" {
		return
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
