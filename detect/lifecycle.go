package detect

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ot/vigil/ingest"
)

// alarmState is the hysteresis of one (device, behavior): normal → alarm
// after toAlarm consecutive breaching datapoints, alarm → cleared after
// toClear consecutive clean ones. 16 bytes, so a device's states stay small.
type alarmState struct {
	since    int64 // event time of the first breach of the current run; the alarm start while active
	breaches uint16
	oks      uint16
	flags    uint8
	sev      uint8 // severity of the alarm alert, repeated on its clear
}

const (
	alarmActive   uint8 = 1 << iota
	alarmMuted          // the alarm alert was not sent (suppressed, maintenance, rate limit): nor is its clear
	alarmLow            // a metric alarm raised for a value below normal: its clear explains against the low side
	alarmShift          // a self alarm raised by the level-shift test: its chart keeps judging it
	alarmSettling       // a self alarm cleared and the value is not yet back near its expectation: the chart waits (shiftScore)
)

type transition uint8

const (
	noChange transition = iota
	raised
	cleared
)

func (s *alarmState) active() bool { return s.flags&alarmActive != 0 }

// step folds one datapoint at event time ns.
func (s *alarmState) step(ns int64, breached bool, toAlarm, toClear int) transition {
	if breached {
		s.oks = 0
		if s.active() {
			return noChange
		}
		if s.breaches == 0 {
			s.since = ns
		}
		if s.breaches < math.MaxUint16 {
			s.breaches++
		}
		if int(s.breaches) >= toAlarm {
			s.flags |= alarmActive
			s.breaches = 0
			return raised
		}
		return noChange
	}
	s.breaches = 0
	if !s.active() {
		return noChange
	}
	if s.oks < math.MaxUint16 {
		s.oks++
	}
	if int(s.oks) >= toClear {
		s.flags &^= alarmActive
		s.oks = 0
		return cleared
	}
	return noChange
}

// rateBucket is a token bucket on event time.
type rateBucket struct {
	tokens float64
	last   int64
	init   bool
}

func (b *rateBucket) take(ns int64, burst int, refill time.Duration) bool {
	if !b.init {
		b.tokens, b.last, b.init = float64(burst), ns, true
	}
	if ns > b.last {
		b.tokens = math.Min(float64(burst), b.tokens+float64(ns-b.last)/float64(refill))
		b.last = ns
	}
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	return false
}

// incident folds the alarms a group's rate limit held back into one alert.
type incident struct {
	open       bool
	start      int64
	last       int64
	quietUntil int64
	count      int64
	byDetector map[string]int64
}

// emit fills the engine-owned fields of a, applies suppression,
// maintenance windows and the rate limit, and appends it to the output
// unless muted. st is the alarm state that raised it (nil for alerts
// without hysteresis); dev and grp are registry ids (-1 when the alert is
// not about one device). It returns whether a was sent.
func (e *Engine) raise(a *Alert, st *alarmState, dev, grp int32, excess float64, baseSev int) bool {
	a.State = StateAlarm
	if st != nil {
		a.AlarmStart = time.Unix(0, st.since).UTC()
	} else if a.AlarmStart.IsZero() {
		a.AlarmStart = a.EventTime
	}
	a.ProcessingTime = e.now(a.EventTime)
	crit := e.criticality(a.Device)
	a.Criticality = crit.String()
	if a.Severity == 0 {
		a.Severity = e.severity(a.Detector, excess, crit, baseSev)
	}
	if a.ID == "" {
		a.ID = AlertID(a.Detector, a.Device, a.Behavior, a.AlarmStart)
	}
	if st != nil {
		st.sev = uint8(a.Severity)
		if dev >= 0 {
			e.devices.At(dev).alarms++
			e.alarmChanged(dev)
		}
	}
	if e.muted(a, dev, grp) {
		if st != nil {
			st.flags |= alarmMuted
		}
		return false
	}
	e.send(a)
	if dev >= 0 {
		e.quarantinePolicy(a, dev, grp, crit)
	}
	return true
}

