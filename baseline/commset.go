package baseline

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Novelty is what CommSet.Observe found.
type Novelty uint8

const (
	// Known: the key was learned before.
	Known Novelty = iota
	// Learned: the key is new and the group is learning, so it was added.
	Learned
	// Novel: the key is new and the group is protecting: report it. It is
	// remembered, so it is reported once.
	Novel
)

// CommSet is a learned allowlist of keys per group: the communications
// (edges, protocols, ports, OT function codes) a group showed while it was
// learning. Keys are 64-bit hashes (HashString, HashUint64, HashCombine);
// at 64 bits a false "known" needs ~2^32 keys in one group. A group is
// learning from its first key until LearnFor of event time has passed, or
// as set with SetLearning. Groups are indexed by registry group id.
// Observe allocates only when a key is new. It is not safe for concurrent
// use.
type CommSet struct {
	learnFor int64
	groups   []commGroup
}

type commGroup struct {
	started bool
	first   int64
	forced  int8 // 0: by time; 1: learning; -1: protecting
	keys    map[uint64]struct{}
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
// group learns.
func (c *CommSet) Observe(group int32, key uint64, tNanos int64) Novelty {
	cg := c.group(group)
	if !cg.started {
		cg.started, cg.first = true, tNanos
	}
	if _, ok := cg.keys[key]; ok {
		return Known
	}
	cg.keys[key] = struct{}{}
	if cg.learningAt(tNanos, c.learnFor) {
		return Learned
	}
	return Novel
}

// Contains reports whether key was learned (or reported) in group.
func (c *CommSet) Contains(group int32, key uint64) bool {
	if group < 0 || int(group) >= len(c.groups) {
		return false
	}
	_, ok := c.groups[group].keys[key]
	return ok
}

// Learning reports whether group is learning at event time tNanos.
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
	return !cg.started || t-cg.first < learnFor
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

// AppendGroup appends group's encoding: mode, first time and keys.
func (c *CommSet) AppendGroup(dst []byte, group int32) []byte {
	dst = append(dst, "VBC1"...)
	var cg commGroup
	if group >= 0 && int(group) < len(c.groups) {
		cg = c.groups[group]
	}
	flags := byte(0)
	if cg.started {
		flags |= 1
	}
	dst = append(dst, flags, byte(cg.forced))
	dst = binary.AppendVarint(dst, cg.first)
	dst = binary.AppendUvarint(dst, uint64(len(cg.keys)))
	for k := range cg.keys {
		dst = binary.LittleEndian.AppendUint64(dst, k)
	}
	return dst
}

// MergeGroup folds an encoding made by AppendGroup into group: the keys
// are united, the earlier first time kept. Nothing changes on error.
func (c *CommSet) MergeGroup(group int32, data []byte) error {
	d := decoder{b: data}
	d.magic("VBC1")
	flags := d.byte1("flags")
	forced := int8(d.byte1("mode"))
	if flags&^1 != 0 || forced < -1 || forced > 1 {
		d.fail("unknown flags %#x or mode %d", flags, forced)
	}
	first := d.varint("first event time")
	n := d.count("number of keys", 8)
	keys := d.take(n*8, "keys")
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return fmt.Errorf("cannot decode communication set: %w; the record is corrupt or from another version", d.err)
	}
	cg := c.group(group)
	if flags&1 != 0 {
		if !cg.started || first < cg.first {
			cg.first = first
		}
		cg.started = true
	}
	if cg.forced == 0 {
		cg.forced = forced
	}
	for i := 0; i < n; i++ {
		cg.keys[binary.LittleEndian.Uint64(keys[8*i:])] = struct{}{}
	}
	return nil
}
