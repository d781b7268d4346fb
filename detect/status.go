package detect

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/vigil-ot/vigil/baseline"
)

// StatusSink receives what the engine knows of its devices, for the
// operator console (sinks/console): the devices that changed, the groups'
// learning state and, when the engine keeps them, where to read each
// device's recent values. The engine calls PublishStatus from its own
// goroutine, between batches, at most once per interval (and less often
// when publications are slow: see statusSpacing) and once from Flush. The
// update and everything it points to belong to the engine and
// are reused after the call returns (except Recent, which stays valid):
// PublishStatus copies what it keeps. It must not call back into the
// engine, and it should be quick: ingestion waits for it.
type StatusSink interface {
	PublishStatus(u *StatusUpdate)
}

// StatusCoster is a StatusSink that applies what it is handed on a
// goroutine of its own and tells what that costs, a device, so that the
// engine spaces its publications by what they cost in all (see
// statusSpacing). StatusCost is called from the engine's goroutine.
type StatusCoster interface {
	StatusCost() time.Duration
}

// StatusUpdate is one publication of the engine's status.
type StatusUpdate struct {
	// Devices are the devices that reported, or whose alarms were raised
	// or cleared, since the previous update; each once.
	Devices []DeviceStatus
	// Recent are the recent values of the engine's devices' metrics,
	// which it keeps as it judges, a batch's by its end (the same for the
	// engine's life; nil unless it keeps them): read them with
	// RecentValues.Device. Each shard (see Shards) keeps its own devices'.
	Recent *RecentValues
	// Groups are every group's learning state and per-metric
	// distribution, sorted by name.
	Groups []GroupStatus
	// Rollouts are the rollouts (detect.rollout) whose window was judged
	// since the previous update, by group; each once.
	Rollouts []RolloutStatus
	// Evicted are the devices evicted since the previous update
	// (detect.when_full evict_idle), by name: they left the fleet, and
	// their ids may be another device's in Devices.
	Evicted []string
}

// DeviceStatus is one device's state as the engine holds it.
type DeviceStatus struct {
	ID       int32 // the registry's device id
	Device   string
	Group    string
	LastSeen time.Time // event time of its newest report
	// Alarms is how many alarms with a lifecycle (self, peer, rule,
	// identity, silence, joint) are open; one-shot findings of the network
	// detectors are not counted.
	Alarms int
	// Quarantine is ActionQuarantine or ActionRecommend while the
	// device's current quarantine episode lasts, "" otherwise;
	// QuarantineID is the id of the event that began it.
	Quarantine      string
	QuarantineID    string
	QuarantineSince time.Time
	Learning        bool // its group is still learning
	// Interval is the report interval the silence detector learned (0:
	// not yet learned).
	Interval time.Duration
	// Identity: the source addresses and client ids seen recently (up to
	// four each), the certificate of its latest report that had one, and
	// the firmware of its latest report that had one (the reference of the
	// downgrade check), since its first report of it (zero: from before the
	// state was restored), and up to 7 it ran before, oldest first.
	SourceIPs, ClientIDs []string
	Cert, Firmware       string
	FirmwareSince        time.Time
	EarlierFirmware      []FirmwareRun
}

// FirmwareRun is a firmware a device reported, from its first report of it
// (zero: unknown).
type FirmwareRun struct {
	Version string
	Since   time.Time
}

// GroupStatus is a group's learning state: baseline.GroupInfo with the
// thresholds that end learning.
type GroupStatus struct {
	baseline.GroupInfo
	MinSamples  int64         // rows the group must learn (baseline.min_samples)
	MinDuration time.Duration // and the event time they must span (baseline.min_duration; 0: derived)
}

// RolloutStatus is a group's rollout as of its latest judged window.
type RolloutStatus struct {
	Group    string
	From, To string // firmware versions
	// Upgraded are the devices on To; NotUpgraded those on From that
	// reported within complete_after; Silent the upgraded ones silent for
	// silent_after; UpgradedLastHour those that upgraded in the hour
	// before the window's end.
	Upgraded, NotUpgraded, Silent, UpgradedLastHour int
	FirstUpgrade, LastUpgrade                       time.Time
	State                                           string  // RolloutInProgress, RolloutRegressed, RolloutAborted or RolloutHealthy
	ThresholdPercent                                float64 // detect.rollout.threshold_percent
	KPIs                                            []RolloutKPIStatus
}

// States of a rollout in RolloutStatus.
const (
	RolloutInProgress = "in_progress"
	RolloutRegressed  = "regressed"         // alarmed, with action alarm: no abort recommended
	RolloutAborted    = "abort_recommended" // abort_recommended was sent
	RolloutHealthy    = "healthy"           // healthy was sent
)

// RolloutKPIStatus is one KPI's cohort comparison over the latest windows.
type RolloutKPIStatus struct {
	RolloutKPI
	// Windows are the latest RolloutHistory windows in which both cohorts
	// had min_devices devices, oldest first.
	Windows []RolloutWindow
}

