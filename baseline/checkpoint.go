package baseline

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/bits"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/vigil-ot/vigil/ingest"
)

// Checkpoint layout: one Arrow IPC file, one schema, one row per (device,
// metric), per group and per (group, metric), told apart by "kind". Moments
// are plain columns per half-life (mean_0, weight_0, m2_0, …) so the file
// reads well in pyarrow or DuckDB; sketches and seasonal profiles are an
// opaque binary column in the group-summary encoding. Everything is keyed
// by name. Schema metadata holds the format, the half-lives the state was
// learned with, the version and the input positions the state covers
// ("position:<partition or file>" → next offset or line).
const (
	// checkpointFormat is what Checkpoint writes; Restore also reads
	// checkpointFormatV1, the same without group peak memories (a group
	// metric's opaque column then never has peakFlag set) and without
	// device profile scales (a device metric row's state is then null).
	checkpointFormat   = "vigil.baseline/2"
	checkpointFormatV1 = "vigil.baseline/1"

	kindDeviceMetric int8 = 0
	kindGroup        int8 = 1
	kindGroupMetric  int8 = 2
	kindCommSet      int8 = 3 // one group of a learned communication set

	metaFormat     = "format"
	metaHalfLives  = "half_lives_ns"
	metaPrimary    = "primary_half_life_ns"
	metaQuantileHL = "quantile_half_life_ns"
	metaSeasonalHL = "seasonal_half_life_ns"
	metaVersion    = "version"
	metaPosition   = "position:"

	checkpointBatchRows = 4096
	// maxCheckpointBytes bounds what Restore reads into memory.
	maxCheckpointBytes = 4 << 30
)

func (s *Store) checkpointSchema(meta map[string]string) *arrow.Schema {
	fields := []arrow.Field{
		{Name: "kind", Type: arrow.PrimitiveTypes.Int8},
		{Name: "name", Type: arrow.BinaryTypes.String},
		{Name: "group", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "metric", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "samples", Type: arrow.PrimitiveTypes.Int64},
		{Name: "first_ns", Type: arrow.PrimitiveTypes.Int64},
		{Name: "last_ns", Type: arrow.PrimitiveTypes.Int64},
		{Name: "protecting", Type: arrow.FixedWidthTypes.Boolean},
	}
	for h := 0; h < s.nh; h++ {
		fields = append(fields,
			arrow.Field{Name: "mean_" + strconv.Itoa(h), Type: arrow.PrimitiveTypes.Float64},
			arrow.Field{Name: "weight_" + strconv.Itoa(h), Type: arrow.PrimitiveTypes.Float64},
			arrow.Field{Name: "m2_" + strconv.Itoa(h), Type: arrow.PrimitiveTypes.Float64})
	}
	fields = append(fields, arrow.Field{Name: "state", Type: arrow.BinaryTypes.Binary, Nullable: true})
	// sorted, so the same state always gives the same bytes
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	vals := make([]string, len(keys))
	for i, k := range keys {
		vals[i] = meta[k]
	}
	md := arrow.NewMetadata(keys, vals)
	return arrow.NewSchema(fields, &md)
}

const numFixedCheckpointCols = 8

// checkpointWriter fills record batches of the checkpoint schema, one
// builder reused for every batch, and writes each batch once it holds
// checkpointBatchRows rows.
type checkpointWriter struct {
	s       *Store
	w       *ipc.FileWriter
	b       *array.RecordBuilder
	rows    int
	nh      int
	scratch []byte // encoded state of the row being written
}

func (cw *checkpointWriter) row(kind int8, name, group, metric string, samples, first, last int64, protecting bool, mean, weight, m2 [MaxHalfLives]float64, state []byte) error {
	b := cw.b
	b.Field(0).(*array.Int8Builder).Append(kind)
	b.Field(1).(*array.StringBuilder).Append(name)
	appendOptString(b.Field(2).(*array.StringBuilder), group)
	appendOptString(b.Field(3).(*array.StringBuilder), metric)
	b.Field(4).(*array.Int64Builder).Append(samples)
	b.Field(5).(*array.Int64Builder).Append(first)
	b.Field(6).(*array.Int64Builder).Append(last)
	b.Field(7).(*array.BooleanBuilder).Append(protecting)
	for h := 0; h < cw.nh; h++ {
		b.Field(numFixedCheckpointCols + 3*h).(*array.Float64Builder).Append(mean[h])
		b.Field(numFixedCheckpointCols + 3*h + 1).(*array.Float64Builder).Append(weight[h])
		b.Field(numFixedCheckpointCols + 3*h + 2).(*array.Float64Builder).Append(m2[h])
	}
	sb := b.Field(numFixedCheckpointCols + 3*cw.nh).(*array.BinaryBuilder)
	if state == nil {
		sb.AppendNull()
	} else {
		sb.Append(state)
	}
	cw.rows++
	if cw.rows >= checkpointBatchRows {
		return cw.flush()
	}
	return nil
}

