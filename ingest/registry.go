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
type Registry struct {
	mu      sync.RWMutex
	devices map[string]int32
	groups  map[string]int32
	devName []string
	grpName []string
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{devices: make(map[string]int32), groups: make(map[string]int32)}
}

// DeviceID returns the index of device name, assigning the next one if new.
func (r *Registry) DeviceID(name string) int32 {
	return r.intern(r.devices, &r.devName, name)
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
	// Callers may pass a string that aliases a reused decode buffer; only
	// the copy kept here must be stable.
	name = strings.Clone(name)
	id = int32(len(*names))
	m[name] = id
	*names = append(*names, name)
	return id
}
