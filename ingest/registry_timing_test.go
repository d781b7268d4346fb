package ingest

import (
	"fmt"
	"testing"
)

// BenchmarkRegistryParallel looks up known device and group names from
// every core at once, as partition workers do for each row.
func BenchmarkRegistryParallel(b *testing.B) {
	r := NewRegistry()
	names := make([]string, 1000)
	for i := range names {
		names[i] = fmt.Sprintf("plc-%04d", i)
		r.DeviceID(names[i])
		r.GroupID(names[i][:5])
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			r.DeviceID(names[i%len(names)])
			r.GroupID("plc-0")
			i++
		}
	})
}
