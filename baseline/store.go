package baseline

import (
	"fmt"
	"math"
	"math/bits"
	"time"
	"unsafe"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"

	"github.com/vigil-ot/vigil/ingest"
)

// noQuantiles is reported while a group has no quantile snapshot yet.
var noQuantiles = [NumQuantiles]float64{math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN()}

// MaxLearnedValue bounds the magnitude of values Learn folds in: beyond
// it, squared deviations could overflow and turn a baseline into NaN for
// good. Such values (and NaN and infinities) are not learned, and are
// counted (Store.Unlearnable); Expect still reports them to detectors.
const MaxLearnedValue = 1e100

// Store holds the learned state of every device and group: groups in a
// slice indexed by the registry's group ids, devices by a dense store-local
// id in pages (devicePage), and metric state indexed by a store-local
// metric id.
//
// Device state is compact and flat, one slot per (device, metric): the mean
// and squared deviations (float64, so large counters keep their precision
// and cannot overflow) and the weight (float32: an effective sample count)
// at each half-life, a sample count and the profile scale — 20 bytes per
// half-life plus 12. Decay is applied to every metric of a device at once,
// from one last-seen time per device.
//
// Group state is richer (float64 moments, a quantile sketch per metric and
// the hour-of-week profile). The seasonal profile is kept per group, not
// per device: 168 buckets per device and metric would cost ~4 KiB per
// metric, twice the whole per-device budget. A group bucket learns the
// residual of each row against its device's long-term mean, so the profile
// describes the group's weekly shape while each device keeps its own level
// (Expectation.SeasonalMean = device level + group residual of the hour).
//
// A Store is not safe for concurrent use: one goroutine (the engine) calls
// Bind, Expect, Learn and, between batches, the inspection, marshal and
// checkpoint methods.
type Store struct {
	cfg Config
	reg *ingest.Registry

	nh       int // number of half-lives
	hl       [MaxHalfLives]int64
	invHL    [MaxHalfLives]float64 // 1/half-life in 1/ns
	primary  int
	longest  int
	seasonHL int64
	seasonOf int64 // UTC offset, ns

	metricIndex map[string]int32
	metricNames []string
	stride      int // metric slots per device (== len(metricNames))

	// Device state is kept by a dense store-local id, handed out when the
	// store first judges or learns a device (localOf), so engine shards
	// hold state only for the devices of their own groups. It lives in
	// pages of ingest.DevicePage devices, allocated as devices arrive and
	// never copied (but the first, which starts small and doubles, so a
	// small fleet's state is small: see newLocal): see devicePage.
	local devLocalIDs
	pages []*devicePage // by local id >> ingest.DevicePageShift
	nloc  int32         // local ids handed out
	// blocks hand out the pages' columns: those of a large fleet on
	// huge pages (see ingest.PageBlocks).
	blocks struct {
		f64 ingest.PageBlocks[float64]
		f32 ingest.PageBlocks[float32]
		u32 ingest.PageBlocks[uint32]
	}

	groups []*groupState

	commSets map[string]*CommSet // learned allowlists, checkpointed with the state

	version uint64 // rows learned and summaries merged: see Version
	frame   Frame

	devGap, grpGap, seasonGap gapCache
	// seasonAge and sketchAge cache exp2 of the gaps seen by seasonWeights
	// (rows older than their bucket) and sketchWeight (a row's distance
	// from its group's landmark): rows of one report round share their
	// time, so the same gaps recur row after row.
	seasonAge, sketchAge weightCache

	unlearnable uint64 // values not learned: non-finite or beyond MaxLearnedValue

	// the hour of week of event times [howFrom, howTo): see hourOfWeek
	howFrom, howTo int64
	how            int
}

// gapCache remembers the decay factors of the last positive time gap:
// devices report on a fixed interval (Telegraf's round_interval, Device
// Defender's period), so the same gap recurs row after row. Devices,
// groups and seasonal buckets have different gaps, hence one cache each.
type gapCache struct {
	dt    int64
	decay [MaxHalfLives]float64
	// ageDT and age do the same for negative gaps, rows older than the
	// state (partitions interleave slightly out of time order, a batch
	// holds a minute of devices that report at their own second): age
	// holds their sample weights, in slots as in weightCache. A slot's
	// ageDT of 0 never matches a negative gap, so the zero value is empty.
	ageDT [weightSlots]int64
	age   [weightSlots][MaxHalfLives]float64
}

// weightSlots is the size of a weightCache. Gaps recur with the report
// phases of the fleet: devices that report at their own second of the
// minute cycle through 60 gaps a minute. A gap's slot is the gap modulo
// this prime, which puts any run of up to 127 evenly spaced gaps (whole
// seconds, whole milliseconds) in distinct slots, where a multiplicative
// hash of such runs collides.
const weightSlots = 127

// weightCache remembers exp2(dt/hl) of one fixed hl for recent gaps dt in
// a direct-mapped table. A slot whose weight is 0 is empty (a weight that
// underflowed to 0 is simply computed again), so the zero value is ready.
type weightCache struct {
	dt [weightSlots]int64
	w  [weightSlots]float64
}

