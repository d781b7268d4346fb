package console

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/ingest"
)

// Config is the console section of the config file.
type Config struct {
	// RecentValues is how many recent values of each metric of each
	// device the engine keeps for the device page's plots
	// (detect.RecentValues): 12 bytes each and 4 per row, so the
	// default costs about 1.5 KB per metric and device (see the README).
	// 0 keeps none: the device page has no plots.
	RecentValues int `yaml:"recent_values"`
	// RecentStep is the event time a recent value stands for: at most one
	// row of values per step is kept, the step's first value of each
	// metric or the value that went furthest outside its band
	// (detect.RecentValues), so the plots span RecentValues steps (10 hours
	// by default) and a device reporting more often than once a step costs
	// the engine one ring row a step, not one a report. 0 keeps every
	// value.
	RecentStep time.Duration `yaml:"recent_step"`
	// MaxAlerts is how many recent alerts the console keeps for the
	// timeline and the device pages.
	MaxAlerts int `yaml:"max_alerts"`
	// PublishInterval is how often at most the engine hands the console
	// what changed; the page is that much behind the stream.
	PublishInterval time.Duration `yaml:"publish_interval"`
	// StatusTopic is the compacted Kafka topic (kafka.brokers) on which
	// the instances of a consumer group share their devices' status and
	// the operators' decisions, so that every console shows the whole
	// fleet (see Shared); "" : each console shows its own engine's.
	StatusTopic string `yaml:"status_topic"`
}

// DefaultConfig returns the console's defaults.
func DefaultConfig() Config {
	return Config{RecentValues: 120, RecentStep: 5 * time.Minute, MaxAlerts: 10000, PublishInterval: time.Second}
}

// Validate checks c.
func (c *Config) Validate() error {
	switch {
	case c.RecentValues < 0 || c.RecentValues == 1 || c.RecentValues > 100_000:
		return fmt.Errorf("recent_values %d: keep 2 to 100000 values per metric and device, or 0 for none", c.RecentValues)
	case c.RecentStep < 0 || c.RecentStep > 24*time.Hour:
		return fmt.Errorf("recent_step %s: a step from 0 (every value) to 24h", c.RecentStep)
	case c.MaxAlerts < 1 || c.MaxAlerts > 10_000_000:
		return fmt.Errorf("max_alerts %d: keep 1 to 10000000 alerts", c.MaxAlerts)
	case c.PublishInterval < 0 || c.PublishInterval > time.Hour:
		return fmt.Errorf("publish_interval %s: publish at least once an hour (0: after every batch)", c.PublishInterval)
	}
	if c.StatusTopic != "" {
		if err := ingest.CheckTopicName(c.StatusTopic); err != nil {
			return fmt.Errorf("status_topic: %w", err)
		}
	}
	return nil
}

// Options configure a Console.
type Options struct {
	Config
	// Clock stamps decisions; nil: time.Now.
	Clock func() time.Time
	// Assets are the inventory, for a console without an engine (Attach
	// sets them otherwise); nil: none.
	Assets ingest.AssetLookup
}

// Console is the operator console's state: the fleet index, each device's
// story, the recent alerts and the quarantine queue (a device's recent
// values are the engine's, read when its page is asked for). It
// is fed by the engine (as its detect.StatusSink, and through the sink
// Tee wraps) and read by the HTTP API; it is safe for concurrent use.
type Console struct {
	opts Options

	mu       sync.RWMutex
	idx      *fleetIndex
	devices  []*device        // by row (registry device id); nil: none
	byName   map[string]int32 // device name -> row
	groups   []detect.GroupStatus
	rollouts map[string]*detect.RolloutStatus // by group: its latest rollout
	clock    int64                            // newest report of any device, Unix ns: the fleet's now
	alerts   []detect.Alert                   // ring of the most recent alerts
	nAlerts  int                              // alerts ever recorded
	events   map[string]*event                // quarantine events by id
	open     map[string][]openAlarm

	// sinkMu serialises the wrapped sink's Writes: the engine's and the
	// decisions' (a detect.Sink is not called concurrently).
	sinkMu sync.Mutex
	sink   detect.Sink

	// The engine's updates are applied by the console's own goroutine,
	// so the engine only hands them over (see PublishStatus); readers
	// wait until every update published before them is applied.
	startOnce sync.Once
	updates   chan *update // at most two behind: then the engine waits
	spent     chan *update // applied, for PublishStatus to fill again
	seqMu     sync.Mutex
	seqCond   *sync.Cond
	published uint64             // updates handed over
	applied   uint64             // updates applied
	cost      atomic.Int64       // what applying the devices of the latest update with some took a device, ns (StatusCost)
	assets    ingest.AssetLookup // the inventory: attributes beside the reported ones
	// forward, when set, takes the console's decisions instead of the
	// sink (Shared: to the status topic, for the instance that owns the
	// device to send).
	forward func(ctx context.Context, dec *Decision, out detect.QuarantineEvent) error
	attrs   []Attribute // indexDevice's, under mu
}

