package detect

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"

	"github.com/vigil-ot/vigil/detect/query"
)

// The rollout guard (detect.rollout): a firmware version moving through a
// group is tracked from the devices' own reports, and the devices already
// on the new version are compared with those still on the old one, in the
// same group over the same event-time windows, so daily patterns and
// fleet-wide events cancel. Per window and KPI, each device's mean per
// report is one sample; a one-sided Mann-Whitney U test says whether the
// upgraded cohort lies on the KPI's bad side, and the Hodges-Lehmann shift
// (the median of the pairwise differences), relative to the not-upgraded
// cohort's mean, says by how much. A regression beyond
// threshold_percent, significant at alpha, for windows_to_alarm windows
// raises kpi_regression; an upgraded device silent for silent_after raises
// upgraded_silent. A regression, or silent devices making up
// threshold_percent of at least min_devices upgraded, recommends aborting
// the rollout (abort_recommended) once, unless the action is alarm. A
// rollout that reaches every device of the group and stays clean for
// complete_after ends with healthy.
//
// An upgrade is not an anomaly: when a device reports a newer version,
// its self baseline and level-shift charts start over, and for
// relearn_for its rows are learned but not judged against a baseline
// (self, peer, peers now, joint; rules still apply), so the expected
// change of behavior becomes its new normal instead of an alarm. This
// re-learns briefly rather than re-seeding from the new version's cohort:
// the first devices of a rollout are a cohort too small to seed from, and
// the guard's cohort test is what watches them meanwhile. A downgrade
// re-learns nothing and alarms as before (identity: firmware_downgrade,
// and self on whatever changed).

// A window is judged once the group's rows and the event-time watermark
// (the slowest active partition) have both passed its end, as the fleet
// detector's are, and each device keeps its sums of its latest
// rolloutSlots windows: so a partition read ahead of another neither
// closes a window early nor moves its reports into another window, and
// the alerts do not depend on how the input was cut into batches or
// partitions.

// DetectorRollout names the rollout guard in alerts and config.
const DetectorRollout = "rollout"

// Behaviors of the rollout guard.
const (
	BehaviorKPIRegression    = "kpi_regression"    // the upgraded cohort regressed on one KPI
	BehaviorUpgradedSilent   = "upgraded_silent"   // an upgraded device stopped reporting
	BehaviorAbortRecommended = "abort_recommended" // stop the rollout: it regressed
	BehaviorRolloutHealthy   = "healthy"           // the rollout reached the group and stayed clean
)

// Rollout actions (detect.rollout.action).
const (
	RolloutActionAbort = "abort_recommended" // a regression also sends abort_recommended
	RolloutActionAlarm = "alarm"             // only the kpi_regression and upgraded_silent alarms
)

// maxEffectPercent caps a regression's relative size: against a cohort
// whose mean is zero (no auth failures at all) any increase is infinite.
const maxEffectPercent = 10000

// RolloutKPI is one KPI the cohorts are compared on and the direction in
// which a change is a regression.
type RolloutKPI struct {
	Metric string `yaml:"metric"` // metric column
	Bad    string `yaml:"bad"`    // up or down
}

// RolloutConfig configures the rollout guard.
type RolloutConfig struct {
	Enabled bool         `yaml:"enabled"`
	KPIs    []RolloutKPI `yaml:"kpis"`
	// MinDevices: a window is judged only when at least this many
	// upgraded devices (and as many not upgraded) reported in it.
	MinDevices int `yaml:"min_devices"`
	// ThresholdPercent: the upgraded cohort's shift, relative to the
	// other cohort's mean, beyond which a significant change regresses.
	ThresholdPercent float64 `yaml:"threshold_percent"`
	// Alpha is the one-sided Mann-Whitney U p-value below which the
	// cohorts differ.
	Alpha          float64       `yaml:"alpha"`
	Window         time.Duration `yaml:"window"`
	WindowsToAlarm int           `yaml:"windows_to_alarm"`
	WindowsToClear int           `yaml:"windows_to_clear"`
	// SilentAfter: an upgraded device not heard from for this long while
	// its group reports is upgraded_silent; keep it above the devices'
	// report interval.
	SilentAfter time.Duration `yaml:"silent_after"`
	Action      string        `yaml:"action"` // abort_recommended or alarm
	// CompleteAfter: a rollout whose devices all reported the new version
	// for this long without regression ends with healthy.
	CompleteAfter time.Duration `yaml:"complete_after"`
	// RelearnFor: after an upgrade, a device's rows are learned, not
	// judged, this long; keep it above baseline.device_min_samples
	// report intervals.
	RelearnFor time.Duration `yaml:"relearn_for"`
	Severity   int           `yaml:"severity"` // of kpi_regression and upgraded_silent; 0: severity.base.rollout
}

