package ingest

import (
	"encoding/binary"
	"hash/maphash"
	"strings"
	"unsafe"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/bitutil"
	"github.com/apache/arrow/go/v15/arrow/memory"
)

// Names of the fixed observation columns, in schema order. Metric columns
// (float64, null where absent) follow them, one per metric name that some
// row of the record has.
const (
	ColTime      = "ts"        // timestamp[ns, UTC]: event time
	ColDevice    = "device"    // utf8: device id (or host address for packet features)
	ColDeviceID  = "device_id" // int32: process-local index of the device, see Registry
	ColGroup     = "group"     // utf8: group key, e.g. "plant-a/s7-1500"
	ColGroupID   = "group_id"  // int32: process-local index of the group, see Registry
	ColPartition = "partition" // int32: source partition (-1 for files)
	ColOffset    = "offset"    // int64: source offset, file line or packet number
	ColSrcIP     = "src_ip"    // utf8, nullable: address the report came from
	ColClientID  = "client_id" // utf8, nullable: MQTT/TLS client id used
	ColCert      = "cert"      // utf8, nullable: certificate fingerprint used
	ColFirmware  = "fw"        // utf8, nullable: firmware version reported

	// NumFixedCols is the index of the first metric column.
	NumFixedCols = 11
)

// fixedFields are the leading fields of every observation schema.
var fixedFields = []arrow.Field{
	{Name: ColTime, Type: arrow.FixedWidthTypes.Timestamp_ns},
	{Name: ColDevice, Type: arrow.BinaryTypes.String},
	{Name: ColDeviceID, Type: arrow.PrimitiveTypes.Int32},
	{Name: ColGroup, Type: arrow.BinaryTypes.String},
	{Name: ColGroupID, Type: arrow.PrimitiveTypes.Int32},
	{Name: ColPartition, Type: arrow.PrimitiveTypes.Int32},
	{Name: ColOffset, Type: arrow.PrimitiveTypes.Int64},
	{Name: ColSrcIP, Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: ColClientID, Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: ColCert, Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: ColFirmware, Type: arrow.BinaryTypes.String, Nullable: true},
}

// ObservationSchema returns the schema for the given metric columns.
func ObservationSchema(metrics []string) *arrow.Schema {
	fields := make([]arrow.Field, 0, len(fixedFields)+len(metrics))
	fields = append(fields, fixedFields...)
	for _, m := range metrics {
		fields = append(fields, arrow.Field{Name: m, Type: arrow.PrimitiveTypes.Float64, Nullable: true})
	}
	return arrow.NewSchema(fields, nil)
}

// Row is one observation being decoded. Decoders fill it and hand it to
// ObservationBuilder.Append; its slices are reused between rows, so a
// decoder resets it with Reset and never keeps references into it.
type Row struct {
	TimeNanos int64
	Device    string
	Group     string
	Partition int32
	Offset    int64
	SrcIP     string // "" means null; likewise ClientID, Cert, Firmware
	ClientID  string
	Cert      string
	Firmware  string
	// Attrs holds attributes reported with the row (site, hw, fw, …). When
	// Group is empty the builder's Grouper derives it from Device and Attrs.
	Attrs []Attr
	// Metrics holds (name, value) pairs; a name may repeat, the last wins.
	Metrics []Metric
	// Sets holds set-valued members of this row (listening ports, remote
	// addresses), for set rules; see SetMember.
	Sets []SetMember
}

// Attr is one attribute of a device as reported in telemetry.
type Attr struct {
	Key, Value string
}

// Metric is one named numeric value of a Row.
type Metric struct {
	Name  string
	Value float64
}

// Reset clears r for reuse, keeping its capacity.
//
// It runs once per message, and while the garbage collector marks, every
// store of a pointer pays a write barrier: assigning a whole Row made the
// runtime barrier all its pointer words (a tenth of the telemetry hot path
// in profiles). So strings are only cleared when not already empty
// (by length: an empty string's stale pointer is harmless), and slices are
// cut to zero length in place, which stores no pointer.
// TestRowReset checks that no field is forgotten.
func (r *Row) Reset() {
	r.TimeNanos, r.Partition, r.Offset = 0, 0, 0
	clearString(&r.Device)
	clearString(&r.Group)
	clearString(&r.SrcIP)
	clearString(&r.ClientID)
	clearString(&r.Cert)
	clearString(&r.Firmware)
	r.Attrs = r.Attrs[:0]
	r.Metrics = r.Metrics[:0]
	r.Sets = r.Sets[:0]
}

