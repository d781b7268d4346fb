package main

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/vigil-ot/vigil/ingest/kafka"
)

func TestObservabilityEndpoints(t *testing.T) {
	var ready atomic.Bool
	m := kafka.NewMetrics()
	metrics.RegisterSet(m.Set)
	defer metrics.UnregisterSet(m.Set, true)
	o, err := startObservability("127.0.0.1:0", ready.Load, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + o.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d, want 200", code)
	}
	if code, _ := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before the consumer is ready = %d, want 503", code)
	}
	ready.Store(true)
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz when ready = %d, want 200", code)
	}
	code, body := get("/metrics")
	if code != 200 || !strings.Contains(body, "vigil_kafka_commits_total") || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics = %d without the consumer's and the process's metrics:\n%.500s", code, body)
	}
	for _, want := range []string{
		"# HELP vigil_kafka_commits_total " + metricHelp["vigil_kafka_commits_total"] + "\n",
		"# TYPE vigil_kafka_commits_total counter\n",
		"# TYPE vigil_kafka_batch_latency_seconds histogram\n",
		`vigil_kafka_batch_latency_seconds_bucket{le="0.1"} 0` + "\n",
		`vigil_kafka_batch_latency_seconds_bucket{le="+Inf"} 0` + "\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// Listening beyond loopback is allowed but logged: the listener has no
// TLS and no authentication.
func TestObservabilityWarnsOffLoopback(t *testing.T) {
	for addr, warn := range map[string]bool{"127.0.0.1:0": false, "0.0.0.0:0": true} {
		var logs bytes.Buffer
		o, err := startObservability(addr, func() bool { return true }, nil, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		o.Close()
		if got := strings.Contains(logs.String(), "level=WARN"); got != warn {
			t.Errorf("listening on %s: warned %v, want %v; log:\n%s", addr, got, warn, logs.String())
		}
	}
}

func TestObservabilityBusyAddress(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	o, err := startObservability("127.0.0.1:0", func() bool { return true }, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if _, err := startObservability(o.Addr(), func() bool { return true }, nil, log); err == nil || !strings.Contains(err.Error(), "http_listen") {
		t.Errorf("a busy address gave %v; want an error naming kafka.http_listen", err)
	}
}
