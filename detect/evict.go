package detect

import (
	"fmt"
	"strconv"

	"github.com/apache/arrow/go/v15/arrow/array"

	"github.com/vigil-ot/vigil/ingest"
)

// detect.when_full: evict_idle. Past max_devices the sources refuse new
// devices as with refuse, but their rows keep their names (device_id -1):
// the engine admits such a device by evicting the device idle the longest
// and giving the new one its index (Registry.EvictDevice, AdmitFreed).
//
// What is evicted: a device without an open alarm and without a
// quarantine or recommendation in progress, so that an alarm stays open
// and guarded (its device does not learn) until it clears and a
// quarantine until its release, however many new names a flood brings;
// among those, the one whose last row is the oldest in event time. A
// silence alarm alone does not hold a device: a device gone for good is
// what eviction is for. That alarm is cleared as the device is evicted,
// saying so, so the SIEM's alarm is not left open for a device no longer
// judged. When the maxEvictionSkips longest idle devices all hold one,
// the new device is refused as with refuse (counted in DeviceCapRows),
// and they go to the back of the queue. An evicted device leaves nothing
// behind: its baseline, alarm states, level-shift charts, silence
// deadline, identity history, rollout state, status and recent values
// are dropped, so a device that returns starts as new, learning from its
// group. Checkpoints then hold none of it, and the Kafka consumer
// tombstones it in its partition's changelog (Evicted). A restore may
// bring more devices than max_devices: the next new device evicts the
// longest idle down to the cap.
//
// Cost: each device has an entry in a min-heap keyed by an event time no
// later than its last row's, updated lazily: a row costs nothing, and an
// eviction pops the oldest entry, pushing it back with its device's real
// last time when it has reported since. Each row makes at most one entry
// stale, so an eviction costs O(log n) amortized over the rows; but the
// first eviction after a stable period pays for every device that
// reported since at once (BenchmarkFirstEvictionAfterStablePeriod).
//
// Ids reused: rows in flight (a decoder's cache, a batch queued) may still
// carry an evicted device's index. Slots the engine reassigned are marked
// (evictor.slots), and a row naming one is checked against the name the
// slot holds now and admitted by its name when it differs.
type evictor struct {
	idle  []idleEntry // a min-heap by key
	known int         // device slots below this have entries in idle
	// slots marks, by device id, the slots the engine freed at least once,
	// with the name it gave the slot since ("" while free).
	slots []evictSlot
	// member is, by device id, the device's index in its group's members,
	// so that an eviction takes it out in O(1) (Engine.leaveMembers).
	member  []int32
	evicted []ingest.EvictedDevice // since the last Evicted call
}

type idleEntry struct {
	key int64 // event time no later than the device's last row
	d   int32
}

type evictSlot struct {
	reused bool
	name   string // the registry's copy
}

// maxEvictionSkips bounds the devices with an open alarm or quarantine an
// eviction passes over before it gives up and refuses the new device.
const maxEvictionSkips = 64

// reused reports whether the engine ever freed slot d: a row naming it
// may have been built before, for the device evicted, and is checked by
// name (resolveDevice).
func (ev *evictor) reused(d int32) bool {
	return int(d) < len(ev.slots) && ev.slots[d].reused
}

func (ev *evictor) setMember(d int32, i int) {
	for int(d) >= len(ev.member) {
		ev.member = append(ev.member, 0)
	}
	ev.member[d] = int32(i)
}