// DefaultRolloutConfig is the guard's default: off, and when on, judging
// auth failures up and messages down.
func DefaultRolloutConfig() RolloutConfig {
	return RolloutConfig{
		KPIs:       []RolloutKPI{{Metric: "auth_failures", Bad: DirectionUp}, {Metric: "msgs_sent", Bad: DirectionDown}},
		MinDevices: 5, ThresholdPercent: 20, Alpha: 0.01, Window: 15 * time.Minute,
		WindowsToAlarm: 2, WindowsToClear: 2, SilentAfter: 15 * time.Minute,
		Action: RolloutActionAbort, CompleteAfter: time.Hour, RelearnFor: time.Hour,
	}
}

func (c *RolloutConfig) validate() error {
	if !c.Enabled {
		return nil
	}
	if len(c.KPIs) == 0 {
		return fmt.Errorf("rollout.kpis is empty: list the KPIs to compare, e.g. [{metric: auth_failures, bad: up}]")
	}
	seen := map[string]bool{}
	for i, k := range c.KPIs {
		if k.Metric == "" {
			return fmt.Errorf("rollout.kpis[%d]: metric is empty; name a metric column such as msgs_sent", i)
		}
		if k.Bad != DirectionUp && k.Bad != DirectionDown {
			return fmt.Errorf("rollout.kpis[%d] %q: bad is %q; use up (more is worse) or down (less is worse)", i, k.Metric, k.Bad)
		}
		if seen[k.Metric] {
			return fmt.Errorf("rollout.kpis[%d]: %q is listed twice; remove one", i, k.Metric)
		}
		seen[k.Metric] = true
	}
	switch {
	case c.MinDevices < 2:
		return fmt.Errorf("rollout.min_devices is %d: use at least 2 devices per cohort, such as 5", c.MinDevices)
	case !(c.ThresholdPercent > 0):
		return fmt.Errorf("rollout.threshold_percent is %g: set the regression in percent, such as 20", c.ThresholdPercent)
	case !(c.Alpha > 0 && c.Alpha < 1):
		return fmt.Errorf("rollout.alpha is %g: use a p-value between 0 and 1, such as 0.01", c.Alpha)
	case c.Window <= 0 || c.SilentAfter <= 0 || c.CompleteAfter <= 0 || c.RelearnFor <= 0:
		return fmt.Errorf("rollout.window, silent_after, complete_after and relearn_for must be positive durations, such as 15m")
	case c.WindowsToAlarm < 1 || c.WindowsToClear < 1:
		return fmt.Errorf("rollout.windows_to_alarm and windows_to_clear must be at least 1")
	case c.Action != RolloutActionAbort && c.Action != RolloutActionAlarm:
		return fmt.Errorf("rollout.action is %q: use abort_recommended or alarm", c.Action)
	case c.Severity < 0 || c.Severity > 10:
		return fmt.Errorf("rollout.severity is %d: use 0 (severity.base.rollout) to 10", c.Severity)
	}
	return nil
}

// RolloutInfo is what a rollout alert says about the rollout.
type RolloutInfo struct {
	From, To string // firmware versions: the cohort still on From, the one upgraded to To
	KPI      string // the KPI judged; "" for abort_recommended, healthy and upgraded_silent
	// EffectPercent is the upgraded cohort's Hodges-Lehmann shift relative
	// to the not-upgraded cohort's mean, in percent (capped at ±10000).
	EffectPercent float64
	PValue        float64 // one-sided Mann-Whitney U p-value; NaN when no test was made
	// Upgraded and NotUpgraded are the cohort sizes: devices on To and on
	// From that reported in the window (group totals for abort_recommended
	// and healthy).
	Upgraded, NotUpgraded int
	Silent                int // upgraded devices silent for silent_after
}

