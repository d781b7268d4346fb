package detect

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/ingest"
)

// Deps are what an Engine works with.
type Deps struct {
	Registry *ingest.Registry // the registry the batches' device_id and group_id columns come from
	Baseline *baseline.Store  // built over the same registry
	Assets   ingest.AssetLookup
	Sink     Sink
	// Clock returns processing time. Nil: an alert's processing time is
	// its event time, which keeps replay byte-identical; a live consumer
	// passes time.Now.
	Clock  func() time.Time
	Logger *slog.Logger
	// Extra are batch-level detectors (network: novelty, scan, flood,
	// malformed) whose alerts go through the same lifecycle.
	Extra []BatchDetector
	// Trace, when set, is called for every metric value judged, with the
	// self band it was judged against, before the detectors run; vigil
	// score plots it. It must not keep the point's strings past the call
	// unless it copies them (they are the registry's, so it may).
	Trace func(TracePoint)
	// Rejected, when set, sees every row judging refused (the clock's
	// future and unclocked rows, devices past max_devices) as it is
	// refused, files' rows too; vigil score matches clock incidents with
	// them.
	Rejected func(ingest.RejectedRow)
}

// TracePoint is one judged metric value and the self band around it.
type TracePoint struct {
	Device, Group, Metric string
	Time                  int64   // event time, Unix ns
	Value                 float64 // the observed value
	// Expected, Lower and Upper are the self detector's center and band;
	// NaN while the baseline has too few samples (or self is off).
	Expected, Lower, Upper float64
}

// Engine wires baseline, detectors, the alarm lifecycle, the quarantine
// policy and the sink for a stream of batches: for each batch it binds the
// record to the baseline, judges every row against the state before it,
// learns the row unless its device is in alarm or the row breached, runs
// the batch detectors, delivers the output and acknowledges the batch.
//
// An Engine is not safe for concurrent use: one goroutine calls Process and
// Flush. Its state per device and group lives in slices indexed by the
// registry's ids; a row costs no allocation in steady state.
type Engine struct {
	cfg  Config
	deps Deps
	reg  *ingest.Registry
	log  *slog.Logger

	metricSlot map[string]int // metric name -> slot
	metrics    []metricParams // by slot
	colSlot    []int          // metric column of the bound batch -> slot (-1: unknown)
	exp        []baseline.Expectation
	shift      []ingest.DeviceTable[shiftState] // level-shift charts by metric slot, then local device id (see shift.go)
	rules      []rule
	ruleCol    []int    // rule -> metric column of the bound batch (-1: absent)
	setRules   bool     // any rule judges set members
	setScratch []setHit // per set rule: what the current row's members did

	devices  deviceStates
	groups   []groupState
	peersNow peersNow      // the peer detector's "peers now" test
	joint    jointState    // the joint detector's per-group models
	roll     *rolloutGuard // nil unless detect.rollout is enabled (rollout.go)

	parts    []partMark // source partitions, in order of first appearance
	lastPart int        // index in parts of the previous row's partition
	sources  []string   // the batches' Sources seen, in order of appearance
	src      int32      // index in sources of the batch being judged
	wm       int64      // event-time watermark: see partMark
	// backlog reports whether a partition has records its source has not
	// handed over yet (SetPartitionBacklog); nil for files.
	backlog func(source string, partition int32) bool
	clock   int64 // newest event time of an accepted row: see admitAhead
	// Rows after clockLimit take admitAhead: it is clock + clock.max_skew,
	// or earlier by the wall clock; math.MinInt64 before the clock is set.
	clockLimit int64
	wallLimit  int64 // wall clock + max_skew (math.MaxInt64 without Deps.Clock), read once a batch
	// holdBuilder copies the rows admitAhead holds.
	holdBuilder *ingest.ObservationBuilder
	runs        int64 // runs of rows from one partition, the clock of partition idleness
	runLen      int64 // rows in the current run
	runTick     int64 // runLen at which the current run counts once more: see partMark
	runChunk    int64 // the longest of the partitions' last runs
	// rejected are the rows the clock refused since the last batch was
	// acknowledged: they go with the next one (Batch.Rejected).
	rejected []ingest.RejectedRow

	certIndex map[uint64]int32 // certificate hash -> certs index
	certs     []certState
	hashSeed  maphash.Seed

	extraLast map[string]int64 // detector\x00device\x00behavior -> event time of its last sent alert
	// alarmsChanged: devices whose alarms were raised or cleared, for
	// AlarmsChanged; nil until its first call (nobody asks in a replay).
	alarmsChanged []int32
	qTimes        []int64        // event times of the most recent automatic quarantines
	evict         *evictor       // nil unless detect.when_full is evict_idle (evict.go)
	status        *statusTracker // nil unless PublishStatus was called (see status.go)
	recent        *RecentValues  // nil unless PublishStatus keeps them (see recent.go)

	cols  columns
	row   int
	setAt int // next member of the batch's Sets

	// box holds the output not delivered yet: this batch's, a failed
	// Write's, or alerts made between batches (restartFleet).
	box          Outbox
	scratchExtra []Alert
	scratch      Alert
	stats        Stats
	sh           shardRole // zero unless the engine is a shard (shard.go)
}