// exp2 returns exp2(dt/hl), computing it only when dt's slot holds another
// gap: the cached value is the same function of the same dt, so the result
// is bit for bit what exp2 returns.
func (c *weightCache) exp2(dt int64, hl float64) float64 {
	i := uint64(dt) % weightSlots
	if c.dt[i] != dt || c.w[i] == 0 {
		c.dt[i], c.w[i] = dt, exp2(float64(dt)/hl)
	}
	return c.w[i]
}

// groupState is the state of one group.
type groupState struct {
	started    bool
	first      int64 // event time of the first learned row
	last       int64 // event time the moments' weights refer to
	rows       int64 // rows learned
	protecting bool
	// qLandmark is the forward-decay landmark shared by the group's quantile
	// sketches, so one sample weight per row serves every metric.
	qStarted   bool
	qLandmark  int64
	metrics    []groupMetric // by metric id
	seasonLast [hoursPerWeek]int64

	// Summaries other instances learned (MergeGroup), sorted by peer name
	// so the merge order, and with it the rounding, is deterministic. When
	// there are any, view is the local state merged with them, and Expect
	// judges against view while Learn updates the local state. Expect
	// rebuilds the view when a summary changed and after every
	// viewRefreshRows rows learned locally: on a count of rows, not once a
	// batch, so how the input was cut into batches does not matter.
	peers     []peerGroup
	view      *groupState
	viewStale bool
	// rows learned locally since view was built
	rowsSinceView int64
}

// viewRefreshRows is how many rows a group learns locally before Expect
// merges its local state with its peers' summaries again. A rebuild copies
// the group's sketches (~8 KiB a metric), so each row's own contribution
// reaches the merged view with a lag of at most this many rows; the
// peers' summaries, which arrive every few seconds, lag far more.
const viewRefreshRows = 256

type peerGroup struct {
	name  string
	state *groupState
}

// judged returns the state Expect judges against: the local state, or
// the local state merged with the peers' summaries.
func (g *groupState) judged() *groupState {
	if g.view != nil {
		return g.view
	}
	return g
}

type groupMetric struct {
	n      int64
	w      [MaxHalfLives]float64
	mean   [MaxHalfLives]float64
	m2     [MaxHalfLives]float64
	sketch *QuantileSketch // its RankedQuantiles are the group's quantiles
	season *[hoursPerWeek]seasonCell
	peak   peakMemory
}

// NewStore returns an empty store. cfg must have passed Validate; reg maps
// the ids of the observation records to names for checkpoints.
func NewStore(cfg Config, reg *ingest.Registry) *Store {
	if err := cfg.Validate(); err != nil {
		panic("BUG: baseline.NewStore with an invalid config: " + err.Error())
	}
	s := &Store{
		cfg:         cfg,
		reg:         reg,
		nh:          len(cfg.HalfLives),
		primary:     cfg.primaryIndex(),
		seasonHL:    int64(cfg.SeasonalHalfLife),
		seasonOf:    int64(cfg.SeasonalUTCOffset),
		metricIndex: make(map[string]int32),
	}
	for i, h := range cfg.HalfLives {
		s.hl[i] = int64(h)
		s.invHL[i] = 1 / float64(h)
		if h > cfg.HalfLives[s.longest] {
			s.longest = i
		}
	}
	s.frame.s, s.frame.at = s, -1
	return s
}

// CommSet returns the store's learned communication set called name,
// creating it on first use. The set is checkpointed and restored with the
// store, so a restart does not relearn who talks to whom. learnFor (the
// learning period of each group) is taken from every call and applies to
// groups that start learning afterwards; a restored group keeps the end
// of learning it started with (see CommSet).
func (s *Store) CommSet(name string, learnFor time.Duration) *CommSet {
	if s.commSets == nil {
		s.commSets = make(map[string]*CommSet)
	}
	c := s.commSets[name]
	if c == nil {
		c = NewCommSet(learnFor)
		s.commSets[name] = c
	}
	c.learnFor = int64(learnFor)
	return c
}

// LookupCommSet returns the communication set called name, or nil when
// the store has none (nothing asked for it, and no checkpoint held it).
func (s *Store) LookupCommSet(name string) *CommSet { return s.commSets[name] }

// Unlearnable returns how many values Learn refused: NaN, infinite or
// beyond ±MaxLearnedValue.
func (s *Store) Unlearnable() uint64 { return s.unlearnable }

// Config returns the store's configuration.
func (s *Store) Config() Config { return s.cfg }

// Version returns the baseline version: it increments with every row
// learned and every group summary merged or absorbed, and is reported with
// every expectation. It counts rows, not batches, so the same input gives
// the same versions however it was cut into batches.
func (s *Store) Version() uint64 { return s.version }

