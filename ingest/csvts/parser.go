// Package csvts owns the CSV time-series layout: which column of a CSV
// file is the event time, which names the device, which are metrics and
// which are labels, and how one line becomes one observation row. It does
// no I/O: the file source (ingest/jsonl) reads the lines, finds the header
// with Sniff and names the devices with DeviceNames, so replay and the
// scorer (jsonl.ReadRowLabels) see the same rows.
//
// The layout is a header line, then one row a line: fields split at a
// separator (';', ',', tab or '|'), quoted as in RFC 4180 within the line
// ("a;b" and "say ""hi""" are one field each; a quoted line break is not
// supported). Metric columns are every column but the time, device, label
// and excluded ones; a cell that is empty or a missing-value marker (NaN,
// NA, N/A, null, None) leaves the metric out of the row (null), true and
// false count as 1 and 0, and any other text is a bad cell: left out and
// counted, while the row is kept.
package csvts

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unsafe"

	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/telemetry"
)

// Reasons a CSV row is rejected besides the telemetry ones it shares
// (bad_timestamp, missing_device, no_metrics, oversized).
const (
	ReasonColumnCount = "column_count" // more or fewer fields than the header
	ReasonCSVSyntax   = "csv_syntax"   // a quote that does not open or close a field
	ReasonOutOfOrder  = "out_of_order" // earlier than the previous accepted row of its file
)

// Reasons lists every reason a CSV row can be rejected for.
var Reasons = []string{
	telemetry.ReasonOversized, ReasonCSVSyntax, ReasonColumnCount, telemetry.ReasonMissingDevice,
	telemetry.ReasonBadTimestamp, ReasonOutOfOrder, telemetry.ReasonNoMetrics,
}

// timeColumnNames make a column the time column when
// input.telemetry.csv.time_column is empty: the first column in the header
// with one of these names.
var timeColumnNames = []string{"time", "timestamp", "datetime", "date", "ts"}

// metricColumn is a column read as a metric.
type metricColumn struct {
	col  int
	name string
}

// Parser turns the lines of one CSV file, after its header, into rows. It
// is not safe for concurrent use; give each file its own.
type Parser struct {
	sep       byte
	columns   []string // header names as written (unquoted, trimmed)
	timeCol   int
	deviceCol int // -1: every row is of device
	device    string
	metrics   []metricColumn
	time      timeParser

	// last is the time of the last accepted row, for the order check.
	last     int64
	haveLast bool

	fields  [][]byte // fields of the last line, aliasing it or scratch
	scratch []byte   // unescaped quoted fields
	rows    [1]ingest.Row
	bad     []int // columns of the last row holding a bad cell
}

// NewParser reads header, the first line of a file whose rows belong to
// device (unless cfg.CSV.DeviceColumn names a column), and returns the
// parser of its rows. cfg must have passed Validate. The error says what
// is wrong with the header and which setting to change.
func NewParser(cfg ingest.TelemetryConfig, device string, header []byte) (*Parser, error) {
	c := cfg.CSV
	tp, err := newTimeParser(c)
	if err != nil {
		return nil, fmt.Errorf("cannot load csv.time_zone: %w", err)
	}
	header = bytes.TrimPrefix(header, utf8BOM)
	p := &Parser{time: tp, device: device, deviceCol: -1}
	if sep, ok := ingest.CSVSeparator(c.Separator); ok {
		p.sep = sep
	} else {
		p.sep = sniffSeparator(header)
	}
	if err := p.split(header); err != nil {
		return nil, fmt.Errorf("cannot split the header line: %w", err)
	}
	for _, f := range p.fields {
		p.columns = append(p.columns, string(trimSpace(f)))
	}
	if c.DeviceColumn != "" {
		var ok bool
		if p.deviceCol, ok = p.Lookup(c.DeviceColumn); !ok {
			return nil, fmt.Errorf("no column %q in the header %s; set input.telemetry.csv.device_column to one of them, or empty for one device per file", c.DeviceColumn, p.columnList())
		}
	}
	if p.timeCol, err = p.findTimeColumn(c.TimeColumn); err != nil {
		return nil, err
	}
	if err := p.findMetrics(c); err != nil {
		return nil, err
	}
	if len(p.metrics) > cfg.MaxMetricNames {
		return nil, fmt.Errorf("the header has %d metric columns, over max_metric_names %d; raise it or list columns in input.telemetry.csv.exclude_columns", len(p.metrics), cfg.MaxMetricNames)
	}
	return p, nil
}

