package telemetry

import (
	"encoding/binary"
	"math"
	"math/bits"
	"time"

	"github.com/valyala/fastjson/fastfloat"

	"github.com/vigil-ot/vigil/ingest"
)

// The native format is the hot path (500k+ messages per second per core
// end to end), and building a fastjson tree for every message costs more
// than reading it. scanNative reads the common shape of a native message
// straight from the bytes: known keys, strings without escapes, numbers,
// booleans and nulls. Anything else — an escape, an unknown key, a syntax
// error, a value of the wrong type, a metric past the name cap — makes it
// give up, and Decode runs the fastjson decoder, which is the reference and
// gives the error. It therefore never rejects on its own, and
// FuzzNativeFastPath checks that whatever it accepts, the reference decodes
// to the same row.

// nativeScanner walks one message. Offsets index into buf.
type nativeScanner struct {
	buf []byte
	pos int
}

func (s *nativeScanner) skipWS() {
	if s.pos < len(s.buf) && s.buf[s.pos] > ' ' {
		return // compact JSON: nothing to skip
	}
	for s.pos < len(s.buf) {
		switch s.buf[s.pos] {
		case ' ', '\n', '\t', '\r':
			s.pos++
		default:
			return
		}
	}
}

// consume skips blanks and then c, reporting whether c was there.
func (s *nativeScanner) consume(c byte) bool {
	s.skipWS()
	if s.pos < len(s.buf) && s.buf[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

// peek skips blanks and returns the next byte, or 0 at the end.
func (s *nativeScanner) peek() byte {
	s.skipWS()
	if s.pos < len(s.buf) {
		return s.buf[s.pos]
	}
	return 0
}

// str reads a string without escapes and returns its bytes.
func (s *nativeScanner) str() ([]byte, bool) {
	if !s.consume('"') {
		return nil, false
	}
	// Look at eight bytes at a time for the closing quote or an escape:
	// a byte loop costs about three cycles a byte and bytes.IndexByte's
	// setup more than the short strings (names, ids, addresses) of a
	// native message take to scan.
	start, i := s.pos, s.pos
	for ; i+8 <= len(s.buf); i += 8 {
		w := binary.LittleEndian.Uint64(s.buf[i:])
		if m := hasByte(w, '"') | hasByte(w, '\\'); m != 0 {
			i += bits.TrailingZeros64(m) / 8
			return s.strEnd(start, i)
		}
	}
	for ; i < len(s.buf); i++ {
		if c := s.buf[i]; c == '"' || c == '\\' {
			return s.strEnd(start, i)
		}
	}
	return nil, false
}

// strEnd ends the string started at start at the quote or escape at i.
func (s *nativeScanner) strEnd(start, i int) ([]byte, bool) {
	if s.buf[i] != '"' {
		return nil, false
	}
	s.pos = i + 1
	return s.buf[start:i], true
}

// hasByte returns a word whose lowest set bit is the top bit of the first
// byte of w equal to c (bits above it may be set spuriously by borrows,
// never below), or 0 when no byte is.
func hasByte(w uint64, c byte) uint64 {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	x := w ^ (lo * uint64(c))
	return (x - lo) &^ x & hi
}

// number returns the raw text of a number, with fastjson's notion of the
// characters that may form one.
func (s *nativeScanner) number() (string, bool) {
	s.skipWS()
	start := s.pos
	for s.pos < len(s.buf) {
		c := s.buf[s.pos]
		if (c >= '0' && c <= '9') || c == '.' || c == '-' || c == 'e' || c == 'E' || c == '+' {
			s.pos++
			continue
		}
		break
	}
	// Like fastjson, refuse a lone sign.
	if n := s.pos - start; n == 0 || n == 1 && (s.buf[start] == '-' || s.buf[start] == '+') {
		return "", false
	}
	return b2s(s.buf[start:s.pos]), true
}

// literal consumes word (true, false, null) at the current position.
func (s *nativeScanner) literal(word string) bool {
	if len(s.buf)-s.pos < len(word) || string(s.buf[s.pos:s.pos+len(word)]) != word {
		return false
	}
	s.pos += len(word)
	return true
}

// object calls field for each key of an object; field reads the value.
func (s *nativeScanner) object(field func(key []byte) bool) bool {
	if !s.consume('{') {
		return false
	}
	if s.consume('}') {
		return true
	}
	for {
		k, ok := s.str()
		if !ok || !s.consume(':') || !field(k) {
			return false
		}
		if s.consume(',') {
			continue
		}
		return s.consume('}')
	}
}

// maxSkipDepth bounds the nesting of ignored values the scanner walks;
// deeper ones go to the reference decoder.
const maxSkipDepth = 32

// skip passes over one value that the native format ignores, accepting no
// more than fastjson would, so an ignored field never makes the scanner
// accept a message the reference rejects.
func (s *nativeScanner) skip(depth int) bool {
	if depth > maxSkipDepth {
		return false
	}
	switch c := s.peek(); c {
	case '"':
		s.pos++
		for s.pos < len(s.buf) {
			switch s.buf[s.pos] {
			case '\\':
				s.pos += 2
				continue
			case '"':
				s.pos++
				return true
			}
			s.pos++
		}
		return false
	case '{':
		return s.object(func([]byte) bool { return s.skip(depth + 1) })
	case '[':
		s.pos++
		if s.consume(']') {
			return true
		}
		for {
			if !s.skip(depth + 1) {
				return false
			}
			if s.consume(',') {
				continue
			}
			return s.consume(']')
		}
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		_, ok := s.number()
		return ok
	}
	return false
}

// The functions below read the known parts of a native message. They take
// and return the position instead of updating a nativeScanner through a
// pointer, so it stays in a register: the scanner's field loads and stores
// were a third of the decoding time. nativeScanner remains for skipping
// values the format ignores.

// ws returns the index of the first non-blank byte at or after i.
func ws(buf []byte, i int) int {
	if i < len(buf) && buf[i] > ' ' {
		return i // compact JSON: nothing to skip
	}
	return wsSlow(buf, i)
}

func wsSlow(buf []byte, i int) int {
	for i < len(buf) {
		switch buf[i] {
		case ' ', '\n', '\t', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// byteAt skips blanks from i and then c, returning the position after it.
func byteAt(buf []byte, i int, c byte) (int, bool) {
	i = ws(buf, i)
	if i < len(buf) && buf[i] == c {
		return i + 1, true
	}
	return i, false
}

// strAt reads a string without escapes after blanks from i: its bytes are
// buf[start:end] and the next position end+1.
func strAt(buf []byte, i int) (start, end int, ok bool) {
	i = ws(buf, i)
	if i >= len(buf) || buf[i] != '"' {
		return 0, 0, false
	}
	// Look at eight bytes at a time for the closing quote or an escape:
	// a byte loop costs about three cycles a byte, and bytes.IndexByte's
	// setup more than the short strings (names, ids, addresses) of a
	// native message take to scan.
	start = i + 1
	for i = start; i+8 <= len(buf); i += 8 {
		w := binary.LittleEndian.Uint64(buf[i:])
		if m := hasByte(w, '"') | hasByte(w, '\\'); m != 0 {
			i += bits.TrailingZeros64(m) / 8
			return start, i, buf[i] == '"'
		}
	}
	for ; i < len(buf); i++ {
		if c := buf[i]; c == '"' || c == '\\' {
			return start, i, c == '"'
		}
	}
	return 0, 0, false
}

// nextKeyAt reads the next key of an object whose '{' is before i, and the
// ':' after it; first says no key has been read yet. end is true at the
// closing '}', with the position after it. It accepts what
// nativeScanner.object accepts.
func nextKeyAt(buf []byte, i int, first bool) (next, ks, ke int, end, ok bool) {
	if j, ok := byteAt(buf, i, '}'); ok {
		return j, 0, 0, true, true
	}
	if !first {
		if i, ok = byteAt(buf, i, ','); !ok {
			return i, 0, 0, false, false
		}
	}
	if ks, ke, ok = strAt(buf, i); !ok {
		return i, 0, 0, false, false
	}
	next, ok = byteAt(buf, ke+1, ':')
	return next, ks, ke, false, ok
}

// literalAt reads word (true, false, null) after blanks from i.
func literalAt(buf []byte, i int, word string) (int, bool) {
	i = ws(buf, i)
	if len(buf)-i < len(word) || string(buf[i:i+len(word)]) != word {
		return i, false
	}
	return i + len(word), true
}

// numberAt returns the raw text of a number after blanks from i, with
// fastjson's notion of the characters that may form one, and the next
// position.
func numberAt(buf []byte, i int) (string, int, bool) {
	i = ws(buf, i)
	start := i
	for i < len(buf) && isNumberByte[buf[i]] {
		i++
	}
	// Like fastjson, refuse a lone sign.
	if n := i - start; n == 0 || n == 1 && (buf[start] == '-' || buf[start] == '+') {
		return "", i, false
	}
	return b2s(buf[start:i]), i, true
}

// isNumberByte marks the bytes fastjson takes as part of a number.
var isNumberByte = [256]bool{
	'0': true, '1': true, '2': true, '3': true, '4': true, '5': true, '6': true, '7': true, '8': true, '9': true,
	'.': true, '-': true, '+': true, 'e': true, 'E': true,
}

// pow10 holds the exact powers of ten fastfloat.Parse divides by.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// numberValueAt reads a number after blanks from i and returns its value
// and the next position, as numberAt followed by parseNumber would, but in
// one pass for the forms producers send: an optional minus, then digits
// with at most one '.' between them, no more than 18 for an integer and 15
// for a fraction. For those fastfloat.Parse computes float64 of all the
// digits, divided by the exact power of ten of the fraction digits, and so
// does this. Every other form, and the NaN and infinities parseNumber may
// return, are left to numberAt and parseNumber; ok is false for those
// that are not finite. FuzzNumberValueAt compares the two ways.
func numberValueAt(buf []byte, i int) (x float64, next int, ok bool) {
	i = ws(buf, i)
	start := i
	neg := i < len(buf) && buf[i] == '-'
	if neg {
		i++
	}
	intStart := i
	var d uint64
	for i < len(buf) && buf[i]-'0' <= 9 {
		d = d*10 + uint64(buf[i]-'0')
		i++
	}
	nInt, nFrac := i-intStart, 0
	dot := i < len(buf) && buf[i] == '.'
	if dot {
		i++
		fracStart := i
		for i < len(buf) && buf[i]-'0' <= 9 {
			d = d*10 + uint64(buf[i]-'0')
			i++
		}
		nFrac = i - fracStart
	}
	fits := !dot && nInt <= 18 || nFrac > 0 && nInt+nFrac <= 15
	// The digit loops run on (and d wraps) past the limits: such numbers,
	// like "1." or ".5" or ones followed by another number byte (an
	// exponent, a second '.', a sign), take the general way.
	if nInt == 0 || !fits || i < len(buf) && isNumberByte[buf[i]] {
		return numberValueSlow(buf, start)
	}
	x = float64(d)
	if nFrac > 0 {
		x /= pow10[nFrac]
	}
	if neg {
		x = -x
	}
	return x, i, true
}

func numberValueSlow(buf []byte, i int) (float64, int, bool) {
	raw, i, ok := numberAt(buf, i)
	if !ok {
		return 0, i, false
	}
	x, err := parseNumber(raw)
	if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
		return 0, i, false
	}
	return x, i, true
}

// parseNumber is fastfloat.Parse, the reference decoder's number parser,
// with its integer case done here: an optional minus and at most 18 digits
// convert exactly as float64(uint64), as fastfloat does; every other form
// goes to fastfloat.Parse. FuzzParseNumber compares the two.
func parseNumber(raw string) (float64, error) {
	i := 0
	if len(raw) > 0 && raw[0] == '-' {
		i = 1
	}
	if n := len(raw) - i; n > 0 && n <= 18 {
		var u uint64
		for ; i < len(raw); i++ {
			c := raw[i] - '0'
			if c > 9 {
				return fastfloat.Parse(raw)
			}
			u = u*10 + uint64(c)
		}
		x := float64(u)
		if raw[0] == '-' {
			x = -x
		}
		return x, nil
	}
	return fastfloat.Parse(raw)
}

// skipAt passes over one ignored value after blanks from i.
func skipAt(buf []byte, i int) (int, bool) {
	s := nativeScanner{buf: buf, pos: i}
	ok := s.skip(1)
	return s.pos, ok
}

// scanNative decodes value into a new row when it has the common shape;
// false means the caller must use the reference decoder.
func (d *Decoder) scanNative(value, key []byte, transportNanos int64) bool {
	buf := value
	r := d.nextRow()
	haveTime, haveMetrics := false, false
	i, ok := byteAt(buf, 0, '{')
	if !ok {
		return false
	}
	for k := 0; ; k++ {
		next, ks, ke, slot, end, ok := d.topKeys.key(buf, i, k)
		if !ok {
			return false
		}
		if end {
			i = next
			break
		}
		var field nativeField
		if slot != nil {
			field = slot.field
		} else {
			field = topLevelField(buf[ks:ke])
			if field == fieldOtherFormat {
				return false
			}
			d.topKeys.learn(k, buf[i:next], field, "")
		}
		i = next
		switch field {
		case fieldDevice:
			var vs, ve int
			if vs, ve, ok = strAt(buf, i); !ok {
				return false
			}
			r.Device, i = b2s(buf[vs:ve]), ve+1
		case fieldTime:
			haveTime = true
			i, ok = scanTimeAt(buf, i, r, &d.minutes)
		case fieldAttrs:
			i, ok = d.scanAttrsAt(buf, i, r)
		case fieldMetrics:
			haveMetrics = true
			i, ok = d.scanMetricsAt(buf, i, r)
		case fieldConn:
			i, ok = d.scanConnAt(buf, i, r)
		default:
			i, ok = skipAt(buf, i)
		}
		if !ok {
			return false
		}
	}
	if ws(buf, i) != len(buf) {
		return false
	}
	if r.Device == "" {
		if r.Device = deviceFromKey(key); r.Device == "" {
			return false
		}
	}
	if !haveTime {
		if transportNanos <= 0 {
			return false
		}
		r.TimeNanos = transportNanos
	}
	return haveMetrics && len(r.Metrics) > 0
}

func (d *Decoder) scanAttrsAt(buf []byte, i int, r *ingest.Row) (int, bool) {
	i, ok := byteAt(buf, i, '{')
	if !ok {
		return i, false
	}
	for k := 0; ; k++ {
		next, ks, ke, slot, end, ok := d.attrKeys.key(buf, i, k)
		if !ok || end {
			return next, ok
		}
		if slot == nil {
			d.attrKeys.learn(k, buf[i:next], fieldIgnored, "")
		}
		var vs, ve int
		if i = next; i < len(buf) && buf[i] == 'n' {
			if i, ok = literalAt(buf, i, "null"); !ok {
				return i, false
			}
			continue
		}
		if vs, ve, ok = strAt(buf, i); !ok {
			return i, false
		}
		if ve > vs {
			setAttr(r, b2s(buf[ks:ke]), b2s(buf[vs:ve]))
		}
		i = ve + 1
	}
}

func (d *Decoder) scanMetricsAt(buf []byte, i int, r *ingest.Row) (int, bool) {
	i, ok := byteAt(buf, i, '{')
	if !ok {
		return i, false
	}
	for k := 0; ; k++ {
		vs, ks, ke, slot, end, ok := d.metricKeys.key(buf, i, k)
		if !ok || end {
			return vs, ok
		}
		x, present, next, ok := scanMetricValueAt(buf, vs)
		if !ok {
			return next, false
		}
		if present {
			var name string
			if slot != nil {
				name = slot.name
			} else {
				if name, ok = d.knownMetricName(buf[ks:ke]); !ok {
					return next, false
				}
				d.metricKeys.learn(k, buf[i:vs], fieldIgnored, name)
			}
			appendMetric(r, name, x)
		}
		i = next
	}
}

func (d *Decoder) scanConnAt(buf []byte, i int, r *ingest.Row) (int, bool) {
	i, ok := byteAt(buf, i, '{')
	if !ok {
		return i, false
	}
	for k := 0; ; k++ {
		next, ks, ke, slot, end, ok := d.connKeys.key(buf, i, k)
		if !ok || end {
			return next, ok
		}
		var field nativeField
		if slot != nil {
			field = slot.field
		} else {
			field = connField(buf[ks:ke])
			d.connKeys.learn(k, buf[i:next], field, "")
		}
		var dst *string
		switch field {
		case fieldSrcIP:
			dst = &r.SrcIP
		case fieldClientID:
			dst = &r.ClientID
		case fieldCert:
			dst = &r.Cert
		default:
			if i, ok = skipAt(buf, next); !ok {
				return i, false
			}
			continue
		}
		var vs, ve int
		if vs, ve, ok = strAt(buf, next); !ok {
			return next, false
		}
		*dst, i = b2s(buf[vs:ve]), ve+1
	}
}

func scanTimeAt(buf []byte, i int, r *ingest.Row, minutes *minuteCache) (int, bool) {
	var err error
	if i = ws(buf, i); i < len(buf) && buf[i] == '"' {
		vs, ve, ok := strAt(buf, i)
		if !ok {
			return i, false
		}
		r.TimeNanos, err = parseTimeStringCached(minutes, buf[vs:ve])
		return ve + 1, err == nil
	}
	// Epoch milliseconds, the usual form, need no more than reading the
	// digits once; fastfloat.ParseInt64 would read them again exactly.
	var n int64
	j := i
	for j < len(buf) && buf[j]-'0' <= 9 {
		n = n*10 + int64(buf[j]-'0')
		j++
	}
	if d := j - i; d > 0 && d <= 18 && (j == len(buf) || !isNumberByte[buf[j]]) {
		r.TimeNanos, err = timeFromInt(n, int64(time.Millisecond))
		return j, err == nil
	}
	raw, i, ok := numberAt(buf, i)
	if !ok {
		return i, false
	}
	if n, e := fastfloat.ParseInt64(raw); e == nil {
		r.TimeNanos, err = timeFromInt(n, int64(time.Millisecond))
		return i, err == nil
	}
	x, e := fastfloat.Parse(raw)
	if e != nil {
		return i, false
	}
	r.TimeNanos, err = timeFromFloat(x, int64(time.Millisecond))
	return i, err == nil
}

// scanMetricValueAt reads a metric's value after blanks from i: a finite
// number, true (1) or false (0), or null, which is no value (present
// false) rather than an error.
func scanMetricValueAt(buf []byte, i int) (x float64, present bool, next int, ok bool) {
	if i = ws(buf, i); i >= len(buf) {
		return 0, false, i, false
	}
	switch buf[i] {
	case 'n':
		next, ok = literalAt(buf, i, "null")
		return 0, false, next, ok
	case 't':
		next, ok = literalAt(buf, i, "true")
		return 1, true, next, ok
	case 'f':
		next, ok = literalAt(buf, i, "false")
		return 0, true, next, ok
	}
	x, next, ok = numberValueAt(buf, i)
	return x, true, next, ok
}

// knownMetricName returns the interned copy of name. New names go through
// the reference path, which enforces the cap and interns them; they are
// rare. Tests may let the scanner intern them itself (learnNames).
func (d *Decoder) knownMetricName(name []byte) (string, bool) {
	if n, ok := d.metricNames[string(name)]; ok {
		return n, true
	}
	if !d.learnNames {
		return "", false
	}
	n, err := d.metricName(name)
	return n, err == nil
}

// appendMetric appends (name, x) to r.Metrics. Rows are reused, so the
// slot it fills usually still holds the same interned name from the
// previous message; not storing it again spares the write barrier a
// pointer store pays while the garbage collector marks (a tenth of the
// scanner's time in profiles of a busy collector).
func appendMetric(r *ingest.Row, name string, x float64) {
	n := len(r.Metrics)
	if n == cap(r.Metrics) {
		r.Metrics = append(r.Metrics, ingest.Metric{Name: name, Value: x})
		return
	}
	r.Metrics = r.Metrics[:n+1]
	m := &r.Metrics[n]
	if m.Name != name {
		m.Name = name
	}
	m.Value = x
}
