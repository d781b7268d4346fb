package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/detect/score"
	"github.com/vigil-ot/vigil/sinks"
)

// The shared status topic (console.status_topic) carries, for a consumer
// group of several instances, what each console needs of the devices it
// does not own. It is compacted: the latest record of each key is the
// truth. Keys:
//
//	status/<device>               the device's latest status snapshot; a nil value (tombstone) removes the device
//	decision/<event id>/<device>  an operator's decision on quarantine event <event id> of the device
//	group/<group>                 the group's learning state and per-metric distribution
//
// Both kinds of a device land in the same partition (the partition is
// chosen from the device alone), so a console reads a device's status and
// the decisions on it in the order they were written.
//
// Values are JSON objects with "v": sharedVersion. A reader skips (and
// counts) a record of another version, a record whose value does not
// parse, and one whose device or event disagrees with its key; fields it
// does not know are ignored, so a field added within a version is read by
// older consoles. An incompatible change takes a new version.
const sharedVersion = 1

// Key prefixes of the shared status topic.
const (
	keyStatus   = "status/"
	keyDecision = "decision/"
	keyGroup    = "group/"
)

// statusRecord is a device's status snapshot on the wire: the engine's
// detect.DeviceStatus, the instance that owns the device, and the
// quarantine event that began its current episode, if any.
type statusRecord struct {
	V               int           `json:"v"`
	Owner           string        `json:"owner"` // the instance (kafka.instance_id) whose engine holds the device
	Device          string        `json:"device"`
	Group           string        `json:"group,omitempty"`
	LastSeen        time.Time     `json:"last_seen"`
	Alarms          int           `json:"alarms,omitempty"`
	Quarantine      string        `json:"quarantine,omitempty"` // "", quarantine or recommend
	QuarantineID    string        `json:"quarantine_id,omitempty"`
	QuarantineSince time.Time     `json:"quarantine_since,omitzero"`
	Learning        bool          `json:"learning,omitempty"`
	IntervalNS      int64         `json:"interval_ns,omitempty"` // learned report interval, ns
	SourceIPs       []string      `json:"source_ips,omitempty"`
	ClientIDs       []string      `json:"client_ids,omitempty"`
	Cert            string        `json:"cert,omitempty"`
	Firmware        string        `json:"firmware,omitempty"`
	FirmwareSince   time.Time     `json:"firmware_since,omitzero"`
	EarlierFirmware []FirmwareRun `json:"earlier_firmware,omitempty"` // oldest first
	Event           *wireEvent    `json:"event,omitempty"`            // the event QuarantineID names
	// OpenAlarms are the alerts of the device's open alarms, newest
	// first, at most sharedOpenAlarms, in the alert schema
	// (sinks.AppendAlertJSON): the device page's open alarms and, once
	// each, the alert timeline of every console.
	OpenAlarms []json.RawMessage `json:"open_alarms,omitempty"`
}

// sharedOpenAlarms is how many open alarms of a device its status record
// carries at most.
const sharedOpenAlarms = 8

// decisionRecord is an operator's decision on the wire, with the
// quarantine event it sends. The instance that owns the device sends
// Event to its sinks, then writes the record again with SentBy set, so
// that a restart does not send it twice.
type decisionRecord struct {
	V        int       `json:"v"`
	Decision Decision  `json:"decision"`
	Event    wireEvent `json:"event"`
	SentBy   string    `json:"sent_by,omitempty"` // the instance that sent Event to its sinks; "" until one has
}

// groupRecord is a group's learning state on the wire: detect.GroupStatus
// as the instance that published it last sees it (with
// kafka.group_state_topic every instance's view is the whole group's).
type groupRecord struct {
	V             int                    `json:"v"`
	Owner         string                 `json:"owner"` // the instance that published it
	Group         string                 `json:"group"`
	Learning      bool                   `json:"learning"`
	Rows          int64                  `json:"rows"`
	First         time.Time              `json:"first,omitzero"`
	Last          time.Time              `json:"last,omitzero"`
	Devices       int                    `json:"devices"`
	MinSamples    int64                  `json:"min_samples"`
	MinDurationNS int64                  `json:"min_duration_ns"`
	Metrics       map[string]GroupMetric `json:"metrics,omitempty"` // by metric name, as /api/v1/groups/{group} shows them
}

func newGroupRecord(owner string, g *detect.GroupStatus) groupRecord {
	r := groupRecord{V: sharedVersion, Owner: owner, Group: g.Name, Learning: g.Learning, Rows: g.Rows, First: g.First, Last: g.Last,
		Devices: g.Devices, MinSamples: g.MinSamples, MinDurationNS: int64(g.MinDuration)}
	for i := range g.Metrics {
		if r.Metrics == nil {
			r.Metrics = map[string]GroupMetric{}
		}
		r.Metrics[g.Metrics[i].Name] = groupMetric(&g.Metrics[i])
	}
	return r
}

