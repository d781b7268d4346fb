package sinks

import (
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/detect"
)

// benchAlerts are the alerts the encoder benchmarks cycle through: a
// telemetry alert and a network alert with every field set.
func benchAlerts() []detect.Alert { return fixtureAlerts()[:3] }

func benchmarkEncoder(b *testing.B, enc Encoder) {
	alerts := benchAlerts()
	var buf []byte
	var bytes int
	for i := range alerts {
		bytes += len(enc.AppendAlert(nil, &alerts[i]))
	}
	b.SetBytes(int64(bytes / len(alerts)))
	b.ReportAllocs()
	cpu := startCPUTimer(b)
	for i := 0; i < b.N; i++ {
		buf = enc.AppendAlert(buf[:0], &alerts[i%len(alerts)])
	}
	cpu.report()
}

// cpuTimer reports the process CPU time per operation next to ns/op: on a
// machine shared with other jobs, wall time per op measures the queue for
// the CPU, CPU time per op measures the code.
type cpuTimer struct {
	b     *testing.B
	start time.Duration
}

func startCPUTimer(b *testing.B) cpuTimer {
	b.ResetTimer()
	return cpuTimer{b: b, start: processCPU()}
}

func (c cpuTimer) report() {
	c.b.StopTimer()
	used := processCPU() - c.start
	c.b.ReportMetric(float64(used.Nanoseconds())/float64(c.b.N), "cpu-ns/op")
	c.b.ReportMetric(float64(c.b.N)/used.Seconds(), "alerts/cpu-s")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkAppendAlertCEF(b *testing.B) {
	benchmarkEncoder(b, Encoder{Format: FormatCEF, Host: "vigil-1"})
}
func BenchmarkAppendAlertLEEF(b *testing.B) {
	benchmarkEncoder(b, Encoder{Format: FormatLEEF, Host: "vigil-1"})
}
func BenchmarkAppendAlertJSON(b *testing.B) { benchmarkEncoder(b, Encoder{Format: FormatJSON}) }
func BenchmarkAppendAlertECS(b *testing.B) {
	benchmarkEncoder(b, Encoder{Format: FormatECS, Host: "vigil-1"})
}

// BenchmarkSyslogMessageCEF measures a whole RFC 5424 message with
// octet-counting framing: header, CEF event, frame.
func BenchmarkSyslogMessageCEF(b *testing.B) {
	sf := newSyslogFormat(SyslogConfig{Profile: ProfileRFC5424, Facility: "local4", AppName: "vigil", Hostname: "vigil-1", MaxMessageSize: 8192, Transport: TransportTCP, Framing: FramingOctetCounting}, Encoder{Format: FormatCEF, Host: "vigil-1"})
	alerts := benchAlerts()
	var msg, framed []byte
	msg, _ = sf.appendAlert(msg[:0], &alerts[0])
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	cpu := startCPUTimer(b)
	for i := 0; i < b.N; i++ {
		msg, _ = sf.appendAlert(msg[:0], &alerts[i%len(alerts)])
		framed = sf.appendFramed(framed[:0], msg)
	}
	cpu.report()
}