// device is what the console holds of one device.
type device struct {
	status   detect.DeviceStatus
	decision *Decision
	// recent are the recent values of the engine (or shard) that
	// published its status (nil: none kept), read when its page is asked
	// for.
	recent *detect.RecentValues
}

// openAlarm is an alarm alert not cleared yet.
type openAlarm struct {
	alert detect.Alert
}

// event is a quarantine event sent to the sinks, with the decision taken
// on it.
type event struct {
	detect.QuarantineEvent
	decision *Decision
}

// Decision is what an operator decided about a quarantine event.
type Decision struct {
	Action string    `json:"action"` // approve, reject or release
	By     string    `json:"by"`     // the token's name
	At     time.Time `json:"at"`
	Event  string    `json:"event"` // id of the event decided on
	Sent   string    `json:"sent"`  // id of the quarantine event the decision sent
}

// Attribute is one attribute of a device and where it came from.
type Attribute struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Source string `json:"source"` // "inventory" or "report"
}

// New returns an empty console.
func New(opts Options) *Console {
	def := DefaultConfig()
	if opts.MaxAlerts <= 0 {
		opts.MaxAlerts = def.MaxAlerts
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	c := &Console{opts: opts, idx: newFleetIndex(), byName: map[string]int32{}, events: map[string]*event{},
		open: map[string][]openAlarm{}, rollouts: map[string]*detect.RolloutStatus{}, updates: make(chan *update, 2), spent: make(chan *update, 3),
		assets: opts.Assets}
	c.seqCond = sync.NewCond(&c.seqMu)
	return c
}

// update is one StatusUpdate handed over to the console's goroutine.
type update struct {
	evicted  []string // applied before devices, whose ids may be theirs
	devices  []detect.DeviceStatus
	recent   *detect.RecentValues
	groups   []detect.GroupStatus
	rollouts []detect.RolloutStatus
}

// Close stops the goroutine that applies the engine's updates, once they
// are applied. The engine must not publish after Close.
func (c *Console) Close() {
	c.startOnce.Do(func() {}) // never start it now
	close(c.updates)
	c.seqMu.Lock()
	for c.applied < c.published {
		c.seqCond.Wait()
	}
	c.seqMu.Unlock()
}

// readLock waits until the updates published so far are applied, then
// takes the read lock: a request sees what the engine published before
// it.
func (c *Console) readLock() {
	c.seqMu.Lock()
	for target := c.published; c.applied < target; {
		c.seqCond.Wait()
	}
	c.seqMu.Unlock()
	c.mu.RLock()
}

func (c *Console) applyUpdates() {
	for u := range c.updates {
		c.mu.Lock()
		for _, name := range u.evicted {
			c.dropDevice(name)
		}
		start := time.Now()
		top := -1
		for i := range u.devices {
			top = max(top, int(u.devices[i].ID))
		}
		c.ensureRow(top) // at once, not a device at a time: a large fleet's first update
		for i := range u.devices {
			if st := &u.devices[i]; !c.stale(st) {
				c.updateDevice(st, u.recent)
			}
		}
		if len(u.devices) > 0 {
			c.cost.Store(int64(time.Since(start)) / int64(len(u.devices)))
		}
		for _, g := range u.groups {
			c.putGroup(g)
		}
		for i := range u.rollouts {
			c.rollouts[u.rollouts[i].Group] = &u.rollouts[i]
		}
		c.mu.Unlock()
		select { // its devices' slice is copied, not kept (updateDevice): reused
		case c.spent <- &update{devices: u.devices[:0]}:
		default:
		}
		c.seqMu.Lock()
		c.applied++
		c.seqCond.Broadcast()
		c.seqMu.Unlock()
	}
}

// Attach returns a sink that writes to sink and records what sink
// accepted (alerts for the timeline and the devices' open alarms,
// quarantine events for the queue). The console's decisions are written to
// sink too, never at the same time as the engine's output. assets (nil:
// none) are the inventory, whose attributes the console shows and
// searches beside the reported ones. Close closes sink.
func (c *Console) Attach(sink detect.Sink, assets ingest.AssetLookup) detect.Sink {
	c.sink, c.assets = sink, assets
	return teeSink{c}
}

// PublishInterval is how often at most the engine should publish its
// status to the console.
func (c *Console) PublishInterval() time.Duration { return c.opts.PublishInterval }

// RecentValues is how many recent values of each metric of each device
// the engine should keep for the device page's plots (0: none).
func (c *Console) RecentValues() int { return c.opts.RecentValues }

// RecentStep is the event time each of those values stands for at least
// (0: every value is kept).
func (c *Console) RecentStep() time.Duration { return c.opts.RecentStep }

type teeSink struct{ c *Console }

func (t teeSink) Write(ctx context.Context, out *detect.Output) error {
	c := t.c
	c.sinkMu.Lock()
	defer c.sinkMu.Unlock()
	if err := c.sink.Write(ctx, out); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range out.Alerts {
		c.recordAlert(&out.Alerts[i])
	}
	for i := range out.Quarantine {
		q := out.Quarantine[i]
		q.Reasons = slices.Clone(q.Reasons)
		if _, ok := c.events[q.ID]; !ok {
			c.events[q.ID] = &event{QuarantineEvent: q}
		}
	}
	return nil
}

func (t teeSink) Close() error { return t.c.sink.Close() }

// recordAlert keeps a in the timeline and updates its device's open
// alarms.
func (c *Console) recordAlert(a *detect.Alert) {
	c.recordTimeline(a)
	open := c.open[a.Device]
	i := slices.IndexFunc(open, func(o openAlarm) bool {
		return o.alert.Detector == a.Detector && o.alert.Behavior == a.Behavior
	})
	switch {
	case a.State == detect.StateCleared && i >= 0:
		open = slices.Delete(open, i, i+1)
	case a.State == detect.StateAlarm && i >= 0:
		open[i].alert = *a
	case a.State == detect.StateAlarm:
		open = append(open, openAlarm{alert: *a})
	}
	if len(open) == 0 {
		delete(c.open, a.Device)
	} else {
		c.open[a.Device] = open
	}
	if r, ok := c.byName[a.Device]; ok {
		c.indexDevice(int(r))
	}
}

// recordTimeline keeps a in the timeline.
func (c *Console) recordTimeline(a *detect.Alert) {
	if len(c.alerts) < c.opts.MaxAlerts {
		c.alerts = append(c.alerts, *a)
	} else {
		c.alerts[c.nAlerts%c.opts.MaxAlerts] = *a
	}
	c.nAlerts++
}

// oneShotOpenFor is how long after its event time an alarm without a
// lifecycle (the network detectors' findings, which never clear) counts as
// open, once the device has no lifecycle alarm open.
const oneShotOpenFor = time.Hour

// StatusCost implements detect.StatusCoster: what applying the devices
// of the latest update that had some took the console's goroutine, a
// device.
func (c *Console) StatusCost() time.Duration { return time.Duration(c.cost.Load()) }

// PublishStatus implements detect.StatusSink. It copies the update and
// leaves the work to the console's goroutine: the engine pays for a
// hand-over, not for the index. It blocks while the console is two
// updates behind.
func (c *Console) PublishStatus(u *detect.StatusUpdate) {
	c.startOnce.Do(func() { go c.applyUpdates() })
	j := &update{}
	select {
	case j = <-c.spent:
	default:
	}
	j.devices, j.recent = append(j.devices, u.Devices...), u.Recent
	j.evicted = append(j.evicted[:0], u.Evicted...)
	if u.Groups != nil {
		j.groups = slices.Clone(u.Groups)
		for i := range j.groups {
			j.groups[i].Metrics = slices.Clone(j.groups[i].Metrics)
		}
	}
	if len(u.Rollouts) > 0 {
		j.rollouts = slices.Clone(u.Rollouts)
		for i := range j.rollouts {
			kpis := slices.Clone(j.rollouts[i].KPIs)
			for k := range kpis {
				kpis[k].Windows = slices.Clone(kpis[k].Windows)
			}
			j.rollouts[i].KPIs = kpis
		}
	}
	c.seqMu.Lock()
	c.published++
	c.seqMu.Unlock()
	c.updates <- j
}

// stale reports whether st is older than the status the console holds of
// its device, in row st.ID (the engine's id, or for a status from the
// topic the row byName gave it): the last status of a device from the
// shard (or instance) that judged it before its group moved to another,
// published after the new owner's first.
func (c *Console) stale(st *detect.DeviceStatus) bool {
	r := int(st.ID)
	return r < len(c.devices) && c.devices[r] != nil && c.devices[r].status.Device == st.Device &&
		st.LastSeen.Before(c.devices[r].status.LastSeen)
}

// updateDevice puts st in the console, with recent, the recent values of
// the engine that published it.
func (c *Console) updateDevice(st *detect.DeviceStatus, recent *detect.RecentValues) {
	r := int(st.ID)
	c.ensureRow(r)
	d := c.devices[r]
	if d == nil {
		d = &device{}
		c.devices[r] = d
		c.byName[st.Device] = st.ID
	}
	was := d.status
	d.status, d.recent = *st, recent
	// the update's slices are the engine's: kept as they were when equal
	// (the index's unique columns hold them too)
	d.status.SourceIPs = equalOrClone(was.SourceIPs, st.SourceIPs)
	d.status.ClientIDs = equalOrClone(was.ClientIDs, st.ClientIDs)
	d.status.EarlierFirmware = equalOrClone(was.EarlierFirmware, st.EarlierFirmware)
	if t := st.LastSeen.UnixNano(); t > c.clock {
		c.clock = t
	}
	if st.Alarms == 0 {
		// no lifecycle alarm: what is left open are one-shot findings
		open := slices.DeleteFunc(c.open[st.Device], func(o openAlarm) bool {
			return o.alert.EventTime.Before(st.LastSeen.Add(-oneShotOpenFor))
		})
		if len(open) == 0 {
			delete(c.open, st.Device)
		} else {
			c.open[st.Device] = open
		}
	}
	c.indexDevice(r)
}

// equalOrClone returns old when it equals s, else a copy of s.
func equalOrClone[S ~[]E, E comparable](old, s S) S {
	if slices.Equal(old, s) {
		return old
	}
	return slices.Clone(s)
}

// attributes appends device st's attributes to dst, in no order: its
// inventory's, and the firmware it reported, which wins over the
// inventory's. They are made when asked for, not kept: a device's
// attributes would cost it 400 bytes, and the index holds them by field.
func (c *Console) attributes(dst []Attribute, st *detect.DeviceStatus) []Attribute {
	if c.assets != nil {
		if a, ok := c.assets.Asset(st.Device); ok {
			for k, v := range a.Attrs {
				if k != "fw" || st.Firmware == "" { // the reported firmware is the truth; the inventory's may be stale
					dst = append(dst, Attribute{Key: k, Value: v, Source: "inventory"})
				}
			}
			dst = append(dst, Attribute{Key: "criticality", Value: a.Criticality.String(), Source: "inventory"},
				Attribute{Key: "patchable", Value: strconv.FormatBool(a.Patchable), Source: "inventory"})
			if a.IP != "" {
				dst = append(dst, Attribute{Key: "inventory_ip", Value: a.IP, Source: "inventory"})
			}
		}
	}
	if st.Firmware != "" {
		dst = append(dst, Attribute{Key: "fw", Value: st.Firmware, Source: "report"})
	}
	return dst
}

// putGroup puts g in the console's groups, kept sorted by name, in place
// of what it held of the group: each engine (shard, instance) publishes
// its own groups. The caller holds mu.
func (c *Console) putGroup(g detect.GroupStatus) {
	i, found := slices.BinarySearchFunc(c.groups, g.Name, func(e detect.GroupStatus, name string) int { return strings.Compare(e.Name, name) })
	if found {
		c.groups[i] = g
	} else {
		c.groups = slices.Insert(c.groups, i, g)
	}
}

// ensureRow makes device id r's row exist (r < 0: none).
func (c *Console) ensureRow(r int) {
	if r < len(c.devices) {
		return
	}
	c.idx.ensureRow(r)
	c.devices = grown(c.devices, r+1)
}

// status is the device's status as the console shows it: its decisions
// over the engine's quarantine episode, then its alarms.
func (c *Console) status(d *device) string {
	st := &d.status
	decided := func(id string) bool {
		ev := c.events[id]
		return ev != nil && ev.decision != nil
	}
	switch {
	case d.decision != nil && d.decision.Action == ActionApprove:
		return StatusQuarantined
	case st.Quarantine == detect.ActionQuarantine && !decided(st.QuarantineID):
		return StatusQuarantined
	case st.Quarantine == detect.ActionRecommend && !decided(st.QuarantineID):
		return StatusRecommended
	case st.Alarms > 0 || len(c.open[st.Device]) > 0:
		return StatusAlarm
	}
	return StatusNormal
}

// Device statuses.
const (
	StatusNormal      = "normal"
	StatusAlarm       = "alarm"
	StatusQuarantined = "quarantined"
	StatusRecommended = "recommended"
)

// indexDevice writes row r's fields into the index.
func (c *Console) indexDevice(r int) {
	d := c.devices[r]
	x := c.idx
	st := &d.status
	x.present.set(r)
	x.interval[r] = int64(st.Interval)
	x.device.setText(r, st.Device)
	x.group.setText(r, st.Group)
	x.status.setText(r, c.status(d))
	x.learning.setText(r, strconv.FormatBool(st.Learning))
	x.lastSeen.at[r] = st.LastSeen.UnixNano()
	x.ip.setTexts(r, st.SourceIPs)
	x.clientID.setTexts(r, st.ClientIDs)
	x.cert.setText(r, st.Cert)
	open := c.open[st.Device]
	var dets []string
	score, sev := math.NaN(), math.NaN()
	for _, o := range open {
		if !slices.Contains(dets, o.alert.Detector) {
			dets = append(dets, o.alert.Detector)
		}
		if !(o.alert.Score <= score) { // NaN-safe max
			score = o.alert.Score
		}
		if !(float64(o.alert.Severity) <= sev) {
			sev = float64(o.alert.Severity)
		}
	}
	x.detector.setTexts(r, dets)
	x.score.num[r] = score
	x.severity.num[r] = sev
	x.alarms.num[r] = float64(max(st.Alarms, len(open)))
	c.attrs = c.attributes(c.attrs[:0], st)
	for _, a := range c.attrs {
		if a.Key == "inventory_ip" {
			continue
		}
		x.col(a.Key).setText(r, a.Value)
	}
}

// Decision actions.
const (
	ActionApprove = "approve" // a recommendation: quarantine the device
	ActionReject  = "reject"  // a recommendation: do not quarantine
	ActionRelease = "release" // an active quarantine: release the device
)

// Errors of Decide.
var (
	ErrNoEvent  = errors.New("no such quarantine event")
	ErrConflict = errors.New("the decision does not apply to this event")
)

// Decide records an operator's decision on quarantine event id and sends
// the quarantine event it makes to the sinks: approve a recommendation
// (action quarantine), reject it (action release: the device stays or
// goes back where it was), or release a device in quarantine (action
// release). The event's mode is approval_required; its message says who
// decided and when. It returns the event sent.
func (c *Console) Decide(ctx context.Context, id, action, by string) (detect.QuarantineEvent, error) {
	c.sinkMu.Lock()
	defer c.sinkMu.Unlock()
	c.readLock()
	ev, ok := c.events[id]
	var out detect.QuarantineEvent
	var err error
	if ok {
		out, err = c.decision(ev, action, by)
	}
	c.mu.RUnlock()
	if !ok {
		return out, ErrNoEvent
	}
	if err != nil {
		return out, err
	}
	dec := &Decision{Action: action, By: by, At: out.Time, Event: id, Sent: out.ID}
	if c.forward != nil {
		err = c.forward(ctx, dec, out)
	} else {
		err = c.write(ctx, out)
	}
	if err != nil {
		return out, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recordDecision(dec, out)
	return out, nil
}

// deliver sends the quarantine event of a decision to the sinks.
func (c *Console) deliver(ctx context.Context, out detect.QuarantineEvent) error {
	c.sinkMu.Lock()
	defer c.sinkMu.Unlock()
	return c.write(ctx, out)
}

// write sends out to the sink; the caller holds sinkMu.
func (c *Console) write(ctx context.Context, out detect.QuarantineEvent) error {
	if c.sink == nil {
		return errors.New("BUG: console without a sink: Attach was not called")
	}
	if err := c.sink.Write(ctx, &detect.Output{Quarantine: []detect.QuarantineEvent{out}}); err != nil {
		return fmt.Errorf("cannot send the quarantine event: %w", err)
	}
	return nil
}

// recordDecision records decision dec, which sent out, on its event and
// device; the first decision on an event stays. The caller holds mu.
func (c *Console) recordDecision(dec *Decision, out detect.QuarantineEvent) {
	if ev := c.events[dec.Event]; ev != nil {
		if ev.decision != nil && ev.decision.Sent != dec.Sent {
			return
		}
		ev.decision = dec
	}
	if _, ok := c.events[out.ID]; !ok {
		c.events[out.ID] = &event{QuarantineEvent: out}
	}
	if r, ok := c.byName[out.Device]; ok && c.devices[r] != nil {
		c.devices[r].decision = dec
		c.indexDevice(int(r))
	}
}

// decision makes the quarantine event of an operator's decision on ev.
func (c *Console) decision(ev *event, action, by string) (detect.QuarantineEvent, error) {
	if ev.decision != nil {
		return detect.QuarantineEvent{}, fmt.Errorf("%w: %s decided %s at %s", ErrConflict, ev.decision.By, ev.decision.Action, ev.decision.At.Format(time.RFC3339))
	}
	switch {
	case ev.Action == detect.ActionRecommend && (action == ActionApprove || action == ActionReject):
	case (ev.Action == detect.ActionQuarantine) && action == ActionRelease:
	default:
		return detect.QuarantineEvent{}, fmt.Errorf("%w: cannot %s a %s event", ErrConflict, action, ev.Action)
	}
	if r, ok := c.byName[ev.Device]; ok {
		if dec := c.devices[r].decision; action == ActionApprove && dec != nil && dec.Action == ActionApprove {
			return detect.QuarantineEvent{}, fmt.Errorf("%w: %s is in quarantine already (approved by %s)", ErrConflict, ev.Device, dec.By)
		}
	}
	now := c.opts.Clock().UTC()
	out := detect.QuarantineEvent{
		Time: now, Mode: detect.ModeApprovalRequired, Device: ev.Device, Group: ev.Group, TargetGroup: ev.TargetGroup,
		Reasons: append([]string{ev.ID}, ev.Reasons...), Severity: ev.Severity,
	}
	who := by + " at " + now.Format(time.RFC3339)
	switch action {
	case ActionApprove:
		out.Action = detect.ActionQuarantine
		out.Message = "quarantine " + ev.Device + " into " + ev.TargetGroup + ": recommendation approved by " + who
	case ActionReject:
		out.Action = detect.ActionRelease
		out.Message = "do not quarantine " + ev.Device + ": recommendation rejected by " + who
	default:
		out.Action = detect.ActionRelease
		out.Message = "release " + ev.Device + " from " + ev.TargetGroup + ": released by " + who
	}
	out.ID = detect.AlertID("quarantine", ev.Device, action, now)
	return out, nil
}