// HasMetric reports whether the store has seen a metric of this name.
func (s *Store) HasMetric(name string) bool {
	_, ok := s.metricIndex[name]
	return ok
}

// Registry returns the registry the store names devices and groups with.
func (s *Store) Registry() *ingest.Registry { return s.reg }

// metricID returns the id of metric name, growing the state for a new one.
func (s *Store) metricID(name string) int32 {
	id := s.nameMetric(name)
	s.relayout(len(s.metricNames))
	return id
}

// nameMetric returns the id of metric name, naming a new one without
// growing the state for it: the caller relayouts once for all the new
// metrics of a record (each relayout copies every device's state, so one
// per new metric cost a packet replay, whose first windows bring a few
// dozen metrics, a quadratic number of copies).
func (s *Store) nameMetric(name string) int32 {
	if id, ok := s.metricIndex[name]; ok {
		return id
	}
	id := int32(len(s.metricNames))
	s.metricIndex[name] = id
	s.metricNames = append(s.metricNames, name)
	return id
}

// devLocalIDs maps registry device ids to local id + 1 (0: no state).
type devLocalIDs = ingest.DeviceTable[int32]

// devicePage is the state of ingest.DevicePage devices (local ids), in
// columns without pointers, so the garbage collector never scans them.
// Local device i of the page has slots i*stride to (i+1)*stride-1, one per
// metric; a slot holds the mean and squared deviations (float64, so large
// counters keep their precision and cannot overflow) and the weight
// (float32: an effective sample count) at each half-life, a sample count
// and the profile scale's two sums.
type devicePage struct {
	devs  int                      // devices the columns have room for (≤ ingest.DevicePage)
	last  [ingest.DevicePage]int64 // event time the device's weights refer to
	group [ingest.DevicePage]int32 // the group of its latest learned row; -1: none
	n     []uint32                 // [slot]
	mean  []float64                // [slot*nh+h]
	w     []float32                // [slot*nh+h]
	m2    []float64                // [slot*nh+h]
	// prof is each device metric's profile scale (see profileScale):
	// [2*slot] the running mean of residual × group offset, [2*slot+1] of
	// offset².
	prof []float32
}

// firstPageDevices is the room the first page of devices starts with.
const firstPageDevices = 16

// newDevicePage returns an empty page with room for n devices of stride
// metrics.
func (s *Store) newDevicePage(stride, n int) *devicePage {
	b := &s.blocks
	pg := &devicePage{
		devs: n,
		n:    b.u32.Make(n * stride),
		mean: b.f64.Make(n * stride * s.nh),
		w:    b.f32.Make(n * stride * s.nh),
		m2:   b.f64.Make(n * stride * s.nh),
		prof: b.f32.Make(2 * n * stride),
	}
	for i := range pg.group {
		pg.group[i] = -1
	}
	return pg
}

// localOf returns the local id of registry device d (≥ 0), handing out
// the next one, with empty state, on the device's first call. Small
// enough to inline: every row asks.
func (s *Store) localOf(d int32) int32 {
	if p := s.local.Get(d); p != nil && *p > 0 {
		return *p - 1
	}
	return s.newLocal(d)
}

// newLocal hands out the next local id to registry device d.
//
// Pages after the first are whole from the start. The first starts with
// room for firstPageDevices and doubles: a relayout (a new metric) copies
// only the devices handed out, but allocates whole pages, which would cost
// a capture's few hosts, learning a few dozen metrics one after another,
// a page of ingest.DevicePage devices per new metric.
func (s *Store) newLocal(d int32) int32 {
	p, i := int(s.nloc>>ingest.DevicePageShift), int(s.nloc&(ingest.DevicePage-1))
	switch {
	case p == len(s.pages) && p == 0:
		s.pages = append(s.pages, s.newDevicePage(s.stride, firstPageDevices))
	case p == len(s.pages):
		s.pages = append(s.pages, s.newDevicePage(s.stride, ingest.DevicePage))
	case i == s.pages[p].devs:
		s.pages[p] = s.copyPage(s.pages[p], s.stride, 2*i, i)
	}
	s.nloc++
	*s.local.At(d) = s.nloc
	return s.nloc - 1
}

// lookupLocal returns the local id of registry device d, and false when
// the store holds no state of it.
func (s *Store) lookupLocal(d int32) (int32, bool) {
	if p := s.local.Get(d); p != nil && *p > 0 {
		return *p - 1, true
	}
	return 0, false
}

// device returns the page of local device l and its index in the page.
func (s *Store) device(l int32) (*devicePage, int) {
	return s.pages[l>>ingest.DevicePageShift], int(l & (ingest.DevicePage - 1))
}

// relayout widens every device's slot range to stride metrics.
func (s *Store) relayout(stride int) {
	old := s.stride
	if stride <= old {
		return
	}
	for p, pg := range s.pages {
		used := min(int(s.nloc)-p*ingest.DevicePage, pg.devs)
		s.pages[p] = s.copyPage(pg, stride, pg.devs, used)
	}
	s.stride = stride
	for _, g := range s.groups {
		if g != nil {
			g.grow(stride)
		}
	}
}

