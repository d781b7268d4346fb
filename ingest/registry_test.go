package ingest

import (
	"fmt"
	"sync"
	"testing"
	"unsafe"
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