// rolloutGuard is the engine's rollout state.
type rolloutGuard struct {
	cfg    *RolloutConfig
	dev    []rolloutDevice // by device id
	groups []rolloutGroup  // by group id
	col    []*array.Float64
	a, b   []float64 // cohort scratch
	diffs  []float64
}

// rolloutSlots is how many windows of KPI sums a device keeps: a window
// is judged when the watermark passes it, and a device of a partition
// read that many windows ahead of the slowest has overwritten its sums by
// then (it is left out of that window's cohorts, never counted in
// another's).
const rolloutSlots = 4

// rolloutDevice is one device's version and its KPI sums of its latest
// windows: window w's are in slot w mod rolloutSlots.
type rolloutDevice struct {
	version  string
	upgraded int64 // event time it reported the rollout's new version first; 0: not upgraded
	relearn  int64 // event time until which its rows are not judged (re-learning after an upgrade)
	mixed    int64 // window start (+1) in which its version changed: not judged then
	win      [rolloutSlots]int64
	n        []int32 // by slot, then KPI
	sum      []float64
	silent   alarmState
}

// slot returns the index in win of the window that starts at ws (its
// number is ws/w).
func slot(ws, w int64) int { return int(uint64(ws/w) % rolloutSlots) }

// sums returns the reports and sums by KPI of the device's window that
// starts at ws, or nil when the device has none.
func (rd *rolloutDevice) sums(ws, w int64, kpis int) ([]int32, []float64) {
	s := slot(ws, w)
	if rd.win[s] != ws+1 {
		return nil, nil
	}
	return rd.n[s*kpis : (s+1)*kpis], rd.sum[s*kpis : (s+1)*kpis]
}

// sumsFor returns the sums a row of the window that starts at ws adds
// to, taking over the slot of an older window; nil for a row older than
// the slot's window (a late record).
func (rd *rolloutDevice) sumsFor(ws, w int64, kpis int) ([]int32, []float64) {
	s := slot(ws, w)
	if ws+1 > rd.win[s] {
		rd.win[s] = ws + 1
		clear(rd.n[s*kpis : (s+1)*kpis])
		clear(rd.sum[s*kpis : (s+1)*kpis])
	}
	return rd.sums(ws, w, kpis)
}

// rolloutGroup is one group's rollout.
type rolloutGroup struct {
	winStart       int64
	started        bool
	active         bool // a rollout from→to is under way or done
	from, to       string
	first, last    int64 // first and latest upgrade
	aborted        bool
	done           bool // healthy sent
	regressed      bool // any alarm in this rollout: it cannot end healthy
	kpiAlarm       []alarmState
	cleanSince     int64 // first window end with every reporting device on to
	upgradedDevs   int
	remainingDevs  int
	silentUpgraded int
	lastHour       int               // upgraded in the hour before the latest window's end
	changed        bool              // judged since the engine last published its status
	hist           [][]RolloutWindow // by KPI: the latest windows compared, oldest first (kept for the console only)
}

func newRolloutGuard(cfg *RolloutConfig) *rolloutGuard {
	return &rolloutGuard{cfg: cfg, col: make([]*array.Float64, len(cfg.KPIs))}
}

// bind finds the KPI columns of a batch's record.
func (r *rolloutGuard) bind(rec arrow.Record) {
	sc := rec.Schema()
	for k, kpi := range r.cfg.KPIs {
		r.col[k] = nil
		if idx := sc.FieldIndices(kpi.Metric); len(idx) > 0 {
			r.col[k], _ = rec.Column(idx[0]).(*array.Float64)
		}
	}
}

func (r *rolloutGuard) device(d int32) *rolloutDevice {
	if int(d) >= len(r.dev) {
		r.dev = append(r.dev, make([]rolloutDevice, int(d)+1-len(r.dev))...)
	}
	rd := &r.dev[d]
	if rd.n == nil {
		rd.n = make([]int32, rolloutSlots*len(r.cfg.KPIs))
		rd.sum = make([]float64, rolloutSlots*len(r.cfg.KPIs))
	}
	return rd
}