// copyPage returns a page with room for devs devices of stride metrics
// holding the first used devices of pg (whose stride is s.stride), and
// makes the frame resolve its device again (the page it holds is gone).
func (s *Store) copyPage(pg *devicePage, stride, devs, used int) *devicePage {
	old, nh := s.stride, s.nh
	np := s.newDevicePage(stride, devs)
	np.last, np.group = pg.last, pg.group
	for d := 0; d < used && old > 0; d++ {
		copy(np.prof[2*d*stride:], pg.prof[2*d*old:2*(d+1)*old])
		copy(np.mean[d*stride*nh:], pg.mean[d*old*nh:(d+1)*old*nh])
		copy(np.w[d*stride*nh:], pg.w[d*old*nh:(d+1)*old*nh])
		copy(np.m2[d*stride*nh:], pg.m2[d*old*nh:(d+1)*old*nh])
		copy(np.n[d*stride:], pg.n[d*old:(d+1)*old])
	}
	s.frame.at = -1
	return np
}

func (g *groupState) grow(stride int) {
	for len(g.metrics) < stride {
		g.metrics = append(g.metrics, groupMetric{})
	}
	if g.view != nil {
		g.view.grow(stride)
	}
	for _, p := range g.peers {
		p.state.grow(stride)
	}
}

// group returns the state of group id, creating it.
func (s *Store) group(id int32) *groupState {
	for int(id) >= len(s.groups) {
		s.groups = append(s.groups, nil)
	}
	g := s.groups[id]
	if g == nil {
		g = &groupState{}
		g.grow(s.stride)
		s.groups[id] = g
	}
	return g
}

// Frame is one observation record prepared for Expect and Learn: its
// columns as Go slices and its metric columns resolved to metric ids. It is
// owned by the Store and valid until the next Bind or the record's release,
// whichever comes first.
type Frame struct {
	s    *Store
	err  error
	rows int
	ts   []arrow.Timestamp
	dev  []int32
	grp  []int32
	cols []frameCol
	// The device state of row at: Expect resolves it, Learn and
	// LearnSeason of the same row reuse it (-1: none resolved).
	at   int
	atPg *devicePage
	atI  int
}

// device returns the page of row's device d and its index in the page,
// resolving it once a row.
func (f *Frame) device(row int, d int32) (*devicePage, int) {
	if row != f.at {
		f.atPg, f.atI = f.s.device(f.s.localOf(d))
		f.at = row
		if f.s.nloc >= prefetchMinDevices {
			f.prefetch(row)
		}
	}
	return f.atPg, f.atI
}

// prefetchMinDevices is ingest.PrefetchMinDevices, a variable for the
// benchmark that compares the frame without prefetching.
var prefetchMinDevices int32 = ingest.PrefetchMinDevices

// prefetch asks the memory (ingest.Prefetch) for the local id of the
// device of row+2·ingest.PrefetchAhead and for the state of that of
// row+ingest.PrefetchAhead. Rows of devices the store holds no state of
// (new ones, another shard's) cost a look-up.
func (f *Frame) prefetch(row int) {
	s := f.s
	if r := row + 2*ingest.PrefetchAhead; r < f.rows {
		if p := s.local.Get(f.dev[r]); p != nil {
			ingest.Prefetch(unsafe.Pointer(p))
		}
	}
	r := row + ingest.PrefetchAhead
	if r >= f.rows {
		return
	}
	l, ok := s.lookupLocal(f.dev[r])
	if !ok {
		return
	}
	pg, i := s.device(l)
	if i >= pg.devs || s.stride == 0 {
		return // the first page before it grows, or no metric yet
	}
	ingest.Prefetch(unsafe.Pointer(&pg.last[i]))
	ingest.Prefetch(unsafe.Pointer(&pg.group[i]))
	base, nh := i*s.stride, s.nh
	ingest.PrefetchRange(unsafe.Pointer(&pg.n[base]), 4*s.stride)
	ingest.PrefetchRange(unsafe.Pointer(&pg.mean[base*nh]), 8*s.stride*nh)
	ingest.PrefetchRange(unsafe.Pointer(&pg.w[base*nh]), 4*s.stride*nh)
	ingest.PrefetchRange(unsafe.Pointer(&pg.m2[base*nh]), 8*s.stride*nh)
	ingest.PrefetchRange(unsafe.Pointer(&pg.prof[2*base]), 8*s.stride)
}

type frameCol struct {
	id    int32 // metric id; -1: not a float64 column (always absent)
	vals  []float64
	valid []byte // null bitmap, nil when the column has no nulls
	off   int    // bit offset of the column into valid
}

