package score

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/ingest"
)

// alertLine is one line of the JSON sink (sinks.AppendAlertJSON). Pointers
// tell a missing or null key from a zero value.
type alertLine struct {
	SchemaVersion  int       `json:"schema_version"`
	ID             string    `json:"id"`
	EventTime      time.Time `json:"event_time"`
	ProcessingTime time.Time `json:"processing_time"`
	AlarmStart     time.Time `json:"alarm_start"`
	State          *string   `json:"state"`
	Action         *string   `json:"action"` // quarantine events only
	Device         string    `json:"device"`
	Group          string    `json:"group"`
	Criticality    string    `json:"criticality"`
	Detector       string    `json:"detector"`
	Behavior       string    `json:"behavior"`
	Observed       *float64  `json:"observed"`
	ObservedText   string    `json:"observed_text"`
	Expected       *float64  `json:"expected"`
	Lower          *float64  `json:"lower"`
	Upper          *float64  `json:"upper"`
	Score          *float64  `json:"score"`
	Severity       int       `json:"severity"`
	SampleCount    int64     `json:"sample_count"`
	Baseline       uint64    `json:"baseline"`
	Technique      string    `json:"technique"`
	Message        string    `json:"message"`
	SrcIP          string    `json:"src_ip"`
	SrcPort        uint16    `json:"src_port"`
	DstIP          string    `json:"dst_ip"`
	DstPort        uint16    `json:"dst_port"`
	Transport      string    `json:"transport"`
	Protocol       string    `json:"protocol"`
	SrcMAC         string    `json:"src_mac"`
	DstMAC         string    `json:"dst_mac"`
	Partition      int32     `json:"partition"`
	Offset         int64     `json:"offset"`
}

// ReadAlerts reads the alert JSON lines the JSON sink writes (one object a
// line) and returns the alerts in input order. Blank lines are skipped, and
// so is every object without a "state" key: quarantine events (which carry
// "action" instead) and any other event kind a later schema adds. Null
// numbers become NaN and null times the zero time, as the sink writes them.
//
// Errors name the 1-based line: a line that is not a JSON object, an alert
// without event_time, or a schema_version newer than this package reads.
func ReadAlerts(r io.Reader) ([]detect.Alert, error) {
	br := bufio.NewReader(r)
	var alerts []detect.Alert
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			a, ok, perr := parseAlertLine(line)
			if perr != nil {
				return nil, fmt.Errorf("line %d: %w", n, perr)
			}
			if ok {
				alerts = append(alerts, a)
			}
		}
		if errors.Is(err, io.EOF) {
			return alerts, nil
		}
		if err != nil {
			return nil, fmt.Errorf("cannot read alerts after line %d: %w", n-1, err)
		}
	}
}

// parseAlertLine decodes one non-blank line; ok is false for a line that is
// not an alert.
func parseAlertLine(line []byte) (a detect.Alert, ok bool, err error) {
	var l alertLine
	if err := json.Unmarshal(line, &l); err != nil {
		return a, false, fmt.Errorf("cannot parse alert JSON: %w", err)
	}
	if l.State == nil {
		return a, false, nil
	}
	if l.SchemaVersion > detect.AlertSchemaVersion {
		return a, false, fmt.Errorf("alert schema_version %d is newer than %d, the version this Vigil reads; score with the Vigil that wrote it",
			l.SchemaVersion, detect.AlertSchemaVersion)
	}
	if l.EventTime.IsZero() {
		return a, false, fmt.Errorf("alert %q has no event_time", l.ID)
	}
	return detect.Alert{
		ID:             l.ID,
		EventTime:      l.EventTime,
		ProcessingTime: l.ProcessingTime,
		AlarmStart:     l.AlarmStart,
		State:          *l.State,
		Device:         l.Device,
		Group:          l.Group,
		Criticality:    l.Criticality,
		Detector:       l.Detector,
		Behavior:       l.Behavior,
		Observed:       orNaN(l.Observed),
		ObservedText:   l.ObservedText,
		Expected:       orNaN(l.Expected),
		Lower:          orNaN(l.Lower),
		Upper:          orNaN(l.Upper),
		Score:          orNaN(l.Score),
		Severity:       l.Severity,
		SampleCount:    l.SampleCount,
		Baseline:       l.Baseline,
		Technique:      l.Technique,
		Message:        l.Message,
		SrcIP:          l.SrcIP,
		DstIP:          l.DstIP,
		SrcPort:        l.SrcPort,
		DstPort:        l.DstPort,
		Transport:      l.Transport,
		Protocol:       l.Protocol,
		SrcMAC:         l.SrcMAC,
		DstMAC:         l.DstMAC,
		Partition:      l.Partition,
		Offset:         l.Offset,
	}, true, nil
}

