package ingest

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
)

type siteGrouper struct{}

func (siteGrouper) Group(string, []Attr) string { return "g" }

// TestAppendMetricLayouts checks that rows with changing metric layouts
// land in the right columns, also when the names alias a buffer the caller
// overwrites between rows, as decoders do.
func TestAppendMetricLayouts(t *testing.T) {
	b := NewObservationBuilder(nil, NewRegistry(), siteGrouper{})
	buf := make([]byte, 0, 64)
	alias := func(s string) string {
		buf = append(buf[:0], s...)
		return unsafe.String(unsafe.SliceData(buf), len(buf))
	}
	layouts := [][]string{{"a", "b"}, {"a", "b"}, {"b", "a"}, {"a", "c"}, {}, {"c"}, {"b"}, {"a", "b"}}
	for i, names := range layouts {
		r := Row{Device: fmt.Sprint("d", i)}
		for k, n := range names {
			// Only the last name aliases buf; earlier ones are constants,
			// so a stale alias would show as a wrong column.
			name := n
			if k == len(names)-1 {
				name = alias(n)
			}
			r.Metrics = append(r.Metrics, Metric{Name: name, Value: float64(10*i + k)})
		}
		b.Append(&r)
		buf = append(buf[:0], "zz"...) // overwrite the aliased bytes
	}
	got := metricColumns(b)
	want := "a:0,10,21,30,-,-,-,70 b:1,11,20,-,-,-,60,71 c:-,-,-,31,-,50,-,-"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}

	// More layouts in turn than the builder remembers: each is learned
	// again after it was forgotten.
	var wantCols [11][]string
	for i := range 33 {
		k := i % 10
		name := fmt.Sprint("m", k)
		b.Append(&Row{Device: "d", Metrics: []Metric{{Name: "all", Value: float64(i)}, {Name: name, Value: float64(100 + i)}}})
		wantCols[0] = append(wantCols[0], fmt.Sprint(i))
		for c := range 10 {
			v := "-"
			if c == k {
				v = fmt.Sprint(100 + i)
			}
			wantCols[1+c] = append(wantCols[1+c], v)
		}
	}
	want = "all:" + strings.Join(wantCols[0], ",")
	for c := range 10 {
		want += fmt.Sprintf(" m%d:%s", c, strings.Join(wantCols[1+c], ","))
	}
	if got := metricColumns(b); got != want {
		t.Fatalf("cycling layouts:\ngot  %s\nwant %s", got, want)
	}
}

// TestAppendNullableColumns checks the nullable string columns when
// values and nulls alternate, when a column stays null for a whole record,
// and across records, whose builders are reused.
func TestAppendNullableColumns(t *testing.T) {
	b := NewObservationBuilder(memory.NewCheckedAllocator(memory.DefaultAllocator), NewRegistry(), siteGrouper{})
	records := [][]string{
		{"", "", "10.0.0.1", "", "10.0.0.2", ""}, // nulls before, between and after values
		{"", "", ""},                             // null in every row
		{"10.0.0.3", ""},
		{"10.0.0.4"},
	}
	for _, ips := range records {
		for _, ip := range ips {
			b.Append(&Row{Device: "d", SrcIP: ip, Firmware: "fw1"})
		}
		rec, _ := b.NewRecord()
		src := rec.Column(7).(*array.String)
		fw := rec.Column(10).(*array.String)
		cert := rec.Column(9).(*array.String)
		if rec.ColumnName(7) != ColSrcIP || rec.ColumnName(10) != ColFirmware || rec.ColumnName(9) != ColCert {
			t.Fatalf("columns %s %s %s", rec.ColumnName(7), rec.ColumnName(9), rec.ColumnName(10))
		}
		if src.Len() != len(ips) || cert.Len() != len(ips) || fw.Len() != len(ips) {
			t.Fatalf("lengths %d %d %d, want %d", src.Len(), cert.Len(), fw.Len(), len(ips))
		}
		for i, ip := range ips {
			if got := src.IsNull(i); got != (ip == "") || src.Value(i) != ip {
				t.Errorf("%v row %d: null %v value %q, want %q", ips, i, got, src.Value(i), ip)
			}
			if !cert.IsNull(i) || cert.Value(i) != "" {
				t.Errorf("%v row %d: cert %q not null", ips, i, cert.Value(i))
			}
			if fw.IsNull(i) || fw.Value(i) != "fw1" {
				t.Errorf("%v row %d: firmware %q", ips, i, fw.Value(i))
			}
		}
		if cert.NullN() != len(ips) {
			t.Errorf("cert NullN %d, want %d", cert.NullN(), len(ips))
		}
		if n := len(cert.ValueOffsets()); n != len(ips)+1 {
			t.Errorf("all-null column: %d offsets, want %d", n, len(ips)+1)
		}
		if n := len(src.ValueOffsets()); n != len(ips)+1 {
			t.Errorf("mixed column: %d offsets, want %d", n, len(ips)+1)
		}
		rec.Release()
	}
}