// RolloutHistory is how many windows of each KPI a RolloutStatus keeps:
// twelve hours of 15-minute windows.
const RolloutHistory = 48

// RolloutWindow is one KPI's cohort comparison in one window: each
// cohort's mean and median of its devices' means per report, the
// Hodges-Lehmann effect relative to the not-upgraded mean, the one-sided
// Mann-Whitney p-value and the cohort sizes.
type RolloutWindow struct {
	End                               time.Time
	UpgradedMean, NotUpgradedMean     float64
	UpgradedMedian, NotUpgradedMedian float64
	EffectPercent, PValue             float64
	Upgraded, NotUpgraded             int
	Breach                            bool // beyond threshold_percent and significant in this window
}

// keepWindow adds KPI k's comparison of a window to the group's history.
func (rg *rolloutGroup) keepWindow(k, kpis int, w RolloutWindow) {
	if rg.hist == nil {
		rg.hist = make([][]RolloutWindow, kpis)
	}
	h := rg.hist[k]
	if len(h) == RolloutHistory {
		h = h[:copy(h, h[1:])]
	}
	rg.hist[k] = append(h, w)
}

// appendRollouts appends the rollouts judged since the last publication.
func (e *Engine) appendRollouts(dst []RolloutStatus) []RolloutStatus {
	if e.roll == nil {
		return dst
	}
	cfg := e.roll.cfg
	for g := range e.roll.groups {
		rg := &e.roll.groups[g]
		if !rg.changed || !rg.active {
			continue
		}
		rg.changed = false
		st := RolloutStatus{Group: e.reg.GroupName(int32(g)), From: rg.from, To: rg.to, Upgraded: rg.upgradedDevs, NotUpgraded: rg.remainingDevs,
			Silent: rg.silentUpgraded, UpgradedLastHour: rg.lastHour, FirstUpgrade: time.Unix(0, rg.first).UTC(),
			LastUpgrade: time.Unix(0, rg.last).UTC(), State: RolloutInProgress, ThresholdPercent: cfg.ThresholdPercent,
			KPIs: make([]RolloutKPIStatus, len(cfg.KPIs))}
		switch {
		case rg.aborted:
			st.State = RolloutAborted
		case rg.done:
			st.State = RolloutHealthy
		case rg.regressed:
			st.State = RolloutRegressed
		}
		for k, kpi := range cfg.KPIs {
			st.KPIs[k].RolloutKPI = kpi
			if rg.hist != nil {
				st.KPIs[k].Windows = rg.hist[k]
			}
		}
		dst = append(dst, st)
	}
	return dst
}

var nan32 = float32(math.NaN())

// statusTracker is the engine's side of the console: which devices
// changed since the last publication, and the recent values.
type statusTracker struct {
	sink     StatusSink
	interval time.Duration
	clock    func() time.Time // wall clock: time.Now
	last     time.Time        // wall clock of the latest publication's start
	perDev   time.Duration    // what it took, per device it had (at least one)
	coster   StatusCoster     // the sink, when it tells what applying costs it
	dirty    []int32          // devices changed since the last publication
	marked   []bool           // by device: in dirty
	evicted  []string         // devices evicted since the last publication
	update   StatusUpdate     // one engine's publications (a shard's go in its ShardOutput)
}

// PublishStatus makes the engine publish its devices' status to sink, at
// most once per interval (0: after every batch; see statusSpacing), and
// keep the last recentValues judged values of each metric of each device
// (0: none), at most one per recentStep of event time (0: every value; see
// RecentValues), for the console's plots. Call it before the first
// Process.
func (e *Engine) PublishStatus(sink StatusSink, interval time.Duration, recentValues int, recentStep time.Duration) {
	e.status = &statusTracker{sink: sink, interval: interval, clock: time.Now}
	e.status.coster, _ = sink.(StatusCoster)
	if recentValues > 0 {
		e.recent = NewRecentValues(recentValues, recentStep)
	}
}

// touch marks device d as changed.
func (s *statusTracker) touch(d int32) {
	for int(d) >= len(s.marked) {
		s.marked = append(s.marked, false)
	}
	if !s.marked[d] {
		s.marked[d] = true
		s.dirty = append(s.dirty, d)
	}
}

// statusSpacing bounds the time publications take: a publication waits
// until the time since the previous one is at least statusSpacing × what
// it is expected to take (its interval if longer), so publications take
// about 1/statusSpacing of the engine's time. It is expected to take, per
// device that changed since the previous one, what the previous one took
// per device on the engine's goroutine (building the updates and handing
// them over, waiting for a console two updates behind included) and what
// the sink says a device costs it on goroutines of its own (StatusCoster:
// the console's index, about as much again; with a status topic, encoding
// the record and the consoles applying it). A publication
// costs a few microseconds a changed device; in a large fleet ingested at
// full speed every device changes between two, and a publication a second
// would take more time than judging (300,000 devices: 0.3 s on the
// engine's goroutine, more on the console's); the console then shows the
// fleet as of longer ago. Reports as they come in a live fleet change
// fewer devices a second: those publications are cheap and come every
// interval. An interval of 0 publishes after every batch regardless.
const statusSpacing = 50