// Bind prepares rec, an observation record (ingest.ObservationSchema), for
// Expect and Learn: it resolves metric columns to metric ids (one map
// lookup per column, none per row) and grows the state for new group ids
// (a device's state is made when a row of it is first judged or learned). It reads no learned state: every row is judged against the
// state as of that row, so batch boundaries never change a judgement. A
// record with a broken schema yields a frame with no rows and Err set.
// Bind allocates nothing in steady state.
func (s *Store) Bind(rec arrow.Record) *Frame {
	f := &s.frame
	f.err, f.rows, f.ts, f.dev, f.grp, f.at, f.atPg = nil, 0, nil, nil, nil, -1, nil
	f.cols = f.cols[:0]
	if err := checkSchema(rec); err != nil {
		f.err = err
		return f
	}
	f.ts = rec.Column(0).(*array.Timestamp).TimestampValues()
	f.dev = rec.Column(2).(*array.Int32).Int32Values()
	f.grp = rec.Column(4).(*array.Int32).Int32Values()
	for j := ingest.NumFixedCols; j < int(rec.NumCols()); j++ {
		c := frameCol{id: -1}
		if a, ok := rec.Column(j).(*array.Float64); ok {
			c.id = s.nameMetric(rec.ColumnName(j))
			c.vals = a.Float64Values()
			if a.NullN() > 0 {
				c.valid = a.NullBitmapBytes()
				c.off = a.Data().Offset()
			}
		}
		f.cols = append(f.cols, c)
	}
	s.relayout(len(s.metricNames))
	f.rows = int(rec.NumRows())
	if f.rows > 0 && (rec.Column(2).NullN() > 0 || rec.Column(4).NullN() > 0) {
		f.err = fmt.Errorf("cannot bind observation record: null device_id or group_id; the ingest builder must fill them")
		f.rows = 0
		return f
	}
	maxGrp := int32(-1)
	for i := 0; i < f.rows; i++ {
		maxGrp = max(maxGrp, f.grp[i])
	}
	if maxGrp >= 0 {
		s.group(maxGrp)
	}
	for i := 0; i < f.rows; i++ {
		if g := f.grp[i]; g >= 0 && s.groups[g] == nil {
			s.group(g)
		}
	}
	return f
}

func checkSchema(rec arrow.Record) error {
	if rec == nil {
		return fmt.Errorf("cannot bind observation record: nil record")
	}
	if int(rec.NumCols()) < ingest.NumFixedCols {
		return fmt.Errorf("cannot bind observation record: %d columns, want at least %d; build it with ingest.ObservationSchema", rec.NumCols(), ingest.NumFixedCols)
	}
	if _, ok := rec.Column(0).(*array.Timestamp); !ok || rec.ColumnName(0) != ingest.ColTime {
		return fmt.Errorf("cannot bind observation record: column 0 is %s %s, want %s timestamp; build it with ingest.ObservationSchema", rec.ColumnName(0), rec.Column(0).DataType(), ingest.ColTime)
	}
	for _, j := range []int{2, 4} {
		if _, ok := rec.Column(j).(*array.Int32); !ok {
			return fmt.Errorf("cannot bind observation record: column %d (%s) is %s, want int32; build it with ingest.ObservationSchema", j, rec.ColumnName(j), rec.Column(j).DataType())
		}
	}
	return nil
}

// Err returns why the record could not be bound, or nil.
func (f *Frame) Err() error { return f.err }

// NumRows returns the number of rows of the bound record (0 when Err).
func (f *Frame) NumRows() int { return f.rows }

// NumMetrics returns the number of metric columns of the record.
func (f *Frame) NumMetrics() int { return len(f.cols) }

// MetricName returns the name of metric column j (record column
// ingest.NumFixedCols+j).
func (f *Frame) MetricName(j int) string {
	if id := f.cols[j].id; id >= 0 {
		return f.s.metricNames[id]
	}
	return ""
}

// Value returns metric column j of row i, and false when it is null or the
// column is not a float64 column.
func (f *Frame) Value(i, j int) (float64, bool) { return f.cols[j].value(i) }

// value returns metric column j of row i, and whether it is present.
func (c *frameCol) value(i int) (float64, bool) {
	if c.id < 0 {
		return 0, false
	}
	if c.valid != nil {
		b := c.off + i
		if c.valid[b>>3]&(1<<(b&7)) == 0 {
			return 0, false
		}
	}
	return c.vals[i], true
}

