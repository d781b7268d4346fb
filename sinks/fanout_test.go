package sinks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/detect"
)

// rejectingSink accepts everything except the ids in reject, each of which
// it refuses a given number of times; it records what it was sent.
type rejectingSink struct {
	reject   map[string]int
	accepted []string
	writes   []int
}

func (s *rejectingSink) Write(_ context.Context, out *detect.Output) error {
	s.writes = append(s.writes, out.Len())
	var failed []string
	for i := range out.Alerts {
		id := out.Alerts[i].ID
		if s.reject[id] > 0 {
			s.reject[id]--
			failed = append(failed, id)
			continue
		}
		s.accepted = append(s.accepted, id)
	}
	if failed != nil {
		return &detect.DeliveryError{Sink: "rejecting", Failed: failed, Err: errors.New("refused")}
	}
	return nil
}

func (s *rejectingSink) Close() error { return nil }

func fastRetry(attempts int) RetryConfig {
	return RetryConfig{MaxAttempts: attempts, BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond}
}

func TestFanoutRetriesOnlyWhatFailed(t *testing.T) {
	alerts := makeAlerts("fan", 10)
	flaky := &rejectingSink{reject: map[string]int{alerts[3].ID: 2, alerts[7].ID: 1}}
	var buf bytes.Buffer
	f := NewFanoutOf(testLogger(t),
		Member{Name: "flaky", Sink: flaky, Retry: fastRetry(0)},
		Member{Name: "file", Sink: NewWriterSink("file", &buf, FormatJSON)},
	)
	if err := f.Write(context.Background(), &detect.Output{Alerts: alerts}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(flaky.writes) != "[10 2 1]" {
		t.Fatalf("writes per attempt = %v, want [10 2 1]: retries must carry only the refused items", flaky.writes)
	}
	if len(flaky.accepted) != 10 || strings.Count(buf.String(), "\n") != 10 {
		t.Fatalf("accepted %d, file got %d lines", len(flaky.accepted), strings.Count(buf.String(), "\n"))
	}
}

func TestFanoutRequiredFailureNamesItems(t *testing.T) {
	alerts := makeAlerts("req", 5)
	stubborn := &rejectingSink{reject: map[string]int{alerts[1].ID: 100, alerts[4].ID: 100}}
	var buf bytes.Buffer
	f := NewFanoutOf(testLogger(t),
		Member{Name: "stubborn", Sink: stubborn, Retry: fastRetry(3)},
		Member{Name: "file", Sink: NewWriterSink("file", &buf, FormatJSON)},
	)
	err := f.Write(context.Background(), &detect.Output{Alerts: alerts})
	var de *detect.DeliveryError
	if !errors.As(err, &de) || fmt.Sprint(de.Failed) != fmt.Sprint([]string{alerts[1].ID, alerts[4].ID}) {
		t.Fatalf("want the two refused ids, got %v", err)
	}
	if len(stubborn.writes) != 3 {
		t.Fatalf("%d attempts, want max_attempts 3", len(stubborn.writes))
	}
}

func TestFanoutOptionalFailureDoesNotHoldBack(t *testing.T) {
	var buf bytes.Buffer
	f := NewFanoutOf(testLogger(t),
		Member{Name: "broken", Sink: NewWriterSink("broken", failingWriter{}, FormatCEF), Optional: true, Retry: fastRetry(2)},
		Member{Name: "file", Sink: NewWriterSink("file", &buf, FormatJSON)},
	)
	if err := f.Write(context.Background(), &detect.Output{Alerts: makeAlerts("opt", 4)}); err != nil {
		t.Fatalf("an optional sink's failure must not fail the batch: %v", err)
	}
	if strings.Count(buf.String(), "\n") != 4 {
		t.Fatal("the required sink did not get the batch")
	}
}

// TestFanoutWaitsForReceiver: a required syslog receiver that is down when
// the batch arrives holds the batch until it is up, then gets everything.
func TestFanoutWaitsForReceiver(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s, err := NewSyslogSink("late", SyslogConfig{Address: addr, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}, Encoder{Format: FormatCEF}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	f := NewFanoutOf(testLogger(t), Member{Name: "late", Sink: s})
	defer f.Close()
	alerts := makeAlerts("late", 50)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	result := make(chan error, 1)
	go func() { result <- f.Write(ctx, &detect.Output{Alerts: alerts}) }()
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-result:
		t.Fatalf("Write returned while the receiver was down: %v", err)
	default:
	}
	r := startTestReceiverAt(t, addr)
	if err := <-result; err != nil {
		t.Fatal(err)
	}
	checkIntact(t, r.waitFor(t, "50 messages", func(m []string) bool { return len(m) >= 50 }), alerts)
}
