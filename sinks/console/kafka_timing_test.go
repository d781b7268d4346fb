package console

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/detect"
)

// BenchmarkPublishStatusShared measures what the engine's goroutine pays
// to hand over 1000 changed devices: to the status topic's writer (Shared:
// each device encoded to its record) and, as the baseline, to a console of
// its own (Console.PublishStatus: a copy). ns/device is per device.
func BenchmarkPublishStatusShared(b *testing.B) {
	at := time.Date(2026, 12, 6, 14, 0, 0, 0, time.UTC)
	u := &detect.StatusUpdate{}
	for d := range 1000 {
		u.Devices = append(u.Devices, detect.DeviceStatus{ID: int32(d), Device: fmt.Sprintf("plc-%05d", d), Group: "plant-a/s7-1500",
			LastSeen: at, Interval: time.Minute, SourceIPs: []string{"10.1.0.2"}, ClientIDs: []string{"plc"}, Firmware: "2.9.4", HighestFirmware: "2.9.4"})
	}
	b.Run("console", func(b *testing.B) {
		c := New(Options{Config: DefaultConfig()})
		defer c.Close()
		b.ReportAllocs()
		for b.Loop() {
			c.PublishStatus(u)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(u.Devices)), "ns/device")
	})
	b.Run("shared", func(b *testing.B) {
		c := New(Options{Config: DefaultConfig()})
		defer c.Close()
		s := Share(c, ShareOptions{Topic: "status", Instance: "vigil-a", Logger: slog.New(slog.DiscardHandler)})
		b.ReportAllocs()
		for b.Loop() {
			s.PublishStatus(u)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(u.Devices)), "ns/device")
	})
}
