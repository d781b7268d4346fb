package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The demo runs the whole pipeline through the embedded broker and stops
// by itself, with alerts printed and a summary.
func TestDemoIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs the embedded demo")
	}
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- demo(context.Background(), &out, 12*time.Second, 0, log) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo failed: %v\n%s", err, out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("demo did not stop by itself")
	}
	t.Logf("demo took %s:\n%s", time.Since(start), out.String())
	s := out.String()
	for _, want := range []string{"broker on 127.0.0.1:", "ALARM", "Summary after", "alarms "} {
		if !strings.Contains(s, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	// Three partitions per topic: devices of a partition read behind the
	// others must not look silent. The fleet injects one silence.
	if m := regexp.MustCompile(`alarms (\d+):.*`).FindStringSubmatch(s); m == nil {
		t.Errorf("demo summary lacks the alarm count")
	} else if n, _ := strconv.Atoi(m[1]); n > 40 {
		t.Errorf("demo raised %d alarms on a fleet with about 20 incidents: %s", n, m[0])
	}
	if m := regexp.MustCompile(`\bsilence (\d+)`).FindStringSubmatch(s); m != nil {
		if n, _ := strconv.Atoi(m[1]); n > 2 {
			t.Errorf("demo raised %d silence alarms; the fleet injects one", n)
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestDemoConfigFollowsFleetConfig keeps the demo's embedded configuration
// in step with testdata/config/fleet.yaml, the one tuned on the fleet sample:
// the demo may add the packet side and scale partition_idle to its compressed
// time, but baselines, rules and telemetry detectors must be the same.
func TestDemoConfigFollowsFleetConfig(t *testing.T) {
	fleet, err := LoadConfig("../../testdata/config/fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	demo, err := ParseConfig([]byte(demoConfig))
	if err != nil {
		t.Fatal(err)
	}
	same := []struct {
		name        string
		fleet, demo any
	}{
		{"baseline", fleet.Baseline, demo.Baseline},
		{"detect.self", fleet.Detect.Self, demo.Detect.Self},
		{"detect.peer", fleet.Detect.Peer, demo.Detect.Peer},
		{"detect.metrics", fleet.Detect.Metrics, demo.Detect.Metrics},
		{"detect.rules", fleet.Detect.Rules, demo.Detect.Rules},
		{"detect.identity", fleet.Detect.Identity, demo.Detect.Identity},
		{"detect.fleet", fleet.Detect.Fleet, demo.Detect.Fleet},
		{"detect.silence.missed_reports", fleet.Detect.Silence.MissedReports, demo.Detect.Silence.MissedReports},
		{"detect.quarantine", fleet.Detect.Quarantine, demo.Detect.Quarantine},
	}
	for _, s := range same {
		if !reflect.DeepEqual(s.fleet, s.demo) {
			t.Errorf("%s differs between testdata/config/fleet.yaml and the demo config:\nfleet: %+v\ndemo:  %+v", s.name, s.fleet, s.demo)
		}
	}
}