// columns are the fixed observation columns of the bound record.
type columns struct {
	ts                        []arrow.Timestamp
	dev, grp, part            []int32
	off                       []int64
	srcIP, clientID, cert, fw identityCol
}

// identityCol is an identity column of the bound record. Whether it has
// nulls at all is asked once per batch rather than each row's validity
// bit: identity fields are mostly on every row or on none.
type identityCol struct {
	a     *array.String
	nulls bool
}

// value returns row i's value, and false when it is null or empty.
func (c *identityCol) value(i int) (string, bool) {
	if c.nulls && c.a.IsNull(i) {
		return "", false
	}
	s := c.a.Value(i)
	return s, s != ""
}

func (c *identityCol) bind(col arrow.Array) bool {
	a, ok := col.(*array.String)
	c.a, c.nulls = a, ok && a.NullN() > 0
	return ok
}

// deviceState is the engine's state of one device.
type deviceState struct {
	init         bool
	guarded      bool // rows are not learned since guardedSince (see learnable)
	group        int32
	part         int32 // index+1 in Engine.parts of the partition of its latest report; 0: none
	alarms       int32 // active alarms: the poisoning guard and the quarantine release
	guardedSince int64
	last         int64         // event time of the newest report
	fleetWin     int64         // fleet window the device was last counted in
	more         *deviceAlarms // nil until the device's first self or peer breach, unless there are rules
	recent       recentStep    // with the console's recent values and a step (see RecentValues.settle)
	sil          silenceState
	ident        *identityState
	q            *quarantineState
}

// deviceAlarms is the part of a device's state most devices never need:
// self and peer alarm states (2 per metric) and, with rules, rule windows.
type deviceAlarms struct {
	metric []alarmState // nil until the device's first breaching self or peer datapoint
	rules  []ruleState
}

// groupState is the engine's state of one group.
type groupState struct {
	init          bool
	ruleMask      uint64 // rules that apply to the group
	members       []int32
	heap          []silenceEntry // silence deadlines, a min-heap
	lastReport    int64          // newest report of any member, for silence
	gapStart      int64          // the group's most recent gap in reporting longer than
	gapEnd        int64          // missed_reports × min_interval, for silence
	fleet         fleetState
	rate          rateBucket
	incident      incident
	incidentAlarm alarmState
	railAlarm     alarmState
	quarantined   int32
}

// Stats are the engine's counters since it started, for the replay summary
// and metrics.
type Stats struct {
	Rows       int64
	NotLearned int64            // rows not learned: device in alarm or the row breached
	Alerts     map[string]int64 // alarm alerts sent, by detector
	Severity   [11]int64        // alarm alerts sent, by severity
	Cleared    int64            // cleared alerts sent
	// Alarms raised but not sent, by reason.
	Suppressed, Maintenance, RateLimited int64
	Folded                               int64 // batch-detector repeats folded into an earlier alert
	Quarantine                           map[string]int64
	BadBatches                           int64 // records that did not have the observation schema
	BadSetMembers                        int64 // set members a set rule could not parse
	// Rows the clock rejected (not judged, not learned, not in Rows; see
	// admitAhead): FutureRows were further ahead of the stream's clock (or
	// of the wall clock) than clock.max_skew and no later row agreed with
	// them; UnclockedRows came before the stream had a clock and no later
	// row agreed with them.
	FutureRows, UnclockedRows int64
	LateRows                  int64 // rows judged but not learned: further behind their partition than clock.max_lateness
	// DeviceCapRows are rows of new devices refused past max_devices (not
	// judged, not learned, not in Rows).
	DeviceCapRows int64
	// DevicesEvicted are devices evicted to make room for new ones
	// (detect.when_full: evict_idle).
	DevicesEvicted int64
	// ShardMoves count devices that moved to a group of another engine
	// shard, once a move: each starts afresh there (see Shards).
	ShardMoves int64
}