// publishStatus publishes what changed, when the interval has passed (see
// statusSpacing) or force. A shard publishes its own devices and groups,
// in the ShardOutput of its job, which the pipeline hands to the sink
// once it has delivered the job's output (as one engine publishes after
// delivering its batch's): a console then sees a device's alerts before
// the status that counts them.
func (e *Engine) publishStatus(force bool) {
	s := e.status
	if len(s.dirty) == 0 && len(s.evicted) == 0 && !force {
		return
	}
	now := s.clock()
	if !force && s.interval > 0 && now.Before(s.last.Add(max(s.interval, statusSpacing*s.expect()))) {
		return
	}
	u := &s.update
	if so := e.sh.out; so != nil {
		u = &so.status
	}
	u.Devices = slices.Grow(u.Devices[:0], len(s.dirty)) // once, not doubling: a large fleet's first publication
	for _, d := range s.dirty {
		s.marked[d] = false
		if e.knownState(d) != nil {
			u.Devices = append(u.Devices, e.deviceStatus(d))
		}
	}
	s.dirty = s.dirty[:0]
	u.Groups = u.Groups[:0]
	cfg := e.deps.Baseline.Config()
	for _, gi := range e.deps.Baseline.GroupInfos() {
		if e.owns(gi.ID) { // a shard's store holds every group, learning its own
			u.Groups = append(u.Groups, GroupStatus{GroupInfo: gi, MinSamples: cfg.MinSamples, MinDuration: cfg.MinDuration})
		}
	}
	u.Rollouts = e.appendRollouts(u.Rollouts[:0])
	u.Evicted = append(u.Evicted[:0], s.evicted...)
	s.evicted = s.evicted[:0]
	u.Recent = e.recent
	if so := e.sh.out; so != nil {
		so.Status = u
	} else {
		s.sink.PublishStatus(u)
	}
	s.last, s.perDev = now, s.clock().Sub(now)/time.Duration(max(len(u.Devices), 1))
}

// expect returns what the next publication is expected to take.
func (s *statusTracker) expect() time.Duration {
	per := s.perDev
	if s.coster != nil {
		per += s.coster.StatusCost()
	}
	return per * time.Duration(max(len(s.dirty), 1))
}

// PublishPending publishes what changed since the last publication, once
// the interval has passed: a source calls it between batches when its
// input is quiet, so that the last batches' status does not wait for the
// next batch. Without PublishStatus it does nothing.
func (e *Engine) PublishPending() {
	if e.status != nil {
		e.publishStatus(false)
	}
}

// deviceStatus returns device d's status.
func (e *Engine) deviceStatus(d int32) DeviceStatus {
	ds := e.devices.At(d)
	st := DeviceStatus{ID: d, Device: e.reg.DeviceName(d), LastSeen: time.Unix(0, ds.last).UTC(), Alarms: int(ds.alarms),
		Interval: time.Duration(ds.sil.interval)}
	if ds.group >= 0 {
		st.Group = e.reg.GroupName(ds.group)
		st.Learning, _, _ = e.deps.Baseline.GroupMode(ds.group)
	}
	if q := ds.q; q != nil {
		st.Quarantine = ActionQuarantine
		if q.action == qRecommended {
			st.Quarantine = ActionRecommend
		}
		st.QuarantineID = AlertID("quarantine", st.Device, st.Quarantine, q.start)
		st.QuarantineSince = time.Unix(0, q.at).UTC()
	}
	if id := ds.ident; id != nil {
		st.SourceIPs = id.src.values()
		st.ClientIDs = id.client.values()
		if id.certIdx >= 0 {
			st.Cert = e.certs[id.certIdx].cert
		}
		st.Firmware, st.FirmwareSince = id.fw, unixTime(id.fwSince)
		for _, r := range id.fwEarlier {
			st.EarlierFirmware = append(st.EarlierFirmware, FirmwareRun{Version: r.version, Since: unixTime(r.since)})
		}
	}
	return st
}

// values returns the values the track holds, newest first (one
// allocation: a publication makes it for every device it has).
func (v *valueTrack) values() []string {
	var idx [trackSlots]int
	n := 0
	for k := range v.vals {
		if v.seen[k] != 0 {
			idx[n], n = k, n+1
		}
	}
	slices.SortFunc(idx[:n], func(a, b int) int { return cmp.Compare(v.seen[b], v.seen[a]) })
	out := make([]string, n)
	for i, k := range idx[:n] {
		out[i] = v.vals[k]
	}
	return out
}

// forget notes that device name was evicted: its id may be given to
// another device, and the next update says name was evicted.
func (s *statusTracker) forget(name string) {
	s.evicted = append(s.evicted, name)
}

// unixTime returns Unix nanoseconds ns as a time, zero for 0 (unknown).
func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}
