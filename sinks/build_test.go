package sinks

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-ot/vigil/detect"
)

// TestBuildEverySink builds file, syslog and Kafka sinks from YAML, writes
// one batch and finds it at each destination; Close leaves no goroutine.
func TestBuildEverySink(t *testing.T) {
	// Registered first, so it runs after every other cleanup.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	r := startTestReceiver(t, nil, false, 0)
	k := newKafkaCluster(t)
	path := filepath.Join(t.TempDir(), "alerts.jsonl")
	yml := fmt.Sprintf(`sinks:
  - kind: file
    path: %s
  - kind: syslog
    host: vigil-test
    syslog: {address: "%s"}
  - kind: kafka
    kafka: {brokers: ["%s"]}
  - kind: file
    path: /nonexistent-dir/x.jsonl
    optional: true
`, path, r.addr(), k.ListenAddrs()[0])
	cfg, err := parseSinksYAML([]byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Build(cfg, testLogger(t)); err == nil || !strings.Contains(err.Error(), "cannot open sink file-2 file") {
		t.Fatalf("an unopenable file must fail Build with its name, got %v", err)
	}
	cfg = cfg[:3]
	sink, err := Build(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	out := detect.Output{Alerts: makeAlerts("build", 20), Quarantine: fixtureQuarantine()[:1]}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := sink.Write(ctx, &out); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n"); n != out.Len() {
		t.Fatalf("file has %d lines, want %d", n, out.Len())
	}
	msgs := r.waitFor(t, "21 messages", func(m []string) bool { return len(m) >= out.Len() })
	if !strings.Contains(msgs[0], "dvchost=vigil-test") {
		t.Fatalf("host setting not applied: %s", msgs[0])
	}
	readTopic(t, k.ListenAddrs()[0], "vigil-alerts", 20)
	readTopic(t, k.ListenAddrs()[0], "vigil-quarantine", 1)
}