// AddShard adds the counters of o, another engine shard judging the same
// input (pipeline.Sharded), to s: what each shard judged and sent adds
// up; what the input made (rows the clock or the device cap refused, bad
// batches, evictions) every shard counts alike, so s keeps its own. A new
// counter belongs in one of the two.
func (s *Stats) AddShard(o Stats) {
	s.Rows += o.Rows
	s.NotLearned += o.NotLearned
	s.Cleared += o.Cleared
	s.Suppressed += o.Suppressed
	s.Maintenance += o.Maintenance
	s.RateLimited += o.RateLimited
	s.Folded += o.Folded
	s.BadSetMembers += o.BadSetMembers
	s.LateRows += o.LateRows
	s.ShardMoves += o.ShardMoves
	for i := range s.Severity {
		s.Severity[i] += o.Severity[i]
	}
	for k, n := range o.Alerts {
		s.Alerts[k] += n
	}
	for k, n := range o.Quarantine {
		s.Quarantine[k] += n
	}
}

// NewEngine returns an engine for cfg. deps.Registry, deps.Baseline and
// deps.Sink are required. It limits deps.Registry to cfg.MaxDevices
// devices (ingest.Registry.LimitDevices): the sources interning with it
// then refuse new devices past the cap, and the engine counts their rows,
// or with when_full evict_idle admits them in place of idle devices.
func NewEngine(cfg Config, deps Deps) (*Engine, error) {
	if deps.Registry == nil || deps.Baseline == nil || deps.Sink == nil {
		return nil, errors.New("cannot create detect engine: Registry, Baseline and Sink are required")
	}
	if deps.Baseline.Registry() != deps.Registry {
		return nil, errors.New("cannot create detect engine: the baseline store was built over another registry; build both over the one the source interns with")
	}
	// The engine keeps its own copy: Validate fills parsed fields.
	cfg.Rules = slices.Clone(cfg.Rules)
	cfg.Suppress = slices.Clone(cfg.Suppress)
	cfg.Maintenance = slices.Clone(cfg.Maintenance)
	cfg.Metrics = maps.Clone(cfg.Metrics)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot create detect engine: %w", err)
	}
	deps.Registry.LimitDevices(cfg.MaxDevices, cfg.WhenFull == WhenFullEvictIdle)
	e := &Engine{
		cfg:        cfg,
		deps:       deps,
		reg:        deps.Registry,
		log:        deps.Logger,
		metricSlot: make(map[string]int),
		certIndex:  make(map[uint64]int32),
		hashSeed:   maphash.MakeSeed(),
		extraLast:  make(map[string]int64),
		wm:         math.MinInt64,
		clock:      math.MinInt64,
		clockLimit: math.MinInt64,
		wallLimit:  math.MaxInt64,
	}
	if t := deps.Baseline.LastEventTime(); t != 0 { // a restored baseline: its time is the stream's
		e.setClock(t)
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.stats.Alerts = make(map[string]int64)
	e.stats.Quarantine = make(map[string]int64)
	for i := range cfg.Rules {
		e.rules = append(e.rules, newRule(&e.cfg.Rules[i]))
		e.setRules = e.setRules || e.rules[i].set
	}
	e.ruleCol = make([]int, len(e.rules))
	e.setScratch = make([]setHit, len(e.rules))
	if e.cfg.Rollout.Enabled {
		e.roll = newRolloutGuard(&e.cfg.Rollout)
	}
	if e.cfg.WhenFull == WhenFullEvictIdle {
		e.evict = &evictor{}
	}
	return e, nil
}

