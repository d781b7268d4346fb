package baseline

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"
	"unicode/utf8"
)

// Binary encodings of device state (a Kafka changelog record per device:
// state follows partitions) and of group summaries (shared between
// instances and merged). Both are keyed by metric and group NAME, never by
// process-local id, and start with a magic and a format version so a
// foreign or newer record is rejected with a reason rather than misread.
//
// VBD2 device records end with the metrics' profile scales; VBD1 ones,
// written before those existed, still decode (with scale 1).
const (
	deviceMagic   = "VBD2"
	deviceMagicV1 = "VBD1"
	groupMagic    = "VBG1"
	maxNameBytes  = 4096
)

// enc appends the primitive encodings.
func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendF64(dst []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
}

func appendF32(dst []byte, v float32) []byte {
	return binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
}

// decoder reads what the append functions wrote. The first error sticks;
// every length is checked against the remaining input before use, so
// garbage cannot make it allocate or index out of range.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("truncated or overlong %s", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("truncated or overlong %s", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) take(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.fail("truncated %s: want %d bytes, have %d", what, n, len(d.b))
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte1(what string) byte {
	if v := d.take(1, what); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) f64(what string) float64 {
	v := d.take(8, what)
	if v == nil {
		return 0
	}
	f := math.Float64frombits(binary.LittleEndian.Uint64(v))
	if math.IsNaN(f) || math.IsInf(f, 0) {
		d.fail("%s is %v, want a finite number", what, f)
		return 0
	}
	return f
}

func (d *decoder) f32(what string) float32 {
	v := d.take(4, what)
	if v == nil {
		return 0
	}
	f := math.Float32frombits(binary.LittleEndian.Uint32(v))
	if f != f || math.IsInf(float64(f), 0) {
		d.fail("%s is %v, want a finite number", what, f)
		return 0
	}
	return f
}

// Bounds on decoded state, so that no later arithmetic on it can overflow
// (a squared deviation times a weight stays finite): learned values are
// within ±MaxLearnedValue, weights are effective sample counts.
const (
	maxStateWeight = 1e15
	maxStateSqDev  = 1e250
)

func (d *decoder) mean(v float64, what string) float64 {
	if v < -MaxLearnedValue || v > MaxLearnedValue {
		d.fail("%s %g beyond ±%g", what, v, MaxLearnedValue)
		return 0
	}
	return v
}

func (d *decoder) weight(v float64, what string) float64 {
	if v < 0 || v > maxStateWeight {
		d.fail("%s %g outside 0..%g", what, v, maxStateWeight)
		return 0
	}
	return v
}

func (d *decoder) sqdev(v float64, what string) float64 {
	if v < 0 || v > maxStateSqDev {
		d.fail("%s %g outside 0..%g", what, v, maxStateSqDev)
		return 0
	}
	return v
}

func (d *decoder) str(what string) string {
	n := d.uvarint(what + " length")
	if n > maxNameBytes {
		d.fail("%s is %d bytes, above the limit %d", what, n, maxNameBytes)
		return ""
	}
	return string(d.take(int(n), what))
}

// name reads a metric name and checks it with validMetricName, as a
// checkpoint's restore does: a record the store accepts must never make
// the next checkpoint unrestorable.
func (d *decoder) name(what string) string {
	n := d.str(what)
	if d.err == nil {
		if err := validMetricName(n); err != nil {
			d.fail("%s: %v", what, err)
		}
	}
	return n
}

// validMetricName is the one check of a metric name read from a changelog
// record, a group summary or a checkpoint.
func validMetricName(name string) error {
	if name == "" {
		return errors.New("empty metric name")
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("metric name %q is not UTF-8", name)
	}
	return nil
}

// count reads a list length, each element needing at least minBytes.
func (d *decoder) count(what string, minBytes int) int {
	n := d.uvarint(what)
	if d.err == nil && n > uint64(len(d.b)/max(minBytes, 1)) {
		d.fail("%s is %d, more than the %d remaining bytes can hold", what, n, len(d.b))
		return 0
	}
	return int(n)
}

func (d *decoder) magic(want string) {
	if got := d.take(len(want), "magic"); d.err == nil && string(got) != want {
		d.fail("magic %q, want %q: not a baseline record of this format", got, want)
	}
}