func (ev *evictor) push(d int32, key int64) {
	h := append(ev.idle, idleEntry{key, d})
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if h[p].key <= h[i].key {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
	ev.idle = h
}

func (ev *evictor) pop() {
	h := ev.idle
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	for i := 0; ; {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && h[c+1].key < h[c].key {
			c++
		}
		if h[i].key <= h[c].key {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	ev.idle = h
}

// resolveDevice returns the device id of row i, whose column says d: d
// itself, unless d is -1 (a device the sources did not admit) or a slot
// reassigned to another name since the row was built. Then it looks the
// row's device up by name and, for a new device, evicts to admit it; -1
// when no device may be evicted. It writes the id into the row's
// device_id column (the engine owns the record), which the baseline's
// frame reads too.
func (e *Engine) resolveDevice(b *ingest.Batch, i int, d int32, t int64) int32 {
	ev := e.evict
	e.row = i                                           // alerts of an eviction carry the row's position
	name := b.Record.Column(1).(*array.String).Value(i) // checked by bindColumns
	if d >= 0 && ev.slots[d].name == name && name != "" {
		return d
	}
	id, ok := e.reg.LookupDevice(name)
	if !ok {
		id = e.admitDevice(name, t)
	}
	e.cols.dev[i] = id
	return id
}

// admitDevice evicts devices until there is room for one more under
// max_devices (one, unless a restore brought more) and interns name in
// the slot freed; -1 when no device may be evicted.
func (e *Engine) admitDevice(name string, t int64) int32 {
	for e.reg.NumDevices() >= e.cfg.MaxDevices {
		v := e.idlest(t)
		if v < 0 {
			return -1
		}
		e.evictDevice(v, t)
	}
	id := e.reg.AdmitFreed(name)
	e.deps.Baseline.ResetDevice(id) // nothing of the id's previous device is left
	ev := e.evict
	for int(id) >= len(ev.slots) {
		ev.slots = append(ev.slots, evictSlot{})
	}
	ev.slots[id] = evictSlot{reused: true, name: e.reg.DeviceName(id)}
	ev.push(id, t)
	return id
}

// lastSeen is the event time of device d's last row, as the engine or a
// restored baseline knows it.
func (e *Engine) lastSeen(d int32) int64 {
	t := e.deps.Baseline.DeviceLast(d)
	if ds := e.knownState(d); ds != nil {
		t = max(t, ds.last)
	}
	return t
}

// evictable reports whether device d has no open alarm but silence and
// no quarantine or recommendation in progress.
func (e *Engine) evictable(d int32) bool {
	ds := e.devices.Get(d)
	if ds == nil {
		return true
	}
	silent := int32(0)
	if ds.sil.alarm.active() {
		silent = 1
	}
	return ds.alarms == silent && ds.q == nil
}

// idlest returns the evictable device idle the longest, or -1 when the
// maxEvictionSkips longest idle are not evictable; t is the event time of
// the row that needs the room.
func (e *Engine) idlest(t int64) int32 {
	ev := e.evict
	if n := e.reg.DeviceSlots(); ev.known < n {
		// Devices the sources admitted (or a restore brought) since.
		for d := ev.known; d < n; d++ {
			if !ev.reused(int32(d)) { // the engine's own admissions have entries
				ev.push(int32(d), e.lastSeen(int32(d)))
			}
		}
		ev.known = n
	}
	skipped := 0
	for len(ev.idle) > 0 {
		top := ev.idle[0]
		d := top.d
		ev.pop()
		if ev.reused(d) && ev.slots[d].name == "" {
			continue // freed, and its entry with it
		}
		if last := e.lastSeen(d); last > top.key {
			ev.push(d, last) // reported since: back in its place
			continue
		}
		if !e.evictable(d) {
			ev.push(d, max(t, top.key)) // to the back of the queue
			if skipped++; skipped >= maxEvictionSkips {
				return -1
			}
			continue
		}
		return d
	}
	return -1
}

// evictDevice drops everything kept about device d and frees its id; t is
// the event time of the row that needs the room.
func (e *Engine) evictDevice(d int32, t int64) {
	name := e.reg.DeviceName(d)
	if ds := e.knownState(d); ds != nil {
		if ds.sil.alarm.active() {
			a := e.newAlert(DetectorSilence, behaviorSilence, d, ds.group, t)
			a.Technique = TechniqueDenialOfView
			a.Message = who(a.Device, a.Group) + " is no longer judged: silent since " + timeText(ds.last) +
				", it was evicted to make room for a new device (detect.max_devices " + strconv.Itoa(e.cfg.MaxDevices) +
				", when_full evict_idle); if it reports again it is judged as a new device"
			e.clear(a, &ds.sil.alarm, d)
		}
		if id := ds.ident; id != nil && id.certIdx >= 0 {
			e.certs[id.certIdx].forget(d)
		}
		e.dropDevice(d, ds, true)
	}
	for slot := range e.shift {
		if c := e.knownShift(slot, d); c != nil {
			*c = shiftState{}
		}
	}
	if e.roll != nil && int(d) < len(e.roll.dev) {
		e.roll.dev[d] = rolloutDevice{}
	}
	if e.status != nil {
		e.status.forget(name)
	}
	if e.recent != nil {
		e.recent.forget(d)
	}
	e.deps.Baseline.ResetDevice(d)
	e.reg.EvictDevice(d)
	ev := e.evict
	for int(d) >= len(ev.slots) {
		ev.slots = append(ev.slots, evictSlot{})
	}
	ev.slots[d] = evictSlot{reused: true}
	ev.evicted = append(ev.evicted, ingest.EvictedDevice{ID: d, Name: name})
	e.stats.DevicesEvicted++
}

// Evicted appends to dst the devices evicted since the previous call
// (detect.when_full: evict_idle), oldest first, and forgets them: the
// Kafka consumer drops them from its partitions' state and writes their
// changelog tombstones. Engine goroutine only.
func (e *Engine) Evicted(dst []ingest.EvictedDevice) []ingest.EvictedDevice {
	if e.evict == nil {
		return dst
	}
	dst = append(dst, e.evict.evicted...)
	e.evict.evicted = e.evict.evicted[:0]
	return dst
}

// refuseDetail explains a row refused past max_devices.
func (e *Engine) refuseDetail(name string) string {
	if e.evict != nil {
		return fmt.Sprintf("device %q is new, detect.max_devices (%d) devices are tracked already and the %d idle the longest have open alarms or quarantines",
			name, e.cfg.MaxDevices, maxEvictionSkips)
	}
	return fmt.Sprintf("device %q is new and detect.max_devices (%d) devices are tracked already", name, e.cfg.MaxDevices)
}

// forget drops device d from the certificate's table.
func (c *certState) forget(d int32) {
	for k := range c.devs {
		if c.devs[k] == d {
			c.devs[k], c.seen[k] = 0, 0
		}
	}
}
