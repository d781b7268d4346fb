package packet

// IPv4 reassembly (RFC 791 §3.2, with RFC 815's hole tracking reduced to a
// bitmap of 8-octet blocks), so that a Modbus write split into fragments —
// an old IDS evasion — reaches the OT decoders like any other. Memory is
// bounded: at most maxFragDatagrams datagrams are pending, each at most
// 64 KiB, and one that does not complete within fragTimeout of event time
// is dropped and counted.

const (
	maxFragDatagrams = 64
	maxDatagram      = 65535
	fragTimeout      = int64(30e9) // RFC 791 suggests 15 s; hosts use 30–60 s
)

type fragKey struct {
	src, dst [4]byte
	id       uint16
	proto    uint8
}

type fragDatagram struct {
	key   fragKey
	first int64
	data  []byte // payload bytes, allocated once per slot (64 KiB) and reused
	have  [maxDatagram/8/64 + 1]uint64
	total int // payload length, -1 until the last fragment arrived
	used  bool
}

// fragTable holds the datagrams being reassembled.
type fragTable struct {
	ents        [maxFragDatagrams]fragDatagram
	n           int
	evicted     int64 // datagrams dropped incomplete: timed out or table full
	reassembled int64
	bad         int64 // fragments beyond 64 KiB or overlapping the end
}

// add stores one fragment (offset in 8-octet units, more-fragments flag)
// and returns the whole payload when the datagram is complete. The slice
// stays valid until the next call.
func (t *fragTable) add(k fragKey, offset uint16, more bool, payload []byte, ts int64) ([]byte, bool) {
	off := int(offset) * 8
	end := off + len(payload)
	if end > maxDatagram || more && len(payload)%8 != 0 {
		t.bad++
		return nil, false
	}
	e := t.find(k, ts)
	if e.total >= 0 && end > e.total || !more && e.total >= 0 && end != e.total {
		t.bad++ // data past the end the last fragment announced
		return nil, false
	}
	if len(e.data) < end {
		e.data = e.data[:end]
	}
	copy(e.data[off:end], payload)
	for b := off / 8; b < (end+7)/8; b++ {
		e.have[b/64] |= 1 << (b % 64)
	}
	if !more {
		e.total = end
	}
	if e.total < 0 {
		return nil, false
	}
	blocks := (e.total + 7) / 8
	for b := 0; b < blocks; b++ {
		if e.have[b/64]&(1<<(b%64)) == 0 {
			return nil, false
		}
	}
	e.used = false
	t.n--
	t.reassembled++
	return e.data[:e.total], true
}

// find returns the datagram of k, starting one (and evicting the oldest
// or timed-out ones) when there is none.
func (t *fragTable) find(k fragKey, ts int64) *fragDatagram {
	var free, oldest *fragDatagram
	for i := range t.ents {
		e := &t.ents[i]
		if e.used && ts-e.first > fragTimeout {
			e.used = false
			t.n--
			t.evicted++
		}
		if !e.used {
			if free == nil {
				free = e
			}
			continue
		}
		if e.key == k {
			return e
		}
		if oldest == nil || e.first < oldest.first {
			oldest = e
		}
	}
	if free == nil {
		free = oldest
		t.evicted++
		t.n--
	}
	if free.data == nil {
		free.data = make([]byte, 0, maxDatagram)
	}
	*free = fragDatagram{key: k, first: ts, data: free.data[:0], total: -1, used: true}
	t.n++
	return free
}