func appendOptString(b *array.StringBuilder, s string) {
	if s == "" {
		b.AppendNull()
		return
	}
	b.Append(s)
}

// flush writes the rows built so far as one record batch and releases
// it, which hands its buffers back to the allocator for the next batch.
func (cw *checkpointWriter) flush() error {
	if cw.rows == 0 {
		return nil
	}
	rec := cw.b.NewRecord()
	defer rec.Release()
	cw.rows = 0
	if err := cw.w.Write(rec); err != nil {
		return fmt.Errorf("cannot write checkpoint batch: %w", err)
	}
	return nil
}

// Checkpoint writes all state as an Arrow IPC file to w, with positions
// (partition or file → next offset or line) in its schema metadata, so a
// restart resumes exactly where the state ends.
//
// The file is streamed in batches of checkpointBatchRows rows: memory
// beyond the state is one batch, whatever the number of devices. As the
// file's checksum sits in its first bytes, Checkpoint builds the file
// twice: once into the checksum alone, then into w with the checksum in
// place. The store must not change while Checkpoint runs; should the two
// passes differ anyway, it returns an error, having written a file that
// Restore rejects.
func (s *Store) Checkpoint(w io.Writer, positions map[string]int64) error {
	if s.reg == nil {
		return errors.New("cannot checkpoint baseline: the store has no registry to name devices and groups")
	}
	meta := map[string]string{
		metaFormat:     checkpointFormat,
		metaHalfLives:  joinInts(s.hl[:s.nh]),
		metaPrimary:    strconv.FormatInt(s.hl[s.primary], 10),
		metaQuantileHL: strconv.FormatInt(int64(s.cfg.QuantileHalfLife), 10),
		metaSeasonalHL: strconv.FormatInt(s.seasonHL, 10),
		metaVersion:    strconv.FormatUint(s.version, 10),
		metaChecksum:   checksumToken + checksumBlank,
	}
	for k, v := range positions {
		meta[metaPosition+k] = strconv.FormatInt(v, 10)
	}
	mem := new(recyclingAllocator)
	sum := checksumWriter{w: io.Discard}
	if err := s.writeCheckpoint(&sum, meta, mem); err != nil {
		return err
	}
	meta[metaChecksum] = checksumToken + fmt.Sprintf("%08x", sum.crc)
	out := checksumWriter{w: w}
	if err := s.writeCheckpoint(&out, meta, mem); err != nil {
		return err
	}
	if out.crc != sum.crc || out.size != sum.size {
		return fmt.Errorf("BUG: cannot checkpoint baseline: the file written (%d bytes, checksum %08x) differs from the one summed (%d bytes, %08x); the store changed during Checkpoint", out.size, out.crc, sum.size, sum.crc)
	}
	return nil
}

