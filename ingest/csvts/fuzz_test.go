package csvts

import (
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/telemetry"
)

const formatsDir = "../../testdata/telemetry-formats"

// caseFiles returns the header and the other lines of every CSV case file.
func caseFiles(f *testing.F) (headers, lines []string) {
	paths, _ := filepath.Glob(filepath.Join(formatsDir, "*", "*.csv"))
	if len(paths) == 0 {
		f.Fatal("no CSV case files")
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		ls := strings.Split(strings.ReplaceAll(string(data), "\r", ""), "\n")
		headers = append(headers, ls[0])
		lines = append(lines, ls[1:]...)
	}
	return headers, lines
}

var seps = [...]byte{';', ',', '\t', '|'}

// FuzzSplitMatchesEncodingCSV proves the hand-written field splitter
// against encoding/csv on one line: same fields, or both refuse it.
func FuzzSplitMatchesEncodingCSV(f *testing.F) {
	headers, lines := caseFiles(f)
	for _, l := range append(headers, lines...) {
		for k := range seps {
			f.Add(l, uint8(k))
		}
	}
	for _, l := range []string{`"a;b";c`, `"say ""hi""";x`, `a;"b`, `a;b"`, `"a"b`, ` "a"`, `;`, `"";`, `x;"a";`} {
		f.Add(l, uint8(0))
	}
	f.Fuzz(func(t *testing.T, line string, sepIndex uint8) {
		if line == "" || strings.ContainsAny(line, "\r\n") {
			return // the source splits lines and skips blank ones
		}
		sep := seps[int(sepIndex)%len(seps)]
		p := &Parser{sep: sep}
		err := p.split([]byte(line))
		r := csv.NewReader(strings.NewReader(line))
		r.Comma = rune(sep)
		r.FieldsPerRecord = -1
		want, refErr := r.Read()
		if (err != nil) != (refErr != nil) {
			t.Fatalf("%q sep %q: split error %v, encoding/csv error %v", line, sep, err, refErr)
		}
		if err != nil {
			if telemetry.ReasonOf(err) != ReasonCSVSyntax {
				t.Fatalf("%q: reason %q", line, telemetry.ReasonOf(err))
			}
			return
		}
		got := make([]string, len(p.fields))
		for i, fl := range p.fields {
			got[i] = string(fl)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%q sep %q:\n split        %q\n encoding/csv %q", line, sep, got, want)
		}
	})
}

// FuzzCellValueMatchesParseFloat proves the number reader of cells
// against strconv.ParseFloat: a number it reads is the value strconv
// reads, and a finite decimal number strconv reads is not refused.
func FuzzCellValueMatchesParseFloat(f *testing.F) {
	for _, s := range []string{"1.5", " -2 ", "+3", ".5", "1e3", "0.0265878", "1e999", "-", "1,5", "12345678901234567890.5", "4.9e-324", "+-1", "0x1p4", "1_0", "Inf", "+nan", "-.5e-3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, st := CellValue([]byte(s))
		trimmed := string(trimSpace([]byte(s)))
		ref, err := strconv.ParseFloat(trimmed, 64)
		refNumber := err == nil && !math.IsInf(ref, 0) && !math.IsNaN(ref) && !strings.ContainsAny(trimmed, "xX_nNiI")
		switch {
		case st == CellNumber && strings.EqualFold(trimmed, "true"), st == CellNumber && strings.EqualFold(trimmed, "false"):
		case st == CellNumber && (err != nil || math.Float64bits(v) != math.Float64bits(ref)):
			t.Fatalf("CellValue(%q) = %v, strconv %v %v", s, v, ref, err)
		case st != CellNumber && refNumber:
			t.Fatalf("CellValue(%q) refused what strconv reads as %v", s, ref)
		}
	})
}