// Stats returns a copy of the engine's counters.
func (e *Engine) Stats() Stats {
	s := e.stats
	s.Alerts = maps.Clone(e.stats.Alerts)
	s.Quarantine = maps.Clone(e.stats.Quarantine)
	return s
}

// Process judges batch b and delivers its alerts and quarantine events,
// then acknowledges b (with the sink's error, if any) and releases its
// record. Before the Ack, b.Rejected lists the rows with a source position
// the clock refused since the previous batch (see admitAhead), so that a
// source can dead-letter them before it commits past them. The error is
// the delivery error; output a failed Write did not deliver is sent again
// with the next batch's (ids make that idempotent).
// The learned state is not rolled back when a batch is redelivered.
func (e *Engine) Process(ctx context.Context, b *ingest.Batch) error {
	defer b.Release()
	if b.Record != nil && b.Record.NumRows() > 0 {
		e.judge(b)
	}
	for _, d := range e.deps.Extra {
		e.runExtra(d, b)
	}
	err := e.box.Deliver(ctx, e.deps.Sink)
	if e.status != nil {
		e.publishStatus(false)
	}
	if len(e.rejected) > 0 {
		b.Rejected, e.rejected = e.rejected, nil
	}
	b.Ack(ctx, err)
	return err
}

// Flush is called at the end of the input. It sends the summary of every
// alarm storm still open (dated at its last held-back alarm) and what
// earlier failed deliveries left over. Windows still open stay open: a
// partial window is not judged.
func (e *Engine) Flush(ctx context.Context) error {
	e.closeInput()
	err := e.box.Deliver(ctx, e.deps.Sink)
	if e.status != nil {
		e.publishStatus(true)
	}
	return err
}

// closeInput ends the input: the summary of every alarm storm still open
// (dated at its last held-back alarm), and the rows no other row came to
// confirm dropped.
func (e *Engine) closeInput() {
	for g := range e.groups {
		if gs := &e.groups[g]; gs.incident.open {
			e.sh.sub = int32(g)
			e.closeIncident(gs, int32(g), gs.incident.last)
		}
	}
	for p := range e.parts {
		e.dropAhead(&e.parts[p])
	}
}

// addQuarantine adds a quarantine event to the output.
func (e *Engine) addQuarantine(ev QuarantineEvent) {
	e.box.AddQuarantine(&ev)
	e.sh.keyQuarantine()
}

func (e *Engine) now(event time.Time) time.Time {
	if e.deps.Clock == nil {
		return event
	}
	return e.deps.Clock().UTC()
}

// judge runs the row detectors over b's record.
func (e *Engine) judge(b *ingest.Batch) {
	e.setSource(b.Source)
	f := e.deps.Baseline.Bind(b.Record)
	if err := f.Err(); err != nil {
		e.stats.BadBatches++
		e.log.Warn("batch skipped", "rows", b.Record.NumRows(), "err", err)
		return
	}
	if !e.bindColumns(b.Record) {
		e.stats.BadBatches++
		e.log.Warn("batch skipped: fixed observation columns have unexpected types", "rows", b.Record.NumRows())
		return
	}
	e.bindMetrics(f)
	if e.roll != nil {
		e.roll.bind(b.Record)
	}
	e.setAt = 0
	if e.deps.Clock != nil {
		e.wallLimit = addSat(e.deps.Clock().UnixNano(), int64(e.cfg.Clock.MaxSkew))
		e.setClock(e.clock)
	}
	n := f.NumRows()
	prefetch := e.devices.n >= ingest.PrefetchMinDevices
	for i := 0; i < n; i++ {
		if prefetch {
			e.prefetch(i)
		}
		e.judgeRow(f, b, i)
	}
	if e.recent != nil {
		e.recent.flush() // readers see the batch's values
	}
}

