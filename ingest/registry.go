package ingest

import (
	"strings"
	"sync"
)

// Registry interns device and group names as dense int32 indices, so that
// baselines keep their state in slices indexed by the device_id and
// group_id columns instead of maps looked up per row. Indices are local to
// the process and never reused; state that leaves the process (checkpoints,
// changelogs) is keyed by name. It is safe for concurrent use.
//
// New devices of the input are admitted up to a limit (LimitDevices,
// detect.max_devices): past it a new name is refused and not kept, so a
// flood of forged device names cannot grow the registry, nor the state
// kept per id.
type Registry struct {
	mu         sync.RWMutex
	devices    map[string]int32
	groups     map[string]int32
	devName    []string
	grpName    []string
	maxDevices int // AdmitDevice refuses new names at this many devices; 0: no limit
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{devices: make(map[string]int32), groups: make(map[string]int32)}
}

// DeviceID returns the index of device name, assigning the next one if new,
// whatever the limit: it is for state restored by name (checkpoints,
// changelogs), whose devices were admitted when they were learned. Names
// read from the input go through AdmitDevice.
func (r *Registry) DeviceID(name string) int32 {
	return r.intern(r.devices, &r.devName, name)
}

// LimitDevices makes AdmitDevice refuse new names once n devices are
// interned; n <= 0 removes the limit. Names interned already keep their
// ids, so a limit below their number only stops new ones.
func (r *Registry) LimitDevices(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.maxDevices = max(n, 0)
}

// AdmitDevice returns the index of device name like DeviceID, unless the
// name is new and the registry already holds its limit of devices (see
// LimitDevices): then it returns -1 and false, and keeps nothing of the
// name. A refusal takes the read lock only.
func (r *Registry) AdmitDevice(name string) (int32, bool) {
	r.mu.RLock()
	id, ok := r.devices[name]
	full := r.maxDevices > 0 && len(r.devName) >= r.maxDevices
	r.mu.RUnlock()
	if ok {
		return id, true
	}
	if full {
		return -1, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if id, ok := r.devices[name]; ok {
		return id, true
	}
	if r.maxDevices > 0 && len(r.devName) >= r.maxDevices {
		return -1, false
	}
	return r.add(r.devices, &r.devName, name), true
}

// GroupID returns the index of group name, assigning the next one if new.
func (r *Registry) GroupID(name string) int32 {
	return r.intern(r.groups, &r.grpName, name)
}

// DeviceName returns the name interned as id.
func (r *Registry) DeviceName(id int32) string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.devName[id]
}

// GroupName returns the name interned as id.
func (r *Registry) GroupName(id int32) string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.grpName[id]
}

// NumDevices returns how many device names have been interned.
func (r *Registry) NumDevices() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.devName)
}

// NumGroups returns how many group names have been interned.
func (r *Registry) NumGroups() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.grpName)
}

func (r *Registry) intern(m map[string]int32, names *[]string, name string) int32 {
	r.mu.RLock()
	id, ok := m[name]
	r.mu.RUnlock()
	if ok {
		return id
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if id, ok := m[name]; ok {
		return id
	}
	return r.add(m, names, name)
}

// add interns a name m does not hold; r.mu is held for writing.
func (r *Registry) add(m map[string]int32, names *[]string, name string) int32 {
	// Callers may pass a string that aliases a reused decode buffer; only
	// the copy kept here must be stable.
	name = strings.Clone(name)
	id := int32(len(*names))
	m[name] = id
	*names = append(*names, name)
	return id
}
