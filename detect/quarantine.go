package detect

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ot/vigil/ingest"
)

// Quarantine states of a device.
const (
	qQuarantined uint8 = iota + 1
	qRecommended
)

// quarantineState is what the policy did about a device in its current
// episode; allocated on the first quarantine or recommendation.
type quarantineState struct {
	action  uint8
	at      int64 // event time of the quarantine event
	start   time.Time
	clean   int32 // consecutive reports without any alarm since
	reasons []string
	sev     int
}

// quarantinePolicy turns a sent alarm alert of device dev into a
// quarantine or recommend event, per detect.quarantine. A drill alert
// never does: a drill proves the alert path, not the isolation of a device.
func (e *Engine) quarantinePolicy(a *Alert, dev, grp int32, crit ingest.Criticality) {
	q := &e.cfg.Quarantine
	if !q.Enabled || grp < 0 || a.IsDrill() {
		return
	}
	ds := e.devices.At(dev)
	if ds.q != nil {
		// one event per episode; later alarms only add their reasons
		ds.q.reasons = append(ds.q.reasons, a.ID)
		return
	}
	auto := a.Severity >= q.MinSeverity && slices.Contains(q.Detectors, a.Detector)
	if !auto && a.Severity < q.RecommendMinSeverity {
		return
	}
	ns := a.EventTime.UnixNano()
	gs := &e.groups[grp]
	action, why := ActionQuarantine, ""
	switch {
	case !auto:
		action, why = ActionRecommend, "detector "+a.Detector+" at severity "+strconv.Itoa(a.Severity)+" does not quarantine automatically"
	case crit == ingest.CriticalitySafety:
		action, why = ActionRecommend, "safety-critical asset: never quarantined automatically (fail open)"
	case q.Mode == ModeApprovalRequired:
		action, why = ActionRecommend, "policy requires approval"
	default:
		if rail := e.rail(gs, ns); rail != "" {
			action, why = ActionRecommend, rail
			e.railAlert(gs, grp, a, rail)
		}
	}
	mode := ModeAutomatic
	if action == ActionRecommend {
		mode = ModeApprovalRequired
	}
	ev := QuarantineEvent{
		ID:   AlertID("quarantine", a.Device, action, a.AlarmStart),
		Time: a.EventTime, Action: action, Mode: mode, Device: a.Device, Group: a.Group,
		TargetGroup: targetGroup(q.TargetGroup, a.Group, a.Device),
		Reasons:     []string{a.ID}, Severity: a.Severity,
	}
	if q.Expiry > 0 {
		ev.Expiry = a.EventTime.Add(q.Expiry)
	}
	if action == ActionQuarantine {
		ev.Message = "quarantine " + a.Device + " into " + ev.TargetGroup + ": " + a.Message
		gs.quarantined++
		if e.sh.set != nil {
			e.noteQuarantine(ns, q.MaxPerMinute)
		} else if e.qTimes = append(e.qTimes, ns); len(e.qTimes) > q.MaxPerMinute {
			e.qTimes = e.qTimes[len(e.qTimes)-q.MaxPerMinute:]
		}
		ds.q = &quarantineState{action: qQuarantined, at: ns, start: a.AlarmStart, reasons: []string{a.ID}, sev: a.Severity}
	} else {
		ev.Message = "recommend quarantine of " + a.Device + " into " + ev.TargetGroup + " (" + why + "): " + a.Message
		ds.q = &quarantineState{action: qRecommended, at: ns, start: a.AlarmStart, reasons: []string{a.ID}, sev: a.Severity}
	}
	e.addQuarantine(ev)
	e.stats.Quarantine[action]++
}