func clearString(s *string) {
	if len(*s) != 0 {
		*s = ""
	}
}

// ObservationBuilder accumulates rows into Arrow records with the
// observation schema. A record has a metric column for each metric with a
// value in at least one of its rows, in the order the builder first saw
// the metrics: a metric absent from every row of a record costs that
// record nothing, so sources whose rows name few of many metrics (packet
// windows of several lengths, sparse traffic) pay for the values they
// have, not for every metric ever seen. It is not safe for concurrent use.
type ObservationBuilder struct {
	mem      memory.Allocator
	registry *Registry
	grouper  Grouper

	metricIndex map[string]int // metric name -> position in metricNames
	metricNames []string
	// schemas caches the schema of each set of metric columns a record
	// had (keyed by schemaKey): schemas are immutable, so records share
	// them, and a source's records have few distinct sets.
	schemas   map[string]*arrow.Schema
	schemaKey []byte // scratch: the current record's columns, as varints
	names     []string

	// The fixed-width columns of the current record, kept from record to
	// record: NewRecord copies them into one buffer their arrays share.
	times, offsets        []int64
	devIDs, grpIDs, parts []int32
	// strs are the string columns of the current record: device, group,
	// then the nullable srcIP, clientID, cert and firmware (strDevice...).
	// Most sources never set the nullable ones: a column that stays null
	// for a whole record is made at once by NewRecord instead of row by
	// row (an offset and a validity bit per row).
	strs [numStringCols]stringColumn
	// nullStrings holds a string column null in every row, by length,
	// for the nullable columns a record has no value in (most records
	// carry no client id, certificate or firmware).
	nullStrings map[int]arrow.Array
	// metrics are the metric columns of the current record, by position
	// in metricNames.
	metrics []metricColumn
	// columns keeps the column objects of released records for the next.
	columns   columnPool
	rowValues []float64 // scratch: value per metric column for the current row
	rowHas    []bool
	rows      int
	sets      []SetMember

	// A source's rows usually carry one of a few lists of metric names
	// (a packet window's rows: one per window length and protocol mix):
	// layouts remembers the last few, layout the previous row's, so such
	// rows skip the map lookups.
	layouts    [8]metricLayout
	layout     *metricLayout
	nextLayout int // the slot of layouts the next new layout takes

	// devices and groupIDs cache the registry's indices, which never
	// change once assigned (until a device is evicted: evictions is the
	// registry's count of evictions the cache has dropped the names of),
	// so the usual row reads an index this builder owns
	// instead of taking the registry's lock, whose reader count every
	// partition worker would otherwise bounce between cores. devices
	// finds a name's registry index among entries, which hold the
	// registry's own stable copies of the names by that index; a device's
	// entry also keeps its last group when the grouper says when its
	// answers may change (see groupGenerationer).
	devices    nameIndex
	entries    DeviceTable[deviceEntry]
	prev       int32 // the registry index of the previous row's device; -1: none
	evictions  uint64
	groupIDs   map[string]int32
	groupNames []string          // the registry's group names, by the indices groupIDs holds
	groupGen   groupGenerationer // the grouper, when it implements it
	attrsEnc   []byte            // scratch: encoding of the current row's attrs
}

// NewObservationBuilder returns a builder that interns device and group
// names in reg and derives missing group keys with g. mem may be nil for
// the Go allocator.
func NewObservationBuilder(mem memory.Allocator, reg *Registry, g Grouper) *ObservationBuilder {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	gg, _ := g.(groupGenerationer)
	b := &ObservationBuilder{
		groupGen:    gg,
		mem:         mem,
		registry:    reg,
		grouper:     g,
		metricIndex: make(map[string]int),
		schemas:     make(map[string]*arrow.Schema),
		nullStrings: make(map[int]arrow.Array),
		columns:     columnPool{free: make(chan *recordColumns, columnsKept)},
		groupIDs:    make(map[string]int32),
	}
	b.layout = &b.layouts[0]
	b.prev = -1
	return b
}