// Expect fills dst[j] for each metric column j of row from the state
// before the row: the device's moments at the primary half-life (its
// group's while the device has fewer than device_min_samples values), the
// seasonal expectation once trusted, the group's moments and quantiles,
// sample counts, the group's learning flag and the version. len(dst) must
// be at least NumMetrics().
func (f *Frame) Expect(row int, dst []Expectation) {
	s := f.s
	dst = dst[:len(f.cols)]
	d, g := f.dev[row], f.grp[row]
	if d < 0 || g < 0 {
		for j, c := range f.cols {
			v, ok := c.value(row)
			dst[j] = Expectation{Present: ok, Value: v, Learning: true, Version: s.version}
		}
		return
	}
	gs := s.groups[g]
	if len(gs.peers) > 0 && (gs.viewStale || gs.rowsSinceView >= viewRefreshRows) {
		s.rebuildView(gs)
	}
	gs = gs.judged()
	learning := !gs.protecting
	t := int64(f.ts[row])
	how := s.hourOfWeek(t)
	u := s.hourPosition(t)
	seasonalHistory, dailyHistory := s.profiles(gs, t-gs.first)
	seasonNeed := 0.0
	if seasonalHistory || dailyHistory {
		seasonNeed = s.seasonNeed(gs) // the profile's trust needs it only then
	}
	nh, p, l := s.nh, s.primary, s.longest
	pg, i := f.device(row, d)
	devBase := i * s.stride
	minN := uint32(s.cfg.DeviceMinSamples)
	epoch := s.epochOf(t)
	for j := range f.cols {
		c := &f.cols[j]
		e := &dst[j]
		v, ok := c.value(row)
		if c.id < 0 {
			*e = Expectation{Present: ok, Value: v, Learning: learning, Version: s.version}
			continue
		}
		// Each field is assigned once, below, rather than the struct
		// zeroed and then mostly overwritten: this runs for every value.
		// TestExpectSetsEveryField keeps it complete.
		e.Present, e.Value, e.Learning, e.Version = ok, v, learning, s.version
		gm := &gs.metrics[c.id]
		e.GroupSamples = gm.n
		e.GroupMean = gm.mean[p]
		e.GroupStd = stdOf(gm.m2[p], gm.w[p])
		if gm.sketch != nil {
			e.GroupQuantiles = *gm.sketch.RankedQuantiles()
		} else {
			e.GroupQuantiles = noQuantiles
		}
		e.GroupPeak = gm.peak.at(epoch)
		slot := devBase + int(c.id)
		n := pg.n[slot]
		e.Samples = int64(n)
		var level float64
		if n < minN {
			e.FromGroup = true
			e.Mean, e.Std = e.GroupMean, e.GroupStd
			e.LongStd = stdOf(gm.m2[l], gm.w[l])
			level = gm.mean[l]
		} else {
			k := slot*nh + p
			e.FromGroup = false
			e.Mean = pg.mean[k]
			e.Std = stdOf(pg.m2[k], float64(pg.w[k]))
			e.LongStd = stdOf(pg.m2[slot*nh+l], float64(pg.w[slot*nh+l]))
			level = pg.mean[slot*nh+l]
		}
		e.Seasonal, e.SeasonalMean, e.SeasonalStd = false, 0, 0
		switch {
		case gm.season == nil:
		case seasonalHistory:
			if cell := &gm.season[how]; cell.w >= seasonNeed {
				e.Seasonal = true
				e.SeasonalMean = level + pg.profileScale(slot, n >= minN)*gm.seasonOffset(how, u, seasonNeed, gm.mean[l])
				e.SeasonalStd = stdOf(cell.m2, cell.w)
			}
		case dailyHistory:
			if cell := gm.dailyCell(how%hoursPerDay, gm.mean[l]); cell.w >= seasonNeed {
				e.Seasonal = true
				e.SeasonalMean = level + pg.profileScale(slot, n >= minN)*cell.mean
				e.SeasonalStd = stdOf(cell.m2, cell.w)
			}
		}
	}
}

func stdOf(m2, w float64) float64 {
	if w <= 0 || m2 <= 0 {
		return 0
	}
	return math.Sqrt(m2 / w)
}

