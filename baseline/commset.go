package baseline

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"
)

// Novelty is what CommSet.Observe found.
type Novelty uint8

const (
	// Known: the key was learned before.
	Known Novelty = iota
	// Learned: the key is new and the group is learning, so it was added.
	Learned
	// Novel: the key is new and the group is protecting, or the
	// communication is older than the baseline restored for the group:
	// report it. It is remembered, so it is reported once.
	Novel
)

// CommSet is a learned allowlist of keys per group: the communications
// (edges, protocols, ports, OT function codes) a group showed while it was
// learning. Keys are 64-bit hashes (HashString, HashUint64, HashCombine);
// at 64 bits a false "known" needs ~2^32 keys in one group.
//
// Each group learns from its own first key until the learning period in
// force then (LearnFor) has passed, or as set with SetLearning; the end of
// its learning is fixed when it starts, so a checkpoint carries it: a
// group restored after it finished learning protects whatever the new
// configuration's period, one restored while learning learns for the time
// it had left. A checkpoint also carries the newest event time each group
// saw; a communication older than that (an older capture replayed onto a
// restored baseline) is judged and never learned, and Admit counts it.
//
// Groups are indexed by registry group id. Observe allocates only when a
// key is new. It is not safe for concurrent use.
type CommSet struct {
	learnFor int64
	groups   []commGroup
	stale    int64 // communications Admit refused to learn
}

type commGroup struct {
	started bool
	first   int64 // event time of the group's first key
	// until is the event time learning ends at, fixed when the group
	// starts; hasUntil is false for a group restored from a checkpoint
	// older than the field, which learns for the period in force.
	until    int64
	hasUntil bool
	last     int64 // newest event time observed (not counting older communications)
	floor    int64 // newest event time of the checkpoint restored: older communications are not learned
	forced   int8  // 0: by time; 1: learning; -1: protecting
	keys     map[uint64]struct{}
}

// NewCommSet returns an empty set whose groups learn for learnFor of event
// time after their first key.
func NewCommSet(learnFor time.Duration) *CommSet { return &CommSet{learnFor: int64(learnFor)} }

func (c *CommSet) group(g int32) *commGroup {
	if g < 0 {
		panic("BUG: CommSet with a negative group id")
	}
	for int(g) >= len(c.groups) {
		c.groups = append(c.groups, commGroup{})
	}
	cg := &c.groups[g]
	if cg.keys == nil {
		cg.keys = make(map[uint64]struct{})
	}
	return cg
}

// Observe checks key in group at event time tNanos, learning it while the
// group learns. The group's learning starts with its first key. A key of
// a communication older than the baseline restored for the group (see
// Older) is never learned: unknown, it is Novel.
func (c *CommSet) Observe(group int32, key uint64, tNanos int64) Novelty {
	cg := c.group(group)
	older := tNanos < cg.floor
	if !older {
		if !cg.started {
			cg.started, cg.first = true, tNanos
			cg.until, cg.hasUntil = addSat(tNanos, c.learnFor), true
		}
		cg.last = max(cg.last, tNanos)
	}
	if _, ok := cg.keys[key]; ok {
		return Known
	}
	cg.keys[key] = struct{}{}
	if !older && cg.learningAt(tNanos, c.learnFor) {
		return Learned
	}
	return Novel
}

// addSat returns a+b for b >= 0, saturating at the largest int64 (a
// corrupt timestamp must not wrap learning into the past).
func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// Older reports whether event time tNanos is before the newest event time
// of the checkpoint group was restored from: such a communication belongs
// to an older capture than the baseline and is judged, never learned.
func (c *CommSet) Older(group int32, tNanos int64) bool {
	if group < 0 || int(group) >= len(c.groups) {
		return false
	}
	return tNanos < c.groups[group].floor
}

// Admit reports whether a communication of group at event time tNanos may
// be learned: one that is Older is not, and is counted in Stale. Call it
// once per communication, before observing its keys.
func (c *CommSet) Admit(group int32, tNanos int64) bool {
	if c.Older(group, tNanos) {
		c.stale++
		return false
	}
	return true
}

// Stale returns how many communications Admit refused to learn because
// they were older than the baseline restored for their group: non-zero
// means an older capture was replayed onto a newer baseline.
func (c *CommSet) Stale() int64 { return c.stale }

// Contains reports whether key was learned (or reported) in group.
func (c *CommSet) Contains(group int32, key uint64) bool {
	if group < 0 || int(group) >= len(c.groups) {
		return false
	}
	_, ok := c.groups[group].keys[key]
	return ok
}

// Learning reports whether group is learning at event time tNanos. A
// group not seen yet is learning: its period starts with its first key.
func (c *CommSet) Learning(group int32, tNanos int64) bool {
	if group < 0 || int(group) >= len(c.groups) {
		return true
	}
	return c.groups[group].learningAt(tNanos, c.learnFor)
}

func (cg *commGroup) learningAt(t, learnFor int64) bool {
	switch cg.forced {
	case 1:
		return true
	case -1:
		return false
	}
	return !cg.started || t < cg.end(learnFor)
}

// end returns the event time the group's learning ends at.
func (cg *commGroup) end(learnFor int64) int64 {
	if cg.hasUntil {
		return cg.until
	}
	return addSat(cg.first, learnFor)
}

