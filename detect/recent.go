package detect

import (
	"math"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/ingest"
)

// RecentValues keeps the latest judged values of each metric of each
// device, with the band each was judged against: the console's plots.
//
// The engine notes each row's values as it judges, in a buffer of its own
// by row and column (sequential stores, no lookups, no lock), and moves
// them into the devices' rings every pendingRows rows and at the end of a
// batch, in one tight pass (flush), so that the rings' scattered memory is
// touched in a loop that does nothing else and its cache misses overlap.
// A reader copies one device's values when it needs them (Device).
//
// With a step (the console's recent_step), a block keeps at most one row
// per step of event time (steps aligned on the Unix epoch): the step's
// first value of each metric and, in its place, a later value of the step
// that lies further outside its band than any before it, with that
// value's time. So a plot spans size steps whatever the reporting rate,
// keeps every excursion a step had (its worst), and a device reporting
// more often than once a step touches its ring's memory once a step, not
// once a report: what a row costs the engine is the ring's cache line,
// seldom cached in a large fleet. Without a step, every row is kept.
//
// The metrics a device's row brings together (usually all its metrics, in
// its first row) share a block: a ring of rows, each row one event time
// (in milliseconds from the block's base time) and per metric the value,
// the expected value and the band's half-width, as float32 (enough for a
// plot). The block advances with each row that has a value for one of its
// metrics; a metric without a value in such a row has none there. A
// metric new to the device later gets a block of its own. The blocks'
// heads (position, base time, and what each metric's latest value was
// judged on) are dense arrays found from the device id without a map; the
// rows are in chunks of 32-bit words, row by row of their blocks (see
// blockHead): a row of five metrics is one cache line, the only memory a
// row touches that is not dense, and the memory a fleet touches grows with
// the rows it wrote, not with its rings' size.
//
// Memory (BenchmarkRecentValuesMemory): 4 + 12 × metrics bytes a row, 48
// bytes a block and 4 a metric for its head, 4 per device id up to the
// highest: 7.6 KB per device with 5 metrics of 120 values once their
// rings are full (a chunk, size pages, holds the rings of 64 such
// devices); and the engine's buffer (pendingRows rows of its batches'
// metric columns, 16 bytes a value and 16 a row).
//
// It is safe for concurrent use: the engine holds its lock while it moves
// its buffer into the rings (never while it judges or waits), a reader
// while it copies one device's values.
type RecentValues struct {
	mu      sync.Mutex
	size    int
	stepMs  int64             // 0: every row
	names   []string          // metric names by slot
	layouts [][]int           // the metric slots of a block's columns, by layout
	first   []int32           // by device id: 1 + the index of its first block; 0: none
	heads   []blockHead       // by block
	metas   []uint32          // by block and column, last column first: what its latest value was judged on (the meta word)
	chunks  [][]uint32        // the blocks' rows, planeWords a row of each of its blocks (see blockHead)
	open    map[int]openChunk // by row length in words: the chunk new blocks go to

	// moving a row into the rings (write)
	colsFor []int   // the metric slots of the columns of the rows being written
	cols    [][]int // by layout: for each of its columns, the rows' column holding it (-1: none); nil: not known
	same    []bool  // by layout: its columns are the rows' columns, in their order
	covered []bool  // by column of the row: moved into a block

	pend pendingValues // the engine's, written without the lock
}

// blockHead is a block's position and where its rows are: row p, of 1 +
// 3 × width words (the time, then value, expected and half-width per
// column), at chunks[chunk][off + p × plane]. A chunk holds the rows of
// the blocks of one width by row: row p of each of them, one after
// another, a page of memory (planeWords), then row p+1 of each. So a fleet
// whose devices have written a few rows has touched a few pages for every
// planeWords of devices, not each device's whole ring (a fleet's first
// minutes: every page first touched is a page fault).
type blockHead struct {
	base              int64 // Unix ms
	end               int64 // with a step: the end of the latest row's step, Unix ms (stepEnd)
	next              uint32
	full              bool
	width             uint16
	layout            int32
	chunk, off, plane int32 // plane: the chunk's row of blocks, in words (from width; kept, not divided out a row)
	meta              int32 // metas[meta:][:width], last column first
	more              int32 // 1 + the index of the device's next block; 0: none
}