func (e *Engine) bindColumns(rec arrow.Record) bool {
	c := &e.cols
	var ok [10]bool
	var ts *array.Timestamp
	ts, ok[0] = rec.Column(0).(*array.Timestamp)
	_, okName := rec.Column(1).(*array.String) // device names, for evict_idle (resolveDevice)
	dev, ok1 := rec.Column(2).(*array.Int32)
	grp, ok2 := rec.Column(4).(*array.Int32)
	part, ok3 := rec.Column(5).(*array.Int32)
	off, ok4 := rec.Column(6).(*array.Int64)
	ok[5] = c.srcIP.bind(rec.Column(7))
	ok[6] = c.clientID.bind(rec.Column(8))
	ok[7] = c.cert.bind(rec.Column(9))
	ok[8] = c.fw.bind(rec.Column(10))
	if !ok[0] || !okName || !ok1 || !ok2 || !ok3 || !ok4 || !ok[5] || !ok[6] || !ok[7] || !ok[8] {
		return false
	}
	c.ts, c.dev, c.grp, c.part, c.off = ts.TimestampValues(), dev.Int32Values(), grp.Int32Values(), part.Int32Values(), off.Int64Values()
	return true
}

// bindMetrics resolves the batch's metric columns to slots and rules: one
// map lookup per column and batch, none per row.
func (e *Engine) bindMetrics(f *baseline.Frame) {
	nm := f.NumMetrics()
	e.colSlot = e.colSlot[:0]
	for j := 0; j < nm; j++ {
		name := f.MetricName(j)
		if name == "" {
			e.colSlot = append(e.colSlot, -1)
			continue
		}
		slot, ok := e.metricSlot[name]
		if !ok {
			slot = len(e.metrics)
			e.metricSlot[name] = slot
			e.metrics = append(e.metrics, newMetricParams(&e.cfg, name))
		}
		e.colSlot = append(e.colSlot, slot)
	}
	if e.recent != nil { // judgeMetrics notes the recent values by column
		e.recent.bind(e.colSlot, e.metrics)
	}
	if cap(e.exp) < nm {
		e.exp = make([]baseline.Expectation, nm)
	}
	e.exp = e.exp[:nm]
	for r := range e.rules {
		e.ruleCol[r] = -1
		if e.rules[r].set {
			continue
		}
		for j := 0; j < nm; j++ {
			if e.colSlot[j] >= 0 && e.metrics[e.colSlot[j]].name == e.rules[r].cfg.Metric {
				e.ruleCol[r] = j
				break
			}
		}
	}
}

// deviceStates holds the engine's state of each device by a dense local
// id, handed out when the engine first keeps state of the device, in pages
// (ingest.DeviceTable): a fleet arriving device by device never has its
// state copied, a pointer to it stays valid, and an engine shard holds
// pages only for the devices of its own groups, however their registry
// ids are spread. The level-shift charts are kept by the same local ids.
type deviceStates struct {
	local  ingest.DeviceTable[int32] // registry id -> local id + 1; 0: none
	states ingest.DeviceTable[deviceState]
	n      int32 // local ids handed out
	// last is the registry id + 1 (0: none) last resolved and its local
	// id: a row asks for its device's state, then for its chart of each
	// metric.
	last, lastLocal int32
}

// localOf returns the local id of registry device d (≥ 0), handing out
// the next one on the device's first call.
func (t *deviceStates) localOf(d int32) int32 {
	if d+1 == t.last {
		return t.lastLocal
	}
	p := t.local.At(d)
	if *p == 0 {
		t.n++
		*p = t.n
	}
	t.last, t.lastLocal = d+1, *p-1
	return *p - 1
}

// lookup returns the local id of registry device d, and false when it has
// none (d may be -1).
func (t *deviceStates) lookup(d int32) (int32, bool) {
	if p := t.local.Get(d); p != nil && *p > 0 {
		return *p - 1, true
	}
	return 0, false
}

// At returns the state of registry device d (≥ 0), zero if new.
func (t *deviceStates) At(d int32) *deviceState { return t.states.At(t.localOf(d)) }

// Get returns the state of registry device d, or nil when it has none.
func (t *deviceStates) Get(d int32) *deviceState {
	if l, ok := t.lookup(d); ok {
		return t.states.Get(l)
	}
	return nil
}

