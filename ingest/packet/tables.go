package packet

import (
	"encoding/binary"

	"github.com/vigil-ot/vigil/ingest/ot"
)

// maxWindows bounds ingest.PacketConfig.Windows (validated there).
const maxWindows = 4

// flowKey identifies a bidirectional flow: endpoint a is the lower of the
// two (address, port) pairs, so both directions find the same entry.
type flowKey struct {
	a, b   [16]byte
	pa, pb uint16
	proto  uint8
}

// newFlowKey returns the canonical key for a packet and whether the packet
// flows from b to a.
func newFlowKey(f *Frame) (k flowKey, fromB bool) {
	if endpointLess(&f.Dst, f.DstPort, &f.Src, f.SrcPort) {
		return flowKey{a: f.Dst, b: f.Src, pa: f.DstPort, pb: f.SrcPort, proto: f.Transport}, true
	}
	return flowKey{a: f.Src, b: f.Dst, pa: f.SrcPort, pb: f.DstPort, proto: f.Transport}, false
}

func endpointLess(x *[16]byte, xp uint16, y *[16]byte, yp uint16) bool {
	xh, yh := binary.BigEndian.Uint64(x[:8]), binary.BigEndian.Uint64(y[:8])
	if xh != yh {
		return xh < yh
	}
	xl, yl := binary.BigEndian.Uint64(x[8:]), binary.BigEndian.Uint64(y[8:])
	if xl != yl {
		return xl < yl
	}
	return xp < yp
}

// TCP state bits of flow.tcp.
const (
	tcpSYN    = 1 << iota // the client's SYN was seen
	tcpSYNACK             // the server answered
	tcpFailed             // counted as a failed connection
)

// stream reassembles one direction of a TCP flow: the next expected
// sequence number and the bytes of a PDU that spans segments.
type stream struct {
	next  uint32
	known bool
	skip  int    // bytes still to skip of a PDU too long to buffer
	buf   []byte // pending bytes of an incomplete PDU; nil when none
}

// flow is one entry of the flow table. Entries live in a slice and are
// chained in least-recently-seen order for eviction.
type flow struct {
	key         flowKey
	first, last int64
	host        [2]hostRef // endpoints a and b
	clientB     bool       // endpoint b initiated the flow
	proto       ot.Protocol
	detected    bool
	tcp         uint8
	win         [maxWindows]int64 // window id the flow was last counted in, per window
	streams     [2]stream         // a→b, b→a
	// Caches of the batch's Communication entries this flow feeds, valid
	// while their batch number is current.
	baseComm, fnComm   int32
	baseBatch, fnBatch uint32
	fn                 uint16
	fnProto            ot.Protocol
	malEvent           int32
	malBatch           uint32
	prev, next         int32
	used               bool
}

// hostRef points at a host entry; gen detects that the slot was reused.
type hostRef struct {
	idx int32
	gen uint32
}

// lru is an intrusive doubly linked list over slice indices: head is the
// most recently seen entry, tail the eviction candidate.
type lru struct{ head, tail int32 }

func (l *lru) init() { l.head, l.tail = -1, -1 }

type linker interface {
	links(i int32) (prev, next *int32)
}

func lruUnlink(l *lru, t linker, i int32) {
	prev, next := t.links(i)
	if *prev >= 0 {
		_, pn := t.links(*prev)
		*pn = *next
	} else {
		l.head = *next
	}
	if *next >= 0 {
		np, _ := t.links(*next)
		*np = *prev
	} else {
		l.tail = *prev
	}
	*prev, *next = -1, -1
}

func lruPushFront(l *lru, t linker, i int32) {
	prev, next := t.links(i)
	*prev, *next = -1, l.head
	if l.head >= 0 {
		hp, _ := t.links(l.head)
		*hp = i
	}
	l.head = i
	if l.tail < 0 {
		l.tail = i
	}
}

// flowTable maps keys to flow entries, bounded by max; when full, the
// least recently seen flow is evicted.
type flowTable struct {
	idx     map[flowKey]int32
	flows   []flow
	free    []int32
	order   lru
	max     int
	evicted int64
}

func newFlowTable(max int) *flowTable {
	t := &flowTable{idx: make(map[flowKey]int32, min(max, 4096)), max: max}
	t.order.init()
	return t
}

func (t *flowTable) links(i int32) (*int32, *int32) { return &t.flows[i].prev, &t.flows[i].next }

func (t *flowTable) touch(i int32) {
	if t.order.head == i {
		return
	}
	lruUnlink(&t.order, t, i)
	lruPushFront(&t.order, t, i)
}

// insert adds k, evicting the least recently seen flow when the table is
// full; release is called for the evicted entry before its slot is reused.
func (t *flowTable) insert(k flowKey, release func(*flow)) int32 {
	var i int32
	switch {
	case len(t.free) > 0:
		i = t.free[len(t.free)-1]
		t.free = t.free[:len(t.free)-1]
	case len(t.flows) < t.max:
		t.flows = append(t.flows, flow{})
		i = int32(len(t.flows) - 1)
	default:
		i = t.order.tail
		t.remove(i, release)
		t.evicted++
		t.free = t.free[:len(t.free)-1]
	}
	f := &t.flows[i]
	*f = flow{key: k, used: true, prev: -1, next: -1, baseComm: -1, fnComm: -1, malEvent: -1}
	for w := range f.win {
		f.win[w] = -1 << 62
	}
	t.idx[k] = i
	lruPushFront(&t.order, t, i)
	return i
}

func (t *flowTable) remove(i int32, release func(*flow)) {
	f := &t.flows[i]
	if release != nil {
		release(f)
	}
	delete(t.idx, f.key)
	lruUnlink(&t.order, t, i)
	f.used = false
	t.free = append(t.free, i)
}

// expire removes flows last seen before cutoff, oldest first.
func (t *flowTable) expire(cutoff int64, release func(*flow)) {
	for t.order.tail >= 0 && t.flows[t.order.tail].last < cutoff {
		t.remove(t.order.tail, release)
	}
}

func (t *flowTable) len() int { return len(t.idx) }