func (r *rolloutGuard) group(g int32) *rolloutGroup {
	if int(g) >= len(r.groups) {
		r.groups = append(r.groups, make([]rolloutGroup, int(g)+1-len(r.groups))...)
	}
	return &r.groups[g]
}

// judgeRollout runs the rollout guard on the current row, after its
// expectations are read and before the other detectors judge them: a
// device re-learning after an upgrade has them marked learning.
func (e *Engine) judgeRollout(d int32, g int32, t int64) {
	r := e.roll
	w := int64(r.cfg.Window)
	rg := r.group(g)
	ws := floorDiv(t, w) * w
	if !rg.started {
		rg.started, rg.winStart = true, ws
	}
	if limit := min(t, e.wm); limit >= rg.winStart+w {
		e.closeRolloutWindows(d, g, rg, limit)
	}
	rd := r.device(d)
	if fw, ok := e.cols.fw.value(e.row); ok && fw != rd.version {
		e.rolloutVersion(d, g, rg, rd, fw, ws, t)
	}
	if t < rd.relearn {
		for j := range e.exp {
			e.exp[j].Learning = true
		}
	}
	n, sum := rd.sumsFor(ws, w, len(r.col))
	if n == nil {
		return
	}
	for k, c := range r.col {
		if c == nil || c.IsNull(e.row) {
			continue
		}
		if v := c.Value(e.row); !math.IsNaN(v) && !math.IsInf(v, 0) {
			n[k]++
			sum[k] += v
		}
	}
}

// rolloutVersion handles device d reporting firmware fw, other than the
// version it reported before.
func (e *Engine) rolloutVersion(d, g int32, rg *rolloutGroup, rd *rolloutDevice, fw string, ws, t int64) {
	prev := rd.version
	rd.version = strings.Clone(fw)
	if prev == "" {
		return
	}
	rd.mixed = ws + 1
	rd.upgraded = 0
	if query.CompareVersions(fw, prev) <= 0 {
		return // a downgrade or the same version spelt otherwise: identity's to judge
	}
	if !rg.active || query.CompareVersions(fw, rg.to) > 0 { // a new rollout
		*rg = rolloutGroup{winStart: rg.winStart, started: true, active: true, from: prev, to: rd.version, first: t,
			kpiAlarm: make([]alarmState, len(e.roll.cfg.KPIs))}
	}
	if rd.version == rg.to {
		rd.upgraded = t
		rg.last = t
	}
	rd.relearn = t + int64(e.roll.cfg.RelearnFor)
	e.relearn(d)
}

// relearn starts device d's self baseline and level-shift charts over.
func (e *Engine) relearn(d int32) {
	e.deps.Baseline.ForgetDevice(e.reg.DeviceName(d)) // the row being judged is learned afterwards, into the new state
	for slot := range e.shift {
		if c := e.knownShift(slot, d); c != nil {
			*c = shiftState{}
		}
	}
}

// closeRolloutWindows judges the windows of group g that ended at or
// before limit, on a row of device d. After a gap of more than
// maxGapWindows, the windows in it are skipped: their devices' sums are
// gone anyway.
func (e *Engine) closeRolloutWindows(d, g int32, rg *rolloutGroup, limit int64) {
	w := int64(e.roll.cfg.Window)
	for n := 0; rg.winStart+w <= limit; n++ {
		if n == maxGapWindows {
			rg.winStart = floorDiv(limit, w) * w
			return
		}
		if rg.active {
			e.judgeRolloutWindow(d, g, rg, rg.winStart, rg.winStart+w)
		}
		rg.winStart += w
	}
}