// Learn folds row into its device's and its group's state. The engine
// calls Expect then Learn for each row in row order, and skips Learn for
// rows whose device is in alarm. Non-finite values are not learned.
func (f *Frame) Learn(row int) {
	s := f.s
	d, g := f.dev[row], f.grp[row]
	if d < 0 || g < 0 {
		return
	}
	t := int64(f.ts[row])
	gs := s.groups[g]
	pg, i := f.device(row, d)
	pg.group[i] = g
	nh := s.nh
	devBase := i * s.stride

	// Decay the device's and the group's metric slots to the row's time
	// once per row, and get this row's sample weights.
	var devDec, devA, grpDec, grpA [MaxHalfLives]float64
	s.decayWeights(t, &pg.last[i], &devDec, &devA, &s.devGap)
	// A device slot the row learns is decayed where it is learned, in the
	// same operations a pass over all slots would do but without a second
	// trip through the device's state; the row's other slots decay after
	// the loop. undecayed marks the slots still to do (a row may repeat a
	// metric, and a slot decays once). Beyond 64 metrics, one pass first.
	var dec32 [MaxHalfLives]float32
	var undecayed uint64
	if devDec[0] != 1 || devDec[nh-1] != 1 {
		for h := range nh {
			dec32[h] = float32(devDec[h])
		}
		if s.stride <= 64 {
			undecayed = 1<<s.stride - 1 // all ones for 64
		} else {
			pg.decay(nh, devBase, 0, s.stride, &dec32, &devDec)
		}
	}
	if !gs.started {
		gs.started, gs.first, gs.last = true, t, t
	}
	gs.first = min(gs.first, t)
	s.decayWeights(t, &gs.last, &grpDec, &grpA, &s.grpGap)
	how := s.hourOfWeek(t)
	u := s.hourPosition(t)
	sdec, sa := s.seasonWeights(gs, t, how)
	// Only rows after the group's warm-up teach the hour-of-week profile:
	// before, the device levels the residuals are taken against have not
	// seen a whole day yet (SeasonalWarmup).
	judged := gs.judged()
	seasonWarm := t-judged.first >= int64(s.cfg.SeasonalWarmup)
	firstWeek := t-judged.first < week
	if grpDec[0] != 1 || grpDec[nh-1] != 1 || sdec != 1 {
		for m := range gs.metrics {
			gm := &gs.metrics[m]
			for h := 0; h < nh; h++ {
				gm.w[h] *= grpDec[h]
				gm.m2[h] *= grpDec[h]
			}
			if gm.season != nil {
				c := &gm.season[how]
				c.w *= sdec
				c.m2 *= sdec
				c.yw *= sdec
			}
		}
	}
	qw := s.sketchWeight(gs, t)
	epoch := s.epochOf(t)

	l := s.longest
	minN := uint32(s.cfg.DeviceMinSamples)
	devN, devMean, devW, devM2 := pg.n, pg.mean, pg.w, pg.m2
	for j := range f.cols {
		c := &f.cols[j]
		x, ok := c.value(row)
		if !ok {
			continue
		}
		if !(x >= -MaxLearnedValue && x <= MaxLearnedValue) { // also NaN
			s.unlearnable++
			continue
		}
		m := int(c.id)
		slot := devBase + m

		// device
		jm := &judged.metrics[m] // the group as Expect sees it
		level := jm.mean[l]      // the device's level before this row, for the seasonal residual
		n := devN[slot]
		if n >= minN {
			level = devMean[slot*nh+l]
		}
		bit := uint64(1) << m // 0 beyond 64 metrics: decayed already
		decay := undecayed&bit != 0
		undecayed &^= bit
		if n == 0 {
			s.seedDevice(pg, slot, jm) // replaces the slot: nothing to decay
			decay = false
		}
		// The slot's half-lives, and the factors by half-life, sliced to
		// one length so that the loop runs without bounds checks.
		k := slot * nh
		sw := devW[k : k+nh]
		sm, sq := devMean[k : k+nh][:len(sw)], devM2[k : k+nh][:len(sw)]
		da, dd, d32 := devA[:len(sw)], devDec[:len(sw)], dec32[:len(sw)]
		for h := range sw {
			w32, m2 := sw[h], sq[h]
			if decay {
				w32 *= d32[h]
				m2 *= dd[h]
			}
			w, mean, m2 := welford(float64(w32), sm[h], m2, x, da[h])
			sw[h], sm[h], sq[h] = float32(w), mean, m2
		}
		if n < math.MaxUint32 {
			devN[slot] = n + 1
		}

		// group
		gm := &gs.metrics[m]
		for h, a := range grpA[:nh] { // h < nh <= MaxHalfLives: no bounds checks
			gm.w[h], gm.mean[h], gm.m2[h] = welford(gm.w[h], gm.mean[h], gm.m2[h], x, a)
		}
		gm.n++
		if gm.sketch == nil {
			gm.sketch = NewQuantileSketch(s.cfg.QuantileHalfLife)
		}
		if sk := gm.sketch; !sk.started || sk.landmark != gs.qLandmark {
			sk.alignLandmark(gs.qLandmark)
		}
		gm.sketch.addWeighted(x, qw)
		gm.peak.learn(x, epoch)
		if !seasonWarm {
			continue
		}
		if gm.season == nil {
			gm.season = new([hoursPerWeek]seasonCell)
		}
		cell := &gm.season[how]
		if cell.w > 0 && n >= minN {
			pg.learnProfileScale(slot, n, x-level, gm.seasonOffset(how, u, 1, jm.mean[l]))
		}
		cell.learn(x-level, sa, jm.mean[l], firstWeek)
	}
	for undecayed != 0 { // the slots the row did not learn
		m := bits.TrailingZeros64(undecayed)
		undecayed &^= 1 << m
		pg.decay(nh, devBase, m, m+1, &dec32, &devDec)
	}
	gs.rows++
	gs.rowsSinceView++
	s.version++
	if !gs.protecting && s.endsLearning(gs, pg.n[devBase:devBase+s.stride]) {
		gs.protecting = true
	}
}

// endsLearning reports whether group gs has learned enough to protect:
// min_samples rows, and either min_duration of event time or, when
// min_duration is 0 (derived), min_samples values of one of its devices
// (counts: the sample counts of the device whose row was just learned;
// nil: none), so that
// learning lasts as long as min_samples reports take at the devices' own
// cadence: five minutes at 1 Hz, two days at one report every ten minutes,
// however many devices the group has.
func (s *Store) endsLearning(gs *groupState, counts []uint32) bool {
	if gs.rows < s.cfg.MinSamples {
		return false
	}
	if s.cfg.MinDuration > 0 {
		return gs.last-gs.first >= int64(s.cfg.MinDuration)
	}
	var n uint32
	for _, c := range counts {
		n = max(n, c)
	}
	return int64(n) >= s.cfg.MinSamples
}