func (d *decoder) halfLives(s *Store) {
	n := d.count("number of half-lives", 1)
	if d.err != nil {
		return
	}
	if n != s.nh {
		d.fail("record has %d half-lives, the store %d; baseline.half_lives must match the state's", n, s.nh)
		return
	}
	for h := 0; h < n; h++ {
		if v := d.varint("half-life"); d.err == nil && v != s.hl[h] {
			d.fail("record's half-life %d is %dns, the store's %dns; baseline.half_lives must match the state's", h, v, s.hl[h])
		}
	}
}

func (s *Store) appendHalfLives(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(s.nh))
	for h := 0; h < s.nh; h++ {
		dst = binary.AppendVarint(dst, s.hl[h])
	}
	return dst
}

// MarshalDevice appends the state of device (its group, last event time
// and, per metric it has learned, sample count and moments) to dst, for
// the partition's changelog. A device without state encodes as a device
// with no metrics.
func (s *Store) MarshalDevice(dst []byte, device string) ([]byte, error) {
	if s.reg == nil {
		return dst, errors.New("cannot marshal device state: the store has no registry")
	}
	return s.AppendDevice(dst, s.reg.DeviceID(device)), nil
}

// ForgetDevice drops the state of device (its partition moved to another
// instance, or it is about to be restored from the changelog).
func (s *Store) ForgetDevice(device string) {
	if s.reg == nil {
		return
	}
	if id, ok := s.reg.LookupDevice(device); ok {
		s.ResetDevice(id)
	}
}

// ResetDevice drops the state of device id: the engine evicted the
// device, or gives its id to a new one (detect.when_full: evict_idle). A
// checkpoint then has nothing of it.
func (s *Store) ResetDevice(id int32) {
	if l, ok := s.lookupLocal(id); ok {
		s.clearDevice(l)
	}
}

// DeviceLast returns the event time of the newest row device id learned
// (Unix ns), 0 when none.
func (s *Store) DeviceLast(id int32) int64 {
	l, ok := s.lookupLocal(id)
	if !ok {
		return 0
	}
	pg, i := s.device(l)
	return pg.last[i]
}

// clearDevice empties the state of local device l; it keeps its local id.
func (s *Store) clearDevice(l int32) {
	pg, i := s.device(l)
	base, nh := i*s.stride, s.nh
	clear(pg.n[base : base+s.stride])
	clear(pg.mean[base*nh : (base+s.stride)*nh])
	clear(pg.w[base*nh : (base+s.stride)*nh])
	clear(pg.m2[base*nh : (base+s.stride)*nh])
	clear(pg.prof[2*base : 2*(base+s.stride)])
	pg.last[i] = 0
	pg.group[i] = -1
}

// AppendDevice is MarshalDevice by device id.
func (s *Store) AppendDevice(dst []byte, deviceID int32) []byte {
	dst = append(dst, deviceMagic...)
	dst = s.appendHalfLives(dst)
	l, ok := s.lookupLocal(deviceID)
	if !ok {
		dst = binary.AppendVarint(dst, 0)
		dst = appendString(dst, "")
		return binary.AppendUvarint(dst, 0)
	}
	pg, i := s.device(l)
	dst = binary.AppendVarint(dst, pg.last[i])
	group := ""
	if g := pg.group[i]; g >= 0 && s.reg != nil {
		group = s.reg.GroupName(g)
	}
	dst = appendString(dst, group)
	base := i * s.stride
	n := 0
	for m := 0; m < s.stride; m++ {
		if pg.n[base+m] > 0 {
			n++
		}
	}
	dst = binary.AppendUvarint(dst, uint64(n))
	for m := 0; m < s.stride; m++ {
		slot := base + m
		if pg.n[slot] == 0 {
			continue
		}
		dst = appendString(dst, s.metricNames[m])
		dst = binary.AppendUvarint(dst, uint64(pg.n[slot]))
		for h := 0; h < s.nh; h++ {
			k := slot*s.nh + h
			dst = appendF64(dst, pg.mean[k])
			dst = appendF32(dst, pg.w[k])
			dst = appendF64(dst, pg.m2[k])
		}
	}
	// The profile scales follow, in the metrics' order.
	for m := 0; m < s.stride; m++ {
		if slot := base + m; pg.n[slot] > 0 {
			dst = pg.appendProfileScale(dst, slot)
		}
	}
	return dst
}

type deviceMetricRec struct {
	name   string
	n      uint32
	mean   [MaxHalfLives]float64
	w      [MaxHalfLives]float32
	m2     [MaxHalfLives]float64
	ro, oo float32 // the profile scale's sums
}