func orNaN(f *float64) float64 {
	if f == nil {
		return math.NaN()
	}
	return *f
}

// Alarm is one alarm: raised by an alert with State detect.StateAlarm and
// ended by the later alert with State detect.StateCleared of the same
// detector, device, behavior and alarm start.
type Alarm struct {
	ID       string    `json:"id"`
	Device   string    `json:"device"` // the group key for fleet alarms
	Group    string    `json:"group"`
	Detector string    `json:"detector"`
	Behavior string    `json:"behavior"`
	Severity int       `json:"severity"`
	Message  string    `json:"message"`
	Raised   time.Time `json:"raised"`           // EventTime of the alarm alert
	Cleared  time.Time `json:"cleared,omitzero"` // EventTime of the clear; zero while open to the end of the input
}

// Open reports whether the alarm was never cleared in the input.
func (a *Alarm) Open() bool { return a.Cleared.IsZero() }

// Alarms pairs alarm alerts with their clears and returns the alarms
// ordered by Raised (ties keep input order). Alerts are taken in event-time
// order. Alarm IDs are unique per alarm (detect.AlertID hashes the alarm
// start), so a second alarm alert with a known ID is a redelivery and is
// ignored; a clear ends the alarm of its detector, device, behavior and
// alarm start (a clear has an ID of its own), and is ignored when there is
// none or it is already cleared. Alerts of any other state are ignored.
func Alarms(alerts []detect.Alert) []Alarm {
	order := make([]int, len(alerts))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool { return alerts[order[i]].EventTime.Before(alerts[order[j]].EventTime) })
	var out []Alarm
	byID := make(map[string]int)    // alarm ID → index in out
	byStart := make(map[string]int) // alarmKey → index in out
	for _, i := range order {
		a := &alerts[i]
		switch a.State {
		case detect.StateAlarm:
			if _, dup := byID[a.ID]; dup {
				continue
			}
			byID[a.ID] = len(out)
			byStart[alarmKey(a)] = len(out)
			out = append(out, Alarm{ID: a.ID, Device: a.Device, Group: a.Group, Detector: a.Detector, Behavior: a.Behavior,
				Severity: a.Severity, Message: a.Message, Raised: a.EventTime})
		case detect.StateCleared:
			if k, ok := byStart[alarmKey(a)]; ok && out[k].Open() {
				out[k].Cleared = a.EventTime
			}
		}
	}
	return out
}

// DetectorClock names the alarms RejectionAlerts makes: a row the clock
// refused is how a clock incident (a record from the future) is detected.
const DetectorClock = "clock"

// RejectionAlerts turns rows judging refused (detect.Deps.Rejected) into
// an alarm and its clear each, of detector "clock" and the refusal's
// reason as behavior, at the stream time of the refusal, so a clock
// incident is scored like any other: found when its record was refused,
// and a refused record outside every incident is a false alarm.
func RejectionAlerts(rows []ingest.RejectedRow) []detect.Alert {
	out := make([]detect.Alert, 0, 2*len(rows))
	for i, r := range rows {
		at := time.Unix(0, r.StreamTime).UTC()
		a := detect.Alert{ID: fmt.Sprintf("rejected-%d", i), Device: r.Device, Detector: DetectorClock, Behavior: r.Reason,
			State: detect.StateAlarm, EventTime: at, AlarmStart: at, Message: r.Detail}
		c := a
		c.ID, c.State = a.ID+"-clear", detect.StateCleared
		out = append(out, a, c)
	}
	return out
}

// alarmKey is what an alarm and its clear share: detector, device,
// behavior and alarm start.
func alarmKey(a *detect.Alert) string {
	return a.Detector + "\x00" + a.Device + "\x00" + a.Behavior + "\x00" + strconv.FormatInt(a.AlarmStart.UnixNano(), 10)
}