// absentBits, in a row's value word, marks a metric without a value in
// that row: a signalling NaN, which no float64 converted to float32 gives
// (a NaN converts to a quiet NaN).
const absentBits = 0x7f800001

// The meta word: the samples the device's baseline had learned (up to
// metaSamples, saturating), and the flags.
const (
	metaSamples   = 1<<30 - 1
	metaFromGroup = 1 << 30
	metaSeasonal  = 1 << 31
)

// planeWords is the length of a chunk's row of its blocks: a 4 KiB
// page (unless one row is longer).
const planeWords = 1 << 10

// openChunk is the chunk the next block of a row length goes to, and how
// many blocks it has.
type openChunk struct{ chunk, blocks int32 }

// RecentValue is one judged value: its event time and the self
// detector's expected value and band (NaN while there was none).
type RecentValue struct {
	Time                          int64 // event time, Unix ns, to the millisecond
	Value, Expected, Lower, Upper float32
}

// pendingValues are the values the engine judged since the last flush, by
// row and by column of its batch.
type pendingValues struct {
	slots []int    // by column: the metric slot, -1 for none
	all   uint64   // the slots (mod 64) of the columns (see settle)
	n     int      // rows noted
	dev   []int32  // by row
	tms   []int64  // by row: event time, Unix ms
	vals  []uint32 // by row: a pendingRow
}

// pendingRow is where the engine notes the values of one row of w
// columns, in 1 + 4 × w words: how many columns have no value; by column,
// three words, as a ring's row has them (the value, absentBits for none;
// the expected value; the band's half-width); then by column what its
// value was judged on (the meta word), last column first (so that the
// engine's note needs no division). A row of a device whose block has the
// batch's columns goes into its ring in two copies: a block's metas are
// last column first too.
type pendingRow []uint32

// value returns the value, expected value and half-width of column j.
func (row pendingRow) value(j int) []uint32 { return row[1+3*j:][:3] }

// present reports whether column j has a value.
func (row pendingRow) present(j int) bool { return row[1+3*j] != absentBits }

// meta returns what the value of column j was judged on.
func (row pendingRow) meta(j int) uint32 { return row[len(row)-1-j] }

// pendingRows is how many rows the engine's buffer holds before they are
// moved into the rings: few enough that the buffer stays in the cache
// (24 KB for 5 metrics).
const pendingRows = 256

// NewRecentValues returns empty rings of size values, at most one a step
// of event time (0: every value).
func NewRecentValues(size int, step time.Duration) *RecentValues {
	if size < 1 || step < 0 {
		panic("BUG: NewRecentValues with a size below 1 or a negative step")
	}
	return &RecentValues{size: size, stepMs: step.Milliseconds()}
}

// metric makes slot name metric name; the caller holds the lock.
func (r *RecentValues) metric(slot int, name string) {
	for len(r.names) <= slot {
		r.names = append(r.names, "")
	}
	r.names[slot] = name
}

// bind starts a batch whose column j holds metric slot slots[j] (-1:
// none), after the rows noted so far are moved into the rings; the
// engine's metrics, all named, are metrics.
func (r *RecentValues) bind(slots []int, metrics []metricParams) {
	r.flush()
	r.mu.Lock()
	for len(r.names) < len(metrics) {
		r.metric(len(r.names), metrics[len(r.names)].name)
	}
	r.mu.Unlock()
	p := &r.pend
	p.slots = append(p.slots[:0], slots...)
	p.all = 0
	for _, slot := range slots {
		if slot >= 0 {
			p.all |= 1 << (slot & 63)
		}
	}
	w := len(slots)
	if len(p.dev) < pendingRows {
		p.dev, p.tms = make([]int32, pendingRows), make([]int64, pendingRows)
	}
	if len(p.vals) < pendingRows*(1+4*w) {
		p.vals = make([]uint32, pendingRows*(1+4*w))
	}
}

