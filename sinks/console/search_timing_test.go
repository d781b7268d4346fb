package console

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/vigil-ot/vigil/detect"
)

// BenchmarkSearch: one page of a fleet search over a million devices,
// for queries that hit a third of the fleet, a fifth, a few hundred and
// an hour-old report; sorted by name or by last report.
func BenchmarkSearch(b *testing.B) {
	c, _ := testFleet(1_000_000)
	for _, bc := range []struct{ name, q, sort string }{
		{"all", "", "device"},
		{"site_and_fw", "site:plant-a AND fw<2.9.4", "device"},
		{"status", "status:alarm", "-last_seen"},
		{"glob", "device:plc-0012*", "device"},
		{"not_connected", "connected:false OR last_seen<-30m", "device"},
		{"or_not", "(site:plant-b OR fw:2.10.*) NOT status:alarm", "-status"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Search(SearchRequest{Query: bc.q, Sort: bc.sort}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRecentValuesMemory reports the heap the console holds per
// device (its index entry and attributes, and a ring of 8 values of one
// metric), and the heap the engine's recent values
// (detect.RecentValues) hold per device with 5 metrics at the default
// ring size, full.
func BenchmarkRecentValuesMemory(b *testing.B) {
	const devices, metrics = 10_000, 5
	for b.Loop() {
		var before, after, full runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c, _ := testFleet(devices)
		runtime.GC()
		runtime.ReadMemStats(&after)
		r := detect.NewRecentValues(DefaultConfig().RecentValues)
		for range r.Size() {
			for m := range metrics {
				for i := range devices {
					r.Add(int32(i), fmt.Sprint("m", m), detect.RecentValue{Value: 1}, 1, false, false)
				}
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&full)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/devices, "B/device-base")
		b.ReportMetric((float64(full.HeapAlloc)-float64(after.HeapAlloc))/devices, "B/device-rings")
		runtime.KeepAlive(c)
		runtime.KeepAlive(r)
	}
}