// UnmarshalDevice replaces the state of device with data made by
// MarshalDevice (by this or another instance). Nothing changes when data
// is invalid.
func (s *Store) UnmarshalDevice(device string, data []byte) error {
	d := decoder{b: data}
	v1 := bytes.HasPrefix(data, []byte(deviceMagicV1))
	if v1 {
		d.magic(deviceMagicV1)
	} else {
		d.magic(deviceMagic)
	}
	d.halfLives(s)
	last := d.varint("last event time")
	group := d.str("group name")
	n := d.count("number of metrics", 1+1+s.nh*20)
	var recs []deviceMetricRec
	for i := 0; i < n && d.err == nil; i++ {
		r := deviceMetricRec{name: d.name("metric name")}
		cnt := d.uvarint("sample count")
		if cnt > math.MaxUint32 {
			d.fail("sample count %d above %d", cnt, uint64(math.MaxUint32))
		}
		r.n = uint32(cnt)
		for h := 0; h < s.nh; h++ {
			r.mean[h] = float64(d.mean(d.f64("mean"), "mean"))
			r.w[h] = float32(d.weight(float64(d.f32("weight")), "weight"))
			r.m2[h] = d.sqdev(d.f64("squared deviations"), "squared deviations")
		}
		recs = append(recs, r)
	}
	for i := 0; i < len(recs) && !v1; i++ {
		recs[i].ro, recs[i].oo = d.profileScale()
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return fmt.Errorf("cannot decode device state of %q: %w; the changelog record is corrupt or from another version", device, d.err)
	}
	if s.reg == nil {
		return errors.New("cannot restore device state: the store has no registry")
	}
	id := s.reg.DeviceID(device)
	ids := make([]int32, len(recs))
	for i := range recs {
		ids[i] = s.metricID(recs[i].name)
	}
	l := s.localOf(id)
	s.clearDevice(l)
	pg, di := s.device(l)
	base := di * s.stride
	pg.last[di] = last
	if group != "" {
		g := s.reg.GroupID(group)
		s.group(g)
		pg.group[di] = g
	}
	for i, r := range recs {
		slot := base + int(ids[i])
		pg.n[slot] = r.n
		pg.prof[2*slot], pg.prof[2*slot+1] = r.ro, r.oo
		for h := 0; h < s.nh; h++ {
			k := slot*s.nh + h
			pg.mean[k] = r.mean[h]
			pg.w[k] = r.w[h]
			pg.m2[k] = r.m2[h]
		}
	}
	return nil
}

// Groups appends to dst the names of the groups this instance has learned
// something of itself, the ones worth sharing with MarshalGroup.
func (s *Store) Groups(dst []string) []string {
	for id, g := range s.groups {
		if g != nil && g.rows > 0 && s.reg != nil {
			dst = append(dst, s.reg.GroupName(int32(id)))
		}
	}
	return dst
}

// MarshalGroup appends this instance's own partial summary of group (mode,
// counts, moments, quantile sketches and seasonal profile per metric, as
// learned here, without what peers sent) to dst, for MergeGroup on the
// other instances.
func (s *Store) MarshalGroup(dst []byte, group string) ([]byte, error) {
	if s.reg == nil {
		return dst, errors.New("cannot marshal group summary: the store has no registry")
	}
	return s.AppendGroup(dst, s.reg.GroupID(group)), nil
}

// AppendGroup is MarshalGroup by group id.
func (s *Store) AppendGroup(dst []byte, groupID int32) []byte {
	dst = append(dst, groupMagic...)
	dst = s.appendHalfLives(dst)
	dst = binary.AppendVarint(dst, int64(s.cfg.QuantileHalfLife))
	dst = binary.AppendVarint(dst, s.seasonHL)
	var g *groupState
	if groupID >= 0 && int(groupID) < len(s.groups) {
		g = s.groups[groupID]
	}
	if g == nil {
		g = &groupState{}
	}
	return s.appendGroup(dst, g)
}

