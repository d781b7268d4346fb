package ingest

import (
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Registry interns device and group names as dense int32 indices, so that
// baselines keep their state in slices indexed by the device_id and
// group_id columns instead of maps looked up per row. Indices are local to
// the process; state that leaves the process (checkpoints, changelogs) is
// keyed by name. It is safe for concurrent use.
//
// New devices of the input are admitted up to a limit (LimitDevices,
// detect.max_devices): past it a new name is refused and not kept, so a
// flood of forged device names cannot grow the registry, nor the state
// kept per id.
//
// With eviction (detect.when_full: evict_idle) the one goroutine that owns
// the per-device state (the engine) may evict a device (EvictDevice) and
// give its index to a new name (AdmitFreed): the only way an index is
// reused. Sources still refuse new names past the limit: the engine
// admits them from the rows' names. A row built before an eviction may
// still carry the evicted name's index; its consumer compares the row's
// name with the index's (DeviceName) when the index was reused after the
// row was built. ObservationBuilders drop evicted names from their
// caches (EvictedSince).
type Registry struct {
	mu         sync.RWMutex
	devices    nameIndex // device names (devName) by hash
	groups     map[string]int32
	devName    nameList // "" for a slot freed by EvictDevice
	grpName    nameList
	free       []int32 // slots freed by EvictDevice, for AdmitFreed
	maxDevices int     // AdmitDevice refuses new names at this many devices; 0: no limit
	evictIdle  bool    // past the limit the engine evicts: see LimitDevices

	// evictions counts EvictDevice calls; evicted holds the names of the
	// last len(evicted) of them, the one of eviction n at n%len(evicted).
	evictions atomic.Uint64
	evicted   []string
}

// EvictedDevice is a device evicted to make room for a new one
// (detect.when_full: evict_idle): its index and the name it had (the index
// may hold another device since).
type EvictedDevice struct {
	ID   int32
	Name string
}

// evictedLog is how many evicted names the registry remembers for
// ObservationBuilders to drop from their caches: a builder further behind
// forgets its whole cache (EvictedSince).
const evictedLog = 4096

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{groups: make(map[string]int32)}
}

// DeviceID returns the index of device name, assigning the next one if new,
// whatever the limit: it is for state restored by name (checkpoints,
// changelogs), whose devices were admitted when they were learned. Names
// read from the input go through AdmitDevice.
func (r *Registry) DeviceID(name string) int32 {
	h := hashName(name)
	r.mu.RLock()
	id, ok := r.findDevice(name, h)
	r.mu.RUnlock()
	if ok {
		return id
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if id, ok := r.findDevice(name, h); ok {
		return id
	}
	return r.addDevice(name, h)
}

// LimitDevices makes AdmitDevice refuse new names once n devices are
// interned; n <= 0 removes the limit. Names interned already keep their
// ids, so a limit below their number only stops new ones. evictIdle says
// that the names refused are not dropped but admitted by the engine in
// place of an evicted device (EvictDevice, AdmitFreed): a builder then
// keeps a refused row's group and set members (EvictsIdle).
func (r *Registry) LimitDevices(n int, evictIdle bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.maxDevices = max(n, 0)
	r.evictIdle = evictIdle && n > 0
}

// EvictsIdle reports whether new names refused past the limit are
// admitted later by evicting an idle device (LimitDevices).
func (r *Registry) EvictsIdle() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.evictIdle
}

// LookupDevice returns the index of device name, and false when the name
// is not interned; it interns nothing.
func (r *Registry) LookupDevice(name string) (int32, bool) {
	h := hashName(name)
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.findDevice(name, h)
}

// EvictDevice forgets the name interned as id and frees id for AdmitFreed.
// Only the goroutine that owns the state kept per id calls it, after
// dropping that state.
func (r *Registry) EvictDevice(id int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	name := *r.devName.at(id)
	if name == "" {
		return
	}
	r.devices.remove(name, hashName(name), r.devNameOf)
	*r.devName.at(id) = ""
	r.free = append(r.free, id)
	if r.evicted == nil {
		r.evicted = make([]string, evictedLog)
	}
	n := r.evictions.Load()
	r.evicted[n%evictedLog] = name
	r.evictions.Store(n + 1)
}

// AdmitFreed returns the index of device name, interning it in a slot
// EvictDevice freed, or in a new one when none is free, whatever the
// limit: the engine calls it after evicting to make room.
func (r *Registry) AdmitFreed(name string) int32 {
	h := hashName(name)
	r.mu.Lock()
	defer r.mu.Unlock()
	if id, ok := r.findDevice(name, h); ok {
		return id
	}
	if n := len(r.free); n > 0 {
		id := r.free[n-1]
		r.free = r.free[:n-1]
		// A copy of its own, not in the chunks: the slot may be evicted
		// again, and a chunk's bytes are never given back.
		*r.devName.at(id) = strings.Clone(name)
		r.devices.insert(h, id)
		return id
	}
	return r.addDevice(name, h)
}

// Evictions returns how many devices have been evicted: a builder compares
// it with the count it last synchronised at, one atomic load per row.
func (r *Registry) Evictions() uint64 { return r.evictions.Load() }