// status returns the record as the engine's status of the group.
func (r *groupRecord) status() detect.GroupStatus {
	g := detect.GroupStatus{MinSamples: r.MinSamples, MinDuration: time.Duration(r.MinDurationNS)}
	g.Name, g.Learning, g.Rows, g.First, g.Last, g.Devices = r.Group, r.Learning, r.Rows, r.First, r.Last, r.Devices
	g.Span = r.Last.Sub(r.First)
	for _, name := range slices.Sorted(maps.Keys(r.Metrics)) {
		m := r.Metrics[name]
		mi := baseline.MetricInfo{Name: name, Samples: m.Samples, Mean: orNaN(m.Mean), Std: orNaN(m.Std), SeasonalBuckets: m.SeasonalBuckets,
			ProfileKind: m.ProfileKind}
		for i, q := range quantileNames {
			mi.Quantiles[i] = orNaN(m.Percentiles[q])
		}
		for _, o := range m.Profile {
			mi.Profile = append(mi.Profile, orNaN(o))
		}
		g.Metrics = append(g.Metrics, mi)
	}
	return g
}

func orNaN(v *float64) float64 {
	if v == nil {
		return math.NaN()
	}
	return *v
}

// wireEvent is a detect.QuarantineEvent with the field names of the
// quarantine schema (sinks.AppendQuarantineJSON).
type wireEvent struct {
	ID          string    `json:"id"`
	Time        time.Time `json:"time"`
	Action      string    `json:"action"`
	Mode        string    `json:"mode"`
	Device      string    `json:"device"`
	Group       string    `json:"group,omitempty"`
	TargetGroup string    `json:"target_group,omitempty"`
	Reasons     []string  `json:"reasons,omitempty"`
	Severity    int       `json:"severity,omitempty"`
	Expiry      time.Time `json:"expiry,omitzero"`
	Message     string    `json:"message,omitempty"`
}

func toWireEvent(q *detect.QuarantineEvent) wireEvent {
	return wireEvent{ID: q.ID, Time: q.Time, Action: q.Action, Mode: q.Mode, Device: q.Device, Group: q.Group,
		TargetGroup: q.TargetGroup, Reasons: q.Reasons, Severity: q.Severity, Expiry: q.Expiry, Message: q.Message}
}

func (w *wireEvent) event() detect.QuarantineEvent {
	return detect.QuarantineEvent{ID: w.ID, Time: w.Time, Action: w.Action, Mode: w.Mode, Device: w.Device, Group: w.Group,
		TargetGroup: w.TargetGroup, Reasons: w.Reasons, Severity: w.Severity, Expiry: w.Expiry, Message: w.Message}
}

func newStatusRecord(owner string, st *detect.DeviceStatus, ev *detect.QuarantineEvent, open []detect.Alert) statusRecord {
	r := statusRecord{V: sharedVersion, Owner: owner, Device: st.Device, Group: st.Group, LastSeen: st.LastSeen, Alarms: st.Alarms,
		Quarantine: st.Quarantine, QuarantineID: st.QuarantineID, QuarantineSince: st.QuarantineSince, Learning: st.Learning,
		IntervalNS: int64(st.Interval), SourceIPs: st.SourceIPs, ClientIDs: st.ClientIDs, Cert: st.Cert, Firmware: st.Firmware,
		FirmwareSince: st.FirmwareSince, EarlierFirmware: firmwareRuns(st.EarlierFirmware)}
	if ev != nil {
		w := toWireEvent(ev)
		r.Event = &w
	}
	for i := range open {
		r.OpenAlarms = append(r.OpenAlarms, sinks.AppendAlertJSON(nil, &open[i]))
	}
	return r
}

// openAlarms decodes the record's open alarms.
func (r *statusRecord) openAlarms() ([]detect.Alert, error) {
	var out []detect.Alert
	var line bytes.Buffer
	for _, raw := range r.OpenAlarms {
		line.Reset()
		if err := json.Compact(&line, raw); err != nil { // one line, as ReadAlerts reads them
			return nil, err
		}
		a, err := score.ReadAlerts(&line)
		if err != nil {
			return nil, err
		}
		if len(a) != 1 {
			return nil, errors.New("an open alarm is not an alert")
		}
		out = append(out, a[0])
	}
	return out, nil
}

// status returns the record as the engine's status of the device (ID
// unset: each console numbers its devices itself).
func (r *statusRecord) status() detect.DeviceStatus {
	return detect.DeviceStatus{Device: r.Device, Group: r.Group, LastSeen: r.LastSeen, Alarms: r.Alarms, Quarantine: r.Quarantine,
		QuarantineID: r.QuarantineID, QuarantineSince: r.QuarantineSince, Learning: r.Learning, Interval: time.Duration(r.IntervalNS),
		SourceIPs: r.SourceIPs, ClientIDs: r.ClientIDs, Cert: r.Cert, Firmware: r.Firmware, FirmwareSince: r.FirmwareSince,
		EarlierFirmware: r.earlierFirmware()}
}

// earlierFirmware returns the record's earlier firmware as the engine's.
func (r *statusRecord) earlierFirmware() []detect.FirmwareRun {
	var out []detect.FirmwareRun
	for _, f := range r.EarlierFirmware {
		out = append(out, detect.FirmwareRun{Version: f.Version, Since: f.Since})
	}
	return out
}