// clear sends the cleared alert of the alarm st, unless its alarm was muted.
func (e *Engine) clear(a *Alert, st *alarmState, dev int32) {
	if dev >= 0 && e.devices.At(dev).alarms > 0 {
		e.devices.At(dev).alarms--
	}
	if dev >= 0 {
		e.alarmChanged(dev)
	}
	if st.flags&alarmMuted != 0 {
		st.flags &^= alarmMuted
		return
	}
	a.State = StateCleared
	a.AlarmStart = time.Unix(0, st.since).UTC()
	a.ProcessingTime = e.now(a.EventTime)
	a.Criticality = e.criticality(a.Device).String()
	a.Severity = int(st.sev)
	// The clear gets its own id so a receiver deduping on ids keeps both
	// the alarm and its clear (a detector with several alarms per device
	// and behavior, such as rollout's per KPI, makes its own).
	if a.ID == "" {
		a.ID = AlertID(a.Detector, a.Device, a.Behavior+"/cleared", a.AlarmStart)
	}
	a.Message = "cleared: " + a.Message
	e.box.AddAlert(a)
	e.sh.keyAlert()
	e.stats.Cleared++
}

// alarmChanged notes that device dev's alarm state changed, once
// AlarmsChanged has been asked.
func (e *Engine) alarmChanged(dev int32) {
	if e.status != nil {
		e.status.touch(dev)
	}
	if e.alarmsChanged != nil {
		e.alarmsChanged = append(e.alarmsChanged, dev)
	}
}

// AlarmsChanged appends to dst the registry ids of the devices whose
// alarms were raised or cleared since its previous call (a device may be
// listed more than once), and forgets them. The engine notes them only
// once AlarmsChanged was called: the first call returns nothing. The
// Kafka consumer asks after every batch, so that a device declared silent
// by its peers' reports has its alarm in the next checkpoint
// (kafka.DeviceAlarms).
func (e *Engine) AlarmsChanged(dst []int32) []int32 {
	dst = append(dst, e.alarmsChanged...)
	if e.alarmsChanged == nil {
		e.alarmsChanged = make([]int32, 0, 16)
	}
	e.alarmsChanged = e.alarmsChanged[:0]
	return dst
}

func (e *Engine) send(a *Alert) {
	e.box.AddAlert(a)
	e.sh.keyAlert()
	e.stats.Alerts[a.Detector]++
	e.stats.Severity[a.Severity]++
}

// muted reports whether a suppression, a maintenance window or the group's
// rate limit holds a back, and counts why.
func (e *Engine) muted(a *Alert, dev, grp int32) bool {
	ns := a.EventTime.UnixNano()
	for i := range e.cfg.Suppress {
		if e.cfg.Suppress[i].matches(a) {
			e.stats.Suppressed++
			return true
		}
	}
	for i := range e.cfg.Maintenance {
		m := &e.cfg.Maintenance[i]
		if m.active(ns) && globMatch(m.Device, a.Device) && globMatch(m.Group, a.Group) {
			e.stats.Maintenance++
			return true
		}
	}
	if dev < 0 || grp < 0 || !e.cfg.RateLimit.Enabled || !rateLimited(a.Detector) {
		return false
	}
	gs := e.group(grp)
	if gs.rate.take(ns, e.cfg.RateLimit.Burst, e.cfg.RateLimit.Refill) {
		return false
	}
	e.stats.RateLimited++
	e.holdBack(gs, grp, a, ns)
	return true
}

// rateLimited tells the detectors whose alarms the rate limit applies to
// (see RateLimitConfig).
func rateLimited(detector string) bool {
	switch detector {
	case DetectorSelf, DetectorPeer, DetectorJoint, DetectorSilence, DetectorRule:
		return true
	}
	return false
}

