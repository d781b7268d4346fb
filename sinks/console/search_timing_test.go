package console

import (
	"runtime"
	"testing"
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
		{"one_device", "device:PLC-00123", "device"},
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

// BenchmarkDeviceMemory reports the heap the console holds per device:
// its index entry and status (the recent values are the engine's:
// detect.BenchmarkRecentValuesMemory).
func BenchmarkDeviceMemory(b *testing.B) {
	const devices = 10_000
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c, _ := testFleet(devices)
		for _, d := range c.devices {
			d.recent = nil // testFleet's ring of 8 values
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/devices, "B/device")
		runtime.KeepAlive(c)
	}
}