// row returns where the engine notes the values of a new row of device d
// at event time t (Unix ns), by column (note or absent); it moves the
// buffer into the rings first when full.
func (r *RecentValues) row(d int32, t int64) pendingRow {
	p := &r.pend
	if p.n == pendingRows {
		r.flush()
	}
	i, w := p.n, 1+4*len(p.slots)
	p.n++
	p.dev[i], p.tms[i] = d, t/int64(time.Millisecond)
	row := pendingRow(p.vals[i*w:][:w])
	row[0] = 0
	return row
}

// absent notes that the row has no value in column j.
func (row pendingRow) absent(j int) {
	row[1+3*j] = absentBits
	row[0]++
}

// note notes, in column j, the value of ex, judged against expected ±
// half (NaN: no band). It is small enough to inline: the engine calls it
// for every value it judges.
func (row pendingRow) note(j int, ex *baseline.Expectation, expected, half float32) {
	v := row[1+3*j:][:3]
	v[0], v[1], v[2] = math.Float32bits(float32(ex.Value)), math.Float32bits(expected), math.Float32bits(half)
	// the meta word, without a branch (a count below 0, which a baseline
	// never has, would read as metaSamples)
	row[len(row)-1-j] = uint32(min(uint64(ex.Samples), metaSamples)) | uint32(bit(ex.FromGroup))*metaFromGroup | uint32(bit(ex.Seasonal))*metaSeasonal
}

// bit returns b as 0 or 1, in fewer steps than a branch counts for
// inlining (note).
func bit(b bool) uint8 { return *(*uint8)(unsafe.Pointer(&b)) }

// flush moves the engine's buffer into the rings.
func (r *RecentValues) flush() {
	p := &r.pend
	if p.n == 0 {
		return
	}
	w := len(p.slots)
	r.mu.Lock()
	r.bindColumns(p.slots)
	// In a large fleet a row's ring line is seldom cached, nor is its
	// block's head, nor where the head is: they are asked for ahead of the
	// row, 3, 2 and 1 × PrefetchAhead rows, so that the misses overlap (a
	// store that misses holds up the stores behind it) and each address
	// is computed from cached memory. A small fleet's rings stay cached,
	// where asking costs more than it saves (BenchmarkRecentValuesRows).
	prefetch := len(r.first) >= ingest.PrefetchMinDevices
	for i, d := range p.dev[:p.n] {
		if prefetch {
			r.prefetch(i)
		}
		row := pendingRow(p.vals[(1+4*w)*i:][:1+4*w])
		// most devices: one block, of the batch's columns in their order
		if b := r.firstBlock(d); b >= 0 && r.heads[b].more == 0 && r.same[r.heads[b].layout] {
			r.writeSame(&r.heads[b], p.tms[i], row)
			continue
		}
		r.write(d, p.tms[i], p.slots, row)
	}
	r.mu.Unlock()
	p.n = 0
}

// prefetch asks (ingest.Prefetch) for what flush needs ahead of pending
// row i: where the first block's head of row i + 3 × PrefetchAhead's
// device is, that head for row i + 2 × PrefetchAhead, and the ring row
// that row i + PrefetchAhead's values go to; at row 0, for the rows before
// those too. The caller holds the lock.
func (r *RecentValues) prefetch(i int) {
	const ahead = ingest.PrefetchAhead
	if i == 0 {
		for j := 1; j < 3*ahead; j++ {
			switch j / ahead {
			case 0:
				r.prefetchRow(j)
			case 1:
				r.prefetchHead(j)
			default:
				r.prefetchIndex(j)
			}
		}
	}
	r.prefetchIndex(i + 3*ahead)
	r.prefetchHead(i + 2*ahead)
	r.prefetchRow(i + ahead)
}

