package ingest

import (
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
)

// The builder's records skip array.NewRecord's check of each column
// against the schema (record): every layout it makes must pass that check
// (array.NewRecord panics otherwise), and the last Release of a record
// must return its columns' memory.
func TestBuilderRecordsMatchSchema(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	b := NewObservationBuilder(mem, NewRegistry(), siteGrouper{})
	records := [][]Row{
		{{Device: "a", Metrics: []Metric{{"m1", 1}}}},
		{ // metrics in another order, one missing, nulls and strings
			{Device: "a", SrcIP: "10.0.0.1", Metrics: []Metric{{"m2", 2}, {"m1", 1}}},
			{Device: "b", Cert: "c", Firmware: "1.2", Metrics: []Metric{{"m1", 3}}},
		},
		{{Device: "c", ClientID: "x", Sets: []SetMember{{Set: "ports", Value: "502"}}}}, // no metric
		{{Device: "a", Metrics: []Metric{{"m3", 1}, {"m2", 2}, {"m1", 3}}}},
	}
	for k, rows := range records {
		for i := range rows {
			b.Append(&rows[i])
		}
		rec, _ := b.NewRecord()
		checked := array.NewRecord(rec.Schema(), rec.Columns(), rec.NumRows()) // panics on a mismatch
		if checked.NumRows() != int64(len(rows)) || checked.NumCols() != rec.NumCols() {
			t.Fatalf("record %d: %d rows %d columns, want %d rows %d columns", k, checked.NumRows(), checked.NumCols(), len(rows), rec.NumCols())
		}
		for j := range rec.NumCols() {
			if rec.ColumnName(int(j)) != rec.Schema().Field(int(j)).Name {
				t.Fatalf("record %d column %d named %q, the schema's %q", k, j, rec.ColumnName(int(j)), rec.Schema().Field(int(j)).Name)
			}
		}
		checked.Release()
		rec.Retain()
		rec.Release()
		if rec.Column(0).Len() != len(rows) {
			t.Fatalf("record %d lost its columns to a Release after a Retain", k)
		}
		before := mem.CurrentAlloc()
		rec.Release()
		if after := mem.CurrentAlloc(); after >= before {
			t.Fatalf("record %d: %d bytes allocated after its last Release, %d before", k, after, before)
		}
	}
}

// What the record hands to array.NewRecord's (NewSlice, MarshalJSON,
// SetColumn) gives that record's answers and keeps no reference.
func TestRecordDelegates(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	b := NewObservationBuilder(mem, NewRegistry(), siteGrouper{})
	for i := range 4 {
		b.Append(&Row{Device: "d", TimeNanos: int64(i), SrcIP: "10.0.0.1", Metrics: []Metric{{"m", float64(i)}}})
	}
	rec, _ := b.NewRecord()
	want := array.NewRecord(rec.Schema(), rec.Columns(), rec.NumRows())
	got, err := rec.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	wantJSON, _ := want.MarshalJSON()
	if string(got) != string(wantJSON) {
		t.Fatalf("MarshalJSON: %s, want %s", got, wantJSON)
	}
	s := rec.NewSlice(1, 3)
	if s.NumRows() != 2 || s.Column(NumFixedCols).(*array.Float64).Value(0) != 1 {
		t.Fatalf("NewSlice(1, 3): %d rows, first m %v", s.NumRows(), s.Column(NumFixedCols))
	}
	s.Release()
	set, err := rec.SetColumn(NumFixedCols, rec.Column(NumFixedCols))
	if err != nil {
		t.Fatal(err)
	}
	set.Release()
	want.Release()
	before := mem.CurrentAlloc()
	rec.Release()
	if after := mem.CurrentAlloc(); after >= before {
		t.Fatalf("%d bytes allocated after the record's last Release, %d before: a delegate kept a reference", after, before)
	}
}

// A released record's column objects (arrays, Data, buffer lists) make
// the builder's next record, whatever goroutine released it; a column
// retained past its record keeps its values and its record's objects
// out of reuse.
func TestRecordColumnsReused(t *testing.T) {
	b := NewObservationBuilder(NewRecyclingAllocator(), NewRegistry(), siteGrouper{})
	build := func(v float64) arrow.Record {
		b.Append(&Row{Device: "a", TimeNanos: 1, SrcIP: "10.0.0.1", Metrics: []Metric{{"m1", v}, {"m2", v}}})
		b.Append(&Row{Device: "bb", TimeNanos: 2, Firmware: "1.2", Metrics: []Metric{{"m1", v + 1}}})
		rec, _ := b.NewRecord()
		return rec
	}
	check := func(rec arrow.Record, v float64) {
		t.Helper()
		dev, fw := rec.Column(1).(*array.String), rec.Column(10).(*array.String)
		m1, m2 := rec.Column(NumFixedCols).(*array.Float64), rec.Column(NumFixedCols+1).(*array.Float64)
		if dev.Value(0) != "a" || dev.Value(1) != "bb" || !fw.IsNull(0) || fw.Value(1) != "1.2" ||
			m1.Value(0) != v || m1.Value(1) != v+1 || m2.Value(0) != v || !m2.IsNull(1) {
			t.Fatalf("record of %v: devices %v, firmware %v, m1 %v, m2 %v", v, dev, fw, m1, m2)
		}
	}
	first := build(1)
	cols := append([]arrow.Array(nil), first.Columns()...)
	released := make(chan struct{})
	go func() { first.Release(); close(released) }() // as the engine does
	<-released
	second := build(2)
	check(second, 2)
	for j, c := range second.Columns() {
		if c != cols[j] && j != 8 && j != 9 { // client id and cert: shared all-null arrays
			t.Fatalf("column %d (%s) is a new object, not the released record's", j, second.ColumnName(j))
		}
	}
	kept := second.Column(NumFixedCols)
	kept.Retain()
	second.Release()
	third := build(3)
	check(third, 3)
	if third.Column(NumFixedCols) == kept {
		t.Fatal("a column retained past its record was used for the next record")
	}
	if m1 := kept.(*array.Float64); m1.Value(0) != 2 || m1.Value(1) != 3 {
		t.Fatalf("the retained column reads %v, want [2 3]", m1)
	}
	kept.Release()
	third.Release()
}

// A packet window's record, once the builder has records to reuse,
// allocates a handful of objects (the record and its buffers: 6, and a
// few more under the race detector), not a few for every column (89
// before the builder reused them).
func TestWindowRecordAllocations(t *testing.T) {
	rows := windowRows()
	bld := NewObservationBuilder(NewRecyclingAllocator(), NewRegistry(), fixedGrouper{})
	allocs := testing.AllocsPerRun(100, func() {
		for i := range rows {
			bld.Append(&rows[i])
		}
		rec, _ := bld.NewRecord()
		rec.Release()
	})
	if allocs > 10 {
		t.Fatalf("a window's record of %d rows allocates %v objects, want at most 10", len(rows), allocs)
	}
}
