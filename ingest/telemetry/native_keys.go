package telemetry

import (
	"bytes"
	"encoding/binary"
)

// Messages of one source have the same layout, byte for byte between the
// values: the same keys in the same order, with the same spacing. The
// scanner therefore remembers, for each place in an object, the bytes that
// led from the previous value to that key's value last time (`,"hw":`),
// and what the key meant. A message whose bytes there are the same is
// matched with one comparison instead of being tokenized, and since the
// scanner's reading of those bytes is a function of the bytes alone (and
// of whether the key is the object's first, which the place fixes), the
// result is the one tokenizing them would give.

// keySlot is what a keyCache knows about one place of an object.
type keySlot struct {
	// lead is the bytes from the end of the previous value (the '{' for
	// the first key) to the start of this key's value; empty when the
	// place has no usable entry.
	lead []byte
	// word holds the first 16 bytes of lead as little-endian words, zero
	// beyond its end, and mask has all ones in the bytes of lead: most
	// leads are that short, and comparing two words costs a few
	// instructions where calling memequal was most of matching a key.
	word, mask [2]uint64
	// keyOff and keyLen locate the key in lead.
	keyOff, keyLen int
	// field is what the key means to a caller that switches on it.
	field nativeField
	// name is the interned metric name, for the metrics object.
	name string
}

// keyCache holds the keySlots of one object of native messages, by place.
type keyCache struct {
	slots []keySlot
}

// Bounds of a keyCache: keys past maxKeySlots in an object, and leads
// longer than maxLeadBytes (long keys or much blank space), are always
// tokenized, so the cache stays small whatever the messages.
const (
	maxKeySlots  = 64
	maxLeadBytes = 128
)

// key reads key number k of an object; i is just after the object's '{'
// or the previous value. It returns the position of the key's value (after
// blanks) and the key as buf[ks:ke]. slot is the place's entry when the
// bytes matched it, nil otherwise: the caller then works out the key's
// meaning and calls learn. end is true at the closing '}', with next the
// position after it.
func (c *keyCache) key(buf []byte, i, k int) (next, ks, ke int, slot *keySlot, end, ok bool) {
	if k < len(c.slots) {
		if s := &c.slots[k]; s.matches(buf, i) {
			ks = i + s.keyOff
			return i + len(s.lead), ks, ks + s.keyLen, s, false, true
		}
	}
	if next, ks, ke, end, ok = nextKeyAt(buf, i, k == 0); !ok || end {
		return next, ks, ke, nil, end, ok
	}
	return ws(buf, next), ks, ke, nil, false, true
}

// matches reports whether buf continues with s.lead at i.
func (s *keySlot) matches(buf []byte, i int) bool {
	n := len(s.lead)
	if n == 0 {
		return false
	}
	if n <= 16 && len(buf)-i >= 16 {
		return binary.LittleEndian.Uint64(buf[i:])&s.mask[0] == s.word[0] &&
			binary.LittleEndian.Uint64(buf[i+8:])&s.mask[1] == s.word[1]
	}
	return len(buf)-i >= n && string(buf[i:i+n]) == string(s.lead)
}

// learn makes lead, which key read for place k, and the key's meaning
// (field, name) the entry of place k. Places are learnt in order: k is at
// most len(c.slots).
func (c *keyCache) learn(k int, lead []byte, field nativeField, name string) {
	if k >= maxKeySlots || k > len(c.slots) {
		return
	}
	if k == len(c.slots) {
		c.slots = append(c.slots, keySlot{})
	}
	s := &c.slots[k]
	if len(lead) > maxLeadBytes {
		s.lead = s.lead[:0]
		return
	}
	// The key is between the only two quotes of lead: it has no escapes,
	// so no quote of its own.
	s.keyOff = bytes.IndexByte(lead, '"') + 1
	s.keyLen = bytes.LastIndexByte(lead, '"') - s.keyOff
	s.lead = append(s.lead[:0], lead...)
	var padded [16]byte
	copy(padded[:], lead)
	for w := range s.word {
		s.word[w] = binary.LittleEndian.Uint64(padded[8*w:])
		s.mask[w] = lowBytes(len(lead) - 8*w)
	}
	s.field, s.name = field, name
}

// lowBytes returns a word with all ones in its lowest n bytes (n may be
// below 0 or above 8).
func lowBytes(n int) uint64 {
	switch {
	case n <= 0:
		return 0
	case n >= 8:
		return ^uint64(0)
	}
	return 1<<(8*n) - 1
}

// nativeField is the meaning of a key of a native message's top level or
// conn object.
type nativeField uint8

const (
	fieldIgnored nativeField = iota // unknown key: the value is skipped
	fieldDevice
	fieldTime
	fieldAttrs
	fieldMetrics
	fieldConn
	fieldOtherFormat // a key of another format: the scanner gives up
	fieldSrcIP
	fieldClientID
	fieldCert
)

func topLevelField(key []byte) nativeField {
	switch string(key) {
	case "device":
		return fieldDevice
	case "ts":
		return fieldTime
	case "attrs":
		return fieldAttrs
	case "metrics":
		return fieldMetrics
	case "conn":
		return fieldConn
	case "name", "tags", "fields", "timestamp", "header", "hed", "met", "cmet", "custom_metrics":
		// Keys of other formats: auto detection might not say native.
		return fieldOtherFormat
	}
	return fieldIgnored
}

func connField(key []byte) nativeField {
	switch string(key) {
	case "src_ip":
		return fieldSrcIP
	case "client_id":
		return fieldClientID
	case "cert":
		return fieldCert
	}
	return fieldIgnored
}
