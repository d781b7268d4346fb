package sinks

import "unicode/utf8"

// truncMarker ends a value cut to its format's length limit, so that a
// reader can tell a truncated value from a short one.
const truncMarker = "..."

// truncate cuts s to at most limit bytes, the marker included, on a UTF-8
// boundary. Limits are counted in bytes, which is never more than the
// characters the specifications count, so a cut value always fits.
func truncate(s string, limit int) (string, bool) {
	if limit <= 0 || len(s) <= limit {
		return s, false
	}
	n := limit - len(truncMarker)
	if n < 0 {
		n = 0
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n], true
}

// clampSeverity keeps sev within the 0-10 range every format uses.
func clampSeverity(sev int) int {
	if sev < 0 {
		return 0
	}
	if sev > 10 {
		return 10
	}
	return sev
}

// escapeTable says, for one position of one format, which bytes are copied
// as they are (safe) and what replaces each other ASCII byte. Bytes of
// 0x80 and above are never safe: they go through UTF-8 validation.
type escapeTable struct {
	safe [256]bool
	repl [utf8.RuneSelf]string
}

func newEscapeTable(control func(c byte) string, special map[byte]string) *escapeTable {
	var t escapeTable
	for c := 0x20; c < 0x7f; c++ {
		t.safe[c] = true
	}
	for c := 0; c < 0x20; c++ {
		t.repl[c] = control(byte(c))
	}
	t.repl[0x7f] = control(0x7f)
	for c, r := range special {
		t.repl[c] = r
		t.safe[c] = false
	}
	return &t
}

func controlToSpace(byte) string { return " " }

func controlToHex(c byte) string {
	return string([]byte{'\\', 'x', hexDigits[c>>4], hexDigits[c&0xf]})
}

var (
	// CEF header fields: pipe and backslash escaped; no line breaks at all
	// (the standard allows them only in extension values).
	cefHeaderEscapes = newEscapeTable(controlToSpace, map[byte]string{'\\': `\\`, '|': `\|`})
	// CEF extension values: backslash and equals escaped, line breaks as \r \n.
	cefValueEscapes = newEscapeTable(controlToSpace, map[byte]string{'\\': `\\`, '=': `\=`, '\n': `\n`, '\r': `\r`})
	// LEEF has no escape mechanism of its own: what could split a field
	// becomes a backslash sequence that holds no separator.
	leefHeaderEscapes = newEscapeTable(controlToHex, map[byte]string{'\\': `\\`, '|': `\x7c`, '\n': `\n`, '\r': `\r`, '\t': `\t`})
	leefValueEscapes  = newEscapeTable(controlToHex, map[byte]string{'\\': `\\`, '\n': `\n`, '\r': `\r`, '\t': `\t`})
)

// appendEscaped appends s cut to limit bytes (0: no limit) with the bytes
// of t replaced, delim (when not in t) as \xHH, invalid UTF-8 as U+FFFD and
// Unicode line and paragraph separators and C1 controls (NEL among them) as
// a space: the result is one line, whatever s holds.
func appendEscaped(dst []byte, s string, limit int, t *escapeTable, delim byte) []byte {
	s, cut := truncate(s, limit)
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if t.safe[c] && (c != delim || delim == 0) {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		if c < utf8.RuneSelf {
			if r := t.repl[c]; r != "" {
				dst = append(dst, r...)
			} else {
				dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, "\uFFFD"...)
		case isUnicodeBreak(r):
			dst = append(dst, ' ')
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	if cut {
		dst = append(dst, truncMarker...)
	}
	return dst
}

// isUnicodeBreak reports C1 controls (NEL is U+0085) and the Unicode line
// and paragraph separators, which some viewers treat as line breaks.
func isUnicodeBreak(r rune) bool {
	return (r >= 0x80 && r <= 0x9f) || r == '\u2028' || r == '\u2029'
}
