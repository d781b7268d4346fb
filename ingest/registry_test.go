package ingest

import (
	"fmt"
	"sync"
	"testing"
	"unsafe"

	"github.com/apache/arrow/go/v15/arrow/array"
)

// TestRegistryConcurrent interns overlapping names from several goroutines
// while others read names back: every name gets one id, ids are dense and
// DeviceName inverts DeviceID.
func TestRegistryConcurrent(t *testing.T) {
	r := NewRegistry()
	const workers, names = 4, 3000
	ids := make([][]int32, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 16)
			for i := 0; i < names; i++ {
				n := (i*7 + w*13) % names
				buf = fmt.Appendf(buf[:0], "dev-%d", n)
				// An aliased, reused buffer, as decoders pass.
				id := r.DeviceID(string(buf))
				if got := r.DeviceName(id); got != fmt.Sprintf("dev-%d", n) {
					t.Errorf("DeviceName(%d) = %q, want dev-%d", id, got, n)
					return
				}
				ids[w] = append(ids[w], id)
			}
		}()
	}
	wg.Wait()
	if r.NumDevices() != names {
		t.Fatalf("%d devices, want %d", r.NumDevices(), names)
	}
	seen := make(map[int32]string)
	for i := 0; i < names; i++ {
		id := r.DeviceID(fmt.Sprintf("dev-%d", i))
		if id < 0 || id >= names {
			t.Fatalf("id %d not dense", id)
		}
		if prev, dup := seen[id]; dup {
			t.Fatalf("id %d for dev-%d and %s", id, i, prev)
		}
		seen[id] = fmt.Sprint(i)
	}
	if r.NumGroups() != 0 || r.GroupID("g") != 0 || r.GroupName(0) != "g" || r.NumGroups() != 1 {
		t.Fatal("groups are not independent of devices")
	}
}

func TestRegistryAliasedName(t *testing.T) {
	r := NewRegistry()
	buf := []byte("plc-1")
	id := r.DeviceID(unsafe.String(&buf[0], len(buf))) // as decoders alias their buffers
	copy(buf, "zzzzz")
	if r.DeviceName(id) != "plc-1" || r.DeviceID("plc-1") != id {
		t.Fatal("registry kept the caller's memory")
	}
}

