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
// its own (Console.PublishStatus: a copy). With the status topic, 0 or
// 10% of the devices have two open alarms, which their records carry.
// ns/device is per device.
func BenchmarkPublishStatusShared(b *testing.B) {
	at := time.Date(2026, 12, 6, 14, 0, 0, 0, time.UTC)
	u := &detect.StatusUpdate{}
	for d := range 1000 {
		u.Devices = append(u.Devices, detect.DeviceStatus{ID: int32(d), Device: fmt.Sprintf("plc-%05d", d), Group: "plant-a/s7-1500",
			LastSeen: at, Interval: time.Minute, SourceIPs: []string{"10.1.0.2"}, ClientIDs: []string{"plc"}, Firmware: "2.9.4", FirmwareSince: at.Add(-time.Hour), EarlierFirmware: []detect.FirmwareRun{{Version: "2.9.3", Since: at.Add(-48 * time.Hour)}}})
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
	for _, alarmed := range []int{0, 10} {
		b.Run(fmt.Sprintf("shared/alarmed=%d%%", alarmed), func(b *testing.B) {
			c := New(Options{Config: DefaultConfig()})
			defer c.Close()
			s := Share(c, ShareOptions{Topic: "status", Instance: "vigil-a", Logger: slog.New(slog.DiscardHandler)})
			c.sink = discardSink{}
			for d := 0; alarmed > 0 && d < len(u.Devices); d += 100 / alarmed {
				for _, det := range []string{detect.DetectorSelf, detect.DetectorPeer} { // two open alarms
					a := detect.Alert{ID: fmt.Sprint(det, d), EventTime: at, State: detect.StateAlarm, Device: u.Devices[d].Device,
						Detector: det, Behavior: "bytes_out", Score: 9, Severity: 6, Message: "bytes_out 8× its usual"}
					if err := (teeSink{c}).Write(b.Context(), &detect.Output{Alerts: []detect.Alert{a}}); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				s.PublishStatus(u)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(u.Devices)), "ns/device")
		})
	}
}