func (s *Store) appendGroup(dst []byte, g *groupState) []byte {
	flags := byte(0)
	if g.started {
		flags |= 1
	}
	if g.protecting {
		flags |= 2
	}
	dst = append(dst, flags)
	dst = binary.AppendVarint(dst, g.first)
	dst = binary.AppendVarint(dst, g.last)
	dst = binary.AppendUvarint(dst, uint64(g.rows))
	for _, t := range g.seasonLast {
		dst = binary.AppendVarint(dst, t)
	}
	n := 0
	for m := range g.metrics {
		if g.metrics[m].n > 0 {
			n++
		}
	}
	dst = binary.AppendUvarint(dst, uint64(n))
	for m := range g.metrics {
		gm := &g.metrics[m]
		if gm.n == 0 {
			continue
		}
		dst = appendString(dst, s.metricNames[m])
		dst = binary.AppendUvarint(dst, uint64(gm.n))
		for h := 0; h < s.nh; h++ {
			dst = appendF64(dst, gm.w[h])
			dst = appendF64(dst, gm.mean[h])
			dst = appendF64(dst, gm.m2[h])
		}
		dst = appendGroupMetricExtras(dst, gm)
	}
	return dst
}

// appendGroupMetricExtras appends a group metric's quantile sketch and
// seasonal profile (non-empty hour-of-week buckets only).
func appendGroupMetricExtras(dst []byte, gm *groupMetric) []byte {
	if gm.sketch == nil {
		dst = append(dst, 0)
	} else {
		dst = append(dst, 1)
		dst = gm.sketch.appendBinary(dst)
	}
	cells, young := 0, false
	if gm.season != nil {
		for i := range gm.season {
			if gm.season[i].w > 0 {
				cells++
				young = young || gm.season[i].yw > 0
			}
		}
	}
	// In a group's first week the cells also carry the first-week weight
	// and level (seasonCell); a flag above the cell count says so, so the
	// encoding after the first week is the same as without them.
	flag := 0
	if young {
		flag = seasonYoungFlag
	}
	if gm.peak.set != 0 {
		flag |= peakFlag
	}
	dst = binary.AppendUvarint(dst, uint64(cells|flag))
	for i := 0; cells > 0 && i < hoursPerWeek; i++ {
		c := &gm.season[i]
		if c.w > 0 {
			dst = append(dst, byte(i))
			dst = appendF64(dst, c.w)
			dst = appendF64(dst, c.mean)
			dst = appendF64(dst, c.m2)
			if young {
				dst = appendF64(dst, c.yw)
				dst = appendF64(dst, c.yref)
			}
		}
	}
	if gm.peak.set != 0 {
		dst = binary.AppendVarint(dst, gm.peak.epoch)
		dst = append(dst, gm.peak.set)
		dst = appendF64(dst, gm.peak.peak[0])
		dst = appendF64(dst, gm.peak.peak[1])
	}
	return dst
}

// Flags above the seasonal cell count: seasonYoungFlag says the cells
// carry their first-week weight and level, peakFlag that the peak memory
// follows them (encodings without it have none).
const (
	seasonYoungFlag = 256
	peakFlag        = 512
)

// decodeGroupMetricExtras reads what appendGroupMetricExtras wrote.
func (s *Store) decodeGroupMetricExtras(d *decoder, gm *groupMetric) {
	switch d.byte1("sketch flag") {
	case 0:
	case 1:
		gm.sketch = decodeSketch(d, int64(s.cfg.QuantileHalfLife))
	default:
		d.fail("bad sketch flag")
	}
	c := d.uvarint("seasonal cells")
	young, peak := c&seasonYoungFlag != 0, c&peakFlag != 0
	cells := int(c &^ (seasonYoungFlag | peakFlag))
	if c&^(peakFlag|seasonYoungFlag|(seasonYoungFlag-1)) != 0 || cells > hoursPerWeek {
		d.fail("%d seasonal cells, at most %d", c, hoursPerWeek)
	}
	cellBytes := 25
	if young {
		cellBytes += 16
	}
	if d.err == nil && cells > len(d.b)/cellBytes {
		d.fail("seasonal cells is %d, more than the %d remaining bytes can hold", cells, len(d.b))
	}
	if cells > 0 && d.err == nil {
		gm.season = new([hoursPerWeek]seasonCell)
	}
	for c := 0; c < cells && d.err == nil; c++ {
		i := int(d.byte1("seasonal bucket"))
		if i >= hoursPerWeek {
			d.fail("seasonal bucket %d, want below %d", i, hoursPerWeek)
			break
		}
		cell := &gm.season[i]
		cell.w = d.weight(d.f64("seasonal weight"), "seasonal weight")
		cell.mean = d.mean(d.f64("seasonal mean"), "seasonal mean")
		cell.m2 = d.sqdev(d.f64("seasonal squared deviations"), "seasonal squared deviations")
		if young {
			cell.yw = d.weight(d.f64("seasonal first-week weight"), "seasonal first-week weight")
			cell.yref = d.mean(d.f64("seasonal first-week level"), "seasonal first-week level")
		}
	}
	if peak && d.err == nil {
		gm.peak.epoch = d.varint("peak epoch")
		gm.peak.set = d.byte1("peak flags")
		if gm.peak.set == 0 || gm.peak.set > 3 {
			d.fail("peak flags %#x, want 1 to 3", gm.peak.set)
		}
		gm.peak.peak[0] = d.mean(d.f64("peak"), "peak")
		gm.peak.peak[1] = d.mean(d.f64("previous peak"), "previous peak")
	}
}