// prefetch asks the memory (ingest.Prefetch) for what judgeRow reads of
// the device of row i+ingest.PrefetchAhead, its state or, for another
// shard's device, its partition mark; and for the local id of the device
// twice as far ahead, which that needs first. Baseline's Frame does the
// same for the store's state.
func (e *Engine) prefetch(i int) {
	c := &e.cols
	if r := i + 2*ingest.PrefetchAhead; r < len(c.dev) {
		if p := e.devices.local.Get(c.dev[r]); p != nil {
			ingest.Prefetch(unsafe.Pointer(p))
		}
	}
	r := i + ingest.PrefetchAhead
	if r >= len(c.dev) || r >= len(c.grp) || c.grp[r] < 0 {
		return
	}
	if d := c.dev[r]; !e.owns(c.grp[r]) {
		if p := e.sh.foreignPart.Get(d); p != nil {
			ingest.Prefetch(unsafe.Pointer(p))
		}
	} else if ds := e.devices.Get(d); ds != nil {
		ingest.PrefetchRange(unsafe.Pointer(ds), int(unsafe.Sizeof(*ds)))
	}
}

// device returns the state of device d, creating it.
func (e *Engine) device(d int32) *deviceState {
	ds := e.devices.At(d)
	if !ds.init {
		ds.init = true
		ds.group = -1
		ds.sil.heapIdx = -1
		if len(e.rules) > 0 {
			ds.more = &deviceAlarms{rules: make([]ruleState, len(e.rules))}
		}
	}
	return ds
}

// knownState returns the state of device d, or nil when the engine has
// none (d may be -1).
func (e *Engine) knownState(d int32) *deviceState {
	if ds := e.devices.Get(d); ds != nil && ds.init {
		return ds
	}
	return nil
}

// metricState returns device ds's alarm state at index k (2×slot for self,
// +1 for peer). A device gets its metric states on its first breach: most
// devices never breach, and a clean datapoint leaves a zero state zero.
func (e *Engine) metricState(ds *deviceState, k int) *alarmState {
	if ds.more == nil {
		ds.more = &deviceAlarms{}
	}
	m := ds.more
	if k >= len(m.metric) {
		m.metric = append(m.metric, make([]alarmState, 2*len(e.metrics)-len(m.metric))...)
	}
	return &m.metric[k]
}

// group returns the state of group g, creating it. The test of an
// existing group is kept small enough to inline: every row asks.
func (e *Engine) group(g int32) *groupState {
	if int(g) < len(e.groups) && e.groups[g].init {
		return &e.groups[g]
	}
	return e.newGroup(g)
}

func (e *Engine) newGroup(g int32) *groupState {
	for int(g) >= len(e.groups) {
		e.groups = append(e.groups, groupState{})
	}
	gs := &e.groups[g]
	if !gs.init {
		gs.init = true
		name := e.reg.GroupName(g)
		for r := range e.rules {
			if e.rules[r].appliesTo(name) {
				gs.ruleMask |= 1 << r
			}
		}
	}
	return gs
}

// join makes d a member of group g.
func (e *Engine) join(d int32, ds *deviceState, g int32) {
	if ds.group >= 0 {
		e.leave(d, ds)
	} else if e.sh.set != nil {
		e.moveIn(d, ds)
	}
	ds.group = g
	gs := &e.groups[g]
	if e.evict != nil {
		e.evict.setMember(d, len(gs.members))
	}
	gs.members = append(gs.members, d)
}

// leave takes d out of its group's members and silence deadlines.
func (e *Engine) leave(d int32, ds *deviceState) {
	old := &e.groups[ds.group]
	e.silenceLeave(old, d, ds)
	e.leaveMembers(old, d, false)
}

// leaveMembers takes device d out of group gs's members. An eviction
// (swap) moves the last member into its place, in O(1); otherwise the
// members keep their order, which the rollout guard walks them in.
func (e *Engine) leaveMembers(gs *groupState, d int32, swap bool) {
	if e.evict == nil { // no index of members: a rebalance or a group change, not per row
		if i := slices.Index(gs.members, d); i >= 0 {
			gs.members = slices.Delete(gs.members, i, i+1)
		}
		return
	}
	ev := e.evict
	i := int(ev.member[d])
	if i >= len(gs.members) || gs.members[i] != d {
		panic("BUG: a device's index in its group's members is wrong")
	}
	if swap {
		last := gs.members[len(gs.members)-1]
		gs.members[i] = last
		ev.member[last] = int32(i)
		gs.members = gs.members[:len(gs.members)-1]
		return
	}
	gs.members = slices.Delete(gs.members, i, i+1)
	for k := i; k < len(gs.members); k++ {
		ev.member[gs.members[k]] = int32(k)
	}
}