// FuzzParse checks what holds for any header and line: no panic; a row
// has a time in range, finite values and metric names from the header; a
// rejection has a reason of Reasons.
func FuzzParse(f *testing.F) {
	headers, lines := caseFiles(f)
	for i, l := range lines {
		f.Add(headers[i%len(headers)], l)
	}
	f.Add("datetime;Accelerometer1RMS;Volume Flow RateRMS;anomaly", "2020-03-09 10:14:33;0.0265878;32.0;0.0")
	f.Add(`ts,"a ""q""",b`, `1795687200123,"1,5",true`)
	cfg := ingest.DefaultTelemetryConfig()
	cfg.CSV.TimeZone = "Europe/Berlin"
	f.Fuzz(func(t *testing.T, header, line string) {
		p, err := NewParser(cfg, "dev", []byte(header))
		if err != nil {
			return
		}
		rows, err := p.Parse([]byte(line))
		if err != nil {
			if !slices.Contains(Reasons, telemetry.ReasonOf(err)) {
				t.Fatalf("reason %q of %v is not in Reasons", telemetry.ReasonOf(err), err)
			}
			return
		}
		if len(rows) != 1 {
			t.Fatalf("%d rows", len(rows))
		}
		r := rows[0]
		if r.TimeNanos < 0 || float64(r.TimeNanos) >= maxNanos || r.Device != "dev" || len(r.Metrics) == 0 {
			t.Fatalf("row %+v", r)
		}
		names := p.metricNames()
		for _, m := range r.Metrics {
			if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) || !slices.Contains(names, m.Name) {
				t.Fatalf("metric %+v (names %q)", m, names)
			}
		}
	})
}

// FuzzDateTimeMatchesTimeParse proves the hand-written date and time
// reader against time.ParseInLocation: whatever it accepts, the standard
// library reads as the same instant, in UTC and in a zone with summer
// time; and the minute cache, warmed by another time, changes nothing.
func FuzzDateTimeMatchesTimeParse(f *testing.F) {
	for _, s := range []string{
		"2020-03-09 10:14:33", "2026-11-21T10:00:00.123456789Z", "2026-03-29 02:30:00", "2026-10-25 02:30:00",
		"2026-11-21 10:00", "2026-11-21", "2026-11-21T10:00:00+01:30", "2024-02-29 23:59:59.5", "2026-11-21 10:00:00.1234567891-05:00",
	} {
		f.Add(s, "2026-03-29 02:30:59")
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s, warm string) {
		b := []byte(s)
		if !isDate(b) {
			return
		}
		for _, loc := range []*time.Location{time.UTC, berlin} {
			fresh := timeParser{loc: loc, utc: loc == time.UTC}
			got, err := fresh.parseDateTime(b, false)
			if err != nil {
				continue
			}
			want, ok := referenceTime(s, loc)
			if !ok || got != want {
				t.Fatalf("%q in %s: %d (%s), time.Parse %d ok=%v", s, loc, got, time.Unix(0, got).UTC(), want, ok)
			}
			warmed := timeParser{loc: loc, utc: loc == time.UTC}
			if isDate([]byte(warm)) {
				warmed.parseDateTime([]byte(warm), false)
			}
			if again, err := warmed.parseDateTime(b, false); err != nil || again != got {
				t.Fatalf("%q after %q in %s: %d %v, want %d", s, warm, loc, again, err, got)
			}
		}
	})
}

// referenceTime reads s with the first layout of its shape that
// time.ParseInLocation accepts.
func referenceTime(s string, loc *time.Location) (int64, bool) {
	s = strings.NewReplacer("t", "T", "z", "Z").Replace(s)
	for _, date := range []string{"2006-01-02", "2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02T15:04:05"} {
		for _, zone := range []string{"", "Z07:00"} {
			if tm, err := time.ParseInLocation(date+zone, s, loc); err == nil {
				return tm.UnixNano(), true
			}
		}
	}
	return 0, false
}

func TestReferenceTimeSeesFractions(t *testing.T) {
	// The fuzz target relies on time.Parse reading fractional seconds the
	// layout does not name, and stopping at nine digits.
	got, ok := referenceTime("2026-11-21 10:00:00.1234567891", time.UTC)
	want := time.Date(2026, 11, 21, 10, 0, 0, 123456789, time.UTC).UnixNano()
	if !ok || got != want {
		t.Fatalf("%d %v, want %d", got, ok, want)
	}
}
