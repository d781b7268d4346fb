package ingest

import (
	"sync/atomic"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
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
	refs   atomic.Int64
	schema *arrow.Schema
	rows   int64
	cols   []arrow.Array
}

// newRecord returns a record of rows rows that owns cols (one reference
// each).
func newRecord(schema *arrow.Schema, cols []arrow.Array, rows int64) *record {
	r := &record{schema: schema, rows: rows, cols: cols}
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
