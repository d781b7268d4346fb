// Command sinkbench measures how fast Vigil's syslog sink moves alerts over
// TCP (or TLS) to a local receiver: encoding, framing, the bounded queue,
// the connection goroutine and the kernel, end to end. The receiver runs
// in-process, counts octet-counted or LF-framed messages and discards
// them, so the figure is the sink's ceiling, not a SIEM's.
//
//	go run ./bench/sinkbench -n 500000 -batch 1000 -format cef
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/sinks"
)

func main() {
	n := flag.Int("n", 300000, "alerts to send")
	batch := flag.Int("batch", 1000, "alerts per Write (one source batch)")
	format := flag.String("format", "cef", "json, ecs, cef or leef")
	framing := flag.String("framing", sinks.FramingOctetCounting, "octet-counting or lf")
	flag.Parse()
	f, err := sinks.ParseFormat(*format)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	res, err := run(*n, *batch, f, *framing)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("%d alerts, format %s, framing %s, batch %d\n", *n, f, *framing, *batch)
	fmt.Printf("wall   %8.3fs  %10.0f alerts/s  %7.1f MB/s\n", res.wall.Seconds(), float64(*n)/res.wall.Seconds(), float64(res.bytes)/res.wall.Seconds()/1e6)
	fmt.Printf("cpu    %8.3fs  %10.0f alerts/cpu-s (sender and receiver together)\n", res.cpu.Seconds(), float64(*n)/res.cpu.Seconds())
}

type result struct {
	wall, cpu time.Duration
	bytes     int64
}

// run sends n alerts through a syslog sink to an in-process TCP receiver
// and returns when the receiver has counted all of them.
func run(n, batch int, format sinks.Format, framing string) (result, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	defer ln.Close()
	var got, bytes atomic.Int64
	done := make(chan struct{})
	go receive(ln, framing == sinks.FramingLF, &got, &bytes, int64(n), done)

	s, err := sinks.NewSyslogSink("sinkbench", sinks.SyslogConfig{Address: ln.Addr().String(), Framing: framing}, sinks.Encoder{Format: format, Host: "vigil-bench"}, nil)
	if err != nil {
		return result{}, err
	}
	alerts := makeAlerts(batch)
	// A distinct id per alert, as receivers dedupe on it; made before the
	// clock starts.
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%024x", i)
	}
	ctx := context.Background()
	cpu0, start := processCPU(), time.Now()
	for sent := 0; sent < n; sent += batch {
		k := min(batch, n-sent)
		for i := 0; i < k; i++ {
			alerts[i].ID = ids[sent+i]
		}
		if err := s.Write(ctx, &detect.Output{Alerts: alerts[:k]}); err != nil {
			return result{}, err
		}
	}
	if err := s.Close(); err != nil {
		return result{}, err
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		return result{}, fmt.Errorf("the receiver counted %d of %d messages", got.Load(), n)
	}
	return result{wall: time.Since(start), cpu: processCPU() - cpu0, bytes: bytes.Load()}, nil
}

// receive counts messages on every connection until want arrived.
func receive(ln net.Listener, lf bool, got, bytes *atomic.Int64, want int64, done chan struct{}) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			r := bufio.NewReaderSize(c, 1<<20)
			for {
				var err error
				if lf {
					var line []byte
					line, err = r.ReadSlice('\n')
					bytes.Add(int64(len(line)))
				} else {
					err = skipOctetCounted(r, bytes)
				}
				if err != nil {
					return
				}
				if got.Add(1) == want {
					close(done)
				}
			}
		}()
	}
}

// skipOctetCounted reads one "LEN SP MSG" frame (RFC 6587 3.4.1).
func skipOctetCounted(r *bufio.Reader, bytes *atomic.Int64) error {
	n := 0
	for {
		c, err := r.ReadByte()
		if err != nil {
			return err
		}
		if c == ' ' {
			break
		}
		if c < '0' || c > '9' {
			return fmt.Errorf("bad frame length byte %q", c)
		}
		n = n*10 + int(c-'0')
	}
	m, err := r.Discard(n)
	bytes.Add(int64(m))
	if err == nil && m < n {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// makeAlerts returns n network alerts with every field set.
func makeAlerts(n int) []detect.Alert {
	t0 := time.Date(2026, 11, 21, 17, 30, 5, 0, time.UTC)
	out := make([]detect.Alert, n)
	for i := range out {
		out[i] = detect.Alert{
			EventTime: t0, ProcessingTime: t0, AlarmStart: t0, State: detect.StateAlarm,
			Device: fmt.Sprintf("plc-%03d", i%500), Group: "plant-a/s7-1500/fw2.9", Criticality: "high",
			Detector: detect.DetectorNovelty, Behavior: "modbus_write", Observed: 16, Expected: 3, Lower: 0, Upper: 6,
			Score: 9.5, Severity: 8, SampleCount: 20160, Baseline: 42, Technique: "T0836",
			Message: "new Modbus write function from hmi-2", SrcIP: "10.1.2.3", DstIP: "10.1.2.7",
			SrcPort: 50123, DstPort: 502, Transport: "tcp", Protocol: "modbus",
			SrcMAC: "00:1b:1b:aa:bb:01", DstMAC: "00:1b:1b:aa:bb:07",
		}
	}
	return out
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