// prefetchIndex asks for where the first block of pending row j's device
// is (r.first).
func (r *RecentValues) prefetchIndex(j int) {
	if p := &r.pend; j < p.n && int(p.dev[j]) < len(r.first) {
		ingest.Prefetch(unsafe.Pointer(&r.first[p.dev[j]]))
	}
}

// prefetchHead asks for the head of the first block of pending row j's
// device.
func (r *RecentValues) prefetchHead(j int) {
	if p := &r.pend; j < p.n {
		if b := r.firstBlock(p.dev[j]); b >= 0 {
			ingest.Prefetch(unsafe.Pointer(&r.heads[b]))
		}
	}
}

// prefetchRow asks for the ring row that pending row j's values go to.
func (r *RecentValues) prefetchRow(j int) {
	if p := &r.pend; j < p.n {
		if b := r.firstBlock(p.dev[j]); b >= 0 && r.heads[b].next < uint32(r.size) && r.opens(&r.heads[b], p.tms[j]) {
			h := &r.heads[b]
			ingest.Prefetch(unsafe.Pointer(&r.blockRow(h, int(h.next))[0]))
		}
	}
}

// firstBlock returns the index of device d's first block, or -1.
func (r *RecentValues) firstBlock(d int32) int32 {
	if int(d) < len(r.first) {
		return r.first[d] - 1
	}
	return -1
}

// bindColumns makes the rows to write those whose column j holds metric
// slot slots[j]; the caller holds the lock.
func (r *RecentValues) bindColumns(slots []int) {
	if !slices.Equal(r.colsFor, slots) {
		r.colsFor = append(r.colsFor[:0], slots...)
		clear(r.cols)
		clear(r.same)
		for len(r.same) < len(r.layouts) {
			r.same = append(r.same, false)
		}
		for l := range r.layouts {
			r.columns(int32(l))
		}
	}
}

// write moves a row of device d at tms (Unix ms), whose column j holds
// metric slot slots[j] (bound by bindColumns) when present, into the
// device's blocks, making a block for the metrics new to it. The caller
// holds the lock.
func (r *RecentValues) write(d int32, tms int64, slots []int, row pendingRow) {
	r.covered = slices.Grow(r.covered[:0], len(slots))[:len(slots)]
	clear(r.covered)
	present, covered := 0, 0
	for j := range slots {
		if row.present(j) {
			present++
		}
	}
	if present == 0 {
		return
	}
	last := int32(-1)
	for b := r.firstBlock(d); b >= 0; b = r.heads[b].more - 1 {
		covered += r.writeBlock(b, tms, row)
		last = b
	}
	if covered == present {
		return
	}
	var missing []int
	for j, sl := range slots {
		if sl >= 0 && row.present(j) && !r.covered[j] && !slices.Contains(missing, sl) {
			missing = append(missing, sl)
		}
	}
	b := r.newBlock(tms, missing)
	if last >= 0 {
		r.heads[last].more = b + 1
	} else {
		for len(r.first) <= int(d) {
			r.first = append(r.first, 0)
		}
		r.first[d] = b + 1
	}
	r.writeBlock(b, tms, row)
}

// newBlock makes a block for metric slots, its base time tms, and returns
// its index.
func (r *RecentValues) newBlock(tms int64, slots []int) int32 {
	layout := slices.IndexFunc(r.layouts, func(l []int) bool { return slices.Equal(l, slots) })
	if layout < 0 {
		layout = len(r.layouts)
		r.layouts = append(r.layouts, slices.Clone(slots))
		r.same = append(r.same, false)
		r.columns(int32(layout))
	}
	stride := 1 + 3*len(slots)
	perChunk := max(1, planeWords/stride) // blocks
	if r.open == nil {
		r.open = map[int]openChunk{}
	}
	oc, ok := r.open[stride]
	if !ok || int(oc.blocks) == perChunk {
		r.chunks = append(r.chunks, make([]uint32, r.size*perChunk*stride))
		oc = openChunk{chunk: int32(len(r.chunks) - 1)}
	}
	r.heads = append(r.heads, blockHead{base: tms, width: uint16(len(slots)), layout: int32(layout),
		chunk: oc.chunk, off: oc.blocks * int32(stride), plane: int32(perChunk * stride), meta: int32(len(r.metas))})
	oc.blocks++
	r.open[stride] = oc
	r.metas = append(r.metas, make([]uint32, len(slots))...)
	return int32(len(r.heads) - 1)
}