// Len returns the number of rows appended since the last NewRecord.
func (b *ObservationBuilder) Len() int { return b.rows }

// Append adds one row. Strings of r are copied (or, for device and group
// names, interned), so they may alias buffers the caller reuses after
// Append returns — except the Set and Value strings of r.Sets, which are
// kept as they are with the row index they belong to and returned by
// NewRecord, so they must be stable.
//
// A row of a new device the registry refuses (Registry.AdmitDevice: past
// detect.max_devices) is appended with device_id and group_id -1, no
// group and no set members, so that the engine counts it and a source
// can dead-letter it by its position; nothing is kept of its names. When
// the registry evicts idle devices instead (Registry.EvictsIdle), such a
// row has device_id -1 but its group and set members: the engine admits
// its device by name.
func (b *ObservationBuilder) Append(r *Row) {
	if !b.layout.matches(r.Metrics) {
		b.findLayout(r.Metrics)
	}
	id, dev := b.deviceEntry(r.Device)
	devID, group, groupID := int32(-1), "", int32(-1)
	pending := dev == nil && b.registry.EvictsIdle()
	switch {
	case pending:
		group = r.Group
		if group == "" {
			group = b.grouper.Group(r.Device, r.Attrs)
		}
		groupID = b.groupIndex(group)
	case dev == nil: // refused
	case r.Group == "":
		devID = id
		group, groupID = b.groupOf(dev, r)
	default:
		devID = id
		group, groupID = r.Group, b.groupIndex(r.Group)
	}
	b.times = append(b.times, r.TimeNanos)
	b.strs[strDevice].append(r.Device)
	b.strs[strGroup].append(group)
	b.devIDs = append(b.devIDs, devID)
	b.grpIDs = append(b.grpIDs, groupID)
	b.parts = append(b.parts, r.Partition)
	b.offsets = append(b.offsets, r.Offset)
	b.strs[strSrcIP].appendNullable(r.SrcIP)
	b.strs[strClientID].appendNullable(r.ClientID)
	b.strs[strCert].appendNullable(r.Cert)
	b.strs[strFirmware].appendNullable(r.Firmware)
	if b.layout.unique {
		// Each named column gets exactly one value: no need to gather the
		// row first.
		for i, m := range r.Metrics {
			b.appendValue(b.layout.cols[i], m.Value)
		}
	} else {
		b.appendRepeatedMetrics(r.Metrics)
	}
	if dev != nil || pending {
		for _, s := range r.Sets {
			s.Row = int32(b.rows)
			b.sets = append(b.sets, s)
		}
	}
	b.rows++
}

// metricLayout is a list of metric names as rows carry them and the
// columns they go to.
type metricLayout struct {
	names  []string // the builder's own copies
	cols   []int
	unique bool // cols names no column twice
}

// matches reports whether ms has the layout's metric names.
func (l *metricLayout) matches(ms []Metric) bool {
	if len(ms) != len(l.names) {
		return false
	}
	for i := range ms {
		// Decoders intern metric names, so the usual match is the same
		// bytes: comparing the pointers first spares a call of memequal.
		x, y := ms[i].Name, l.names[i]
		if len(x) != len(y) || unsafe.StringData(x) != unsafe.StringData(y) && x != y {
			return false
		}
	}
	return true
}