// decodeGroup reads a group summary into a fresh groupState whose metrics
// are indexed by the store's metric ids (registering new metric names
// only once the whole summary has decoded).
func (s *Store) decodeGroup(d *decoder) *groupState {
	g := &groupState{}
	flags := d.byte1("flags")
	if flags&^3 != 0 {
		d.fail("unknown flags %#x", flags)
	}
	g.started, g.protecting = flags&1 != 0, flags&2 != 0
	g.first = d.varint("first event time")
	g.last = d.varint("last event time")
	rows := d.uvarint("row count")
	if rows > math.MaxInt64 {
		d.fail("row count %d too large", rows)
	}
	g.rows = int64(rows)
	for i := range g.seasonLast {
		g.seasonLast[i] = d.varint("seasonal bucket time")
	}
	n := d.count("number of metrics", 1+1+s.nh*24+2)
	type rec struct {
		name string
		gm   groupMetric
	}
	var recs []rec
	for i := 0; i < n && d.err == nil; i++ {
		r := rec{name: d.name("metric name")}
		gm := &r.gm
		cnt := d.uvarint("sample count")
		if cnt > math.MaxInt64 {
			d.fail("sample count %d too large", cnt)
		}
		gm.n = int64(cnt)
		for h := 0; h < s.nh; h++ {
			gm.w[h] = d.weight(d.f64("weight"), "weight")
			gm.mean[h] = d.mean(d.f64("mean"), "mean")
			gm.m2[h] = d.sqdev(d.f64("squared deviations"), "squared deviations")
		}
		s.decodeGroupMetricExtras(d, gm)
		recs = append(recs, r)
	}
	if d.err != nil {
		return nil
	}
	for _, r := range recs {
		id := s.metricID(r.name)
		g.grow(s.stride)
		g.metrics[id] = r.gm
	}
	g.grow(s.stride)
	return g
}

// MergeGroup replaces peer's previous summary of group with data, made by
// MarshalGroup on that instance. From the group's next row on, Expect and
// GroupMode judge against the local state merged with the latest summary
// of every peer: counts add, moments combine with Chan's formulas at the later
// time, sketches and seasonal buckets merge, the first time is the
// earliest and the group is protecting once the merged state qualifies.
// Learn keeps updating only the local state, so summaries never count a
// row twice. Nothing changes when data is invalid.
func (s *Store) MergeGroup(peer, group string, data []byte) error {
	o, err := s.decodeGroupSummary(group, data)
	if err != nil {
		return err
	}
	g := s.group(s.reg.GroupID(group))
	i := sort.Search(len(g.peers), func(i int) bool { return g.peers[i].name >= peer })
	if i < len(g.peers) && g.peers[i].name == peer {
		g.peers[i].state = o
	} else {
		g.peers = append(g.peers, peerGroup{})
		copy(g.peers[i+1:], g.peers[i:])
		g.peers[i] = peerGroup{name: peer, state: o}
	}
	g.viewStale = true
	s.version++
	return nil
}

// AbsorbGroup folds a summary made by MarshalGroup into the local state of
// group for good, as if this instance had learned its rows (combining
// shards offline, or adopting a retired instance's learning).
func (s *Store) AbsorbGroup(group string, data []byte) error {
	o, err := s.decodeGroupSummary(group, data)
	if err != nil {
		return err
	}
	g := s.group(s.reg.GroupID(group))
	s.mergeGroupState(g, o)
	g.syncSketchLandmark()
	g.viewStale = true
	s.version++
	return nil
}