// judgeRolloutWindow compares the cohorts of group g over [start, end),
// on a row of device reporting (reporting now, so not silent whenever its
// previous report was).
func (e *Engine) judgeRolloutWindow(reporting, g int32, rg *rolloutGroup, start, end int64) {
	r := e.roll
	cfg := r.cfg
	members := e.groups[g].members
	onTo, onFrom, silent, lastHour := 0, 0, 0, 0
	recent := end - int64(cfg.CompleteAfter)
	quiet := func(d int32, rd *rolloutDevice) bool {
		return d != reporting && rd.version == rg.to && rd.upgraded != 0 && e.devices.At(d).last < end-int64(cfg.SilentAfter)
	}
	for _, d := range members {
		rd := r.device(d)
		switch {
		case rd.version == rg.to:
			onTo++
			if rd.upgraded >= end-int64(time.Hour) {
				lastHour++
			}
		case rd.version == rg.from && e.devices.At(d).last >= recent:
			onFrom++ // devices gone before the rollout do not hold it open
		}
		if quiet(d, rd) {
			silent++
		}
	}
	rg.upgradedDevs, rg.remainingDevs, rg.silentUpgraded, rg.lastHour = onTo, onFrom, silent, lastHour
	rg.changed = true
	if !rg.done {
		e.log.Info("rollout", "group", e.reg.GroupName(g), "from", rg.from, "to", rg.to, "window_end", time.Unix(0, end).UTC(),
			"upgraded", onTo, "not_upgraded", onFrom, "upgraded_last_hour", lastHour, "silent", silent,
			"first_upgrade", time.Unix(0, rg.first).UTC(), "last_upgrade", time.Unix(0, rg.last).UTC(), "aborted", rg.aborted)
	}
	for _, d := range members {
		if rd := r.device(d); rd.silent.active() || quiet(d, rd) {
			e.rolloutSilentStep(d, g, rg, rd, quiet(d, rd), end)
		}
	}
	for k := range cfg.KPIs {
		e.judgeRolloutKPI(g, rg, k, start, end)
	}
	if silent > 0 && onTo >= cfg.MinDevices && float64(100*silent) >= cfg.ThresholdPercent*float64(onTo) && cfg.Action == RolloutActionAbort {
		e.abortRollout(g, rg, end)
	}
	switch {
	case rg.regressed || rg.done || onFrom > 0 || onTo == 0:
		rg.cleanSince = 0
	case rg.cleanSince == 0:
		rg.cleanSince = end
	case end-rg.cleanSince >= int64(cfg.CompleteAfter) && end-rg.last >= int64(cfg.CompleteAfter):
		rg.done = true
		a := e.rolloutAlert(BehaviorRolloutHealthy, g, rg, end)
		a.Severity = 1
		a.Message = "rollout " + rg.from + " -> " + rg.to + " in " + a.Group + " completed cleanly: " + strconv.Itoa(onTo) +
			" devices on " + rg.to + ", no KPI regression and no upgraded device silent"
		e.raise(a, nil, -1, g, 1, 0)
	}
}