// findLayout makes the layout of ms the current one: a remembered one,
// or a new one in place of the oldest, adding columns for new metrics.
func (b *ObservationBuilder) findLayout(ms []Metric) {
	for i := range b.layouts {
		if l := &b.layouts[i]; l.names != nil && l.matches(ms) {
			b.layout = l
			return
		}
	}
	l := &b.layouts[b.nextLayout]
	b.nextLayout = (b.nextLayout + 1) % len(b.layouts)
	l.names, l.cols = l.names[:0], l.cols[:0]
	for _, m := range ms {
		j, ok := b.metricIndex[m.Name]
		if !ok {
			j = b.addMetric(m.Name)
		}
		l.names = append(l.names, b.metricNames[j])
		l.cols = append(l.cols, j)
	}
	if l.names == nil {
		l.names = []string{} // remembered: nil marks an unused slot
	}
	l.unique = true
	for _, j := range l.cols {
		if b.rowHas[j] {
			l.unique = false
		}
		b.rowHas[j] = true
	}
	for _, j := range l.cols {
		b.rowHas[j] = false
	}
	b.layout = l
}

// metricColumn is one metric's values in the current record, up to its
// last value: a row costs the metrics it has, the nulls of the rows
// since a column's last value are added when the next value comes or by
// NewRecord, and a column without a value in a record is left out of it.
// The slices are kept from record to record: NewRecord copies them into
// one buffer that all the record's metric columns share, so a metric
// column costs a record three small objects (its array, data and buffer
// list), not an Arrow builder's half a dozen.
type metricColumn struct {
	vals  []float64
	valid []bool
	nulls int
}

// appendValue gives metric column j the value v in the current row, after
// nulls for the rows since its last value.
func (b *ObservationBuilder) appendValue(j int, v float64) {
	c := &b.metrics[j]
	if n := b.rows - len(c.vals); n > 0 {
		c.vals = append(c.vals, make([]float64, n)...)
		c.valid = append(c.valid, make([]bool, n)...)
		c.nulls += n
	}
	c.vals = append(c.vals, v)
	c.valid = append(c.valid, true)
}

// appendRepeatedMetrics appends the row's metrics when a column is named
// several times (the last value wins).
func (b *ObservationBuilder) appendRepeatedMetrics(ms []Metric) {
	for i, m := range ms {
		j := b.layout.cols[i]
		b.rowValues[j] = m.Value
		b.rowHas[j] = true
	}
	for _, j := range b.layout.cols {
		if b.rowHas[j] {
			b.rowHas[j] = false
			b.appendValue(j, b.rowValues[j])
		}
	}
}

// groupGenerationer is implemented by a Grouper whose Group is a function
// of its arguments while GroupGeneration returns the same value
// (inventory.Inventory: it changes on reload).
type groupGenerationer interface {
	GroupGeneration() uint64
}

// deviceEntry is what the builder remembers of a device, by its registry
// index. Besides the name, it holds no pointer: a fleet's entries are
// pages the garbage collector scans as a few large objects, not an object
// per device. It fills one cache line (TestDeviceEntryIsOneCacheLine), key
// included: a row whose device is found through the index (a fleet
// reporting in another order each round) loads the index's slot and this
// line, not the registry's copy of the name too.
type deviceEntry struct {
	name string // the registry's copy; "" when the builder has no entry
	gen  uint64 // the grouper's generation when the group was derived
	// attrs is the hash (maphash, with nameSeed) of the encoding
	// (appendAttrs) of the attrs the group was derived from, not a copy
	// of them: the per-process random seed makes two encodings that
	// collide as unlikely as guessing it.
	attrs uint64
	group int32 // the group's registry index + 1; 0 until derived by the grouper
	// next is the registry index + 1 of the device whose row followed this
	// device's last row (0: none yet). A fleet that reports in a stable
	// order (devices polled in turn, or each at its own second of a
	// fixed interval) has the next row's device there: one comparison of
	// names, on entries that follow each other in memory as the devices
	// arrived, instead of a random load from the index, a cache miss per
	// row once the fleet outgrows the caches. nextTag is the upper half
	// of the hash of next's name: when the row's name hashes otherwise
	// (the fleet's order changed), the guess is dropped without loading
	// next's entry.
	next    int32
	nextTag uint32
	// key holds the name's bytes when they fit (len(name) <= len(key)),
	// for comparisons (keyOf) that stay on this line.
	key [20]byte
}

// keyOf returns the name of e for comparisons: its own copy of the bytes
// when they fit, else the registry's. The result may alias e: it is only
// compared, never kept.
func (e *deviceEntry) keyOf() string {
	if n := len(e.name); n <= len(e.key) {
		return unsafe.String(&e.key[0], n)
	}
	return e.name
}