// blockRow returns row p of block h.
func (r *RecentValues) blockRow(h *blockHead, p int) []uint32 {
	return r.chunks[h.chunk][int(h.off)+p*int(h.plane):][:1+3*int(h.width)]
}

// columns returns, for each column of layout, the column of the rows being
// written that holds its metric (-1: none), and notes whether they are
// the rows' columns in their order.
func (r *RecentValues) columns(layout int32) []int {
	for len(r.cols) <= int(layout) {
		r.cols = append(r.cols, nil)
	}
	if c := r.cols[layout]; c != nil {
		return c
	}
	c := make([]int, len(r.layouts[layout]))
	same := len(c) == len(r.colsFor)
	for k, slot := range r.layouts[layout] {
		c[k] = slices.Index(r.colsFor, slot)
		same = same && c[k] == k
	}
	r.cols[layout], r.same[layout] = c, same
	return c
}

// opens reports whether a value at tms opens a new row of block h: the
// block has none, or no step, or tms is in a later step than its latest
// row (a value from an earlier step than that, out of order, counts as
// the latest row's).
func (r *RecentValues) opens(h *blockHead, tms int64) bool {
	return r.stepMs == 0 || (h.next == 0 && !h.full) || tms >= h.end
}

// stepEnd returns the end of the step of length step that t is in (steps
// aligned on the Unix epoch, in t's unit).
func stepEnd(t, step int64) int64 { return (t/step + 1) * step }

// outside returns how far value v (its value, expected value and
// half-width words) lies outside its band, in half-widths (above 1); 0
// inside it or without a band, and for an absent value.
func outside(v []uint32) float32 {
	value, expected, half := math.Float32frombits(v[0]), math.Float32frombits(v[1]), math.Float32frombits(v[2])
	diff := float32(math.Abs(float64(value - expected)))
	if !(diff > half) { // NaN (no band, no value) is not
		return 0
	}
	return diff / half
}

// recentStep is what the engine keeps with a device's state of its latest
// step of recent values (see settle).
type recentStep struct {
	end  int64  // Unix ns: the end of the step
	seen uint64 // the metrics (slot mod 64) with a value in it
}

// settle drops the row just noted, of a device at event time t (Unix ns),
// when with a step it would change nothing a flush keeps: it is not the
// first of its step, its metrics all have a value in the step's row
// already, and none lies outside its band (far: one may, which the engine
// tells from the values it judged, still in registers: beyond half the
// band; reading them back costs more). s is the device's latest step,
// kept by the engine with its state (memory it touches for the row
// anyway, unlike the ring's head). So a device reporting more often than
// once a step costs a flush one row a step, not one a report. A row from
// an earlier step (out of order) is kept: a flush puts what it keeps of
// it in the latest row of each block, which may be of an earlier step
// than the device's.
func (r *RecentValues) settle(row pendingRow, t int64, s *recentStep, far bool) {
	if r.stepMs == 0 {
		return
	}
	p := &r.pend
	present := p.all
	if row[0] != 0 { // absent values
		present = 0
		for j, slot := range p.slots {
			if slot >= 0 && row.present(j) {
				present |= 1 << (slot & 63)
			}
		}
	}
	step := r.stepMs * int64(time.Millisecond)
	switch {
	case t >= s.end: // the step's first row
		s.end, s.seen = stepEnd(t, step), present
		return
	case t < s.end-step:
		return
	case present&^s.seen != 0:
		s.seen |= present
	case !far:
		p.n--
	}
}