// TestSchemaFollowsMetrics checks that a record has a column for each
// metric with a value in one of its rows, in the order the builder first
// saw them, and none for the metrics of earlier records only; records
// with the same columns share one schema.
func TestSchemaFollowsMetrics(t *testing.T) {
	b := NewObservationBuilder(nil, NewRegistry(), siteGrouper{})
	records := [][][]string{{{"a"}}, {{"a"}}, {{"a", "b"}}, {{"b"}}, {{}}, {{"b", "a"}}, {{"b"}, {}, {"a"}}}
	want := []string{"a", "a", "a b", "b", "", "a b", "a:-,-,1 b:1,-,-"}
	var schemas []*arrow.Schema
	for k, rows := range records {
		for _, names := range rows {
			r := Row{Device: "d"}
			for _, n := range names {
				r.Metrics = append(r.Metrics, Metric{Name: n, Value: 1})
			}
			b.Append(&r)
		}
		rec, _ := b.NewRecord()
		var got []string
		for c := NumFixedCols; c < int(rec.NumCols()); c++ {
			col := rec.Column(c).(*array.Float64)
			if col.Len() != len(rows) {
				t.Fatalf("record %d: column %s has %d rows, want %d", k, rec.ColumnName(c), col.Len(), len(rows))
			}
			name := rec.ColumnName(c)
			if len(rows) > 1 {
				name += ":" + strings.ReplaceAll(strings.Trim(col.String(), "[]"), " ", ",")
				name = strings.ReplaceAll(name, "(null)", "-")
			}
			got = append(got, name)
		}
		if g := strings.Join(got, " "); g != want[k] || rec.Schema().NumFields() != int(rec.NumCols()) {
			t.Fatalf("record %d: columns %q (schema of %d fields), want %q", k, g, rec.Schema().NumFields(), want[k])
		}
		schemas = append(schemas, rec.Schema())
		rec.Release()
	}
	if schemas[1] != schemas[0] || schemas[5] != schemas[2] {
		t.Errorf("records of the same columns do not share their schema")
	}
}

// TestAppendRepeatedAndMissingMetrics checks rows whose layout names a
// column twice (the last value wins) or leaves columns out (null), next to
// rows that fill every column once.
func TestAppendRepeatedAndMissingMetrics(t *testing.T) {
	b := NewObservationBuilder(nil, NewRegistry(), siteGrouper{})
	layouts := [][]string{{"a", "b"}, {"a", "a"}, {"b", "a"}, {"b", "a"}, {"b"}, {"a", "b", "a"}, {"a", "b"}}
	for i, names := range layouts {
		r := Row{Device: "d"}
		for k, n := range names {
			r.Metrics = append(r.Metrics, Metric{Name: n, Value: float64(10*i + k)})
		}
		b.Append(&r)
	}
	got := metricColumns(b)
	want := "a:0,11,21,31,-,52,60 b:1,-,20,30,40,51,61"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// genGrouper groups by the concatenated attrs and counts its calls; its
// generation changes when the test says so.
type genGrouper struct {
	gen   uint64
	calls int
}

func (g *genGrouper) Group(_ string, attrs []Attr) string {
	g.calls++
	var s strings.Builder
	s.WriteString("g:")
	for _, a := range attrs {
		s.WriteString(a.Key + "=" + a.Value + ";")
	}
	return s.String()
}

func (g *genGrouper) GroupGeneration() uint64 { return g.gen }

// TestAppendGroupFollowsAttrs checks that a device's group is derived
// again exactly when its attributes change — also when only the boundary
// between a key and a value moves, or an attribute is added or dropped —
// or the grouper's generation does, and reused otherwise.
func TestAppendGroupFollowsAttrs(t *testing.T) {
	g := &genGrouper{}
	b := NewObservationBuilder(nil, NewRegistry(), g)
	steps := []struct {
		attrs []Attr
		gen   uint64
		call  bool // whether the grouper must be asked
	}{
		{[]Attr{{"ab", "c"}}, 0, true},
		{[]Attr{{"ab", "c"}}, 0, false},
		{[]Attr{{"a", "bc"}}, 0, true},
		{[]Attr{{"a", "bc"}, {"x", ""}}, 0, true},
		{[]Attr{{"a", "bc"}}, 0, true},
		{nil, 0, true},
		{nil, 0, false},
		{[]Attr{{"a", "bc"}}, 1, true},
		{[]Attr{{"a", "bc"}}, 2, true},
		{[]Attr{{"a", "bc"}}, 2, false},
	}
	for i, s := range steps {
		g.gen = s.gen
		before := g.calls
		b.Append(&Row{Device: "d", Attrs: s.attrs, Metrics: []Metric{{Name: "m", Value: 1}}})
		if called := g.calls > before; called != s.call {
			t.Errorf("step %d (%v, gen %d): grouper asked %v, want %v", i, s.attrs, s.gen, called, s.call)
		}
	}
	rec, _ := b.NewRecord()
	defer rec.Release()
	col := rec.Column(3).(*array.String)
	for i, s := range steps {
		if want := (&genGrouper{}).Group("", s.attrs); col.Value(i) != want {
			t.Errorf("row %d: group %q, want %q", i, col.Value(i), want)
		}
	}
}

// TestRowReset sets every field of a Row, resets it and checks that each
// is empty again, with slices keeping their capacity, so that a field
// added to Row cannot be forgotten by Reset.
func TestRowReset(t *testing.T) {
	var r Row
	v := reflect.ValueOf(&r).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Int32, reflect.Int64:
			f.SetInt(7)
		case reflect.String:
			f.SetString("x")
		case reflect.Slice:
			f.Set(reflect.MakeSlice(f.Type(), 1, 4))
		default:
			t.Fatalf("field %s has kind %s: teach Reset and this test about it", v.Type().Field(i).Name, f.Kind())
		}
	}
	r.Reset()
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		if f.Kind() == reflect.Slice {
			if f.Len() != 0 || f.Cap() != 4 {
				t.Errorf("%s: len %d cap %d after Reset, want 0 and 4", name, f.Len(), f.Cap())
			}
		} else if !f.IsZero() {
			t.Errorf("%s = %v after Reset", name, f)
		}
	}
}

