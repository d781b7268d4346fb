package csvts

import (
	"bytes"
	"math"
	"strconv"
	"time"

	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/telemetry"
)

// Event times must fit int64 nanoseconds after 1970, as in the JSON
// decoders: years 1970 to 2261.
const minYear, maxYear = 1970, 2261

type timeKind uint8

const (
	timeAuto timeKind = iota
	timeRFC3339
	timeEpoch
	timeLayout
)

// timeParser reads the time column as input.telemetry.csv.time_layout says.
// It remembers the minute of the last zone-less date and time it read, so
// that a row in the same minute reads only its seconds instead of asking
// the time zone for its offset again.
type timeParser struct {
	kind   timeKind
	unit   int64 // nanoseconds per unit for timeEpoch; 0 tells by magnitude
	layout string
	loc    *time.Location
	utc    bool

	minuteKey   [16]byte // "YYYY-MM-DD hh:mm" of the cached minute
	minuteNanos int64
	haveMinute  bool
}

func newTimeParser(cfg ingest.CSVConfig) (timeParser, error) {
	loc, err := time.LoadLocation(cfg.TimeZone)
	if err != nil {
		return timeParser{}, err
	}
	t := timeParser{loc: loc, utc: loc == time.UTC}
	switch cfg.TimeLayout {
	case ingest.CSVTimeAuto:
		t.kind = timeAuto
	case ingest.CSVTimeRFC3339:
		t.kind = timeRFC3339
	case ingest.CSVTimeEpochS:
		t.kind, t.unit = timeEpoch, int64(time.Second)
	case ingest.CSVTimeEpochMS:
		t.kind, t.unit = timeEpoch, int64(time.Millisecond)
	case ingest.CSVTimeEpochUS:
		t.kind, t.unit = timeEpoch, int64(time.Microsecond)
	case ingest.CSVTimeEpochNS:
		t.kind, t.unit = timeEpoch, 1
	default:
		t.kind, t.layout = timeLayout, cfg.TimeLayout
	}
	return t, nil
}

// parse returns the event time of cell b in Unix nanoseconds, or a
// *telemetry.DecodeError with reason bad_timestamp.
func (t *timeParser) parse(b []byte) (int64, error) {
	b = trimSpace(b)
	if len(b) == 0 {
		return 0, reject(telemetry.ReasonBadTimestamp, "the time cell is empty")
	}
	switch t.kind {
	case timeRFC3339:
		return t.parseDateTime(b, true)
	case timeEpoch:
		return parseEpoch(b, t.unit)
	case timeLayout:
		tm, err := time.ParseInLocation(t.layout, b2s(b), t.loc)
		if err != nil {
			return 0, reject(telemetry.ReasonBadTimestamp, "time %q does not match time_layout %q", truncate(b), t.layout)
		}
		return checkRange(tm.UnixNano(), tm.Year(), b)
	}
	if isDate(b) {
		return t.parseDateTime(b, false)
	}
	if c := b[0]; c >= '0' && c <= '9' || c == '.' || c == '+' || c == '-' {
		return parseEpoch(b, 0)
	}
	return 0, reject(telemetry.ReasonBadTimestamp, "time %q is neither a date and time nor an epoch number; set input.telemetry.csv.time_layout", truncate(b))
}

// isDate reports whether b starts like YYYY-MM-DD.
func isDate(b []byte) bool {
	return len(b) >= 10 && b[4] == '-' && b[7] == '-'
}

// parseDateTime reads YYYY-MM-DD, optionally followed by a space or T and
// hh:mm[:ss[.fraction]], optionally followed by Z or ±hh:mm (required when
// needZone). A time without an offset is in t.loc.
func (t *timeParser) parseDateTime(b []byte, needZone bool) (int64, error) {
	y, ok1 := digits(b[0:4])
	mo, ok2 := digits(b[5:7])
	d, ok3 := digits(b[8:10])
	if !ok1 || !ok2 || !ok3 || mo < 1 || mo > 12 || d < 1 || d > telemetry.DaysInMonth(y, mo) {
		return 0, badDateTime(b)
	}
	var h, mi, s, frac int
	i := 10
	if len(b) > 10 {
		if len(b) < 16 || b[10] != ' ' && b[10] != 'T' && b[10] != 't' || b[13] != ':' {
			return 0, badDateTime(b)
		}
		var okh, okm bool
		h, okh = digits(b[11:13])
		mi, okm = digits(b[14:16])
		if !okh || !okm || h > 23 || mi > 59 {
			return 0, badDateTime(b)
		}
		i = 16
		if i < len(b) && b[i] == ':' {
			var oks bool
			if len(b) < 19 {
				return 0, badDateTime(b)
			}
			if s, oks = digits(b[17:19]); !oks || s > 59 {
				return 0, badDateTime(b)
			}
			i = 19
			if frac, i = fraction(b, i); i < 0 {
				return 0, badDateTime(b)
			}
		}
	}
	if i == len(b) {
		if needZone {
			return 0, reject(telemetry.ReasonBadTimestamp, "time %q has no zone offset, which RFC 3339 requires; set time_layout: auto to read it in time_zone", truncate(b))
		}
		return t.local(b, y, mo, d, h, mi, s, frac)
	}
	offset, ok := zoneOffset(b[i:])
	if !ok || i == 10 {
		return 0, badDateTime(b)
	}
	secs := telemetry.DaysFromCivil(y, mo, d)*86400 + int64(h*3600+mi*60+s) - int64(offset)
	return checkRange(secs*1e9+int64(frac), y, b)
}

