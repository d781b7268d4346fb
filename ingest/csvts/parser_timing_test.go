package csvts

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/ingest"
)

// benchLines returns n rows shaped like SKAB's: a local time, eight
// sensor values, two labels.
func benchLines(n int, quoted bool) [][]byte {
	lines := make([][]byte, n)
	start := time.Date(2020, 3, 9, 10, 14, 33, 0, time.UTC)
	for i := range lines {
		format := "%s;0.02%05d;0.0401113;1.%d;0.054711;79.3366;26.0199;233.062;32.0;0.0;0.0"
		if quoted {
			format = `"%s";"0.02%05d";"0.0401113";"1.%d";"0.054711";"79.3366";"26.0199";"233.062";"32.0";"0.0";"0.0"`
		}
		lines[i] = fmt.Appendf(nil, format, start.Add(time.Duration(i)*time.Second).Format(time.DateTime), i, i%977)
	}
	return lines
}

const skabHeader = "datetime;Accelerometer1RMS;Accelerometer2RMS;Current;Pressure;Temperature;Thermocouple;Voltage;Volume Flow RateRMS;anomaly;changepoint"

// BenchmarkParse measures one CSV row to an ingest.Row: split, local
// time in a zone (the minute cache), eight numbers. One op is one row.
func BenchmarkParse(b *testing.B) {
	for _, c := range []struct {
		name   string
		zone   string
		quoted bool
	}{{"UTC", "UTC", false}, {"Zone", "Europe/Moscow", false}, {"Quoted", "UTC", true}} {
		b.Run(c.name, func(b *testing.B) {
			cfg := ingest.DefaultTelemetryConfig()
			cfg.CSV.TimeZone = c.zone
			lines := benchLines(3600, c.quoted)
			p, err := NewParser(cfg, "valve1/0", []byte(skabHeader))
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(lines[0])))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if i%len(lines) == 0 {
					p.haveLast = false
				}
				if _, err := p.Parse(lines[i%len(lines)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