func (e *Engine) judgeRow(f *baseline.Frame, b *ingest.Batch, i int) {
	e.sh.nextRow()
	c := &e.cols
	d, g := c.dev[i], c.grp[i]
	t := int64(c.ts[i])
	if e.evict != nil && (d < 0 || e.evict.reused(d)) {
		d = e.resolveDevice(b, i, d, t)
	}
	if d < 0 {
		e.refuseDevice(b, i)
		return
	}
	if g < 0 {
		if e.owns(g) {
			e.stats.Rows++
		}
		return
	}
	if t > e.clock {
		if t > e.clockLimit && !e.admitAhead(f, b, i, d, t) {
			return
		}
		e.setClock(t)
	}
	if !e.owns(g) {
		e.judgeForeign(d, i, t)
		return
	}
	e.stats.Rows++
	gs := e.group(g)
	ds := e.device(d)
	if ds.group != g {
		e.join(d, ds, g)
	}
	e.row = i
	late := false
	if p := c.part[i]; !e.samePartition(&ds.part, p, t) {
		late = e.advancePartition(&ds.part, p, t)
	}
	if gs.incident.open && t >= gs.incident.quietUntil {
		e.closeIncident(gs, g, t)
	}
	f.Expect(i, e.exp)
	if e.roll != nil {
		e.judgeRollout(d, g, t) // may mark the row's expectations learning: see rollout.go
	}
	if e.deps.Trace != nil {
		e.trace(d, g, t)
	}
	anomalous := e.judgeMetrics(d, ds, g, t)
	if len(e.rules) > 0 {
		anomalous = e.judgeRules(b, d, ds, g, gs, t) || anomalous
	}
	anomalous = e.judgeJoint(d, ds, g, t, late, anomalous) || anomalous
	if e.cfg.Identity.Enabled || e.status != nil { // the console shows the identity history
		e.judgeIdentity(d, ds, g, t)
	}
	if e.status != nil {
		e.status.touch(d)
	}
	if e.cfg.Silence.Enabled {
		e.judgeSilence(d, ds, g, gs, t)
	}
	if e.cfg.Fleet.Enabled && !late { // a window long closed is not this one's
		e.judgeFleet(ds, g, gs, t)
	}
	if t > ds.last {
		ds.last = t
	}
	switch {
	case late:
		e.stats.LateRows++
	case e.learnable(ds, anomalous, t):
		f.Learn(i)
		e.sh.noteLearned()
	default:
		e.stats.NotLearned++
		f.LearnSeason(i) // the group's recurring patterns, still (see Frame.LearnSeason)
	}
	if ds.q != nil {
		e.quarantineTick(d, ds, g, gs, t)
	}
}

// refuseDevice counts row i, whose device the registry refused past
// max_devices (its id is -1), and reports it rejected. It moves nothing:
// not the clock, not a partition's time.
func (e *Engine) refuseDevice(b *ingest.Batch, i int) {
	e.stats.DeviceCapRows++
	name := ""
	if col, ok := b.Record.Column(1).(*array.String); ok {
		// The rejected row outlives the record, whose buffers may hold the
		// next record's once it is released (ingest.RecyclingAllocator).
		name = strings.Clone(col.Value(i))
	}
	e.reject(e.src, e.cols.part[i], e.cols.off[i], name, ingest.RejectDeviceCap, e.refuseDetail(name))
}

// trace hands the current row's expectations to Deps.Trace.
func (e *Engine) trace(d, g int32, t int64) {
	for j, slot := range e.colSlot {
		ex := &e.exp[j]
		if slot < 0 || !ex.Present {
			continue
		}
		p := &e.metrics[slot]
		tp := TracePoint{Device: e.reg.DeviceName(d), Group: e.reg.GroupName(g), Metric: p.name, Time: t, Value: ex.Value,
			Expected: math.NaN(), Lower: math.NaN(), Upper: math.NaN()}
		if mean, spread, ok := p.selfBand(&e.cfg.Self, ex); ok && p.self && !ex.Learning {
			tp.Expected, tp.Lower, tp.Upper = mean, mean-p.threshold*spread, mean+p.threshold*spread
		}
		e.deps.Trace(tp)
	}
}