// decay decays the weights and squared deviations of the slots
// devBase+from to devBase+to (exclusive) by dec (dec32 is dec in float32,
// the weights' precision).
func (pg *devicePage) decay(nh, devBase, from, to int, dec32 *[MaxHalfLives]float32, dec *[MaxHalfLives]float64) {
	w := pg.w[(devBase+from)*nh : (devBase+to)*nh]
	m2 := pg.m2[(devBase+from)*nh : (devBase+to)*nh]
	for k := 0; k+nh <= len(w) && k+nh <= len(m2); k += nh {
		for h := 0; h < nh; h++ {
			w[k+h] *= dec32[h]
			m2[k+h] *= dec[h]
		}
	}
}

// seedDevice starts the moments of a device's metric (slot of page pg)
// from its group's, with the weight of device_prior_weight samples.
func (s *Store) seedDevice(pg *devicePage, slot int, gm *groupMetric) {
	prior := s.cfg.DevicePriorWeight
	for h := 0; h < s.nh; h++ {
		k := slot*s.nh + h
		w := min(prior, gm.w[h])
		if w <= 0 {
			pg.w[k], pg.mean[k], pg.m2[k] = 0, 0, 0
			continue
		}
		pg.w[k] = float32(w)
		pg.mean[k] = gm.mean[h]
		pg.m2[k] = gm.m2[h] / gm.w[h] * w
	}
}

// decayWeights sets dec[h] (the factor that brings state last up to t) and
// a[h] (the weight of a sample at t) and advances last.
func (s *Store) decayWeights(t int64, last *int64, dec, a *[MaxHalfLives]float64, gc *gapCache) {
	dt := t - *last
	switch {
	case dt > 0:
		if dt != gc.dt {
			gc.dt = dt
			for h := 0; h < s.nh; h++ {
				gc.decay[h] = exp2(-float64(dt) * s.invHL[h])
			}
		}
		for h := 0; h < s.nh; h++ {
			dec[h] = gc.decay[h]
			a[h] = 1
		}
		*last = t
	case dt == 0:
		for h := 0; h < s.nh; h++ {
			dec[h], a[h] = 1, 1
		}
	default: // older than the state: weight the sample by its age instead
		i := uint64(dt) % weightSlots
		age := &gc.age[i]
		if dt != gc.ageDT[i] {
			gc.ageDT[i] = dt
			for h := 0; h < s.nh; h++ {
				age[h] = exp2(float64(dt) * s.invHL[h])
			}
		}
		for h := 0; h < s.nh; h++ {
			dec[h] = 1
			a[h] = age[h]
		}
	}
}

// sketchWeight returns the forward-decay weight of a row at t in the
// group's quantile sketches, moving the group's landmark a whole number of
// half-lives forward when t has passed it by one.
func (s *Store) sketchWeight(gs *groupState, t int64) float64 {
	hl := int64(s.cfg.QuantileHalfLife)
	if !gs.qStarted {
		gs.qStarted = true
		gs.qLandmark = floorDiv(t, hl) * hl
	}
	dt := t - gs.qLandmark
	if dt >= hl {
		gs.qLandmark += (dt / hl) * hl
		dt = t - gs.qLandmark
	}
	return s.sketchAge.exp2(dt, float64(hl))
}

// syncSketchLandmark moves the group's sketch landmark up to the latest of
// its sketches' (after a restore or an absorbed summary), so learning
// never has to scale a sketch up to an earlier landmark, which could
// overflow its counts.
func (g *groupState) syncSketchLandmark() {
	for m := range g.metrics {
		if sk := g.metrics[m].sketch; sk != nil && sk.started {
			if !g.qStarted || sk.landmark > g.qLandmark {
				g.qStarted, g.qLandmark = true, sk.landmark
			}
		}
	}
}

// GroupMode returns whether group groupID is still learning, how many rows
// it has learned and the span of event time they cover. An unknown group
// is learning with no samples.
func (s *Store) GroupMode(groupID int32) (learning bool, samples int64, since time.Duration) {
	if groupID < 0 || int(groupID) >= len(s.groups) || s.groups[groupID] == nil {
		return true, 0, 0
	}
	g := s.groups[groupID].judged()
	return !g.protecting, g.rows, time.Duration(g.last - g.first)
}

// LastEventTime returns the newest event time any group has learned (Unix
// ns), or 0 before the first row: where a restored baseline left off, for
// the clock of a consumer that starts from it.
func (s *Store) LastEventTime() int64 {
	var last int64
	for _, g := range s.groups {
		if g != nil && g.started && g.last > last {
			last = g.last
		}
	}
	return last
}