// entryName returns the name of the entry of registry index id, for
// comparisons (keyOf).
func (b *ObservationBuilder) entryName(id int32) string { return b.entries.At(id).keyOf() }

// deviceEntry returns the registry index of device name and its entry,
// or nil when the registry refuses the device: a refused name is not
// remembered here either. A new name is hashed once, for the builder's
// index and the registry's.
func (b *ObservationBuilder) deviceEntry(name string) (int32, *deviceEntry) {
	if n := b.registry.Evictions(); n != b.evictions {
		b.dropEvicted()
	}
	h := hashName(name)
	id, e := b.findEntry(name, h)
	if b.prev >= 0 && e != nil {
		p := b.entries.At(b.prev)
		p.next, p.nextTag = id+1, uint32(h>>32)
	}
	b.prev = id
	return id, e
}

// findEntry is deviceEntry once the evictions are dropped, for name of
// hash h.
func (b *ObservationBuilder) findEntry(name string, h uint64) (int32, *deviceEntry) {
	if p := b.entries.Get(b.prev); p != nil && p.next > 0 && p.nextTag == uint32(h>>32) && name != "" { // "": the name of no entry
		if e := b.entries.Get(p.next - 1); e != nil && e.keyOf() == name {
			return p.next - 1, e
		}
	}
	if id, ok := b.devices.find(name, h, b.entryName); ok {
		return id, b.entries.At(id)
	}
	id, stable, ok := b.registry.admitDevice(name, h)
	if !ok {
		return -1, nil
	}
	e := b.entries.At(id)
	*e = deviceEntry{name: stable}
	if len(stable) <= len(e.key) {
		copy(e.key[:], stable)
	}
	b.devices.insert(h, id)
	return id, e
}

// dropEvicted drops the devices the registry evicted from the cache, so
// that their rows go to the registry again: an evicted device that
// returns is admitted anew, perhaps under another index.
func (b *ObservationBuilder) dropEvicted() {
	n, ok := b.registry.EvictedSince(b.evictions, func(name string) {
		if id, ok := b.devices.remove(name, hashName(name), b.entryName); ok {
			*b.entries.At(id) = deviceEntry{}
		}
	})
	if !ok {
		b.devices.reset()
		b.entries = DeviceTable[deviceEntry]{}
	}
	b.evictions = n
	b.prev = -1
}

// groupOf returns the group of r's device, asking the grouper only when
// it cannot reuse the device's last answer: new attributes, a new grouper
// generation, or a grouper without generations.
func (b *ObservationBuilder) groupOf(e *deviceEntry, r *Row) (string, int32) {
	if b.groupGen == nil {
		g := b.grouper.Group(r.Device, r.Attrs)
		return g, b.groupIndex(g)
	}
	// Read the generation before asking the grouper: a reload in between
	// leaves an old generation on the entry, so the next row asks again.
	gen := b.groupGen.GroupGeneration()
	b.attrsEnc = appendAttrs(b.attrsEnc[:0], r.Attrs)
	attrs := maphash.Bytes(nameSeed, b.attrsEnc)
	if e.group == 0 || e.gen != gen || e.attrs != attrs {
		e.group = b.groupIndex(b.grouper.Group(r.Device, r.Attrs)) + 1
		e.gen, e.attrs = gen, attrs
	}
	return b.groupNames[e.group-1], e.group - 1 // stable, unlike what a grouper might return
}

// appendAttrs appends an unambiguous encoding of attrs to dst: each key
// and value preceded by its length.
func appendAttrs(dst []byte, attrs []Attr) []byte {
	for _, a := range attrs {
		dst = binary.AppendUvarint(dst, uint64(len(a.Key)))
		dst = append(dst, a.Key...)
		dst = binary.AppendUvarint(dst, uint64(len(a.Value)))
		dst = append(dst, a.Value...)
	}
	return dst
}

