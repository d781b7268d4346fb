package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/vigil-ot/vigil/sinks"
)

// The deploy example is a config users copy: it must stay valid.
func TestDeployConfigValid(t *testing.T) {
	t.Chdir(repoRoot)
	cfg, err := LoadConfig("deploy/vigil.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Kafka.SASL.PasswordEnv == "" || !cfg.Kafka.TLS.Enabled {
		t.Error("the deploy example should show TLS and SASL with the password from the environment")
	}
}

func TestNewLogger(t *testing.T) {
	if _, err := newLogger(&strings.Builder{}, "verbose", "text"); err == nil {
		t.Error("an unknown level was accepted")
	}
	if _, err := newLogger(&strings.Builder{}, "info", "xml"); err == nil {
		t.Error("an unknown format was accepted")
	}
}

// runTestConfig is a run config against brokers, with short timeouts so a
// test stops in seconds.
func runTestConfig(t *testing.T, brokers ...string) Config {
	t.Helper()
	cfg := DefaultConfig()
	k := &cfg.Kafka
	k.Brokers, k.GroupID, k.InstanceID = brokers, "vigil-test", "test"
	k.TelemetryTopics = []string{"telemetry"}
	k.DeadLetterTopic, k.ChangelogTopic, k.GroupStateTopic = "dead-letter", "", ""
	k.HTTPListen = ""
	k.CommitInterval = 100 * time.Millisecond
	k.SessionTimeout, k.HeartbeatInterval, k.RebalanceTimeout = 2*time.Second, 200*time.Millisecond, 2*time.Second
	k.ShutdownTimeout = 4 * time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// runFor runs one instance of cfg until stop returns, then stops it and
// returns what it logged and what it returned.
func runFor(t *testing.T, cfg Config, stop func(*instance)) (logged string, err error) {
	t.Helper()
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- runInstance(ctx, cfg, sinks.NewWriterSink("test", io.Discard, sinks.FormatJSON), log, nil, func(inst *instance) {
			go func() { stop(inst); cancel() }()
		})
	}()
	select {
	case err := <-done:
		return logs.String(), err
	case <-time.After(30 * time.Second):
		t.Fatalf("vigil run did not stop:\n%s", logs.String())
	}
	return "", nil
}

// TestRunNeverJoinedFails: a run that never joined its consumer group (no
// broker listens) says so and fails, instead of reporting offsets committed
// and a group left.
func TestRunNeverJoinedFails(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	logs, err := runFor(t, runTestConfig(t, addr), func(*instance) { time.Sleep(2 * time.Second) })
	if err == nil || !strings.Contains(err.Error(), "never joined consumer group vigil-test") {
		t.Errorf("run returned %v; want an error saying it never joined the group", err)
	}
	if strings.Contains(logs, "offsets committed") {
		t.Errorf("the log claims a clean hand-over:\n%s", logs)
	}
}

// TestRunCommitFailureFails: a run whose offsets the broker refuses to
// commit says so and fails when it stops; the same run against a broker
// that commits stops cleanly.
func TestRunCommitFailureFails(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "telemetry", "dead-letter"), kfake.GroupMinSessionTimeout(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if refuse {
			c.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				r := req.(*kmsg.OffsetCommitRequest)
				resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
				for _, rt := range r.Topics {
					st := kmsg.NewOffsetCommitResponseTopic()
					st.Topic = rt.Topic
					for _, rp := range rt.Partitions {
						sp := kmsg.NewOffsetCommitResponseTopicPartition()
						sp.Partition = rp.Partition
						sp.ErrorCode = 12 // OFFSET_METADATA_TOO_LARGE: refused, and no reason to rejoin
						st.Partitions = append(st.Partitions, sp)
					}
					resp.Topics = append(resp.Topics, st)
				}
				return resp, nil, true
			})
		}
		addr := c.ListenAddrs()[0]
		w := &kafkago.Writer{Addr: kafkago.TCP(addr), Topic: "telemetry", RequiredAcks: kafkago.RequireAll, BatchTimeout: time.Millisecond}
		var msgs []kafkago.Message
		for i := range 20 {
			msgs = append(msgs, kafkago.Message{Value: fmt.Appendf(nil, `{"device":"plc-1","ts":"2026-03-01T10:00:%02dZ","metrics":{"cpu_pct":%d}}`, i, 40+i%3)})
		}
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
		w.Close()
		logs, err := runFor(t, runTestConfig(t, addr), func(inst *instance) {
			for deadline := time.Now().Add(15 * time.Second); inst.consumer.Consumed() < 20 && time.Now().Before(deadline); {
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(300 * time.Millisecond) // a few commit intervals
		})
		switch {
		case !refuse && err != nil:
			t.Errorf("a run whose commits succeed returned %v:\n%s", err, logs)
		case !refuse && !strings.Contains(logs, "offsets committed"):
			t.Errorf("a clean stop is not logged as one:\n%s", logs)
		case refuse && (err == nil || !strings.Contains(err.Error(), "cannot commit offsets while stopping")):
			t.Errorf("a run whose commits are refused returned %v; want the failed commit", err)
		case refuse && strings.Contains(logs, "offsets committed"):
			t.Errorf("the log claims offsets committed:\n%s", logs)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