// advance returns the row of block h to write at tms, its time written,
// and moves h on.
func (r *RecentValues) advance(h *blockHead, tms int64) []uint32 {
	if r.stepMs > 0 {
		h.end = stepEnd(tms, r.stepMs)
	}
	at := tms - h.base
	if at != int64(int32(at)) {
		r.rebase(h, tms)
		at = 0
	}
	w := r.blockRow(h, int(h.next))
	w[0] = uint32(int32(at))
	if h.next++; int(h.next) == r.size {
		h.next, h.full = 0, true
	}
	return w
}

// writeSame moves row, whose columns are block h's in their order, into a
// new row of h, when it has a value.
func (r *RecentValues) writeSame(h *blockHead, tms int64, row pendingRow) {
	width := int(h.width)
	absent := int(row[0])
	if absent == width {
		return
	}
	metas := r.metas[h.meta:][:width]
	if absent == 0 {
		copy(metas, row[1+3*width:]) // last column first, as the block's
	} else {
		for k := range width {
			if row.present(k) {
				metas[width-1-k] = row.meta(k)
			}
		}
	}
	if !r.opens(h, tms) {
		r.keepOutside(h, tms, nil, row)
		return
	}
	w := r.advance(h, tms)
	copy(w[1:], row[1:1+3*width]) // the values, expected values and half-widths
}

// keepOutside puts into block h's latest row, of tms's step, each value of
// row that lies further outside its band than the row's, or fills a column
// the latest row has none in; a value outside its band moves the row's
// time to tms. Column k of h is the row's column cols[k] (-1: none; nil:
// k). It reads the ring's memory, seldom cached in a large fleet, but the
// engine's rows come here only when settle kept them: outside their band,
// or filling.
func (r *RecentValues) keepOutside(h *blockHead, tms int64, cols []int, row pendingRow) {
	w := r.blockRow(h, (int(h.next)+r.size-1)%r.size)
	for k := range int(h.width) {
		j := k
		if cols != nil {
			j = cols[k]
		}
		if j < 0 || !row.present(j) {
			continue
		}
		v, kept := row.value(j), w[1+3*k:][:3]
		d := outside(v)
		if kept[0] != absentBits && d <= outside(kept) {
			continue
		}
		if at := tms - h.base; d > 0 && at == int64(int32(at)) {
			w[0] = uint32(int32(at))
		}
		copy(kept, v)
	}
}

// writeBlock moves the row's values of block b's metrics into a new row of
// b, when the row has one, and returns how many.
func (r *RecentValues) writeBlock(b int32, tms int64, row pendingRow) int {
	h := &r.heads[b]
	cols := r.columns(h.layout)
	has := false
	for _, j := range cols {
		if j >= 0 && row.present(j) {
			has = true
			break
		}
	}
	if !has {
		return 0
	}
	metas := r.metas[h.meta:][:len(cols)]
	n := 0
	for k, j := range cols {
		if j >= 0 && row.present(j) {
			metas[len(cols)-1-k] = row.meta(j)
			r.covered[j] = true
			n++
		}
	}
	if !r.opens(h, tms) {
		r.keepOutside(h, tms, cols, row)
		return n
	}
	w := r.advance(h, tms)
	for k, j := range cols {
		v := w[1+3*k:][:3]
		if j < 0 || !row.present(j) {
			v[0] = absentBits
			continue
		}
		copy(v, row.value(j))
	}
	return n
}

// rows returns the position of h's oldest row and how many it has.
func (r *RecentValues) rows(h *blockHead) (from, n int) {
	if h.full {
		return int(h.next), r.size
	}
	return 0, int(h.next)
}