var utf8BOM = []byte("\xef\xbb\xbf")

// findTimeColumn returns the column named name, or when name is empty the
// first column with one of timeColumnNames, else the first column that is
// not the device column.
func (p *Parser) findTimeColumn(name string) (int, error) {
	if name != "" {
		i, ok := p.Lookup(name) // not the device column: Validate checks the names differ
		if !ok {
			return 0, fmt.Errorf("no time column %q in the header %s; set input.telemetry.csv.time_column to one of them", name, p.columnList())
		}
		return i, nil
	}
	for i, col := range p.columns {
		for _, n := range timeColumnNames {
			if strings.EqualFold(col, n) && i != p.deviceCol {
				return i, nil
			}
		}
	}
	if p.deviceCol == 0 && len(p.columns) > 1 {
		return 1, nil
	}
	return 0, nil
}

// findMetrics makes every column that is not the time, the device, a label,
// excluded or unnamed a metric column, and names its metric.
func (p *Parser) findMetrics(c ingest.CSVConfig) error {
	byName := map[string]int{}
	for i, col := range p.columns {
		if i == p.timeCol || i == p.deviceCol || col == "" || containsFold(c.LabelColumns, col) || containsFold(c.ExcludeColumns, col) {
			continue
		}
		name := metricName(col)
		if name == "" {
			name = "column_" + strconv.Itoa(i+1)
		}
		if j, dup := byName[name]; dup {
			return fmt.Errorf("columns %q and %q both give metric %q; rename one in the header or list it in input.telemetry.csv.exclude_columns", p.columns[j], col, name)
		}
		byName[name] = i
		p.metrics = append(p.metrics, metricColumn{col: i, name: name})
	}
	if len(p.metrics) == 0 {
		return fmt.Errorf("no metric columns in the header %s (the time column is %q); check input.telemetry.csv.separator and the column settings", p.columnList(), p.columns[p.timeCol])
	}
	return nil
}

// metricName returns the metric a column named col gives: each run of
// characters other than letters, digits, '_', '.' and '-' becomes one '_',
// except at either end where it is dropped; case is kept
// ("Volume Flow RateRMS" gives Volume_Flow_RateRMS, "Pressure (bar)"
// gives Pressure_bar). The result is empty when col has none of the
// characters kept.
func metricName(col string) string {
	var b strings.Builder
	pending := false
	for _, r := range col {
		if r == '_' || r == '.' || r == '-' || unicode.IsLetter(r) || unicode.IsDigit(r) {
			if pending && b.Len() > 0 {
				b.WriteByte('_')
			}
			pending = false
			b.WriteRune(r)
			continue
		}
		pending = true
	}
	return b.String()
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(strings.TrimSpace(x), s) {
			return true
		}
	}
	return false
}

func (p *Parser) columnList() string {
	return "[" + strings.Join(p.columns, ", ") + "]"
}

// Lookup returns the index of the column named name, compared
// case-insensitively; the first one when several match.
func (p *Parser) Lookup(name string) (int, bool) {
	name = strings.TrimSpace(name)
	for i, col := range p.columns {
		if strings.EqualFold(col, name) {
			return i, true
		}
	}
	return 0, false
}

// Columns returns the header's column names as written.
func (p *Parser) Columns() []string { return p.columns }

// metricNames returns the metric names of the metric columns, in header
// order.
func (p *Parser) metricNames() []string {
	names := make([]string, len(p.metrics))
	for i, m := range p.metrics {
		names[i] = m.name
	}
	return names
}