func (b *ObservationBuilder) groupIndex(name string) int32 {
	if id, ok := b.groupIDs[name]; ok {
		return id
	}
	id := b.registry.GroupID(name)
	stable := b.registry.GroupName(id)
	b.groupIDs[stable] = id
	for int(id) >= len(b.groupNames) {
		b.groupNames = append(b.groupNames, "")
	}
	b.groupNames[id] = stable
	return id
}

func (b *ObservationBuilder) addMetric(name string) int {
	// name may alias a decoder's reused buffer; the column keeps a copy.
	name = strings.Clone(name)
	j := len(b.metricNames)
	b.metricIndex[name] = j
	b.metricNames = append(b.metricNames, name)
	b.metrics = append(b.metrics, metricColumn{})
	b.rowValues = append(b.rowValues, 0)
	b.rowHas = append(b.rowHas, false)
	return j
}

// Positions of the string columns in ObservationBuilder.strs.
const (
	strDevice = iota
	strGroup
	strSrcIP // the first nullable one
	strClientID
	strCert
	strFirmware
	numStringCols
)

// stringColumn is one string column of the current record: its values'
// bytes end to end, where each row's value ends, and which rows are
// null. Trailing nulls are only counted (pending) until a value follows
// them or NewRecord comes.
type stringColumn struct {
	data    []byte
	ends    []int32
	valid   []bool
	nulls   int // null rows among ends
	pending int
}

func (c *stringColumn) append(s string) {
	c.data = append(c.data, s...)
	c.ends = append(c.ends, int32(len(c.data)))
	c.valid = append(c.valid, true)
}

// appendNullable appends s, or a pending null when s is empty.
func (c *stringColumn) appendNullable(s string) {
	if s == "" {
		c.pending++
		return
	}
	c.appendPending()
	c.append(s)
}

// appendPending appends the pending nulls.
func (c *stringColumn) appendPending() {
	for range c.pending {
		c.ends = append(c.ends, int32(len(c.data)))
		c.valid = append(c.valid, false)
	}
	c.nulls += c.pending
	c.pending = 0
}

func (c *stringColumn) reset() {
	c.data, c.ends, c.valid = c.data[:0], c.ends[:0], c.valid[:0]
	c.nulls, c.pending = 0, 0
}

// nullStringArray returns a string column null in all n rows, one of
// nullStrings: arrays are immutable, so records of n rows share it.
func (b *ObservationBuilder) nullStringArray(n int) arrow.Array {
	a, ok := b.nullStrings[n]
	if !ok {
		if len(b.nullStrings) >= maxNullStrings {
			for _, a := range b.nullStrings {
				a.Release()
			}
			clear(b.nullStrings)
		}
		a = array.MakeArrayOfNull(b.mem, arrow.BinaryTypes.String, n)
		b.nullStrings[n] = a
	}
	a.Retain() // the record's; the builder keeps its own
	return a
}

// stringArrays sets rc.strs to the string columns of the record's n rows
// and empties them, but for the nullable ones null in every row, which
// are shared arrays (nullStringArray). The arrays share three buffers:
// their offsets one after the other (each array's own n+1 from its
// offset on), their values' bytes, and the validity bits of those with
// nulls. It returns the arrays in column order.
func (b *ObservationBuilder) stringArrays(rc *recordColumns, n int) [numStringCols]arrow.Array {
	var out [numStringCols]arrow.Array
	entries, bytes, withNulls := 0, 0, false
	for i := range b.strs {
		c := &b.strs[i]
		if i >= strSrcIP && len(c.ends) == 0 {
			continue // null in every row
		}
		c.appendPending()
		entries += n + 1
		bytes += len(c.data)
		withNulls = withNulls || c.nulls > 0
	}
	offsets := memory.NewResizableBuffer(b.mem)
	offsets.Resize(arrow.Int32Traits.BytesRequired(entries))
	offs := arrow.Int32Traits.CastFromBytes(offsets.Bytes())
	values := memory.NewResizableBuffer(b.mem)
	values.Resize(bytes)
	var valid *memory.Buffer
	if withNulls {
		valid = memory.NewResizableBuffer(b.mem)
		valid.Resize(int(bitutil.BytesForBits(int64(entries))))
		clear(valid.Bytes())
	}
	at, base := 0, 0
	for i := range b.strs {
		c := &b.strs[i]
		if i >= strSrcIP && len(c.ends) == 0 {
			out[i] = b.nullStringArray(n)
			c.reset()
			continue
		}
		copy(values.Bytes()[base:], c.data)
		offs[at] = int32(base)
		for r, end := range c.ends {
			offs[at+1+r] = int32(base) + end
		}
		col := &rc.strs[i]
		col.bufs = [3]*memory.Buffer{nil, offsets, values}
		if c.nulls > 0 {
			col.bufs[0] = valid
			for r, ok := range c.valid {
				if ok {
					bitutil.SetBit(valid.Bytes(), at+r)
				}
			}
		}
		col.data.Reset(arrow.BinaryTypes.String, n, col.bufs[:], nil, c.nulls, at)
		col.arr.Reset(&col.data) // retains the Data: its one reference
		col.arr.Retain()
		out[i] = &col.arr
		at += n + 1
		base += len(c.data)
		c.reset()
	}
	offsets.Release()
	values.Release()
	if valid != nil {
		valid.Release()
	}
	return out
}