// rebase moves the base of block h to tms, more than 24 days from it,
// keeping its rows if their times fit (a block spans its last size rows,
// hours for most devices), or else starting it again without them.
func (r *RecentValues) rebase(h *blockHead, tms int64) {
	_, n := r.rows(h)
	shift := h.base - tms
	for p := range n {
		if at := int64(int32(r.blockRow(h, p)[0])) + shift; at != int64(int32(at)) {
			h.base, h.next, h.full = tms, 0, false
			return
		}
	}
	for p := range n {
		w := r.blockRow(h, p)
		w[0] = uint32(int32(w[0]) + int32(shift))
	}
	h.base = tms
}

// Add appends v, whose band is symmetric, to device d's values of metric
// name, for a writer other than the engine (which notes its values as it
// judges): samples, fromGroup and seasonal are what v was judged on
// (RecentSeries).
func (r *RecentValues) Add(d int32, name string, v RecentValue, samples int64, fromGroup, seasonal bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	slot := slices.Index(r.names, name)
	if slot < 0 {
		slot = len(r.names)
		r.metric(slot, name)
	}
	row := make(pendingRow, 1+4)
	row.note(0, &baseline.Expectation{Value: float64(v.Value), Samples: samples, FromGroup: fromGroup, Seasonal: seasonal}, v.Expected, (v.Upper-v.Lower)/2)
	r.bindColumns([]int{slot})
	r.write(d, v.Time/int64(time.Millisecond), []int{slot}, row)
}

// RecentSeries is one metric's recent values of a device.
type RecentSeries struct {
	Metric string
	// Samples, FromGroup and Seasonal are what the latest value was judged
	// on: the values the device's baseline had learned, and whether the
	// expectation was its group's or the hour-of-week profile's. With a
	// step, the latest value settle kept: at most a step before the
	// device's latest.
	Samples             int64
	FromGroup, Seasonal bool
	Values              []RecentValue // oldest first
}

// Device returns a copy of device d's recent values, one series per metric
// with values, by metric slot.
func (r *RecentValues) Device(d int32) []RecentSeries {
	r.mu.Lock()
	defer r.mu.Unlock()
	if int(d) >= len(r.first) {
		return nil
	}
	type slotSeries struct {
		slot int
		RecentSeries
	}
	var found []slotSeries
	for b := r.first[d] - 1; b >= 0; b = r.heads[b].more - 1 {
		h := &r.heads[b]
		from, n := r.rows(h)
		for k, slot := range r.layouts[h.layout] {
			meta := r.metas[int(h.meta)+int(h.width)-1-k]
			s := RecentSeries{Metric: r.names[slot], Samples: int64(meta & metaSamples), FromGroup: meta&metaFromGroup != 0,
				Seasonal: meta&metaSeasonal != 0}
			for i := range n {
				w := r.blockRow(h, (from+i)%r.size)
				v := w[1+3*k : 4+3*k]
				if v[0] == absentBits {
					continue
				}
				value, expected, half := math.Float32frombits(v[0]), math.Float32frombits(v[1]), math.Float32frombits(v[2])
				// without a band, expected and half are NaN, and so the bounds
				s.Values = append(s.Values, RecentValue{Time: (h.base + int64(int32(w[0]))) * int64(time.Millisecond), Value: value,
					Expected: expected, Lower: expected - half, Upper: expected + half})
			}
			if len(s.Values) > 0 {
				found = append(found, slotSeries{slot, s})
			}
		}
	}
	slices.SortFunc(found, func(a, b slotSeries) int { return a.slot - b.slot })
	var out []RecentSeries
	for _, s := range found {
		out = append(out, s.RecentSeries)
	}
	return out
}

// forget empties device d's rings, which the next device given its id
// (an eviction) fills again. The engine calls it as it judges: the rows
// of d it noted before are moved into the rings first, so they cannot
// land in the next device's.
func (r *RecentValues) forget(d int32) {
	r.flush()
	r.mu.Lock()
	defer r.mu.Unlock()
	for b := r.firstBlock(d); b >= 0; b = r.heads[b].more - 1 {
		h := &r.heads[b]
		h.next, h.full = 0, false
		clear(r.metas[h.meta:][:h.width])
	}
}