// writeCheckpoint writes the checkpoint file with the given metadata.
func (s *Store) writeCheckpoint(w io.Writer, meta map[string]string, mem memory.Allocator) error {
	schema := s.checkpointSchema(meta)
	fw, err := ipc.NewFileWriter(&positionWriter{w: w}, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	if err != nil {
		return fmt.Errorf("cannot start checkpoint: %w", err)
	}
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	cw := &checkpointWriter{s: s, w: fw, b: b, nh: s.nh}
	if err := s.writeRows(cw); err != nil {
		fw.Close()
		return err
	}
	if err := cw.flush(); err != nil {
		fw.Close()
		return err
	}
	if err := fw.Close(); err != nil {
		return fmt.Errorf("cannot finish checkpoint: %w", err)
	}
	return nil
}

// recyclingAllocator gives the buffers of a released batch to the next
// batch's builders, so that writing a checkpoint allocates about one
// batch, not one file. Buffers are kept by capacity, a power of two. It
// is not safe for concurrent use.
type recyclingAllocator struct {
	free [bits.UintSize][][]byte // by log2 of the capacity
}

// minRecycledBytes is the smallest capacity handed out: Arrow's own
// allocator aligns buffers to 64 bytes.
const minRecycledBytes = 64

func (a *recyclingAllocator) Allocate(size int) []byte {
	c := bits.Len(uint(max(size, minRecycledBytes) - 1))
	if n := len(a.free[c]); n > 0 {
		b := a.free[c][n-1][:size]
		a.free[c] = a.free[c][:n-1]
		clear(b)
		return b
	}
	return memory.DefaultAllocator.Allocate(1 << c)[:size]
}

func (a *recyclingAllocator) Reallocate(size int, b []byte) []byte {
	if size <= cap(b) {
		if old := len(b); size > old {
			b = b[:size]
			clear(b[old:])
			return b
		}
		return b[:size]
	}
	nb := a.Allocate(size)
	copy(nb, b)
	a.Free(b)
	return nb
}

func (a *recyclingAllocator) Free(b []byte) {
	c := cap(b)
	if c < minRecycledBytes || c&(c-1) != 0 {
		return // not one of ours; the garbage collector takes it
	}
	k := bits.Len(uint(c)) - 1
	a.free[k] = append(a.free[k], b[:0])
}

// checksumWriter passes bytes through to w and sums them as the
// checkpoint's checksum does: with the digits after each checksumToken
// taken as checksumBlank (see checksumSlots).
type checksumWriter struct {
	w       io.Writer
	crc     uint32
	size    int64
	matched int // bytes of checksumToken just written
	blank   int // digits still to sum as blanks
}

func (c *checksumWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.sum(p[:n])
	return n, err
}

func (c *checksumWriter) sum(p []byte) {
	c.size += int64(len(p))
	for len(p) > 0 {
		if c.matched == 0 && c.blank == 0 {
			i := bytes.IndexByte(p, checksumToken[0])
			if i < 0 {
				c.crc = crc32.Update(c.crc, crcTable, p)
				return
			}
			c.crc = crc32.Update(c.crc, crcTable, p[:i])
			p = p[i:]
		}
		// byte by byte through a token and its digits
		if c.blank > 0 {
			c.crc = crc32.Update(c.crc, crcTable, []byte(checksumBlank[:1]))
			c.blank--
		} else {
			c.crc = crc32.Update(c.crc, crcTable, p[:1])
		}
		switch {
		case p[0] == checksumToken[c.matched]:
			c.matched++
		case p[0] == checksumToken[0]:
			c.matched = 1
		default:
			c.matched = 0
		}
		if c.matched == len(checksumToken) {
			c.matched, c.blank = 0, len(checksumBlank)
		}
		p = p[1:]
	}
}

// The checkpoint's integrity check. Arrow's IPC reader trusts the lengths
// in the file's flatbuffers and can try to allocate terabytes for a
// corrupt one, a fatal out-of-memory no recover() catches. So the file
// carries a CRC-32C of itself in its schema metadata, written in a
// fixed-width token that Restore finds by a plain byte search, blanks, and
// checks before Arrow parses anything. The file stays a plain Arrow IPC
// file for other tools. (It guards against corruption, not forgery: the
// checkpoint is the process's own trusted state.)
//
// A device's name, which telemetry chooses, may hold the token too. So
// every token's digits are blanked for the sum, and one of them must hold
// it: Checkpoint writes the sum into the schema's two copies and leaves
// names as they are. (Before checkpoints were streamed, it wrote the sum
// into every token's digits; those files verify alike.)
const (
	metaChecksum  = "checksum"
	checksumToken = "vigil.crc32c:"
	checksumBlank = "00000000"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// checksumSlots returns the offsets of the 8 checksum digits after each
// token (the schema appears twice in an IPC file: first message and footer).
func checksumSlots(data []byte) []int {
	var slots []int
	tok := []byte(checksumToken)
	for off := 0; ; {
		i := bytes.Index(data[off:], tok)
		if i < 0 || off+i+len(tok)+len(checksumBlank) > len(data) {
			return slots
		}
		slots = append(slots, off+i+len(tok))
		off += i + len(tok)
	}
}

// verifyChecksum checks data's embedded CRC without parsing it.
func verifyChecksum(data []byte) error {
	slots := checksumSlots(data)
	if len(slots) == 0 {
		return errors.New("no checksum: the file is not a vigil baseline checkpoint, or its metadata is damaged")
	}
	var crc uint32
	prev := 0
	for _, i := range slots {
		crc = crc32.Update(crc, crcTable, data[prev:i])
		crc = crc32.Update(crc, crcTable, []byte(checksumBlank))
		prev = i + len(checksumBlank)
	}
	crc = crc32.Update(crc, crcTable, data[prev:])
	got := fmt.Sprintf("%08x", crc)
	for _, i := range slots {
		if string(data[i:i+len(checksumBlank)]) == got {
			return nil
		}
	}
	return fmt.Errorf("checksum %s, the file says %s: it is damaged or truncated", got, data[slots[0]:slots[0]+len(checksumBlank)])
}

func (s *Store) writeRows(cw *checkpointWriter) error {
	var mean, weight, m2 [MaxHalfLives]float64
	for id, g := range s.groups {
		if g == nil {
			continue
		}
		name := s.reg.GroupName(int32(id))
		var seasonLast []byte // nil, a null state, until the group has started
		if g.started {
			seasonLast = cw.scratch[:0]
			for _, t := range g.seasonLast {
				seasonLast = binary.AppendVarint(seasonLast, t)
			}
			cw.scratch = seasonLast
		}
		var zero [MaxHalfLives]float64
		if err := cw.row(kindGroup, name, "", "", g.rows, g.first, g.last, g.protecting, zero, zero, zero, seasonLast); err != nil {
			return err
		}
		for m := range g.metrics {
			gm := &g.metrics[m]
			if gm.n == 0 {
				continue
			}
			cw.scratch = appendGroupMetricExtras(cw.scratch[:0], gm)
			if err := cw.row(kindGroupMetric, name, "", s.metricNames[m], gm.n, 0, 0, false, gm.mean, gm.w, gm.m2, cw.scratch); err != nil {
				return err
			}
		}
	}
	names := make([]string, 0, len(s.commSets))
	for name := range s.commSets {
		names = append(names, name)
	}
	sort.Strings(names)
	var zero [MaxHalfLives]float64
	for _, name := range names {
		c := s.commSets[name]
		for g := range c.groups {
			if !c.groups[g].started && len(c.groups[g].keys) == 0 && c.groups[g].forced == 0 {
				continue
			}
			cw.scratch = c.AppendGroup(cw.scratch[:0], int32(g))
			if err := cw.row(kindCommSet, name, s.reg.GroupName(int32(g)), "", int64(len(c.groups[g].keys)), c.groups[g].first, max(c.groups[g].last, c.groups[g].floor), false, zero, zero, zero, cw.scratch); err != nil {
				return err
			}
		}
	}
	for d := int32(0); int(d) < s.local.Len(); d++ { // by registry id
		l, ok := s.lookupLocal(d)
		if !ok {
			continue
		}
		pg, i := s.device(l)
		base := i * s.stride
		var name, group string
		for m := 0; m < s.stride; m++ {
			slot := base + m
			if pg.n[slot] == 0 {
				continue
			}
			if name == "" {
				name = s.reg.DeviceName(d)
				if g := pg.group[i]; g >= 0 {
					group = s.reg.GroupName(g)
				}
			}
			for h := 0; h < s.nh; h++ {
				k := slot*s.nh + h
				mean[h], weight[h], m2[h] = pg.mean[k], float64(pg.w[k]), pg.m2[k]
			}
			cw.scratch = pg.appendProfileScale(cw.scratch[:0], slot)
			if err := cw.row(kindDeviceMetric, name, group, s.metricNames[m], int64(pg.n[slot]), 0, pg.last[i], false, mean, weight, m2, cw.scratch); err != nil {
				return err
			}
		}
	}
	return nil
}

func joinInts(v []int64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.FormatInt(x, 10)
	}
	return strings.Join(parts, ",")
}

// checkpointFile is a checkpoint whose checksum, metadata and schema are
// checked, before it touches a store. Its record batches are read one at
// a time by eachRecord.
type checkpointFile struct {
	halfLives  []int64
	primary    int64
	quantileHL int64
	seasonalHL int64
	version    uint64
	positions  map[string]int64
	fr         *ipc.FileReader
	batches    int
}

func (cf *checkpointFile) release() {
	if cf.fr != nil {
		cf.fr.Close()
	}
}

// readCheckpoint reads and checks the file structure. Arrow's IPC reader
// trusts the flatbuffers it reads; a corrupt file can make it panic, which
// becomes an error here rather than a crash.
func readCheckpoint(r io.Reader) (cf *checkpointFile, err error) {
	data, err := io.ReadAll(io.LimitReader(r, maxCheckpointBytes+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read checkpoint: %w", err)
	}
	if len(data) > maxCheckpointBytes {
		return nil, fmt.Errorf("cannot read checkpoint: larger than %d bytes; it is not a baseline checkpoint", maxCheckpointBytes)
	}
	if err := verifyChecksum(data); err != nil {
		return nil, fmt.Errorf("cannot read checkpoint: %w; delete it to start learning afresh", err)
	}
	cf = &checkpointFile{positions: map[string]int64{}}
	defer func() {
		if p := recover(); p != nil {
			cf.release()
			cf, err = nil, fmt.Errorf("cannot read checkpoint: corrupt Arrow IPC file (%v); delete it to start learning afresh", p)
		}
	}()
	// Arrow sizes buffers from the file's metadata; a corrupt length must
	// not make it allocate more than the file could hold.
	mem := &boundedAllocator{limit: 2*len(data) + 1<<20}
	fr, err := ipc.NewFileReader(bytes.NewReader(data), ipc.WithAllocator(mem))
	if err != nil {
		return nil, fmt.Errorf("cannot read checkpoint: %w; it is not an Arrow IPC file written by vigil", err)
	}
	cf.fr = fr
	if err := cf.parseMeta(fr.Schema()); err != nil {
		cf.release()
		return nil, fmt.Errorf("cannot read checkpoint: %w", err)
	}
	want := (&Store{nh: len(cf.halfLives)}).checkpointSchema(nil)
	if !fr.Schema().Equal(want) {
		cf.release()
		return nil, fmt.Errorf("cannot read checkpoint: schema %s does not match format %s", fr.Schema(), checkpointFormat)
	}
	cf.batches = fr.NumRecords()
	return cf, nil
}

// eachRecord reads the record batches in order and calls fn with each,
// checked; the record is valid only during the call. Only one batch is
// in memory at a time.
func (cf *checkpointFile) eachRecord(fn func(arrow.Record) error) error {
	for i := 0; i < cf.batches; i++ {
		rec, err := cf.record(i)
		if err != nil {
			return fmt.Errorf("cannot read checkpoint batch %d: %w", i, err)
		}
		if err := validateRecord(rec); err != nil {
			return fmt.Errorf("cannot read checkpoint batch %d: %w", i, err)
		}
		if err := fn(rec); err != nil {
			return fmt.Errorf("batch %d: %w", i, err)
		}
	}
	return nil
}

// record reads batch i, owned by the reader until the next call.
func (cf *checkpointFile) record(i int) (rec arrow.Record, err error) {
	defer func() {
		if p := recover(); p != nil {
			rec, err = nil, fmt.Errorf("corrupt Arrow IPC file (%v)", p)
		}
	}()
	return cf.fr.Record(i)
}

// boundedAllocator is Arrow's Go allocator with a cap on the bytes it hands
// out in total; past the cap it panics, which readCheckpoint turns into an
// error. Checkpoints are not compressed, so no buffer can be larger than
// the file.
type boundedAllocator struct {
	limit, used int
}

func (a *boundedAllocator) Allocate(size int) []byte {
	if size < 0 || size > a.limit-a.used {
		panic(fmt.Sprintf("buffer of %d bytes in a %d-byte budget", size, a.limit))
	}
	a.used += size
	return memory.DefaultAllocator.Allocate(size)
}

func (a *boundedAllocator) Reallocate(size int, b []byte) []byte {
	if size < 0 || size-len(b) > a.limit-a.used {
		panic(fmt.Sprintf("buffer of %d bytes in a %d-byte budget", size, a.limit))
	}
	a.used += size - len(b)
	return memory.DefaultAllocator.Reallocate(size, b)
}

func (a *boundedAllocator) Free(b []byte) { memory.DefaultAllocator.Free(b) }

// validateRecord checks the lengths and offsets Arrow does not check on
// read, so that later accessors cannot index out of range.
func validateRecord(rec arrow.Record) error {
	n := int(rec.NumRows())
	for j, c := range rec.Columns() {
		if c.Len() != n {
			return fmt.Errorf("column %d has %d rows, the batch %d", j, c.Len(), n)
		}
		if err := validateBuffers(c.Data()); err != nil {
			return fmt.Errorf("column %d (%s): %w", j, rec.ColumnName(j), err)
		}
	}
	for j := 0; j < numFixedCheckpointCols-2; j++ {
		if j != 2 && j != 3 && rec.Column(j).NullN() > 0 {
			return fmt.Errorf("column %s has nulls", rec.ColumnName(j))
		}
	}
	return nil
}

// validateBuffers checks that an array's buffers are long enough for its
// length and offset, and that variable-width offsets stay within the data.
func validateBuffers(d arrow.ArrayData) error {
	if d.Offset() < 0 || d.Len() < 0 {
		return errors.New("negative offset or length")
	}
	end := d.Offset() + d.Len()
	bufs := d.Buffers()
	if len(bufs) < 2 {
		return errors.New("missing buffers")
	}
	if b := bufs[0]; b != nil && b.Len() > 0 && b.Len() < (end+7)/8 {
		return errors.New("short null bitmap")
	} else if (b == nil || b.Len() == 0) && d.NullN() > 0 {
		return errors.New("nulls without a null bitmap")
	}
	blen := func(i int) int {
		if i >= len(bufs) || bufs[i] == nil {
			return 0
		}
		return bufs[i].Len()
	}
	switch d.DataType().ID() {
	case arrow.BOOL:
		if blen(1) < (end+7)/8 {
			return errors.New("short boolean buffer")
		}
	case arrow.INT8:
		if blen(1) < end {
			return errors.New("short int8 buffer")
		}
	case arrow.INT64, arrow.FLOAT64:
		if blen(1) < end*8 {
			return errors.New("short 8-byte value buffer")
		}
	case arrow.STRING, arrow.BINARY:
		if d.Len() == 0 {
			return nil
		}
		if blen(1) < (end+1)*4 {
			return errors.New("short offsets buffer")
		}
		offs := arrow.Int32Traits.CastFromBytes(bufs[1].Bytes())[d.Offset() : end+1]
		prev := offs[0]
		if prev < 0 {
			return errors.New("negative offset")
		}
		for _, o := range offs[1:] {
			if o < prev {
				return errors.New("decreasing offsets")
			}
			prev = o
		}
		if int(prev) > blen(2) {
			return errors.New("offsets beyond the data buffer")
		}
	default:
		return fmt.Errorf("unexpected type %s", d.DataType())
	}
	return nil
}

// positionWriter gives Arrow's file writer the only Seek it uses: asking
// for the current position. Checkpoints can so go to pipes and sockets.
type positionWriter struct {
	w   io.Writer
	pos int64
}

func (p *positionWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.pos += int64(n)
	return n, err
}

func (p *positionWriter) Seek(offset int64, whence int) (int64, error) {
	if offset != 0 || whence != io.SeekCurrent {
		return 0, errors.New("cannot seek checkpoint output: only the current position is known")
	}
	return p.pos, nil
}

func (cf *checkpointFile) parseMeta(schema *arrow.Schema) error {
	md := schema.Metadata()
	get := func(k string) (string, bool) {
		i := md.FindKey(k)
		if i < 0 {
			return "", false
		}
		return md.Values()[i], true
	}
	if f, _ := get(metaFormat); f != checkpointFormat && f != checkpointFormatV1 {
		return fmt.Errorf("format %q, want %q; the file is not a baseline checkpoint of this vigil version", f, checkpointFormat)
	}
	hls, _ := get(metaHalfLives)
	for _, p := range strings.Split(hls, ",") {
		v, err := strconv.ParseInt(p, 10, 64)
		if err != nil || v < int64(time.Second) {
			return fmt.Errorf("bad half-lives %q", hls)
		}
		cf.halfLives = append(cf.halfLives, v)
	}
	if len(cf.halfLives) > MaxHalfLives {
		return fmt.Errorf("%d half-lives, at most %d", len(cf.halfLives), MaxHalfLives)
	}
	var err error
	parse := func(k string, dst *int64) {
		v, _ := get(k)
		if x, e := strconv.ParseInt(v, 10, 64); e != nil || x < int64(time.Second) {
			if err == nil {
				err = fmt.Errorf("bad %s %q", k, v)
			}
		} else {
			*dst = x
		}
	}
	parse(metaPrimary, &cf.primary)
	parse(metaQuantileHL, &cf.quantileHL)
	parse(metaSeasonalHL, &cf.seasonalHL)
	if err != nil {
		return err
	}
	v, _ := get(metaVersion)
	if cf.version, err = strconv.ParseUint(v, 10, 64); err != nil {
		return fmt.Errorf("bad version %q", v)
	}
	for i, k := range md.Keys() {
		if name, ok := strings.CutPrefix(k, metaPosition); ok {
			p, err := strconv.ParseInt(md.Values()[i], 10, 64)
			if err != nil {
				return fmt.Errorf("bad position %q of %q", md.Values()[i], name)
			}
			cf.positions[name] = p
		}
	}
	return nil
}

// Restore replaces the store's state with a checkpoint written by
// Checkpoint and returns the input positions it covers. The checkpoint's
// half-lives must match the configuration. Nothing changes on error.
func (s *Store) Restore(r io.Reader) (map[string]int64, error) {
	cf, err := readCheckpoint(r)
	if err != nil {
		return nil, err
	}
	defer cf.release()
	if err := s.checkCompatible(cf); err != nil {
		return nil, err
	}
	if s.reg == nil {
		return nil, errors.New("cannot restore baseline: the store has no registry")
	}
	fresh := NewStore(s.cfg, s.reg)
	for k, v := range s.metricIndex {
		fresh.metricIndex[k] = v
	}
	fresh.metricNames = append(fresh.metricNames, s.metricNames...)
	fresh.relayout(len(fresh.metricNames))
	if err := fresh.load(cf); err != nil {
		return nil, fmt.Errorf("cannot restore baseline: %w; delete the checkpoint to start learning afresh", err)
	}
	// Detectors hold their *CommSet: refill those in place.
	if fresh.commSets == nil && len(s.commSets) > 0 {
		fresh.commSets = make(map[string]*CommSet)
	}
	for name, old := range s.commSets {
		learnFor := old.learnFor
		if c := fresh.commSets[name]; c != nil {
			*old = *c
		} else {
			*old = CommSet{}
		}
		old.learnFor = learnFor
		fresh.commSets[name] = old
	}
	fresh.frame = s.frame
	fresh.frame.s = s
	*s = *fresh
	return cf.positions, nil
}

func (s *Store) checkCompatible(cf *checkpointFile) error {
	same := len(cf.halfLives) == s.nh
	for h := 0; same && h < s.nh; h++ {
		same = cf.halfLives[h] == s.hl[h]
	}
	if !same {
		return fmt.Errorf("cannot restore baseline: the checkpoint was learned with half-lives %s, the config has %v; restore the old baseline.half_lives or delete the checkpoint", fmtDurations(cf.halfLives), s.cfg.HalfLives)
	}
	if cf.quantileHL != int64(s.cfg.QuantileHalfLife) {
		return fmt.Errorf("cannot restore baseline: the checkpoint's quantile_half_life is %s, the config's %s; set it back or delete the checkpoint", time.Duration(cf.quantileHL), s.cfg.QuantileHalfLife)
	}
	if cf.seasonalHL != s.seasonHL {
		return fmt.Errorf("cannot restore baseline: the checkpoint's seasonal_half_life is %s, the config's %s; set it back or delete the checkpoint", time.Duration(cf.seasonalHL), s.cfg.SeasonalHalfLife)
	}
	return nil
}

func fmtDurations(v []int64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = time.Duration(x).String()
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// load fills an empty store from cf.
func (s *Store) load(cf *checkpointFile) error {
	s.version = cf.version
	defer func() {
		for _, g := range s.groups {
			if g != nil {
				g.syncSketchLandmark()
			}
		}
	}()
	return cf.eachRecord(s.loadRecord)
}

// loadRecord adds the rows of one checked record batch to the store.
func (s *Store) loadRecord(rec arrow.Record) error {
	kind := rec.Column(0).(*array.Int8)
	name := rec.Column(1).(*array.String)
	group := rec.Column(2).(*array.String)
	metric := rec.Column(3).(*array.String)
	samples := rec.Column(4).(*array.Int64)
	first := rec.Column(5).(*array.Int64)
	last := rec.Column(6).(*array.Int64)
	prot := rec.Column(7).(*array.Boolean)
	state := rec.Column(numFixedCheckpointCols + 3*s.nh).(*array.Binary)
	var mean, weight, m2 [MaxHalfLives]float64
	for i := 0; i < int(rec.NumRows()); i++ {
		for h := 0; h < s.nh; h++ {
			mean[h] = rec.Column(numFixedCheckpointCols + 3*h).(*array.Float64).Value(i)
			weight[h] = rec.Column(numFixedCheckpointCols + 3*h + 1).(*array.Float64).Value(i)
			m2[h] = rec.Column(numFixedCheckpointCols + 3*h + 2).(*array.Float64).Value(i)
			if !(math.Abs(mean[h]) <= MaxLearnedValue && weight[h] >= 0 && weight[h] <= maxStateWeight && m2[h] >= 0 && m2[h] <= maxStateSqDev) {
				return fmt.Errorf("row %d: moments %g/%g/%g out of range", i, mean[h], weight[h], m2[h])
			}
		}
		n := samples.Value(i)
		if n < 0 {
			return fmt.Errorf("row %d: sample count %d", i, n)
		}
		if len(name.Value(i)) == 0 {
			return fmt.Errorf("row %d: empty name", i)
		}
		switch kind.Value(i) {
		case kindGroup:
			g := s.group(s.reg.GroupID(name.Value(i)))
			g.rows, g.first, g.last, g.protecting = n, first.Value(i), last.Value(i), prot.Value(i)
			if state.IsValid(i) {
				g.started = true
				d := decoder{b: state.Value(i)}
				for k := range g.seasonLast {
					g.seasonLast[k] = d.varint("seasonal bucket time")
				}
				if d.err == nil && len(d.b) != 0 {
					d.fail("%d trailing bytes", len(d.b))
				}
				if d.err != nil {
					return fmt.Errorf("row %d: group %q: %w", i, name.Value(i), d.err)
				}
			}
		case kindGroupMetric:
			if !metric.IsValid(i) || !state.IsValid(i) {
				return fmt.Errorf("row %d: group metric row without metric or state", i)
			}
			if err := validMetricName(metric.Value(i)); err != nil {
				return fmt.Errorf("row %d: group %q: %w", i, name.Value(i), err)
			}
			var gm groupMetric
			gm.n, gm.w, gm.mean, gm.m2 = n, weight, mean, m2
			d := decoder{b: state.Value(i)}
			s.decodeGroupMetricExtras(&d, &gm)
			if d.err == nil && len(d.b) != 0 {
				d.fail("%d trailing bytes", len(d.b))
			}
			if d.err != nil {
				return fmt.Errorf("row %d: group %q metric %q: %w", i, name.Value(i), metric.Value(i), d.err)
			}
			g := s.group(s.reg.GroupID(name.Value(i)))
			m := s.metricID(metric.Value(i))
			g.grow(s.stride)
			g.metrics[m] = gm
		case kindDeviceMetric:
			if !metric.IsValid(i) {
				return fmt.Errorf("row %d: device metric row without metric", i)
			}
			if err := validMetricName(metric.Value(i)); err != nil {
				return fmt.Errorf("row %d: device %q: %w", i, name.Value(i), err)
			}
			if n > math.MaxUint32 {
				return fmt.Errorf("row %d: sample count %d too large", i, n)
			}
			var ro, oo float32 // format 1 rows have no state: scale 1
			if state.IsValid(i) {
				dec := decoder{b: state.Value(i)}
				ro, oo = dec.profileScale()
				if dec.err == nil && len(dec.b) != 0 {
					dec.fail("%d trailing bytes", len(dec.b))
				}
				if dec.err != nil {
					return fmt.Errorf("row %d: device %q metric %q: %w", i, name.Value(i), metric.Value(i), dec.err)
				}
			}
			d := s.reg.DeviceID(name.Value(i))
			m := s.metricID(metric.Value(i))
			pg, di := s.device(s.localOf(d))
			pg.last[di] = last.Value(i)
			if group.IsValid(i) && group.Value(i) != "" {
				gid := s.reg.GroupID(group.Value(i))
				s.group(gid)
				pg.group[di] = gid
			}
			slot := di*s.stride + int(m)
			pg.n[slot] = uint32(n)
			pg.prof[2*slot], pg.prof[2*slot+1] = ro, oo
			for h := 0; h < s.nh; h++ {
				k := slot*s.nh + h
				pg.mean[k], pg.w[k], pg.m2[k] = mean[h], float32(weight[h]), m2[h]
			}
		case kindCommSet:
			if !group.IsValid(i) || group.Value(i) == "" || !state.IsValid(i) {
				return fmt.Errorf("row %d: communication set row without group or state", i)
			}
			c := s.CommSet(name.Value(i), 0)
			if err := c.MergeGroup(s.reg.GroupID(group.Value(i)), state.Value(i)); err != nil {
				return fmt.Errorf("row %d: %w", i, err)
			}
		default:
			return fmt.Errorf("row %d: unknown kind %d", i, kind.Value(i))
		}
	}
	return nil
}

// Inspect prints a checkpoint read from r: its version, positions, and per
// group the learning state, span, devices and per metric the sample count,
// mean, spread and percentiles. It backs `vigil baseline inspect FILE`.
func Inspect(w io.Writer, r io.Reader) error {
	cf, err := readCheckpoint(r)
	if err != nil {
		return err
	}
	defer cf.release()
	cfg := DefaultConfig()
	cfg.HalfLives = cfg.HalfLives[:0]
	for _, h := range cf.halfLives {
		cfg.HalfLives = append(cfg.HalfLives, time.Duration(h))
	}
	cfg.PrimaryHalfLife = time.Duration(cf.primary)
	cfg.QuantileHalfLife = time.Duration(cf.quantileHL)
	cfg.SeasonalHalfLife = time.Duration(cf.seasonalHL)
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("cannot inspect checkpoint: %w", err)
	}
	s := NewStore(cfg, ingest.NewRegistry())
	if err := s.load(cf); err != nil {
		return fmt.Errorf("cannot inspect checkpoint: %w", err)
	}
	return s.WriteSummary(w, cf.positions)
}

// WriteSummary prints the store's groups as Inspect does.
func (s *Store) WriteSummary(w io.Writer, positions map[string]int64) error {
	ew := &errWriter{w: w}
	ew.printf("baseline version %d, half-lives %v (primary %s), %d devices, %d metrics\n",
		s.version, s.cfg.HalfLives, s.cfg.PrimaryHalfLife, s.NumDevices(), len(s.metricNames))
	keys := make([]string, 0, len(positions))
	for k := range positions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ew.printf("position %s = %d\n", k, positions[k])
	}
	for _, g := range s.GroupInfos() {
		mode := "protecting"
		if g.Learning {
			mode = "learning"
		}
		ew.printf("\ngroup %s: %s, %d rows, %d devices, %s to %s (%s)\n", g.Name, mode, g.Rows, g.Devices,
			g.First.Format(time.RFC3339), g.Last.Format(time.RFC3339), g.Span)
		ew.printf("  %-28s %10s %12s %12s %12s %12s %12s %5s\n", "metric", "samples", "mean", "std", "p50", "p99", "p99.9", "hours")
		for _, m := range g.Metrics {
			ew.printf("  %-28s %10d %12.4g %12.4g %12.4g %12.4g %12.4g %5d\n", m.Name, m.Samples, m.Mean, m.Std,
				m.Quantiles[QP50], m.Quantiles[QP99], m.Quantiles[QP999], m.SeasonalBuckets)
		}
	}
	s.writeCommSets(ew)
	return ew.err
}

// writeCommSets prints each communication set's groups: whether each
// learns or protects as of its newest event time, and until or since when.
func (s *Store) writeCommSets(ew *errWriter) {
	names := make([]string, 0, len(s.commSets))
	for name := range s.commSets {
		names = append(names, name)
	}
	sort.Strings(names)
	stamp := func(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339) }
	for _, name := range names {
		c := s.commSets[name]
		ew.printf("\ncommunication set %s:\n", name)
		for g := range c.groups {
			cg := &c.groups[g]
			if !cg.started && len(cg.keys) == 0 {
				continue
			}
			newest := max(cg.last, cg.floor)
			var mode string
			switch {
			case cg.forced == 1:
				mode = "learning (set by hand)"
			case cg.forced == -1:
				mode = "protecting (set by hand)"
			case !cg.hasUntil:
				mode = "learning for the configured period from its first time (older checkpoint)"
			case newest < cg.until:
				mode = "learning until " + stamp(cg.until)
			default:
				mode = "protecting since " + stamp(cg.until)
			}
			ew.printf("  group %s: %s; %d keys, first %s, newest %s\n", s.reg.GroupName(int32(g)), mode, len(cg.keys), stamp(cg.first), stamp(newest))
		}
	}
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
