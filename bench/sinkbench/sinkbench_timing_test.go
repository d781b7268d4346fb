package main

import (
	"testing"

	"github.com/vigil-ot/vigil/sinks"
)

// BenchmarkSyslogTCP sends b.N alerts in batches of 1000 through the syslog
// sink to the in-process receiver (octet counting, CEF).
func BenchmarkSyslogTCP(b *testing.B) {
	for _, framing := range []string{sinks.FramingOctetCounting, sinks.FramingLF} {
		b.Run(framing, func(b *testing.B) {
			b.ReportAllocs()
			res, err := run(max(b.N, 1000), 1000, sinks.FormatCEF, framing)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(res.bytes / int64(max(b.N, 1000)))
			b.ReportMetric(float64(max(b.N, 1000))/res.cpu.Seconds(), "alerts/cpu-s")
		})
	}
}

// TestRun keeps the program honest in `go test ./...`: a small run must
// deliver every alert.
func TestRun(t *testing.T) {
	if _, err := run(5000, 500, sinks.FormatCEF, sinks.FramingOctetCounting); err != nil {
		t.Fatal(err)
	}
}
