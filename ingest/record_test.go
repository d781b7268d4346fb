package ingest

import (
	"testing"

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
