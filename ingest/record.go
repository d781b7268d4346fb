package ingest

import (
	"sync/atomic"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
)

// record is the arrow.Record an ObservationBuilder hands out. It takes the
// builder's columns as they are: array.NewRecord retains every column (and
// the builder then released its own reference to each) and checks every
// column's type against the schema, by reflection for most types; the
// builder makes the columns and the schema from the same layout
// (TestBuilderRecordsMatchSchema checks it), so neither is needed. On a
// sparse capture, whose records hold a few rows each, those checks and
// the reference counting were 5% of the reading goroutine's CPU.
//
// What is rare (SetColumn, NewSlice, MarshalJSON) it hands to
// array.NewRecord's record.
type record struct {
	refs    atomic.Int64
	schema  *arrow.Schema
	rows    int64
	cols    []arrow.Array
	columns *recordColumns // where cols and most of the arrays live
	pool    *columnPool    // which takes columns back on release
}

// newRecord returns a record of rows rows that owns rc.cols (one
// reference each); released, it gives rc back to pool.
func newRecord(schema *arrow.Schema, rc *recordColumns, pool *columnPool, rows int64) *record {
	r := &record{schema: schema, rows: rows, cols: rc.cols, columns: rc, pool: pool}
	r.refs.Store(1)
	return r
}

func (r *record) Retain() { r.refs.Add(1) }

func (r *record) Release() {
	switch n := r.refs.Add(-1); {
	case n == 0:
		for _, c := range r.cols {
			c.Release()
		}
		r.cols = nil
		r.pool.put(r.columns)
		r.columns = nil
	case n < 0:
		panic("ingest: record released more often than retained")
	}
}

func (r *record) Schema() *arrow.Schema    { return r.schema }
func (r *record) NumRows() int64           { return r.rows }
func (r *record) NumCols() int64           { return int64(len(r.cols)) }
func (r *record) Columns() []arrow.Array   { return r.cols }
func (r *record) Column(i int) arrow.Array { return r.cols[i] }
func (r *record) ColumnName(i int) string  { return r.schema.Field(i).Name }

// checked returns array.NewRecord's record of the same columns, with
// references of its own.
func (r *record) checked() arrow.Record { return array.NewRecord(r.schema, r.cols, r.rows) }

func (r *record) SetColumn(i int, col arrow.Array) (arrow.Record, error) {
	c := r.checked()
	defer c.Release()
	return c.SetColumn(i, col)
}

func (r *record) NewSlice(i, j int64) arrow.Record {
	c := r.checked()
	defer c.Release()
	return c.NewSlice(i, j)
}

func (r *record) MarshalJSON() ([]byte, error) {
	c := r.checked()
	defer c.Release()
	return c.MarshalJSON()
}

// recordColumns are the column objects of a record: the list of its
// columns, and its fixed-width and metric arrays with their Data and
// buffer lists, allocated together rather than as a few dozen objects. A
// released record's are used again for a later record of its builder
// (columnPool): on a sparse capture, which makes a small record for every
// 10 s window, allocating them was most of the cost of a record, and
// most of what the garbage collector chased on the reading goroutine.
// The string columns null in every row are shared arrays, not among them.
type recordColumns struct {
	cols    []arrow.Array
	fixed   fixedColumns
	strs    [numStringCols]stringArray
	metrics []float64Column // the record's metric arrays, in column order
}

// fixedColumns are the fixed-width arrays of a record (time, device id,
// group id, partition, offset) with their Data and buffer lists.
type fixedColumns struct {
	data [5]array.Data
	bufs [5][2]*memory.Buffer
	ts   array.Timestamp
	i32  [3]array.Int32
	i64  array.Int64
}

// float64Column is a metric array of a record with its Data and buffer
// list.
type float64Column struct {
	arr  array.Float64
	data array.Data
	bufs [2]*memory.Buffer
}

// stringArray is a string array of a record with its Data and buffer
// list.
type stringArray struct {
	arr  array.String
	data array.Data
	bufs [3]*memory.Buffer
}

// unreferenced reports whether nothing holds any of the arrays or their
// Data: a Data holds its buffers until its last reference is released,
// and an array holds its Data, so a Data without buffers is referenced
// by nothing. A column retained past its record (Arrow allows it) keeps
// the whole set from being used again.
func (rc *recordColumns) unreferenced() bool {
	for i := range rc.fixed.data {
		if rc.fixed.data[i].Buffers() != nil {
			return false
		}
	}
	for i := range rc.strs {
		if rc.strs[i].data.Buffers() != nil {
			return false
		}
	}
	for i := range rc.metrics {
		if rc.metrics[i].data.Buffers() != nil {
			return false
		}
	}
	return true
}

// columnPool keeps the column objects of a builder's released records,
// up to columnsKept of them, for its next records. Records are released
// on other goroutines than the builder's (the engine's), hence the
// channel.
type columnPool struct {
	free chan *recordColumns
}

// columnsKept is how many released records' columns a builder keeps: as
// many as records are usually in flight between a source and the engine
// (read ahead, judged, being delivered).
const columnsKept = 16

// take returns released columns to fill, or new ones.
func (p *columnPool) take() *recordColumns {
	select {
	case rc := <-p.free:
		return rc
	default:
		return new(recordColumns)
	}
}

// put keeps rc for a later record when nothing references its arrays any
// more and the pool has room; otherwise the garbage collector has it.
func (p *columnPool) put(rc *recordColumns) {
	if p == nil || p.free == nil || !rc.unreferenced() {
		return
	}
	select {
	case p.free <- rc:
	default:
	}
}