// metricColumns cuts b's record and shows its metric columns as
// "name:v,v,-,v …" with - for null.
func metricColumns(b *ObservationBuilder) string {
	rec, _ := b.NewRecord()
	defer rec.Release()
	var got []string
	for c := NumFixedCols; c < int(rec.NumCols()); c++ {
		col := rec.Column(c).(*array.Float64)
		var vals []string
		for i := 0; i < col.Len(); i++ {
			if col.IsNull(i) {
				vals = append(vals, "-")
			} else {
				vals = append(vals, fmt.Sprint(col.Value(i)))
			}
		}
		got = append(got, rec.ColumnName(c)+":"+strings.Join(vals, ","))
	}
	return strings.Join(got, " ")
}

// TestNullColumnsShared checks that records of the same length share one
// array for their columns null in every row, and that it stays null and
// of the record's length while records come and go.
func TestNullColumnsShared(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	b := NewObservationBuilder(mem, NewRegistry(), siteGrouper{})
	var first arrow.ArrayData
	for k, n := range []int{3, 2, 3, 3} {
		for range n {
			b.Append(&Row{Device: "d", SrcIP: "10.0.0.1"})
		}
		rec, _ := b.NewRecord()
		for _, c := range []int{8, 9, 10} {
			col := rec.Column(c)
			if col.Len() != n || col.NullN() != n {
				t.Fatalf("record %d column %s: %d rows, %d null, want %d", k, rec.ColumnName(c), col.Len(), col.NullN(), n)
			}
		}
		if k == 0 {
			first = rec.Column(8).Data()
			first.Retain()
		} else if shared := rec.Column(8).Data() == first; shared != (n == 3) {
			t.Fatalf("record %d of %d rows: shares the first record's null column: %v", k, n, shared)
		}
		rec.Release()
	}
	first.Release()
}

// TestDeviceEntryIsOneCacheLine: a row whose device the builder finds
// through its index (a fleet reporting in another order each round) loads
// the index's slot and one line of entry, where the name's bytes lie too
// when they fit the entry's key; longer names are compared with the
// registry's copy. Devices of both kinds are found under their registry
// ids whatever the order of the rows.
func TestDeviceEntryIsOneCacheLine(t *testing.T) {
	if size := unsafe.Sizeof(deviceEntry{}); size != 64 {
		t.Errorf("deviceEntry takes %d bytes, want 64 (a cache line)", size)
	}
	reg := NewRegistry()
	b := NewObservationBuilder(nil, reg, siteGrouper{})
	var names []string
	for d := range 200 {
		name := fmt.Sprintf("dev-%0*d", 16+d%3, d) // 20, 21 and 22 bytes: in the key, and not
		names = append(names, name)
	}
	var r Row
	for round := range 4 {
		for k := range names {
			d := (k*[]int{1, 3, 7, 9}[round] + round*37) % len(names) // another order each round
			r.Reset()
			r.Device, r.TimeNanos = names[d], int64(round)
			b.Append(&r)
			if want, ok := reg.LookupDevice(names[d]); !ok || b.prev != want {
				t.Fatalf("round %d: %s found as id %d, registry id %d (%v)", round, names[d], b.prev, want, ok)
			}
		}
	}
}
