package ingest

import (
	"fmt"
	"strings"
	"testing"
	"unsafe"

	"github.com/apache/arrow/go/v15/arrow/array"
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
	want := "a:0,10,21,30,-,-,-,70 b:1,11,20,-,-,-,60,71 c:-,-,-,31,-,50,-,-"
	if strings.Join(got, " ") != want {
		t.Fatalf("got  %s\nwant %s", strings.Join(got, " "), want)
	}
}