// maxNullStrings bounds the nullStrings cache: a source whose records
// come in ever new lengths starts it again rather than grow it.
const maxNullStrings = 64

// NewRecord returns the rows appended so far as a record, together with
// their set members, and resets the builder. The caller owns the record's
// one reference.
func (b *ObservationBuilder) NewRecord() (arrow.Record, []SetMember) {
	n := b.rows
	rc := b.columns.take()
	f := &rc.fixed
	b.fixedArrays(f, n)
	strs := b.stringArrays(rc, n)
	cols := append(rc.cols[:0],
		&f.ts, strs[strDevice], &f.i32[0],
		strs[strGroup], &f.i32[1], &f.i32[2],
		&f.i64, strs[strSrcIP], strs[strClientID], strs[strCert], strs[strFirmware])
	rc.cols = b.appendMetricArrays(rc, cols, n)
	rec := newRecord(b.recordSchema(), rc, &b.columns, int64(b.rows))
	sets := b.sets
	b.sets = nil
	if len(sets) > 0 {
		// The batch owns sets; the next record's are likely as many.
		b.sets = make([]SetMember, 0, len(sets))
	}
	b.rows = 0
	return rec, sets
}

// fixedArrays sets f to the fixed-width columns of the record's n rows —
// time, device id, group id, partition, offset — and empties their
// slices. The arrays are slices of one buffer: the two int64 columns
// first, then the three int32 ones (offsets count elements of the
// array's own type).
func (b *ObservationBuilder) fixedArrays(f *fixedColumns, n int) {
	buf := memory.NewResizableBuffer(b.mem)
	buf.Resize(n * (2*8 + 3*4))
	i64 := arrow.Int64Traits.CastFromBytes(buf.Bytes())
	i32 := arrow.Int32Traits.CastFromBytes(buf.Bytes())
	copy(i64, b.times)
	copy(i64[n:], b.offsets)
	copy(i32[4*n:], b.devIDs)
	copy(i32[5*n:], b.grpIDs)
	copy(i32[6*n:], b.parts)
	for k := range f.data {
		f.bufs[k] = [2]*memory.Buffer{nil, buf}
	}
	f.set(&f.ts, 0, arrow.FixedWidthTypes.Timestamp_ns, n, 0)
	f.set(&f.i32[0], 1, arrow.PrimitiveTypes.Int32, n, 4*n)
	f.set(&f.i32[1], 2, arrow.PrimitiveTypes.Int32, n, 5*n)
	f.set(&f.i32[2], 3, arrow.PrimitiveTypes.Int32, n, 6*n)
	f.set(&f.i64, 4, arrow.PrimitiveTypes.Int64, n, n)
	buf.Release()
	b.times, b.offsets = b.times[:0], b.offsets[:0]
	b.devIDs, b.grpIDs, b.parts = b.devIDs[:0], b.grpIDs[:0], b.parts[:0]
}