// Parse reads one line after the header (not blank, without its line
// ending) and returns its row, or a *telemetry.DecodeError whose Reason is
// one of Reasons. A line gives exactly one row; it comes as a slice to
// have the shape of telemetry.Decoder.Decode. Partition and Offset are
// left zero for the caller.
//
// The row is valid until the next call, and line must stay unchanged
// until then: the device name may alias it (ingest.ObservationBuilder
// copies what it keeps). Metric names are the parser's own and stay valid.
// After a successful Parse, Field returns the line's cells and BadCells
// the metric columns whose cell was not a number.
func (p *Parser) Parse(line []byte) ([]ingest.Row, error) {
	p.bad = p.bad[:0]
	if err := p.split(line); err != nil {
		return nil, err
	}
	if len(p.fields) != len(p.columns) {
		return nil, reject(ReasonColumnCount, "the line has %d fields, the header %d", len(p.fields), len(p.columns))
	}
	r := &p.rows[0]
	r.Reset()
	if p.deviceCol < 0 {
		r.Device = p.device
	} else {
		d := trimSpace(p.fields[p.deviceCol])
		if len(d) == 0 {
			return nil, reject(telemetry.ReasonMissingDevice, "the device column %q is empty", p.columns[p.deviceCol])
		}
		r.Device = b2s(d)
	}
	ns, err := p.time.parse(p.fields[p.timeCol])
	if err != nil {
		return nil, err
	}
	if p.haveLast && ns < p.last {
		return nil, reject(ReasonOutOfOrder, "time %q is before the previous row's; sort the file by time", truncate(trimSpace(p.fields[p.timeCol])))
	}
	for _, m := range p.metrics {
		v, st := CellValue(p.fields[m.col])
		switch st {
		case CellNumber:
			appendMetric(r, m.name, v)
		case CellBad:
			p.bad = append(p.bad, m.col)
		}
	}
	if len(r.Metrics) == 0 {
		return nil, reject(telemetry.ReasonNoMetrics, "no metric cell holds a number")
	}
	r.TimeNanos = ns
	p.last, p.haveLast = ns, true
	return p.rows[:], nil
}

// appendMetric appends (name, v) to r.Metrics without storing the name
// again in a reused slot that already holds it, as the JSON scanner does:
// a pointer store costs a write barrier while the collector marks.
func appendMetric(r *ingest.Row, name string, v float64) {
	n := len(r.Metrics)
	if n == cap(r.Metrics) {
		r.Metrics = append(r.Metrics, ingest.Metric{Name: name, Value: v})
		return
	}
	r.Metrics = r.Metrics[:n+1]
	m := &r.Metrics[n]
	if len(m.Name) != len(name) || unsafe.StringData(m.Name) != unsafe.StringData(name) {
		m.Name = name
	}
	m.Value = v
}

// Field returns cell i of the last line parsed, unquoted but not trimmed.
func (p *Parser) Field(i int) []byte { return p.fields[i] }

// BadCells returns the metric columns of the last row whose cell held
// text other than a number or a missing-value marker; the row was kept
// without them. The slice is reused by the next Parse.
func (p *Parser) BadCells() []int { return p.bad }

// Cell states returned by CellValue.
const (
	CellNumber  = iota // a finite number, true or false
	CellMissing        // empty or a missing-value marker
	CellBad            // anything else
)

// CellValue reads a metric or label cell: a finite number, true or false
// (1, 0), missing (empty, NaN, NA, N/A, null, None; any case) or bad.
func CellValue(b []byte) (float64, int) {
	b = trimSpace(b)
	if len(b) == 0 {
		return 0, CellMissing
	}
	if c := b[0]; c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' {
		v, ok := parseNumber(b)
		if !ok || v-v != 0 { // v-v is NaN for ±Inf and NaN
			return 0, CellBad
		}
		return v, CellNumber
	}
	if len(b) > 5 {
		return 0, CellBad
	}
	var lower [5]byte
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	switch string(lower[:len(b)]) {
	case "nan", "na", "n/a", "null", "none":
		return 0, CellMissing
	case "true":
		return 1, CellNumber
	case "false":
		return 0, CellNumber
	}
	return 0, CellBad
}

// parseNumber reads a decimal number. The usual cell, a sign, at most 15
// digits and a point, is read in one pass: the digits as an integer below
// 2^53 divided by an exact power of ten round once, as strconv rounds.
// Anything else goes to strconv.ParseFloat (FuzzCellValueMatchesParseFloat).
func parseNumber(b []byte) (float64, bool) {
	i, neg := 0, false
	switch b[0] {
	case '-':
		i, neg = 1, true
	case '+':
		i = 1
	}
	var d uint64
	start := i
	for ; i < len(b) && b[i]-'0' <= 9; i++ {
		d = d*10 + uint64(b[i]-'0')
	}
	digits, frac := i-start, 0
	if i < len(b) && b[i] == '.' {
		i++
		start = i
		for ; i < len(b) && b[i]-'0' <= 9; i++ {
			d = d*10 + uint64(b[i]-'0')
		}
		frac = i - start
		digits += frac
	}
	if i != len(b) || digits == 0 || digits > 15 {
		return parseFloatSlow(b)
	}
	v := float64(d) / exactPow10[frac]
	if neg {
		v = -v
	}
	return v, true
}

var exactPow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