// EvictedSince calls drop with the name of every device evicted since
// eviction count from (Evictions), and returns the count it went up to.
// It returns false, calling drop for none, when the registry no longer
// remembers them all: the caller then forgets every name it caches.
func (r *Registry) EvictedSince(from uint64, drop func(name string)) (uint64, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	to := r.evictions.Load()
	if to-from > evictedLog {
		return to, false
	}
	for n := from; n < to; n++ {
		drop(r.evicted[n%evictedLog])
	}
	return to, true
}

// AdmitDevice returns the index of device name like DeviceID, unless the
// name is new and the registry already holds its limit of devices (see
// LimitDevices): then it returns -1 and false, and keeps nothing of the
// name. A refusal takes the read lock only.
func (r *Registry) AdmitDevice(name string) (int32, bool) {
	id, _, ok := r.admitDevice(name, hashName(name))
	return id, ok
}

// admitDevice is AdmitDevice for a name of hash h (hashName), which also
// returns the registry's stable copy of the name.
func (r *Registry) admitDevice(name string, h uint64) (int32, string, bool) {
	r.mu.RLock()
	id, ok := r.findDevice(name, h)
	full := r.maxDevices > 0 && r.devices.len() >= r.maxDevices
	var stable string
	if ok {
		stable = *r.devName.at(id)
	}
	r.mu.RUnlock()
	if ok {
		return id, stable, true
	}
	if full {
		return -1, "", false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if id, ok := r.findDevice(name, h); ok {
		return id, *r.devName.at(id), true
	}
	// Sources never take a freed slot: a batch in flight may still carry
	// its evicted name, and only the engine can tell (see Registry).
	if r.maxDevices > 0 && max(int(r.devName.n), r.devices.len()) >= r.maxDevices {
		return -1, "", false
	}
	id = r.addDevice(name, h)
	return id, *r.devName.at(id), true
}

// GroupID returns the index of group name, assigning the next one if new.
func (r *Registry) GroupID(name string) int32 {
	r.mu.RLock()
	id, ok := r.groups[name]
	r.mu.RUnlock()
	if ok {
		return id
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if id, ok := r.groups[name]; ok {
		return id
	}
	id = r.grpName.add(name)
	r.groups[*r.grpName.at(id)] = id
	return id
}

// DeviceName returns the name interned as id ("" for a slot EvictDevice
// freed).
func (r *Registry) DeviceName(id int32) string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return *r.devName.at(id)
}

// GroupName returns the name interned as id.
func (r *Registry) GroupName(id int32) string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return *r.grpName.at(id)
}

// NumDevices returns how many device names are interned (evicted ones
// not counted).
func (r *Registry) NumDevices() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.devices.len()
}

// DeviceSlots returns one more than the highest device index ever
// assigned: the length of slices indexed by device id.
func (r *Registry) DeviceSlots() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return int(r.devName.n)
}

// NumGroups returns how many group names have been interned.
func (r *Registry) NumGroups() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return int(r.grpName.n)
}

// findDevice returns the index of device name (hash h); r.mu is held.
func (r *Registry) findDevice(name string, h uint64) (int32, bool) {
	return r.devices.find(name, h, r.devNameOf)
}

// devNameOf returns the name of device index id; r.mu is held.
func (r *Registry) devNameOf(id int32) string { return *r.devName.at(id) }

// addDevice interns a device name (hash h) the registry does not hold;
// r.mu is held for writing.
func (r *Registry) addDevice(name string, h uint64) int32 {
	id := r.devName.add(name)
	r.devices.insert(h, id)
	return id
}

// nameList holds interned names by index, in pages: a fleet arriving
// device by device never has its names copied (nor the garbage collector
// their copies scanned). The names it copies are allocated in chunks, not
// an object each.
type nameList struct {
	t     DeviceTable[string]
	n     int32  // names held: the next index
	chunk []byte // the names copied last, with room for the next ones
}

// Names up to maxChunkedName bytes are copied into chunks of nameChunk
// bytes. The bytes of a name a slot no longer holds (an evicted device's)
// stay in their chunk: at most as many as the names add gave an index,
// which is never given back.
const (
	nameChunk      = 16 << 10
	maxChunkedName = 256
)

// add appends a copy of name and returns its index. Callers may pass a
// string that aliases a reused decode buffer; only the copy must be
// stable.
func (l *nameList) add(name string) int32 {
	id := l.n
	*l.t.At(id) = l.copyName(name)
	l.n++
	return id
}

// copyName returns a copy of name in the current chunk, or in a new one
// when it is full.
func (l *nameList) copyName(name string) string {
	switch {
	case name == "":
		return ""
	case len(name) > maxChunkedName:
		return strings.Clone(name)
	case len(name) > cap(l.chunk)-len(l.chunk):
		l.chunk = make([]byte, 0, nameChunk)
	}
	at := len(l.chunk)
	l.chunk = append(l.chunk, name...)
	return unsafe.String(&l.chunk[at], len(name))
}

// at returns the name of index id, which must be below n.
func (l *nameList) at(id int32) *string {
	if id < 0 || id >= l.n {
		panic("BUG: registry index out of range")
	}
	return l.t.At(id)
}