// set makes arr the k-th column: n values of type t from offset on.
func (f *fixedColumns) set(arr resettableArray, k int, t arrow.DataType, n, offset int) {
	resetArray(arr, &f.data[k], t, n, f.bufs[k][:], 0, offset)
}

// resetArray makes arr, a new or released array, the array of d, a new or
// released Data, which it sets to n values of type t in bufs (retained),
// nulls of them null, from offset on: what array.NewData and
// array.MakeFromData do, on objects the caller allocated together or
// reuses (recordColumns). arr ends with one reference, held by the
// caller, and d with the one arr holds.
func resetArray(arr resettableArray, d *array.Data, t arrow.DataType, n int, bufs []*memory.Buffer, nulls, offset int) {
	d.Reset(t, n, bufs, nil, nulls, offset)
	arr.Reset(d) // retains d: its one reference
	arr.Retain()
}

// resettableArray is an Arrow array that can be set to a Data in place
// (array.Float64, array.Int32, ...).
type resettableArray interface {
	Reset(*array.Data)
	Retain()
}

// appendMetricArrays appends to cols an array of n rows for each metric
// column with a value in the record, in order, and sets schemaKey to
// their positions. The arrays are slices of one values buffer, and of one
// validity buffer for those with nulls.
func (b *ObservationBuilder) appendMetricArrays(rc *recordColumns, cols []arrow.Array, n int) []arrow.Array {
	b.schemaKey = b.schemaKey[:0]
	k, withNulls := 0, 0
	for j := range b.metrics {
		if c := &b.metrics[j]; len(c.vals) > 0 {
			k++
			if c.nulls > 0 || len(c.vals) < n {
				withNulls++
			}
		}
	}
	if k == 0 {
		return cols
	}
	data := memory.NewResizableBuffer(b.mem)
	data.Resize(arrow.Float64Traits.BytesRequired(k * n))
	vals := arrow.Float64Traits.CastFromBytes(data.Bytes())
	var valid *memory.Buffer
	if withNulls > 0 {
		valid = memory.NewResizableBuffer(b.mem)
		valid.Resize(int(bitutil.BytesForBits(int64(k * n))))
		clear(valid.Bytes())
	}
	if cap(rc.metrics) < k {
		rc.metrics = make([]float64Column, k, k+k/2)
	}
	rc.metrics = rc.metrics[:k]
	at := 0
	for j := range b.metrics {
		c := &b.metrics[j]
		if len(c.vals) == 0 {
			continue // no value in this record
		}
		copy(vals[at:at+n], c.vals)
		clear(vals[at+len(c.vals) : at+n])
		nulls := c.nulls + n - len(c.vals)
		col := &rc.metrics[at/n]
		col.bufs = [2]*memory.Buffer{nil, data}
		if nulls > 0 {
			col.bufs[0] = valid
			for i, ok := range c.valid {
				if ok {
					bitutil.SetBit(valid.Bytes(), at+i)
				}
			}
		}
		resetArray(&col.arr, &col.data, arrow.PrimitiveTypes.Float64, n, col.bufs[:], nulls, at)
		cols = append(cols, &col.arr)
		b.schemaKey = binary.AppendUvarint(b.schemaKey, uint64(j))
		c.vals, c.valid, c.nulls = c.vals[:0], c.valid[:0], 0
		at += n
	}
	data.Release()
	if valid != nil {
		valid.Release()
	}
	return cols
}

// maxSchemas bounds the schema cache: a source whose rows combine metrics
// in ever new ways starts it again rather than grow it.
const maxSchemas = 256

// recordSchema returns the schema of the metric columns in schemaKey.
func (b *ObservationBuilder) recordSchema() *arrow.Schema {
	if s, ok := b.schemas[string(b.schemaKey)]; ok {
		return s
	}
	b.names = b.names[:0]
	for k := b.schemaKey; len(k) > 0; {
		j, n := binary.Uvarint(k)
		b.names = append(b.names, b.metricNames[j])
		k = k[n:]
	}
	if len(b.schemas) >= maxSchemas {
		clear(b.schemas)
	}
	s := ObservationSchema(b.names)
	b.schemas[string(b.schemaKey)] = s
	return s
}
