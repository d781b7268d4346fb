package query

import (
	"cmp"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/vigil-ot/vigil/ingest/telemetry"
)

// Kind is how a field's values compare.
type Kind uint8

const (
	// KindAuto leaves the kind to each comparison's literal: a relative
	// time (-1h) or an RFC 3339 time or date is a time; a decimal number
	// (5, -0.5, 1e3) is a number; anything else that starts with a digit,
	// or with "v" and a digit (2.9.4, v3, 2.9.4-rc1), is a version; the
	// rest is text. So fw<2.9.4 compares versions but fw<2.9 numbers:
	// declare version fields KindVersion in the schema to avoid that.
	// ':' without wildcards compares text.
	KindAuto Kind = iota
	// KindText compares without regard to case, character by character.
	KindText
	// KindNumber compares decimal numbers.
	KindNumber
	// KindVersion compares with CompareVersions.
	KindVersion
	// KindTime compares instants: RFC 3339 times or dates (midnight UTC)
	// in records; in queries also times relative to now (-1h).
	KindTime
)

func (k Kind) String() string {
	switch k {
	case KindAuto:
		return "auto"
	case KindText:
		return "text"
	case KindNumber:
		return "number"
	case KindVersion:
		return "version"
	case KindTime:
		return "time"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// inferKind is KindAuto's rule for a comparison's literal.
func inferKind(lit string) Kind {
	if _, ok, tooFar := parseRelative(lit); ok || tooFar {
		return KindTime
	}
	if _, ok := parseTime(lit); ok {
		return KindTime
	}
	if _, ok := parseNumber(lit); ok {
		return KindNumber
	}
	if isVersion(lit) {
		return KindVersion
	}
	return KindText
}

// parseNumber accepts decimal numbers only ([+-]digits[.digits][e[+-]digits]):
// no hexadecimal, underscores, Inf or NaN. The syntax check comes first so
// that a value that is not a number costs no strconv error allocation.
func parseNumber(s string) (float64, bool) {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for ; i < len(s) && isDigit(s[i]); i++ {
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for ; i < len(s) && isDigit(s[i]); i++ {
			digits++
		}
	}
	if digits == 0 {
		return 0, false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := i
		for ; i < len(s) && isDigit(s[i]); i++ {
		}
		if i == exp {
			return 0, false
		}
	}
	if i != len(s) {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// isVersion reports whether s reads as a version: a digit first, or "v"
// and a digit.
func isVersion(s string) bool {
	s = trimV(s)
	return s != "" && isDigit(s[0])
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// CompareVersions orders firmware versions the way vendors write them and
// returns -1, 0 or +1; it allocates nothing and is a total order on the
// classes it calls equal (any two strings compare, "unknown" included):
//
//   - a leading "v" or "V" before a digit is ignored, and so is build
//     metadata after '+' (2.9.4+b7 = v2.9.4);
//   - the first '-' splits the release from a pre-release, which sorts
//     before its release (2.9.4-rc1 < 2.9.4);
//   - release and pre-release are fields split at '.' or '_', compared in
//     order; a missing or empty field is 0 (2.9 = 2.9.0);
//   - within a field, runs of digits compare as numbers, of any length,
//     and sort before letters; letters compare without regard to case
//     (2.10.0 > 2.9.4, SP2 < SP10, rc2 < rc10, beta < rc, 4 < 4a < 10).
func CompareVersions(a, b string) int {
	aCore, aPre := splitPre(trimV(a))
	bCore, bPre := splitPre(trimV(b))
	if c := compareFields(aCore, bCore); c != 0 {
		return c
	}
	switch {
	case aPre == "" && bPre == "":
		return 0
	case aPre == "":
		return 1
	case bPre == "":
		return -1
	}
	return compareFields(aPre, bPre)
}

func trimV(s string) string {
	if len(s) > 1 && (s[0] == 'v' || s[0] == 'V') && isDigit(s[1]) {
		return s[1:]
	}
	return s
}

func splitPre(s string) (core, pre string) {
	for i := 0; i < len(s); i++ {
		if s[i] == '+' {
			s = s[:i]
			break
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '-' {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

func compareFields(a, b string) int {
	for a != "" || b != "" {
		var fa, fb string
		fa, a = nextField(a)
		fb, b = nextField(b)
		if c := compareNatural(fa, fb); c != 0 {
			return c
		}
	}
	return 0
}

// nextField splits off the first field; an empty one reads as "0", as a
// missing one does, so that padding never changes the order.
func nextField(s string) (field, rest string) {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' || s[i] == '_' {
			if i == 0 {
				return "0", s[1:]
			}
			return s[:i], s[i+1:]
		}
	}
	if s == "" {
		return "0", ""
	}
	return s, ""
}

// compareNatural compares digit runs by value and other bytes by their
// ASCII lower case; a digit run sorts before any other byte.
func compareNatural(a, b string) int {
	for a != "" && b != "" {
		ad, bd := isDigit(a[0]), isDigit(b[0])
		switch {
		case ad && bd:
			var na, nb string
			na, a = digitRun(a)
			nb, b = digitRun(b)
			if c := cmp.Compare(len(na), len(nb)); c != 0 {
				return c
			}
			if na != nb {
				return cmp.Compare(na, nb)
			}
		case ad:
			return -1
		case bd:
			return 1
		default:
			if c := cmp.Compare(lowerASCII(a[0]), lowerASCII(b[0])); c != 0 {
				return c
			}
			a, b = a[1:], b[1:]
		}
	}
	return cmp.Compare(len(a), len(b))
}

// digitRun splits off the leading digits, without their leading zeros.
func digitRun(s string) (digits, rest string) {
	i := 0
	for i < len(s) && s[i] == '0' {
		i++
	}
	start := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[start:i], s[i:]
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// maxRelative bounds a relative time, so that no sum overflows a Duration.
const maxRelative = 100 * 365 * 24 * time.Hour

// parseRelative reads a time relative to now: a sign and one or more
// amounts with a unit (s, m, h, d, w), as in -1h30m. tooFar is set for the
// right syntax beyond 100 years.
func parseRelative(s string) (d time.Duration, ok, tooFar bool) {
	if len(s) < 3 || (s[0] != '-' && s[0] != '+') {
		return 0, false, false
	}
	var total time.Duration
	for i := 1; i < len(s); {
		start := i
		var n int64
		for ; i < len(s) && isDigit(s[i]); i++ {
			if n < int64(maxRelative) {
				n = n*10 + int64(s[i]-'0')
			}
		}
		if i == start || i == len(s) {
			return 0, false, false
		}
		var unit time.Duration
		switch s[i] {
		case 's':
			unit = time.Second
		case 'm':
			unit = time.Minute
		case 'h':
			unit = time.Hour
		case 'd':
			unit = 24 * time.Hour
		case 'w':
			unit = 7 * 24 * time.Hour
		default:
			return 0, false, false
		}
		i++
		if n > int64(maxRelative/unit) {
			tooFar = true
			continue
		}
		total += time.Duration(n) * unit
		if total > maxRelative {
			tooFar = true
		}
	}
	if tooFar {
		return 0, false, true
	}
	if s[0] == '-' {
		total = -total
	}
	return total, true, false
}

// parseTime reads an RFC 3339 time as time.Parse(time.RFC3339, s) does in
// its strict form (fractional seconds allowed, 'T' and 'Z' in upper case)
// or a date (2026-12-06, midnight UTC), without allocating: the result is
// in UTC, since only the instant matters here.
func parseTime(s string) (time.Time, bool) {
	if len(s) < len("2006-01-02") || s[4] != '-' || s[7] != '-' {
		return time.Time{}, false
	}
	year, ok1 := twoDigits(s[0:2])
	year2, ok2 := twoDigits(s[2:4])
	month, ok3 := twoDigits(s[5:7])
	day, ok4 := twoDigits(s[8:10])
	year = year*100 + year2
	if !ok1 || !ok2 || !ok3 || !ok4 || month < 1 || month > 12 || day < 1 || day > telemetry.DaysInMonth(year, month) {
		return time.Time{}, false
	}
	if len(s) == len("2006-01-02") {
		return time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC), true
	}
	if len(s) < len("2006-01-02T15:04:05Z") || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	hour, ok1 := twoDigits(s[11:13])
	minute, ok2 := twoDigits(s[14:16])
	sec, ok3 := twoDigits(s[17:19])
	if !ok1 || !ok2 || !ok3 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	s = s[19:]
	nsec := 0
	if len(s) >= 2 && s[0] == '.' && isDigit(s[1]) {
		n := 1
		for ; n < len(s) && isDigit(s[n]); n++ {
			if n <= 9 {
				nsec = nsec*10 + int(s[n]-'0')
			}
		}
		for i := n; i <= 9; i++ {
			nsec *= 10
		}
		s = s[n:]
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if s == "Z" {
		return t, true
	}
	if len(s) != len("-07:00") || (s[0] != '+' && s[0] != '-') || s[3] != ':' {
		return time.Time{}, false
	}
	zh, ok1 := twoDigits(s[1:3])
	zm, ok2 := twoDigits(s[4:6])
	if !ok1 || !ok2 || zh > 23 || zm > 59 {
		return time.Time{}, false
	}
	offset := time.Duration(zh)*time.Hour + time.Duration(zm)*time.Minute
	if s[0] == '-' {
		offset = -offset
	}
	return t.Add(-offset), true
}

func twoDigits(s string) (int, bool) {
	if !isDigit(s[0]) || !isDigit(s[1]) {
		return 0, false
	}
	return int(s[0]-'0')*10 + int(s[1]-'0'), true
}

// compareText orders text by the lower case of each character; bytes that
// are not UTF-8 sort after every character, by value.
func compareText(a, b string) int {
	for a != "" && b != "" {
		ra, wa := decodeRune(a)
		rb, wb := decodeRune(b)
		if c := cmp.Compare(unicode.ToLower(ra), unicode.ToLower(rb)); c != 0 {
			return c
		}
		a, b = a[wa:], b[wb:]
	}
	return cmp.Compare(len(a), len(b))
}

// decodeRune is utf8.DecodeRuneInString, except that a byte that is not
// UTF-8 decodes to a value of its own above every character (so "\xff" and
// "\xfe" stay different instead of both becoming U+FFFD).
func decodeRune(s string) (rune, int) {
	if s[0] < utf8.RuneSelf {
		return rune(s[0]), 1
	}
	r, w := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && w == 1 {
		return unicode.MaxRune + 1 + rune(s[0]), 1
	}
	return r, w
}

// sameFold reports whether two characters are equal without regard to
// case, as strings.EqualFold decides it.
func sameFold(a, b rune) bool {
	if a == b {
		return true
	}
	if a < utf8.RuneSelf && b < utf8.RuneSelf {
		return lowerASCII(byte(a)) == lowerASCII(byte(b))
	}
	if a > unicode.MaxRune || b > unicode.MaxRune {
		return false
	}
	for r := unicode.SimpleFold(a); r != a; r = unicode.SimpleFold(r) {
		if r == b {
			return true
		}
	}
	return false
}

// equalText reports whether a and b are equal without regard to case.
func equalText(a, b string) bool {
	for a != "" && b != "" {
		ra, wa := decodeRune(a)
		rb, wb := decodeRune(b)
		if !sameFold(ra, rb) {
			return false
		}
		a, b = a[wa:], b[wb:]
	}
	return a == "" && b == ""
}

// matchGlob reports whether s matches pattern, without regard to case: in
// pattern '*' is any run of characters, '?' one character, and '\' makes
// the next byte literal. It backtracks to the last '*' only, so it takes
// at most len(pattern)*len(s) steps, never exponential time, and it
// allocates nothing.
func matchGlob(pattern, s string) bool {
	px, sx := 0, 0
	starPx, starSx := -1, -1
	for px < len(pattern) || sx < len(s) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				starPx, starSx = px, sx
				px++
				continue
			case '?':
				if sx < len(s) {
					_, w := decodeRune(s[sx:])
					px++
					sx += w
					continue
				}
			default:
				lit := pattern[px:]
				if c == '\\' && len(lit) > 1 {
					lit = lit[1:]
				}
				pr, pw := decodeRune(lit)
				if sx < len(s) {
					r, w := decodeRune(s[sx:])
					if sameFold(pr, r) {
						px = len(pattern) - len(lit) + pw
						sx += w
						continue
					}
				}
			}
		}
		if starPx >= 0 && starSx < len(s) {
			_, w := decodeRune(s[starSx:])
			starSx += w
			px, sx = starPx+1, starSx
			continue
		}
		return false
	}
	return true
}