// rail returns why a safety rail forbids another automatic quarantine in
// group gs at event time ns, or "".
func (e *Engine) rail(gs *groupState, ns int64) string {
	q := &e.cfg.Quarantine
	allowed := int(q.MaxGroupFraction * float64(len(gs.members)))
	if int(gs.quarantined)+1 > allowed {
		return "safety rail: at most " + strconv.FormatFloat(100*q.MaxGroupFraction, 'f', -1, 64) + "% of the group (" +
			strconv.Itoa(allowed) + " of " + strconv.Itoa(len(gs.members)) + " devices) may be quarantined"
	}
	times := e.qTimes
	if e.sh.set != nil {
		times = e.recentQuarantines(q.MaxPerMinute, nil)
	}
	n := 0
	for _, t := range times {
		if t > ns-int64(time.Minute) {
			n++
		}
	}
	if n >= q.MaxPerMinute {
		return "safety rail: at most " + strconv.Itoa(q.MaxPerMinute) + " devices a minute may be quarantined"
	}
	return ""
}

// railAlert raises the one fleet alert of a group whose quarantines hit a
// safety rail; it clears when the group's last quarantine is released.
func (e *Engine) railAlert(gs *groupState, grp int32, cause *Alert, rail string) {
	if gs.railAlarm.active() {
		return
	}
	ns := cause.EventTime.UnixNano()
	gs.railAlarm = alarmState{since: ns, flags: alarmActive}
	group := e.reg.GroupName(grp)
	a := Alert{
		EventTime: cause.EventTime, AlarmStart: cause.EventTime, Device: group, Group: group,
		Detector: DetectorFleet, Behavior: behaviorQuarantineRail,
		Observed: float64(gs.quarantined), Upper: e.cfg.Quarantine.MaxGroupFraction * float64(len(gs.members)),
		Expected: nan, Lower: nan, Score: 1,
		Message: "quarantine of " + cause.Device + " held back in " + group + " (" + rail +
			"); further quarantines there are recommendations for a human until it calms down",
		Partition: cause.Partition, Offset: cause.Offset,
	}
	e.raise(&a, &gs.railAlarm, -1, -1, 1, 0)
}

// quarantineTick advances a quarantined or recommended device's episode on
// one of its reports: a release once it has been without alarm for
// release_after_clear_datapoints reports.
func (e *Engine) quarantineTick(d int32, ds *deviceState, g int32, gs *groupState, t int64) {
	q := &e.cfg.Quarantine
	st := ds.q
	if st.action == qQuarantined && q.Expiry > 0 && t >= st.at+int64(q.Expiry) {
		// device management released it on expiry
		ds.q = nil
		e.unquarantine(gs, g, t)
		return
	}
	if ds.alarms > 0 {
		st.clean = 0
		return
	}
	if st.action == qRecommended {
		ds.q = nil
		return
	}
	st.clean++
	if int(st.clean) < q.ReleaseAfter {
		return
	}
	device, group := e.reg.DeviceName(d), e.reg.GroupName(g)
	ev := QuarantineEvent{
		ID:   AlertID("quarantine", device, ActionRelease, st.start),
		Time: time.Unix(0, t).UTC(), Action: ActionRelease, Mode: ModeAutomatic, Device: device, Group: group,
		TargetGroup: targetGroup(q.TargetGroup, group, device), Reasons: st.reasons, Severity: st.sev,
		Message: "release " + device + " from " + targetGroup(q.TargetGroup, group, device) + ": no alarm for " +
			strconv.Itoa(q.ReleaseAfter) + " reports",
	}
	e.addQuarantine(ev)
	e.stats.Quarantine[ActionRelease]++
	ds.q = nil
	e.unquarantine(gs, g, t)
}

func (e *Engine) unquarantine(gs *groupState, g int32, t int64) {
	if gs.quarantined > 0 {
		gs.quarantined--
	}
	if gs.quarantined == 0 && gs.railAlarm.active() {
		group := e.reg.GroupName(g)
		a := e.newAlert(DetectorFleet, behaviorQuarantineRail, -1, g, t)
		a.Device = group
		a.Message = "no device of " + group + " is quarantined any more: quarantine safety rails are clear"
		gs.railAlarm.flags &^= alarmActive
		e.clear(a, &gs.railAlarm, -1)
	}
}

// targetGroup fills the {group} and {device} placeholders of the
// configured target group.
func targetGroup(tmpl, group, device string) string {
	return strings.NewReplacer("{group}", group, "{device}", device).Replace(tmpl)
}