func parseFloatSlow(b []byte) (float64, bool) {
	v, err := strconv.ParseFloat(b2s(b), 64)
	return v, err == nil
}

// split cuts line into p.fields at p.sep. A field that starts with a quote
// runs to the next lone quote, with "" standing for one quote, and must be
// followed by the separator or the end of the line; a quote elsewhere is a
// syntax error. These are encoding/csv's rules for one line
// (FuzzSplitMatchesEncodingCSV).
func (p *Parser) split(line []byte) error {
	p.fields = p.fields[:0]
	if bytes.IndexByte(line, '"') < 0 {
		for {
			i := bytes.IndexByte(line, p.sep)
			if i < 0 {
				p.fields = append(p.fields, line)
				return nil
			}
			p.fields = append(p.fields, line[:i])
			line = line[i+1:]
		}
	}
	return p.splitQuoted(line)
}

func (p *Parser) splitQuoted(line []byte) error {
	// Unescaped fields are never longer than the line, so scratch does not
	// move while fields point into it.
	p.scratch = slices.Grow(p.scratch[:0], len(line))
	for {
		if len(line) == 0 || line[0] != '"' {
			i := bytes.IndexByte(line, p.sep)
			field := line
			if i >= 0 {
				field = line[:i]
			}
			if bytes.IndexByte(field, '"') >= 0 {
				return reject(ReasonCSVSyntax, "a quote inside an unquoted field %q", truncate(field))
			}
			p.fields = append(p.fields, field)
			if i < 0 {
				return nil
			}
			line = line[i+1:]
			continue
		}
		start := len(p.scratch)
		rest := line[1:]
		for {
			i := bytes.IndexByte(rest, '"')
			if i < 0 {
				return reject(ReasonCSVSyntax, "a quoted field is not closed on its line")
			}
			p.scratch = append(p.scratch, rest[:i]...)
			rest = rest[i+1:]
			if len(rest) > 0 && rest[0] == '"' {
				p.scratch = append(p.scratch, '"')
				rest = rest[1:]
				continue
			}
			break
		}
		p.fields = append(p.fields, p.scratch[start:len(p.scratch):len(p.scratch)])
		if len(rest) == 0 {
			return nil
		}
		if rest[0] != p.sep {
			return reject(ReasonCSVSyntax, "text after the closing quote of a field")
		}
		line = rest[1:]
	}
}

// sniffSeparator returns the separator of a header line: the most frequent
// of ';', ',', tab and '|' outside quotes, the first of them in that order
// on a tie, ';' when there is none (a file of one column).
func sniffSeparator(header []byte) byte {
	var counts [4]int
	seps := [4]byte{';', ',', '\t', '|'}
	quoted := false
	for _, c := range header {
		if c == '"' {
			quoted = !quoted
			continue
		}
		if quoted {
			continue
		}
		for k, s := range seps {
			if c == s {
				counts[k]++
			}
		}
	}
	best := 0
	for k := range seps {
		if counts[k] > counts[best] {
			best = k
		}
	}
	return seps[best]
}

// Sniff reports whether head, the start of a file, is a CSV header: its
// first non-blank line (after a UTF-8 byte order mark) does not start with
// '{' or '[' and has at least two fields, and the next non-blank line in
// head, if any, does not start with '{'. So a JSONL file whose first line
// is damaged stays JSONL. sep is the configured separator, 0 for auto.
func Sniff(head []byte, sep byte) bool {
	head = bytes.TrimPrefix(head, utf8BOM)
	first, rest := nextNonBlank(head)
	if first == nil {
		return false
	}
	if c := first[0]; c == '{' || c == '[' {
		return false
	}
	if sep == 0 {
		sep = sniffSeparator(first)
	}
	p := Parser{sep: sep}
	if p.split(first) != nil || len(p.fields) < 2 {
		return false
	}
	second, _ := nextNonBlank(rest)
	return second == nil || second[0] != '{'
}

// nextNonBlank returns the first line of b with text, trimmed, and what
// follows it.
func nextNonBlank(b []byte) (line, rest []byte) {
	for len(b) > 0 {
		line, b, _ = bytes.Cut(b, []byte("\n"))
		if line = bytes.TrimSpace(line); len(line) > 0 {
			return line, b
		}
	}
	return nil, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func reject(reason, format string, args ...any) error {
	return &telemetry.DecodeError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

func truncate(b []byte) string {
	const max = 64
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

// b2s views b as a string without copying; b must not change while the
// string is in use.
func b2s(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}
