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

// nextKey reads the next key of an object whose '{' has been consumed and
// the ':' after it; first says no key has been read yet. end is true at the
// closing '}'. It accepts exactly what object accepts, without a callback
// per field, which costs an indirect call the hot path can do without.
func (s *nativeScanner) nextKey(first bool) (key []byte, end, ok bool) {
	if s.consume('}') {
		return nil, true, true
	}
	if !first && !s.consume(',') {
		return nil, false, false
	}
	if key, ok = s.str(); !ok || !s.consume(':') {
		return nil, false, false
	}
	return key, false, true
}

// scanNative decodes value into a new row when it has the common shape;
// false means the caller must use the reference decoder.
func (d *Decoder) scanNative(value, key []byte, transportNanos int64) bool {
	s := nativeScanner{buf: value}
	r := d.nextRow()
	haveTime, haveMetrics := false, false
	if !s.consume('{') {
		return false
	}
	for first := true; ; first = false {
		k, end, ok := s.nextKey(first)
		if !ok {
			return false
		}
		if end {
			break
		}
		switch string(k) {
		case "device":
			b, ok := s.str()
			if !ok {
				return false
			}
			r.Device = b2s(b)
		case "ts":
			haveTime = true
			if !d.scanTime(&s, r) {
				return false
			}
		case "attrs":
			if !s.scanAttrs(r) {
				return false
			}
		case "metrics":
			haveMetrics = true
			if !d.scanMetrics(&s, r) {
				return false
			}
		case "conn":
			if !s.scanConn(r) {
				return false
			}
		case "name", "tags", "fields", "timestamp", "header", "hed", "met", "cmet", "custom_metrics":
			// Keys of other formats: auto detection might not say native.
			return false
		default:
			if !s.skip(1) {
				return false
			}
		}
	}
	if s.peek() != 0 || s.pos != len(s.buf) {
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

func (s *nativeScanner) scanAttrs(r *ingest.Row) bool {
	if !s.consume('{') {
		return false
	}
	for first := true; ; first = false {
		k, end, ok := s.nextKey(first)
		if !ok {
			return false
		}
		if end {
			return true
		}
		if s.peek() == 'n' {
			if !s.literal("null") {
				return false
			}
			continue
		}
		b, ok := s.str()
		if !ok {
			return false
		}
		if len(b) > 0 {
			setAttr(r, b2s(k), b2s(b))
		}
	}
}

func (d *Decoder) scanMetrics(s *nativeScanner, r *ingest.Row) bool {
	if !s.consume('{') {
		return false
	}
	for first := true; ; first = false {
		k, end, ok := s.nextKey(first)
		if !ok {
			return false
		}
		if end {
			return true
		}
		if !d.scanMetric(s, r, k) {
			return false
		}
	}
}

func (s *nativeScanner) scanConn(r *ingest.Row) bool {
	if !s.consume('{') {
		return false
	}
	for first := true; ; first = false {
		k, end, ok := s.nextKey(first)
		if !ok {
			return false
		}
		if end {
			return true
		}
		var dst *string
		switch string(k) {
		case "src_ip":
			dst = &r.SrcIP
		case "client_id":
			dst = &r.ClientID
		case "cert":
			dst = &r.Cert
		default:
			if !s.skip(1) {
				return false
			}
			continue
		}
		b, ok := s.str()
		if !ok {
			return false
		}
		*dst = b2s(b)
	}
}

func (d *Decoder) scanTime(s *nativeScanner, r *ingest.Row) bool {
	var err error
	if s.peek() == '"' {
		b, ok := s.str()
		if !ok {
			return false
		}
		r.TimeNanos, err = parseTimeString(b)
		return err == nil
	}
	raw, ok := s.number()
	if !ok {
		return false
	}
	if n, e := fastfloat.ParseInt64(raw); e == nil {
		r.TimeNanos, err = timeFromInt(n, int64(time.Millisecond))
		return err == nil
	}
	x, e := fastfloat.Parse(raw)
	if e != nil {
		return false
	}
	r.TimeNanos, err = timeFromFloat(x, int64(time.Millisecond))
	return err == nil
}

func (d *Decoder) scanMetric(s *nativeScanner, r *ingest.Row, name []byte) bool {
	var x float64
	switch s.peek() {
	case 'n':
		return s.literal("null")
	case 't':
		if !s.literal("true") {
			return false
		}
		x = 1
	case 'f':
		if !s.literal("false") {
			return false
		}
	default:
		raw, ok := s.number()
		if !ok {
			return false
		}
		var err error
		if x, err = fastfloat.Parse(raw); err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	// Messages of one source list the same metrics in the same order, so
	// comparing with the name the previous message had in this place
	// usually spares hashing it for the map.
	i := len(r.Metrics)
	if i < len(d.lastMetricNames) && d.lastMetricNames[i] == string(name) {
		r.Metrics = append(r.Metrics, ingest.Metric{Name: d.lastMetricNames[i], Value: x})
		return true
	}
	n, ok := d.metricNames[string(name)]
	if !ok {
		if !d.learnNames {
			// New names go through the reference path, which enforces the
			// cap and interns them; they are rare.
			return false
		}
		var err error
		if n, err = d.metricName(name); err != nil {
			return false
		}
	}
	if i < len(d.lastMetricNames) {
		d.lastMetricNames[i] = n
	} else if i == len(d.lastMetricNames) && i < maxLastMetricNames {
		d.lastMetricNames = append(d.lastMetricNames, n)
	}
	r.Metrics = append(r.Metrics, ingest.Metric{Name: n, Value: x})
	return true
}

// maxLastMetricNames bounds Decoder.lastMetricNames; rows with more
// metrics look the rest up in the map.
const maxLastMetricNames = 64
