package ingest

import (
	"fmt"
	"testing"

	"github.com/apache/arrow/go/v15/arrow/array"
)

// FuzzObservationBuilder appends rows of arbitrary metric layouts (names
// repeated, missing, in any order; more layouts than the builder
// remembers), cutting records at arbitrary rows, and checks each record
// against a plain reference: a column for each metric with a value in
// one of its rows, in the order the builder first saw the metrics, the
// last value of a row winning, null elsewhere; the fixed and string
// columns as appended. Records are released before the next is built,
// with the recycling allocator, so a reused buffer or column holding
// stale values shows.
//
// Each input byte pair is one metric of a row: the first byte's low 4
// bits name it (m0…m15), 0xf0 ends the row there, 0xff also ends the
// record; the second byte is the value, or for the end of a row its
// strings: the device (one of four names), a source address when bit 2
// is set and a firmware when bit 3 is, empty (null) otherwise.
func FuzzObservationBuilder(f *testing.F) {
	f.Add([]byte{0, 1, 1, 2, 0xf0, 0, 3, 0xff, 0})
	f.Add([]byte{2, 9, 2, 8, 0xf0, 0, 0xf0, 0, 5, 7, 0xff, 0, 5, 1, 0xff, 0})
	f.Add([]byte{0, 1, 0xf0, 5, 0xf0, 14, 1, 2, 0xff, 3, 0xf0, 12, 0xff, 1, 0, 1, 0xf0, 4, 0xff, 8})
	f.Add([]byte{0, 1, 0xf0, 0, 1, 2, 0xf0, 0, 2, 3, 0xf0, 0, 3, 4, 0xf0, 0, 4, 5, 0xf0, 0, 5, 6, 0xf0, 0,
		6, 7, 0xf0, 0, 7, 8, 0xf0, 0, 8, 9, 0xf0, 0, 9, 10, 0xf0, 0, 0, 11, 0xff, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		b := NewObservationBuilder(NewRecyclingAllocator(), NewRegistry(), siteGrouper{})
		var seen []string // metric names in the order the builder first saw them
		type row map[string]float64
		var rows []row
		var strs [][3]string // device, source address, firmware of each row
		var cur Row
		curVals := row{}
		check := func() {
			rec, _ := b.NewRecord()
			defer rec.Release()
			if int(rec.NumRows()) != len(rows) {
				t.Fatalf("record of %d rows, want %d", rec.NumRows(), len(rows))
			}
			c := NumFixedCols
			for _, name := range seen {
				has := false
				for _, r := range rows {
					_, ok := r[name]
					has = has || ok
				}
				if !has {
					continue
				}
				if c >= int(rec.NumCols()) || rec.ColumnName(c) != name {
					t.Fatalf("column %d: want %s; record schema %v", c, name, rec.Schema())
				}
				col := rec.Column(c).(*array.Float64)
				for i, r := range rows {
					v, ok := r[name]
					if col.IsNull(i) == ok || ok && col.Value(i) != v {
						t.Fatalf("column %s row %d: null %v value %v, want %v %v", name, i, col.IsNull(i), col.Value(i), ok, v)
					}
				}
				c++
			}
			if c != int(rec.NumCols()) {
				t.Fatalf("record has %d columns, want %d: %v", rec.NumCols(), c, rec.Schema())
			}
			ts := rec.Column(0).(*array.Timestamp)
			for i := range rows {
				if int64(ts.Value(i)) != int64(i) {
					t.Fatalf("row %d: time %d", i, ts.Value(i))
				}
			}
			for k, j := range []int{1, 7, 10} { // device, src_ip, fw
				col := rec.Column(j).(*array.String)
				for i, want := range strs {
					if got := col.Value(i); col.IsNull(i) != (want[k] == "") || got != want[k] {
						t.Fatalf("row %d column %s: %q (null %v), want %q", i, rec.ColumnName(j), got, col.IsNull(i), want[k])
					}
				}
			}
			rows, strs = rows[:0], strs[:0]
		}
		for i := 0; i+1 < len(data); i += 2 {
			k, v := data[i], float64(data[i+1])
			if k < 0xf0 {
				name := fmt.Sprint("m", k&0x0f)
				cur.Metrics = append(cur.Metrics, Metric{Name: name, Value: v})
				curVals[name] = v
				continue
			}
			for _, m := range cur.Metrics {
				known := false
				for _, s := range seen {
					known = known || s == m.Name
				}
				if !known {
					seen = append(seen, m.Name)
				}
			}
			c := data[i+1]
			s := [3]string{[]string{"d", "device-1", "x", "10.0.0.1"}[c&3]}
			if c&4 != 0 {
				s[1] = fmt.Sprint("10.0.", c, ".1")
			}
			if c&8 != 0 {
				s[2] = fmt.Sprint("fw-", c)
			}
			cur.Device, cur.SrcIP, cur.Firmware, cur.TimeNanos = s[0], s[1], s[2], int64(len(rows))
			b.Append(&cur)
			rows, strs = append(rows, curVals), append(strs, s)
			cur, curVals = Row{}, row{}
			if k == 0xff {
				check()
			}
		}
		check()
	})
}