// judgeRolloutKPI runs the cohort test of KPI k for one window.
func (e *Engine) judgeRolloutKPI(g int32, rg *rolloutGroup, k int, start, end int64) {
	r := e.roll
	cfg := r.cfg
	kpi := cfg.KPIs[k]
	r.a, r.b = r.a[:0], r.b[:0]
	for _, d := range e.groups[g].members {
		rd := r.device(d)
		n, sum := rd.sums(start, int64(cfg.Window), len(cfg.KPIs))
		if n == nil || rd.mixed == start+1 || n[k] == 0 {
			continue
		}
		v := sum[k] / float64(n[k])
		switch {
		case rd.version == rg.to && rd.upgraded != 0:
			r.b = append(r.b, v)
		case rd.version == rg.from:
			r.a = append(r.a, v)
		}
	}
	if len(r.a) < cfg.MinDevices || len(r.b) < cfg.MinDevices {
		return
	}
	up := kpi.Bad == DirectionUp
	p := mannWhitneyP(r.b, r.a, up)
	var shift float64
	shift, r.diffs = hodgesLehmann(r.b, r.a, r.diffs)
	pct := relativePercent(shift, mean(r.a))
	breach := p < cfg.Alpha && (up && pct >= cfg.ThresholdPercent || !up && pct <= -cfg.ThresholdPercent)
	if e.status != nil {
		rg.keepWindow(k, len(cfg.KPIs), RolloutWindow{End: time.Unix(0, end).UTC(), UpgradedMean: mean(r.b), NotUpgradedMean: mean(r.a),
			UpgradedMedian: sortMedian(r.b), NotUpgradedMedian: sortMedian(r.a), EffectPercent: pct, PValue: p,
			Upgraded: len(r.b), NotUpgraded: len(r.a), Breach: breach})
	}
	st := &rg.kpiAlarm[k]
	tr := st.step(start, breach, cfg.WindowsToAlarm, cfg.WindowsToClear)
	if tr == noChange {
		return
	}
	a := e.rolloutAlert(BehaviorKPIRegression, g, rg, end)
	a.ID = AlertID(DetectorRollout, a.Device, BehaviorKPIRegression+":"+kpi.Metric+":"+rg.to, time.Unix(0, st.since).UTC())
	a.Rollout.KPI, a.Rollout.EffectPercent, a.Rollout.PValue = kpi.Metric, pct, p
	a.Rollout.Upgraded, a.Rollout.NotUpgraded = len(r.b), len(r.a)
	a.Observed, a.Expected, a.Score = sortMedian(r.b), sortMedian(r.a), pct
	a.ObservedText = kpi.Metric
	a.Upper = cfg.ThresholdPercent
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }
	a.Message = "rollout " + rg.from + " -> " + rg.to + " in " + a.Group + ": " + kpi.Metric + " " + signedPercent(pct) +
		" on the " + strconv.Itoa(len(r.b)) + " upgraded devices against the " + strconv.Itoa(len(r.a)) +
		" not upgraded in the same " + cfg.Window.String() + " (median " + f(a.Observed) + " vs " + f(a.Expected) +
		" per report, Mann-Whitney p=" + strconv.FormatFloat(p, 'g', 2, 64) + ")"
	if tr == cleared {
		a.ID = AlertID(DetectorRollout, a.Device, BehaviorKPIRegression+":"+kpi.Metric+":"+rg.to+"/cleared", time.Unix(0, st.since).UTC())
		e.clear(a, st, -1)
		return
	}
	rg.regressed = true
	e.raise(a, st, -1, g, math.Abs(pct)/cfg.ThresholdPercent, cfg.Severity)
	if cfg.Action == RolloutActionAbort {
		e.abortRollout(g, rg, end)
	}
}

// rolloutSilentStep steps device d's upgraded_silent alarm.
func (e *Engine) rolloutSilentStep(d, g int32, rg *rolloutGroup, rd *rolloutDevice, quiet bool, t int64) {
	tr := rd.silent.step(t, quiet, 1, 1)
	if tr == noChange {
		return
	}
	a := e.rolloutAlert(BehaviorUpgradedSilent, g, rg, t)
	a.Device = e.reg.DeviceName(d) // the id follows: raise and clear make it from the device
	a.Rollout.Upgraded, a.Rollout.NotUpgraded, a.Rollout.Silent = rg.upgradedDevs, rg.remainingDevs, rg.silentUpgraded
	last := e.devices.At(d).last
	a.Observed = float64(t-last) / float64(time.Second)
	a.Upper = e.roll.cfg.SilentAfter.Seconds()
	a.Message = who(a.Device, a.Group) + " has not reported since " + time.Unix(0, last).UTC().Format(time.RFC3339) +
		", after upgrading from " + rg.from + " to " + rg.to + " at " + time.Unix(0, rd.upgraded).UTC().Format(time.RFC3339)
	if tr == cleared {
		a.Message = who(a.Device, a.Group) + " reports again on " + rg.to
		e.clear(a, &rd.silent, -1)
		return
	}
	rg.regressed = true
	e.raise(a, &rd.silent, -1, g, 1, e.roll.cfg.Severity)
}