// AnyProtecting reports whether some group that has started is protecting
// at event time tNanos: whether the network has a learned past to compare
// with. It walks every group; callers keep a true answer.
func (c *CommSet) AnyProtecting(tNanos int64) bool {
	for g := range c.groups {
		if cg := &c.groups[g]; cg.started && !cg.learningAt(tNanos, c.learnFor) {
			return true
		}
	}
	return false
}

// Started returns how many groups have started (learned or judged a
// communication).
func (c *CommSet) Started() int {
	n := 0
	for g := range c.groups {
		if c.groups[g].started {
			n++
		}
	}
	return n
}

// GroupLearning is a group still learning and when it stops.
type GroupLearning struct {
	Group int32 // registry group id
	Until int64 // event time (ns) learning ends; math.MaxInt64 while forced by SetLearning
}

// LearningUntil lists, in group id order, the groups that have started and
// are still learning at event time tNanos, with the time each stops: the
// replay summary prints them.
func (c *CommSet) LearningUntil(tNanos int64) []GroupLearning {
	var out []GroupLearning
	for g := range c.groups {
		cg := &c.groups[g]
		if !cg.started || !cg.learningAt(tNanos, c.learnFor) {
			continue
		}
		until := int64(math.MaxInt64)
		if cg.forced == 0 {
			until = cg.end(c.learnFor)
		}
		out = append(out, GroupLearning{Group: int32(g), Until: until})
	}
	return out
}

// SetLearning forces group into learning (true) or protecting (false),
// overriding the time rule; an operator uses it to relearn after a planned
// change.
func (c *CommSet) SetLearning(group int32, learning bool) {
	cg := c.group(group)
	cg.forced = -1
	if learning {
		cg.forced = 1
	}
}

// Len returns how many keys group has learned.
func (c *CommSet) Len(group int32) int {
	if group < 0 || int(group) >= len(c.groups) {
		return 0
	}
	return len(c.groups[group].keys)
}

// Encodings of a group: commMagic is written; commMagicV1 (no end of
// learning, no newest time) is still read.
const (
	commMagic   = "VBC2"
	commMagicV1 = "VBC1"

	commStarted  = 1 << 0
	commHasUntil = 1 << 1
)

// AppendGroup appends group's encoding: mode, first time, end of learning,
// newest time and the keys in ascending order (the same set always gives
// the same bytes).
func (c *CommSet) AppendGroup(dst []byte, group int32) []byte {
	dst = append(dst, commMagic...)
	var cg commGroup
	if group >= 0 && int(group) < len(c.groups) {
		cg = c.groups[group]
	}
	flags := byte(0)
	if cg.started {
		flags |= commStarted
	}
	if cg.hasUntil {
		flags |= commHasUntil
	}
	dst = append(dst, flags, byte(cg.forced))
	dst = binary.AppendVarint(dst, cg.first)
	dst = binary.AppendVarint(dst, cg.until)
	dst = binary.AppendVarint(dst, max(cg.last, cg.floor))
	dst = binary.AppendUvarint(dst, uint64(len(cg.keys)))
	keys := make([]uint64, 0, len(cg.keys))
	for k := range cg.keys {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		dst = binary.LittleEndian.AppendUint64(dst, k)
	}
	return dst
}

// MergeGroup folds an encoding made by AppendGroup (of this version or
// the previous, VBC1) into group: the keys are united, the earlier first
// time and end of learning kept, and the newer newest time becomes the
// group's floor: older communications are not learned. Nothing changes on
// error.
func (c *CommSet) MergeGroup(group int32, data []byte) error {
	d := decoder{b: data}
	v1 := len(data) >= len(commMagicV1) && string(data[:len(commMagicV1)]) == commMagicV1
	if v1 {
		d.magic(commMagicV1)
	} else {
		d.magic(commMagic)
	}
	flags := d.byte1("flags")
	forced := int8(d.byte1("mode"))
	known := byte(commStarted | commHasUntil)
	if v1 {
		known = commStarted
	}
	if flags&^known != 0 || forced < -1 || forced > 1 {
		d.fail("unknown flags %#x or mode %d", flags, forced)
	}
	first := d.varint("first event time")
	var until, last int64
	if !v1 {
		until = d.varint("end of learning")
		last = d.varint("newest event time")
	}
	n := d.count("number of keys", 8)
	keys := d.take(n*8, "keys")
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return fmt.Errorf("cannot decode communication set: %w; the record is corrupt or from another version", d.err)
	}
	cg := c.group(group)
	if flags&commStarted != 0 {
		if !cg.started || first < cg.first {
			cg.first = first
		}
		hasUntil := flags&commHasUntil != 0
		switch {
		case !cg.started:
			cg.until, cg.hasUntil = until, hasUntil
		case hasUntil && (!cg.hasUntil || until < cg.until):
			cg.until, cg.hasUntil = until, true
		}
		cg.started = true
	}
	cg.last = max(cg.last, last)
	cg.floor = max(cg.floor, last)
	if cg.forced == 0 {
		cg.forced = forced
	}
	for i := 0; i < n; i++ {
		cg.keys[binary.LittleEndian.Uint64(keys[8*i:])] = struct{}{}
	}
	return nil
}