// ForgetPeer drops every summary peer sent (the instance left the group).
func (s *Store) ForgetPeer(peer string) {
	for _, g := range s.groups {
		if g == nil {
			continue
		}
		for i, p := range g.peers {
			if p.name == peer {
				g.peers = append(g.peers[:i], g.peers[i+1:]...)
				g.viewStale = true
				if len(g.peers) == 0 {
					g.view = nil
				}
				break
			}
		}
	}
}

// rebuildView sets g.view to the local state merged with every peer's.
// It reuses the view's memory, so steady state allocates nothing.
func (s *Store) rebuildView(g *groupState) {
	if g.view == nil {
		g.view = &groupState{}
	}
	v := g.view
	copyGroupState(v, g)
	for _, p := range g.peers {
		s.mergeGroupState(v, p.state)
	}
	g.viewStale = false
	g.rowsSinceView = 0
}

// copyGroupState makes dst a copy of src's learned state (not its peers),
// keeping dst's sketch and seasonal memory.
func copyGroupState(dst, src *groupState) {
	metrics := dst.metrics
	*dst = groupState{
		started: src.started, first: src.first, last: src.last, rows: src.rows,
		protecting: src.protecting, seasonLast: src.seasonLast,
	}
	for len(metrics) < len(src.metrics) {
		metrics = append(metrics, groupMetric{})
	}
	metrics = metrics[:len(src.metrics)]
	for m := range src.metrics {
		sm, dm := &src.metrics[m], &metrics[m]
		sketch, season := dm.sketch, dm.season
		*dm = *sm
		dm.sketch, dm.season = nil, nil
		if sm.sketch != nil {
			if sketch == nil {
				sketch = NewQuantileSketch(time.Duration(sm.sketch.halfLife))
			}
			sketch.copyFrom(sm.sketch)
			dm.sketch = sketch
		}
		if sm.season != nil {
			if season == nil {
				season = new([hoursPerWeek]seasonCell)
			}
			*season = *sm.season
			dm.season = season
		}
	}
	dst.metrics = metrics
}

func (s *Store) decodeGroupSummary(group string, data []byte) (*groupState, error) {
	d := decoder{b: data}
	d.magic(groupMagic)
	d.halfLives(s)
	if qhl := d.varint("quantile half-life"); d.err == nil && qhl != int64(s.cfg.QuantileHalfLife) {
		d.fail("quantile half-life %dns, the store's %dns; baseline.quantile_half_life must match", qhl, int64(s.cfg.QuantileHalfLife))
	}
	if shl := d.varint("seasonal half-life"); d.err == nil && shl != s.seasonHL {
		d.fail("seasonal half-life %dns, the store's %dns; baseline.seasonal_half_life must match", shl, s.seasonHL)
	}
	var o *groupState
	if d.err == nil {
		o = s.decodeGroup(&d)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return nil, fmt.Errorf("cannot decode group summary of %q: %w; the record is corrupt or from another version", group, d.err)
	}
	if s.reg == nil {
		return nil, errors.New("cannot merge group summary: the store has no registry")
	}
	return o, nil
}