// TestRegistryDeviceLimit: past LimitDevices, AdmitDevice refuses new
// names from any number of goroutines and keeps nothing of them; known
// names and DeviceID (state restored by name) are not limited.
func TestRegistryDeviceLimit(t *testing.T) {
	r := NewRegistry()
	r.DeviceID("restored")
	r.LimitDevices(10, false)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				name := fmt.Sprintf("dev-%d", (i*7+w*13)%1000)
				id, ok := r.AdmitDevice(name)
				if ok != (id >= 0) || ok && r.DeviceName(id) != name {
					t.Errorf("AdmitDevice(%q) = %d, %v", name, id, ok)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := r.NumDevices(); n != 10 {
		t.Fatalf("%d devices interned under a limit of 10", n)
	}
	if id, ok := r.AdmitDevice("restored"); !ok || id != 0 {
		t.Errorf("a known device was refused: %d, %v", id, ok)
	}
	if id := r.DeviceID("restored-too"); id != 10 || r.NumDevices() != 11 {
		t.Errorf("DeviceID is limited: id %d, %d devices", id, r.NumDevices())
	}
	r.LimitDevices(0, false)
	if _, ok := r.AdmitDevice("after"); !ok {
		t.Error("LimitDevices(0) left a limit")
	}
}

// TestBuilderRefusedDevice: a row of a device the registry refuses is
// built with device_id and group_id -1, no group and no set members, its
// position kept; the builder does not remember the name either.
func TestBuilderRefusedDevice(t *testing.T) {
	reg := NewRegistry()
	reg.LimitDevices(1, false)
	b := NewObservationBuilder(nil, reg, fixedGrouper{})
	for i, name := range []string{"plc-1", "forged-1", "plc-1", "forged-2"} {
		b.Append(&Row{TimeNanos: int64(i), Device: name, Partition: 2, Offset: int64(100 + i),
			Metrics: []Metric{{Name: "temp", Value: 1}}, Sets: []SetMember{{Set: "ports", Value: "502"}}})
	}
	rec, sets := b.NewRecord()
	defer rec.Release()
	devID := rec.Column(2).(*array.Int32).Int32Values()
	grpID := rec.Column(4).(*array.Int32).Int32Values()
	group := rec.Column(3).(*array.String)
	if fmt.Sprint(devID) != "[0 -1 0 -1]" || fmt.Sprint(grpID) != "[0 -1 0 -1]" || group.Value(1) != "" || group.Value(0) != "plant-a/s7-1500" {
		t.Errorf("device_id %v, group_id %v, group of a refused row %q", devID, grpID, group.Value(1))
	}
	if off := rec.Column(6).(*array.Int64).Int64Values(); off[3] != 103 || rec.Column(1).(*array.String).Value(3) != "forged-2" {
		t.Errorf("a refused row lost its position or name: offset %d", off[3])
	}
	if len(sets) != 2 || sets[0].Row != 0 || sets[1].Row != 2 {
		t.Errorf("set members %+v, want only the tracked device's rows 0 and 2", sets)
	}
	if reg.NumDevices() != 1 || b.devices.len() != 1 {
		t.Errorf("%d devices interned, %d remembered by the builder; want 1 and 1", reg.NumDevices(), b.devices.len())
	}
}

// TestRegistryEvict: an evicted device's name is forgotten and its index
// goes to the next name the engine admits (AdmitFreed), never to a
// source's (AdmitDevice refuses past the limit); builders drop evicted
// names from their caches, so the evicted device's next row is not built
// under its old index; a row refused with eviction keeps its group and
// set members for the engine.
func TestRegistryEvict(t *testing.T) {
	reg := NewRegistry()
	reg.LimitDevices(2, true)
	b := NewObservationBuilder(nil, reg, fixedGrouper{})
	row := func(name string) {
		b.Append(&Row{Device: name, Metrics: []Metric{{Name: "temp", Value: 1}}, Sets: []SetMember{{Set: "ports", Value: "502"}}})
	}
	row("plc-1")
	row("plc-2")
	row("plc-3")
	reg.EvictDevice(0)
	if _, ok := reg.LookupDevice("plc-1"); ok || reg.DeviceName(0) != "" || reg.NumDevices() != 1 {
		t.Fatalf("plc-1 evicted: still known %v, slot name %q, %d devices", ok, reg.DeviceName(0), reg.NumDevices())
	}
	if id, ok := reg.AdmitDevice("plc-4"); ok || id != -1 {
		t.Errorf("a source took a freed slot: %d, %v", id, ok)
	}
	if id := reg.AdmitFreed("plc-3"); id != 0 || reg.DeviceName(0) != "plc-3" || reg.NumDevices() != 2 {
		t.Errorf("AdmitFreed gave index %d (name %q), want 0", id, reg.DeviceName(0))
	}
	row("plc-1") // evicted: not under index 0, which is plc-3's now
	row("plc-3")
	rec, sets := b.NewRecord()
	defer rec.Release()
	devID := rec.Column(2).(*array.Int32).Int32Values()
	grpID := rec.Column(4).(*array.Int32).Int32Values()
	if fmt.Sprint(devID) != "[0 1 -1 -1 0]" || fmt.Sprint(grpID) != "[0 0 0 0 0]" || len(sets) != 5 {
		t.Errorf("device_id %v, group_id %v, %d set members; want [0 1 -1 -1 0], groups all 0 and 5 members", devID, grpID, len(sets))
	}
	if n, ok := reg.EvictedSince(0, func(string) {}); n != 1 || !ok {
		t.Errorf("EvictedSince(0) = %d, %v", n, ok)
	}
	for i := range evictedLog + 1 {
		reg.EvictDevice(reg.AdmitFreed(fmt.Sprintf("churn-%d", i)))
	}
	if _, ok := reg.EvictedSince(1, func(string) {}); ok {
		t.Error("EvictedSince reported names it no longer remembers")
	}
}

// TestBuilderNewDeviceAllocs: a device new to the builder and the
// registry costs no heap object of its own, also when its group is
// cached by attributes (a generation grouper): the builder's cache lives
// in pages and pointer-free tables, and the registry copies names into
// chunks, where a map of names to entries cost an entry, an attrs copy,
// the map's growth and a copy of the name.
func TestBuilderNewDeviceAllocs(t *testing.T) {
	const devices = 20000
	names := make([]string, devices)
	for i := range names {
		names[i] = fmt.Sprintf("plc-%06d", i)
	}
	b := NewObservationBuilder(nil, NewRegistry(), siteGenGrouper{})
	row := Row{Attrs: []Attr{{"site", "a"}}, Metrics: []Metric{{Name: "temp", Value: 1}}}
	b.Append(&row) // the grouper's answer, the metric's column
	i := 0
	allocs := testing.AllocsPerRun(devices-1, func() {
		row.Device = names[i]
		i++
		b.Append(&row)
	})
	if allocs > 0.05 {
		t.Errorf("%.2f allocations per new device, want a share of the pages' and chunks'", allocs)
	}
}

// siteGenGrouper groups by the site attribute, without allocating, and
// has generations.
type siteGenGrouper struct{}

func (siteGenGrouper) Group(_ string, attrs []Attr) string { return attrs[0].Value }
func (siteGenGrouper) GroupGeneration() uint64             { return 1 }

// TestRegistryNameCopies: the registry keeps its own copies of names
// passed in a buffer the caller then overwrites, short ones (copied into
// chunks, across a chunk's end), long ones (copied alone) and the empty
// one alike.
func TestRegistryNameCopies(t *testing.T) {
	r := NewRegistry()
	var want []string
	buf := make([]byte, 0, 2*maxChunkedName)
	for i := range 3 * nameChunk / 20 {
		name := fmt.Sprintf("plc-%0*d", 4+i%20, i)
		switch i {
		case 7:
			name = ""
		case 11:
			name = fmt.Sprintf("%0*d", maxChunkedName+1, i)
		}
		buf = append(buf[:0], name...)
		if id := r.DeviceID(unsafe.String(unsafe.SliceData(buf), len(buf))); id != int32(i) {
			t.Fatalf("DeviceID(%q) = %d, want %d", name, id, i)
		}
		clear(buf[:cap(buf)])
		want = append(want, name)
	}
	for i, name := range want {
		if got := r.DeviceName(int32(i)); got != name {
			t.Fatalf("DeviceName(%d) = %q, want %q", i, got, name)
		}
		if id, ok := r.LookupDevice(name); !ok || id != int32(i) {
			t.Fatalf("LookupDevice(%q) = %d, %v, want %d", name, id, ok, i)
		}
	}
}