// sharedRecord is one decoded record of the status topic: a status, a
// decision, a group, or (all nil) the removal of Device.
type sharedRecord struct {
	Device   string
	Status   *statusRecord
	open     []detect.Alert // Status's open alarms, decoded
	Decision *decisionRecord
	Group    *groupRecord
}

func statusKey(device string) []byte { return []byte(keyStatus + device) }

func groupKey(group string) []byte { return []byte(keyGroup + group) }

func decisionKey(event, device string) []byte { return []byte(keyDecision + event + "/" + device) }

// keyDevice returns the device a key of the status topic is about, or ""
// when the key is not one (a group's key: the records of every group
// share one partition, that of "").
func keyDevice(key []byte) string {
	k := string(key)
	if dev, ok := strings.CutPrefix(k, keyStatus); ok {
		return dev
	}
	if rest, ok := strings.CutPrefix(k, keyDecision); ok {
		if _, dev, ok := strings.Cut(rest, "/"); ok {
			return dev
		}
	}
	return ""
}

// errNotShared is a record of the status topic that no console wrote.
var errNotShared = errors.New("not a status or decision record")

// decodeShared decodes a record of the status topic. A nil value is a
// tombstone: the removal of the device of a status key (a decision's
// tombstone removes nothing and decodes as errNotShared). Every error is
// a reason to skip the record.
func decodeShared(key, value []byte) (sharedRecord, error) {
	k := string(key)
	if dev, ok := strings.CutPrefix(k, keyStatus); ok && dev != "" {
		if value == nil {
			return sharedRecord{Device: dev}, nil
		}
		var r statusRecord
		if err := decodeVersioned(value, &r, &r.V); err != nil {
			return sharedRecord{}, err
		}
		switch {
		case r.Device != dev:
			return sharedRecord{}, fmt.Errorf("the record is about device %q, its key about %q", r.Device, dev)
		case r.Quarantine != "" && r.Quarantine != detect.ActionQuarantine && r.Quarantine != detect.ActionRecommend:
			return sharedRecord{}, fmt.Errorf("quarantine %q: want quarantine, recommend or none", r.Quarantine)
		case r.Alarms < 0 || r.IntervalNS < 0:
			return sharedRecord{}, errors.New("negative alarms or interval")
		case r.Event != nil && (r.Event.ID != r.QuarantineID || r.Event.Device != dev):
			return sharedRecord{}, errors.New("the quarantine event is not the one of the device's episode")
		case len(r.OpenAlarms) > sharedOpenAlarms:
			return sharedRecord{}, fmt.Errorf("%d open alarms: a record carries at most %d", len(r.OpenAlarms), sharedOpenAlarms)
		}
		open, err := r.openAlarms()
		if err != nil {
			return sharedRecord{}, fmt.Errorf("open_alarms: %w", err)
		}
		if slices.ContainsFunc(open, func(a detect.Alert) bool { return a.Device != dev || a.State != detect.StateAlarm || a.ID == "" }) {
			return sharedRecord{}, errors.New("an open alarm is another device's, not in alarm, or without an id")
		}
		return sharedRecord{Device: dev, Status: &r, open: open}, nil
	}
	if name, ok := strings.CutPrefix(k, keyGroup); ok && name != "" && value != nil {
		var r groupRecord
		if err := decodeVersioned(value, &r, &r.V); err != nil {
			return sharedRecord{}, err
		}
		if r.Group != name {
			return sharedRecord{}, fmt.Errorf("the record is about group %q, its key about %q", r.Group, name)
		}
		return sharedRecord{Group: &r}, nil
	}
	rest, ok := strings.CutPrefix(k, keyDecision)
	id, dev, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || id == "" || dev == "" || value == nil {
		return sharedRecord{}, errNotShared
	}
	var r decisionRecord
	if err := decodeVersioned(value, &r, &r.V); err != nil {
		return sharedRecord{}, err
	}
	d := &r.Decision
	switch {
	case d.Event != id:
		return sharedRecord{}, fmt.Errorf("the decision is on event %q, its key on %q", d.Event, id)
	case d.Action != ActionApprove && d.Action != ActionReject && d.Action != ActionRelease:
		return sharedRecord{}, fmt.Errorf("decision %q: want approve, reject or release", d.Action)
	case r.Event.Device != dev || r.Event.ID == "" || r.Event.ID != d.Sent:
		return sharedRecord{}, errors.New("the event to send is not the decision's, or not about the key's device")
	case r.Event.Action != detect.ActionQuarantine && r.Event.Action != detect.ActionRelease:
		return sharedRecord{}, fmt.Errorf("the event to send has action %q: want quarantine or release", r.Event.Action)
	}
	return sharedRecord{Device: dev, Decision: &r}, nil
}

// decodeVersioned decodes a JSON value into v and checks its version.
func decodeVersioned(value []byte, v any, version *int) error {
	if err := json.Unmarshal(value, v); err != nil {
		return fmt.Errorf("cannot parse the value: %w", err)
	}
	if *version != sharedVersion {
		return fmt.Errorf("version %d: this console reads version %d", *version, sharedVersion)
	}
	return nil
}