// abortRollout sends the rollout's abort_recommended event, once.
func (e *Engine) abortRollout(g int32, rg *rolloutGroup, t int64) {
	if rg.aborted {
		return
	}
	rg.aborted = true
	a := e.rolloutAlert(BehaviorAbortRecommended, g, rg, t)
	a.Rollout.Upgraded, a.Rollout.NotUpgraded, a.Rollout.Silent = rg.upgradedDevs, rg.remainingDevs, rg.silentUpgraded
	var why []string
	for k, st := range rg.kpiAlarm {
		if st.active() {
			why = append(why, e.roll.cfg.KPIs[k].Metric)
		}
	}
	if rg.silentUpgraded > 0 {
		why = append(why, strconv.Itoa(rg.silentUpgraded)+" upgraded devices silent")
	}
	a.ObservedText = strings.Join(why, ",")
	a.Severity = 8
	a.Message = "abort rollout " + rg.from + " -> " + rg.to + " in " + a.Group + ": " + strings.Join(why, ", ") +
		" (" + strconv.Itoa(rg.upgradedDevs) + " devices upgraded, " + strconv.Itoa(rg.remainingDevs) + " not yet)"
	e.raise(a, nil, -1, g, 1, 0)
}

// rolloutAlert returns the scratch alert for a rollout event of group g
// at t. Its device is the group: a rollout is the group's.
func (e *Engine) rolloutAlert(behavior string, g int32, rg *rolloutGroup, t int64) *Alert {
	a := e.newAlert(DetectorRollout, behavior, -1, g, t)
	a.Device = a.Group
	a.AlarmStart = time.Unix(0, rg.first).UTC() // one rollout, one start: the id of its abort or healthy event
	a.Rollout = &RolloutInfo{From: rg.from, To: rg.to, PValue: nan, Upgraded: rg.upgradedDevs, NotUpgraded: rg.remainingDevs}
	a.Observed, a.Expected = nan, nan
	return a
}

// mannWhitneyP returns the one-sided p-value of the Mann-Whitney U test
// that x lies above y (below, when up is false), by the normal
// approximation with the tie and continuity corrections.
func mannWhitneyP(x, y []float64, up bool) float64 {
	n1, n2 := float64(len(x)), float64(len(y))
	type obs struct {
		v float64
		x bool
	}
	all := make([]obs, 0, len(x)+len(y))
	for _, v := range x {
		all = append(all, obs{v, true})
	}
	for _, v := range y {
		all = append(all, obs{v, false})
	}
	slices.SortFunc(all, func(a, b obs) int {
		switch {
		case a.v < b.v:
			return -1
		case a.v > b.v:
			return 1
		}
		return 0
	})
	rankSum, ties := 0.0, 0.0
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		rank := float64(i+j+1) / 2 // ranks i+1..j averaged
		for k := i; k < j; k++ {
			if all[k].x {
				rankSum += rank
			}
		}
		tn := float64(j - i)
		ties += tn*tn*tn - tn
		i = j
	}
	u := rankSum - n1*(n1+1)/2
	n := n1 + n2
	sigma := math.Sqrt(n1 * n2 / 12 * (n + 1 - ties/(n*(n-1))))
	if sigma == 0 {
		return 1 // every value tied: no evidence either way
	}
	d := u - n1*n2/2
	if !up {
		d = -d
	}
	z := (d - 0.5) / sigma
	return 0.5 * math.Erfc(z/math.Sqrt2)
}

// hodgesLehmann returns the median of the pairwise differences x_i - y_j,
// using scratch for them.
func hodgesLehmann(x, y, scratch []float64) (float64, []float64) {
	scratch = scratch[:0]
	for _, a := range x {
		for _, b := range y {
			scratch = append(scratch, a-b)
		}
	}
	return sortMedian(scratch), scratch
}

// sortMedian sorts v and returns its median (v is not empty).
func sortMedian(v []float64) float64 {
	slices.Sort(v)
	return median(v)
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// relativePercent is shift in percent of ref's magnitude, capped at
// ±maxEffectPercent (ref 0: the cap, or 0 without a shift).
func relativePercent(shift, ref float64) float64 {
	if shift == 0 {
		return 0
	}
	p := maxEffectPercent * math.Copysign(1, shift)
	if ref != 0 {
		p = math.Max(-maxEffectPercent, math.Min(maxEffectPercent, 100*shift/math.Abs(ref)))
	}
	return p
}

func signedPercent(p float64) string {
	s := strconv.FormatFloat(p, 'f', 0, 64) + "%"
	if p > 0 {
		s = "+" + s
	}
	return s
}