// local returns a zone-less date and time in t.loc.
func (t *timeParser) local(b []byte, y, mo, d, h, mi, s, frac int) (int64, error) {
	if t.utc {
		secs := telemetry.DaysFromCivil(y, mo, d)*86400 + int64(h*3600+mi*60+s)
		return checkRange(secs*1e9+int64(frac), y, b)
	}
	// Zone offsets change on whole minutes, so the start of a minute in
	// t.loc serves every second of it.
	var key [16]byte
	copy(key[:], b)
	if len(b) > 10 {
		key[10] = ' '
	}
	if !t.haveMinute || key != t.minuteKey {
		t.minuteNanos = time.Date(y, time.Month(mo), d, h, mi, 0, 0, t.loc).UnixNano()
		t.minuteKey, t.haveMinute = key, true
	}
	return checkRange(t.minuteNanos+int64(s)*1e9+int64(frac), y, b)
}

// fraction reads the fractional seconds at b[i:], if any, as nanoseconds
// (digits past the ninth are ignored), and returns the index after them,
// or -1 for a '.' without digits.
func fraction(b []byte, i int) (int, int) {
	if i == len(b) || b[i] != '.' {
		return 0, i
	}
	i++
	frac, n := 0, 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if n < 9 {
			frac = frac*10 + int(b[i]-'0')
		}
		n++
	}
	if n == 0 {
		return 0, -1
	}
	for ; n < 9; n++ {
		frac *= 10
	}
	return frac, i
}

// zoneOffset reads Z or ±hh:mm, the whole of b, as seconds east of UTC.
func zoneOffset(b []byte) (int, bool) {
	if len(b) == 1 && (b[0] == 'Z' || b[0] == 'z') {
		return 0, true
	}
	if len(b) != 6 || b[0] != '+' && b[0] != '-' || b[3] != ':' {
		return 0, false
	}
	h, ok1 := digits(b[1:3])
	m, ok2 := digits(b[4:6])
	if !ok1 || !ok2 || h > 23 || m > 59 {
		return 0, false
	}
	off := h*3600 + m*60
	if b[0] == '-' {
		off = -off
	}
	return off, true
}

// parseEpoch reads an epoch timestamp in units of unit nanoseconds, or,
// when unit is 0, in seconds, milliseconds, microseconds or nanoseconds
// told by its magnitude. A decimal fraction is read exactly (to the
// nanosecond); only an exponent goes through float64.
func parseEpoch(b []byte, unit int64) (int64, error) {
	whole, frac, ok := splitDecimal(b)
	if !ok {
		return parseEpochFloat(b, unit)
	}
	n, ok := uintDigits(whole)
	if !ok {
		return 0, reject(telemetry.ReasonBadTimestamp, "time %q is out of range", truncate(b))
	}
	u := unit
	if u == 0 {
		u = unitByMagnitude(float64(n))
	}
	if n > math.MaxInt64/uint64(u) {
		return 0, reject(telemetry.ReasonBadTimestamp, "time %q is out of range", truncate(b))
	}
	ns := int64(n) * u
	if len(frac) > 0 {
		if len(frac) > 9 {
			frac = frac[:9] // finer than a nanosecond even for seconds
		}
		f, _ := digits(frac)
		ns += int64(f) * u / pow10[len(frac)]
	}
	return checkRange(ns, 0, b)
}

var pow10 = [...]int64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

// splitDecimal splits b, digits with at most one '.' and a digit on
// either side of it, at the point.
func splitDecimal(b []byte) (whole, frac []byte, ok bool) {
	whole, frac, _ = bytes.Cut(b, []byte("."))
	if len(whole) == 0 || len(whole) > 19 || !allDigits(whole) || !allDigits(frac) {
		return nil, nil, false
	}
	return whole, frac, true
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// parseEpochFloat reads the other forms strconv.ParseFloat accepts, such
// as 1.7956872e9.
func parseEpochFloat(b []byte, unit int64) (int64, error) {
	x, err := strconv.ParseFloat(b2s(b), 64)
	if err != nil {
		return 0, reject(telemetry.ReasonBadTimestamp, "time %q is not an epoch number", truncate(b))
	}
	u := unit
	if u == 0 {
		u = unitByMagnitude(x)
	}
	ns := x * float64(u)
	if !(ns >= 0 && ns < maxNanos) {
		return 0, reject(telemetry.ReasonBadTimestamp, "time %q is out of range", truncate(b))
	}
	return int64(ns), nil
}

// maxNanos is the first instant of 2262 in Unix nanoseconds: past it the
// year would leave the range of the JSON decoders.
var maxNanos = float64(time.Date(maxYear+1, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())

// unitByMagnitude tells the unit of an epoch timestamp x: seconds below
// 1e11 (until the year 5138), milliseconds below 1e14, microseconds below
// 1e17, else nanoseconds.
func unitByMagnitude(x float64) int64 {
	switch {
	case x < 1e11:
		return int64(time.Second)
	case x < 1e14:
		return int64(time.Millisecond)
	case x < 1e17:
		return int64(time.Microsecond)
	}
	return 1
}

// checkRange rejects times before 1970 or after 2261; year is the year as
// written, or 0 when only ns tells it.
func checkRange(ns int64, year int, b []byte) (int64, error) {
	if ns < 0 || year > maxYear || year != 0 && year < minYear || float64(ns) >= maxNanos {
		return 0, reject(telemetry.ReasonBadTimestamp, "time %q is out of range (1970 to 2261)", truncate(b))
	}
	return ns, nil
}

func badDateTime(b []byte) error {
	return reject(telemetry.ReasonBadTimestamp, "time %q is not a valid YYYY-MM-DD hh:mm:ss[.f][Z|±hh:mm]", truncate(b))
}

// digits reads a short run of ASCII digits.
func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// uintDigits reads b as a decimal integer of at most 19 digits.
func uintDigits(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}
