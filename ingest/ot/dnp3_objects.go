package ot

// DNP3 object headers, IEEE 1815-2012 clause 4.2.2.7 ("object header":
// group, variation, qualifier; the qualifier's object prefix code in bits
// 4–6 and range specifier code in bits 0–3) and the object sizes of the
// Annex A object library for the groups seen on the wire most often.

// dnp3ObjectSize returns the octets of one object of group g variation v,
// or the bits of one packed object when bits is true; ok is false for
// objects whose size this decoder does not know (their headers end the
// check without a verdict).
func dnp3ObjectSize(g, v byte) (size int, bits bool, ok bool) {
	switch g {
	case 1, 10, 80: // packed binary inputs, binary output status, IIN
		if v == 1 {
			return 1, true, true
		}
		if g != 80 && v == 2 {
			return 1, false, true
		}
	case 3:
		switch v {
		case 1:
			return 2, true, true
		case 2:
			return 1, false, true
		}
	case 2, 4, 11, 13:
		switch v {
		case 1:
			return 1, false, true
		case 2:
			return 7, false, true
		case 3:
			if g == 2 || g == 4 {
				return 3, false, true
			}
		}
	case 12:
		switch v {
		case 1, 2: // CROB, pattern control block
			return 11, false, true
		case 3:
			return 1, true, true
		}
	case 20:
		return sizeOf(v, counter20[:])
	case 21, 22, 23:
		if g == 21 && v == 9 {
			return 4, false, true
		}
		if g == 21 && v == 10 {
			return 2, false, true
		}
		return sizeOf(v, frozenCounter[:])
	case 30:
		return sizeOf(v, analogInput[:])
	case 32, 42, 43:
		return sizeOf(v, analogEvent[:])
	case 40, 41:
		return sizeOf(v, analogOutput[:])
	case 50:
		return sizeOf(v, timeObjects[:])
	case 51:
		return sizeOf(v, cto[:])
	case 52:
		return sizeOf(v, timeDelay[:])
	case 110, 111: // octet strings: the variation is the length
		if v > 0 {
			return int(v), false, true
		}
	}
	return 0, false, false
}

// Object sizes by variation (index v-1); 0 marks variations not sized here.
var (
	counter20     = [...]int{5, 3, 0, 0, 4, 2}          // g20 counters
	frozenCounter = [...]int{5, 3, 0, 0, 11, 9}         // g21–g23 frozen counters and events
	analogInput   = [...]int{5, 3, 4, 2, 5, 9}          // g30
	analogEvent   = [...]int{5, 3, 11, 9, 5, 9, 11, 15} // g32, g42, g43
	analogOutput  = [...]int{5, 3, 5, 9}                // g40, g41
	timeObjects   = [...]int{6, 10, 6, 11}              // g50
	cto           = [...]int{6, 6}                      // g51
	timeDelay     = [...]int{2, 2}                      // g52
	rangeWidth    = [...]int{1, 2, 4}
	countWidth    = [16]int{7: 1, 8: 2, 9: 4, 0x0b: 1}
)

func sizeOf(v byte, sizes []int) (int, bool, bool) {
	if v == 0 || int(v) > len(sizes) || sizes[v-1] == 0 {
		return 0, false, false
	}
	return sizes[v-1], false, true
}

// dnp3NoObjectData: functions whose requests name objects without
// carrying their values (read, freeze, unsolicited enable/disable, assign
// class).
func dnp3NoObjectData(fc byte) bool {
	switch fc {
	case 1, 7, 8, 9, 10, 20, 21, 22:
		return true
	}
	return false
}

var prefixOctets = [8]int{0, 1, 2, 4, 1, 2, 4, -1}

// checkDNP3Objects walks the object headers of a complete fragment and
// returns the number of headers walked and a protocol violation, if any.
// It stops without a verdict at the first object whose size it does not
// know.
func checkDNP3Objects(objs []byte, fc byte) (headers int, violation string) {
	for len(objs) > 0 {
		if len(objs) < 3 {
			return headers, "dnp3 object header truncated"
		}
		g, v, q := objs[0], objs[1], objs[2]
		if q&0x80 != 0 {
			return headers, "dnp3 object qualifier reserved bit set"
		}
		prefix := prefixOctets[q>>4&7]
		if prefix < 0 {
			return headers, "dnp3 object prefix code reserved"
		}
		var count, rangeLen int
		r := objs[3:]
		switch rc := q & 0x0f; rc {
		case 0, 1, 2, 3, 4, 5: // start-stop indexes or virtual addresses
			w := rangeWidth[rc%3]
			rangeLen = 2 * w
			if len(r) < rangeLen {
				return headers, "dnp3 object range truncated"
			}
			start, stop := leN(r, w), leN(r[w:], w)
			if stop < start {
				return headers, "dnp3 object range stop before start"
			}
			count = int(min(stop-start+1, 1<<16))
		case 6: // all objects, no range field
			if prefix != 0 {
				return headers, "dnp3 all-objects qualifier with a prefix"
			}
		case 7, 8, 9, 0x0b: // object count
			w := countWidth[rc]
			rangeLen = w
			if len(r) < w {
				return headers, "dnp3 object count truncated"
			}
			count = int(min(leN(r, w), 1<<16))
		default:
			return headers, "dnp3 object range specifier reserved"
		}
		objs = r[rangeLen:]
		headers++
		if (dnp3NoObjectData(fc) || g == 60) && q>>4&7 < 4 {
			// Only indexes follow. (A size prefix means the objects do
			// carry data, e.g. g70 file objects in a read request.)
			n := count * prefix
			if n > len(objs) {
				return headers, "dnp3 object indexes exceed the fragment"
			}
			objs = objs[n:]
			continue
		}
		if q>>4&7 >= 4 { // each object carries its own size
			for range count {
				if len(objs) < prefix {
					return headers, "dnp3 object size prefix truncated"
				}
				n := prefix + int(leN(objs, prefix))
				if n > len(objs) {
					return headers, "dnp3 object exceeds the fragment"
				}
				objs = objs[n:]
			}
			continue
		}
		size, bits, ok := dnp3ObjectSize(g, v)
		if !ok {
			return headers, ""
		}
		n := count * (prefix + size)
		if bits {
			if prefix != 0 {
				n = count * (prefix + 1) // packed objects with an index take a whole octet each
			} else {
				n = (count*size + 7) / 8
			}
		}
		if n > len(objs) {
			return headers, "dnp3 object data exceeds the fragment"
		}
		objs = objs[n:]
	}
	return headers, ""
}

// leN reads a w-octet little-endian unsigned integer (w ≤ 4).
func leN(b []byte, w int) uint32 {
	var v uint32
	for i := w - 1; i >= 0; i-- {
		v = v<<8 | uint32(b[i])
	}
	return v
}