// learnable applies the poisoning guard: a row is not learned while its
// device is in alarm or when it breached, unless the device has been
// guarded for alarm.relearn_after.
func (e *Engine) learnable(ds *deviceState, anomalous bool, t int64) bool {
	if ds.alarms == 0 && !anomalous {
		ds.guarded = false
		return true
	}
	if !ds.guarded {
		ds.guarded, ds.guardedSince = true, t
	}
	return e.cfg.Alarm.RelearnAfter > 0 && t-ds.guardedSince >= int64(e.cfg.Alarm.RelearnAfter)
}

// newAlert resets the engine's scratch alert for a finding on the current
// row and returns it.
func (e *Engine) newAlert(detector, behavior string, d, g int32, ns int64) *Alert {
	a := &e.scratch
	*a = Alert{
		EventTime: time.Unix(0, ns).UTC(), Detector: detector, Behavior: behavior,
		Group: e.reg.GroupName(g), Observed: nan, Expected: nan, Lower: nan, Upper: nan,
		Partition: e.cols.part[e.row], Offset: e.cols.off[e.row],
	}
	if d >= 0 {
		a.Device = e.reg.DeviceName(d)
	}
	return a
}

// maxRepeatKeys bounds the memory of batch-detector repeats: beyond it,
// keys older than the repeat window are forgotten.
const maxRepeatKeys = 1 << 14

func (e *Engine) forgetRepeats(ns int64) {
	for k, last := range e.extraLast {
		if ns-last >= int64(e.cfg.Alarm.RepeatWindow) {
			delete(e.extraLast, k)
		}
	}
}

// runExtra runs a batch detector and takes its alerts through the
// lifecycle: repeats folded, suppression, maintenance, rate limit,
// severity and quarantine.
func (e *Engine) runExtra(d BatchDetector, b *ingest.Batch) {
	var tmp Output
	tmp.Alerts = e.scratchExtra[:0]
	d.DetectBatch(b, &tmp)
	e.scratchExtra = tmp.Alerts[:0]
	for i := range tmp.Alerts {
		a := tmp.Alerts[i]
		if a.Device == "" || a.Detector == "" || a.Behavior == "" {
			e.log.Warn("batch detector alert without device, detector or behavior dropped", "detector", a.Detector, "behavior", a.Behavior)
			continue
		}
		ns := a.EventTime.UnixNano()
		key := a.Detector + "\x00" + a.Device + "\x00" + a.Behavior
		if last, ok := e.extraLast[key]; ok && absDiff(ns, last) < int64(e.cfg.Alarm.RepeatWindow) {
			e.stats.Folded++
			continue
		}
		e.extraLast[key] = ns
		if len(e.extraLast) > maxRepeatKeys {
			e.forgetRepeats(ns)
		}
		grp := int32(-1)
		if a.Group != "" {
			grp = e.reg.GroupID(a.Group)
			e.group(grp)
		}
		// A device refused past max_devices keeps no state here, but its
		// finding is still sent: an alert is never dropped.
		dev, ok := e.reg.AdmitDevice(a.Device)
		if ok {
			ds := e.device(dev)
			if grp >= 0 && ds.group < 0 {
				e.join(dev, ds, grp)
			}
		}
		// Batch detectors state thresholds in Upper; how far beyond it
		// sets the score bonus of the severity.
		excess := 1.0
		if a.Upper > 0 && a.Observed > a.Upper {
			excess = a.Observed / a.Upper
		}
		e.raise(&a, nil, dev, grp, excess, e.functionSeverity(&a))
	}
}

// functionSeverity is the base severity of a new_function novelty alert:
// severity.control for functions that change what a controller does,
// severity.write for writes and other commands; 0 (the detector's base)
// for anything else, such as a new read.
func (e *Engine) functionSeverity(a *Alert) int {
	if a.Detector != DetectorNovelty || !strings.HasPrefix(a.Behavior, BehaviorNewFunction+":") {
		return 0
	}
	switch a.Technique {
	case TechniqueChangeOperatingMode, TechniqueDeviceRestart, TechniqueProgramDownload, TechniqueSystemFirmware:
		return e.cfg.Severity.Control
	case TechniqueUnauthorizedCommand:
		return e.cfg.Severity.Write
	}
	return 0
}

func absDiff(a, b int64) int64 {
	if a < b {
		return b - a
	}
	return a - b
}