// mergeGroupState folds o into g; both have the store's metric ids.
func (s *Store) mergeGroupState(g, o *groupState) {
	if !o.started && o.rows == 0 {
		return
	}
	g.grow(s.stride)
	o.grow(s.stride)
	// bring both sides' moments to the later time, then combine
	var dg, do [MaxHalfLives]float64
	for h := 0; h < s.nh; h++ {
		dg[h], do[h] = 1, 1
		if g.started && o.last > g.last {
			dg[h] = decayFactor(o.last-g.last, s.hl[h])
		} else if g.started && o.last < g.last {
			do[h] = decayFactor(g.last-o.last, s.hl[h])
		}
	}
	for m := range o.metrics {
		om, gm := &o.metrics[m], &g.metrics[m]
		for h := 0; h < s.nh; h++ {
			gm.w[h], gm.mean[h], gm.m2[h] = chan3(gm.w[h]*dg[h], gm.mean[h], gm.m2[h]*dg[h], om.w[h]*do[h], om.mean[h], om.m2[h]*do[h])
		}
		gm.n += om.n
		gm.peak.merge(&om.peak)
		if om.sketch != nil {
			if gm.sketch == nil {
				gm.sketch = NewQuantileSketch(s.cfg.QuantileHalfLife)
			}
			gm.sketch.Merge(om.sketch)
		}
		if om.season != nil {
			if gm.season == nil {
				gm.season = new([hoursPerWeek]seasonCell)
			}
			for i := range om.season {
				oc, gc := &om.season[i], &gm.season[i]
				if oc.w == 0 {
					continue
				}
				fg, fo := 1.0, 1.0
				if gt, ot := g.seasonLast[i], o.seasonLast[i]; ot > gt && gc.w > 0 {
					fg = decayFactor(ot-gt, s.seasonHL)
				} else if ot < gt {
					fo = decayFactor(gt-ot, s.seasonHL)
				}
				gc.w, gc.mean, gc.m2 = chan3(gc.w*fg, gc.mean, gc.m2*fg, oc.w*fo, oc.mean, oc.m2*fo)
				if yw := gc.yw*fg + oc.yw*fo; yw > 0 {
					gc.yref = (gc.yw*fg*gc.yref + oc.yw*fo*oc.yref) / yw
					gc.yw = yw
				}
			}
		}
	}
	for i := range o.seasonLast {
		g.seasonLast[i] = max(g.seasonLast[i], o.seasonLast[i])
	}
	if !g.started {
		g.first, g.last = o.first, o.last
	} else {
		g.first = min(g.first, o.first)
		g.last = max(g.last, o.last)
	}
	g.started = true
	g.rows += o.rows
	g.protecting = g.protecting || o.protecting
	if !g.protecting && s.endsLearning(g, nil) {
		g.protecting = true
	}
}

// appendBinary appends the sketch's encoding: half-life, landmark, zero
// weight, then per sign the offset and used range of counts.
func (q *QuantileSketch) appendBinary(dst []byte) []byte {
	dst = binary.AppendVarint(dst, q.halfLife)
	flags := byte(0)
	if q.started {
		flags |= 1
	}
	if q.neg != nil && q.neg.lo <= q.neg.hi {
		flags |= 2
	}
	dst = append(dst, flags)
	dst = binary.AppendVarint(dst, q.landmark)
	dst = appendF64(dst, q.zero)
	dst = q.pos.appendBinary(dst)
	if flags&2 != 0 {
		dst = q.neg.appendBinary(dst)
	}
	return dst
}

func (st *sketchStore) appendBinary(dst []byte) []byte {
	if st.lo > st.hi {
		return binary.AppendUvarint(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(st.hi-st.lo+1))
	dst = binary.AppendVarint(dst, int64(st.offset+st.lo))
	for i := st.lo; i <= st.hi; i++ {
		dst = appendF32(dst, st.counts[i])
	}
	return dst
}

func decodeSketch(d *decoder, halfLife int64) *QuantileSketch {
	if hl := d.varint("sketch half-life"); d.err == nil && hl != halfLife {
		d.fail("sketch half-life %dns, want %dns", hl, halfLife)
	}
	q := NewQuantileSketch(0)
	q.halfLife = halfLife
	flags := d.byte1("sketch flags")
	if flags&^3 != 0 {
		d.fail("unknown sketch flags %#x", flags)
	}
	q.started = flags&1 != 0
	q.landmark = d.varint("sketch landmark")
	if halfLife > 0 && q.landmark%halfLife != 0 {
		d.fail("sketch landmark %d is not a multiple of its half-life", q.landmark)
	}
	q.zero = d.weight(d.f64("sketch zero weight"), "sketch zero weight")
	decodeStore(d, &q.pos)
	if flags&2 != 0 {
		q.neg = &sketchStore{}
		q.neg.reset()
		decodeStore(d, q.neg)
	}
	if d.err != nil {
		return nil
	}
	return q
}

func decodeStore(d *decoder, st *sketchStore) {
	n := d.count("sketch buckets", 4)
	if n == 0 || d.err != nil {
		return
	}
	if n > sketchBuckets {
		d.fail("%d sketch buckets, at most %d", n, sketchBuckets)
		return
	}
	first := d.varint("sketch first key")
	if first < math.MinInt32/2 || first > math.MaxInt32/2 {
		d.fail("sketch key %d out of range", first)
		return
	}
	for i := 0; i < n && d.err == nil; i++ {
		c := d.f32("sketch count")
		if c < 0 {
			d.fail("sketch count %g, want >= 0", c)
		}
		if c > 0 {
			st.add(int32(first)+int32(i), float64(c))
		}
	}
}
