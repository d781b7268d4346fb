package detect

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ot/vigil/ingest"
)

// AlertSchemaVersion is the version of the alert JSON schema; bump it when
// a field changes meaning or disappears.
const AlertSchemaVersion = 1

// Detector names, as they appear in alerts and config.
const (
	DetectorSelf      = "self"      // a device against its own baseline
	DetectorPeer      = "peer"      // a device against its group's percentiles
	DetectorRule      = "rule"      // a static rule
	DetectorSilence   = "silence"   // a device stopped reporting while its group goes on
	DetectorIdentity  = "identity"  // one device from several sources, one credential on several devices, downgrade
	DetectorFleet     = "fleet"     // a group KPI broke its baseline
	DetectorNovelty   = "novelty"   // new asset, edge, protocol, port or OT function
	DetectorScan      = "scan"      // port or host scan
	DetectorFlood     = "flood"     // flood or denial of service
	DetectorMalformed = "malformed" // OT protocol violation
	DetectorMITM      = "mitm"      // adversary in the middle: altered retransmission, ARP rebinding
)

// Alarm states carried by an alert.
const (
	StateAlarm   = "alarm"   // the behavior entered alarm
	StateCleared = "cleared" // the alarm cleared after the configured clear datapoints
)

// Alert is one explained finding about a device. It is what every sink
// encodes; its fields are the alert schema (see sinks for the wire forms).
type Alert struct {
	ID             string    // deterministic: see AlertID
	EventTime      time.Time // event time of the observation that raised it
	ProcessingTime time.Time // when Vigil judged it (replay: event time, for determinism)
	AlarmStart     time.Time // event time the alarm began
	State          string    // StateAlarm or StateCleared

	Device      string
	Group       string
	Criticality string // inventory criticality of the device
	Detector    string // one of the Detector* names
	Behavior    string // metric, rule or behavior name, e.g. "bytes_out" or "new_edge"

	Observed     float64 // observed value (NaN when not numeric)
	ObservedText string  // observed value when not numeric, e.g. "10.0.0.9,10.0.0.10"
	Expected     float64 // expected value (mean or median)
	Lower, Upper float64 // accepted bounds
	Score        float64 // how far outside, in robust standard deviations or rule units

	Severity    int    // 0-10, the score combined with asset criticality
	SampleCount int64  // samples behind the baseline that judged it
	Baseline    uint64 // version of the baseline that judged it
	Technique   string // ATT&CK (for ICS) technique id, e.g. "T0836", or ""
	Message     string // one line for a SOC analyst

	// Network context, zero for telemetry alerts.
	SrcIP, DstIP     string
	SrcPort, DstPort uint16
	Transport        string // "tcp", "udp", "icmp"
	Protocol         string // application protocol, e.g. "modbus"
	SrcMAC, DstMAC   string

	// Source position of the observation.
	Partition int32
	Offset    int64

	// Rollout is the rollout's context on alerts of the rollout guard
	// (DetectorRollout), nil on every other alert.
	Rollout *RolloutInfo
}

// IsDrill reports whether a is about a drill device (a canary of vigil
// drill): its group is a drill group, which only drill devices are in (see
// ingest.DrillGroupPrefix). Sinks flag it; it never leads to a quarantine.
func (a *Alert) IsDrill() bool { return strings.HasPrefix(a.Group, ingest.DrillGroupPrefix) }

// AlertID returns the deterministic id of an alarm: a hash of detector,
// device, behavior and alarm start, so that an alert delivered twice (after
// a redelivery or a restart) carries the same id and receivers can dedupe.
func AlertID(detector, device, behavior string, alarmStart time.Time) string {
	h := sha256.New()
	var buf [20]byte
	h.Write([]byte(detector))
	h.Write([]byte{0})
	h.Write([]byte(device))
	h.Write([]byte{0})
	h.Write([]byte(behavior))
	h.Write([]byte{0})
	h.Write(strconv.AppendInt(buf[:0], alarmStart.UnixNano(), 10))
	sum := h.Sum(nil)
	return hex.EncodeToString(sum[:12])
}

// SeverityName returns the conventional name for a 0-10 severity.
func SeverityName(sev int) string {
	switch {
	case sev >= 9:
		return "critical"
	case sev >= 7:
		return "high"
	case sev >= 4:
		return "medium"
	}
	return "low"
}

// QuarantineSchemaVersion is the version of the quarantine event schema.
const QuarantineSchemaVersion = 1

// Quarantine actions.
const (
	ActionQuarantine = "quarantine" // move the device to the restrictive group now
	ActionRelease    = "release"    // the alarm has been clear long enough: undo
	ActionRecommend  = "recommend"  // a human should decide (safety-critical asset, safety rail hit)
)

// Quarantine modes.
const (
	ModeAutomatic        = "automatic"
	ModeApprovalRequired = "approval_required"
)

// QuarantineEvent asks device management to isolate or release a device.
type QuarantineEvent struct {
	ID          string // deterministic, like AlertID
	Time        time.Time
	Action      string // ActionQuarantine, ActionRelease or ActionRecommend
	Mode        string // ModeAutomatic or ModeApprovalRequired
	Device      string
	Group       string
	TargetGroup string   // e.g. "quarantine-plant-a"
	Reasons     []string // alert ids
	Severity    int
	Expiry      time.Time // zero: no expiry
	Message     string
}