// holdBack counts a rate-limited alarm into its group's incident, opening
// the incident (and sending its one alert) on the first.
func (e *Engine) holdBack(gs *groupState, grp int32, a *Alert, ns int64) {
	inc := &gs.incident
	quiet := time.Duration(e.cfg.RateLimit.Burst) * e.cfg.RateLimit.Refill
	if !inc.open {
		*inc = incident{open: true, start: ns, byDetector: make(map[string]int64)}
		group := e.reg.GroupName(grp)
		ia := Alert{
			EventTime: a.EventTime, AlarmStart: a.EventTime, Device: group, Group: group,
			Detector: DetectorFleet, Behavior: behaviorAlarmStorm, Observed: 1, Expected: 0,
			Upper: float64(e.cfg.RateLimit.Burst), Score: 1,
			Message: "alarm storm in " + group + ": more alarms than the rate limit allows (" +
				strconv.Itoa(e.cfg.RateLimit.Burst) + " at once, then 1 per " + e.cfg.RateLimit.Refill.String() +
				"); further alarms of this group are counted and summarized when it calms down",
			Partition: a.Partition, Offset: a.Offset,
		}
		gs.incidentAlarm = alarmState{since: ns, flags: alarmActive}
		e.raise(&ia, &gs.incidentAlarm, -1, -1, 1, 0)
	}
	inc.count++
	inc.byDetector[a.Detector]++
	inc.last = ns
	inc.quietUntil = ns + int64(quiet)
}

// closeIncident sends the summary of a group's incident once the rate
// limit has been idle long enough to refill.
func (e *Engine) closeIncident(gs *groupState, grp int32, ns int64) {
	inc := &gs.incident
	group := e.reg.GroupName(grp)
	dets := make([]string, 0, len(inc.byDetector))
	for d := range inc.byDetector {
		dets = append(dets, d)
	}
	sort.Strings(dets)
	var parts []string
	for _, d := range dets {
		parts = append(parts, d+":"+strconv.FormatInt(inc.byDetector[d], 10))
	}
	a := Alert{
		EventTime: time.Unix(0, ns).UTC(), Device: group, Group: group,
		Detector: DetectorFleet, Behavior: behaviorAlarmStorm,
		Observed: float64(inc.count), ObservedText: strings.Join(parts, ","),
		Upper: float64(e.cfg.RateLimit.Burst), Score: float64(inc.count),
		Message: "alarm storm in " + group + " is over: " + strconv.FormatInt(inc.count, 10) +
			" alarms were held back by the rate limit (" + strings.Join(parts, ", ") + ") between " +
			time.Unix(0, inc.start).UTC().Format(time.RFC3339) + " and " + time.Unix(0, inc.last).UTC().Format(time.RFC3339),
	}
	*inc = incident{}
	if gs.incidentAlarm.active() {
		gs.incidentAlarm.flags &^= alarmActive
		e.clear(&a, &gs.incidentAlarm, -1)
	}
}

// severity combines the detector's base severity (or the rule's), a bonus
// of one per doubling of the score over the detector's threshold, and the
// asset's criticality, into 1..10.
func (e *Engine) severity(detector string, excess float64, crit ingest.Criticality, base int) int {
	if base == 0 {
		base = e.cfg.Severity.Base[detector]
		if base == 0 {
			base = 5
		}
	}
	bonus := 0
	if excess > 1 {
		bonus = int(math.Floor(math.Log2(excess)))
	}
	bonus = min(bonus, e.cfg.Severity.MaxScoreBonus)
	sev := base + bonus + e.cfg.Severity.Criticality[crit.String()]
	return min(max(sev, 1), 10)
}

func (e *Engine) criticality(device string) ingest.Criticality {
	if e.deps.Assets == nil {
		return ingest.CriticalityUnknown
	}
	a, ok := e.deps.Assets.Asset(device)
	if !ok {
		return ingest.CriticalityUnknown
	}
	return a.Criticality
}
