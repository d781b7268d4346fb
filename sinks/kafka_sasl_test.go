package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/ingest"
	ingestkafka "github.com/vigil-ot/vigil/ingest/kafka"
)

const saslTestPassword = "s3cret-pw-never-logged"

// TestKafkaSinkSASLConfig: the sasl block is checked like the consumer's,
// and a missing password variable is named at construction, not at the
// first write.
func TestKafkaSinkSASLConfig(t *testing.T) {
	cases := []struct {
		name, sasl, want string // want "" means valid
	}{
		{"plain", `{mechanism: plain, username: vigil, password_env: VIGIL_SINK_PW}`, ""},
		{"scram-256 user from env", `{mechanism: SCRAM-SHA-256, username_env: VIGIL_SINK_USER, password_env: VIGIL_SINK_PW}`, ""},
		{"scram-512", `{mechanism: scram-sha-512, username: vigil, password_env: VIGIL_SINK_PW}`, ""},
		{"unknown mechanism", `{mechanism: gssapi, username: vigil, password_env: VIGIL_SINK_PW}`, `mechanism "gssapi": use plain, scram-sha-256 or scram-sha-512`},
		{"no mechanism", `{username: vigil, password_env: VIGIL_SINK_PW}`, "without a mechanism"},
		{"no user", `{mechanism: plain, password_env: VIGIL_SINK_PW}`, "set username or username_env"},
		{"no password_env", `{mechanism: plain, username: vigil}`, "without password_env"},
		{"password in config", `{mechanism: plain, username: vigil, password: x}`, "field password not found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			yml := "sinks:\n  - kind: kafka\n    kafka: {brokers: [\"k:9092\"], sasl: " + c.sasl + "}\n"
			_, err := parseSinksYAML([]byte(yml))
			if c.want == "" {
				if err != nil {
					t.Fatalf("valid sasl block fails: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got error %v, want one containing %q", err, c.want)
			}
		})
	}
	t.Run("sasl on a non-kafka sink", func(t *testing.T) {
		_, err := parseSinksYAML([]byte("sinks:\n  - kind: stdout\n    kafka: {sasl: {mechanism: plain, username: u, password_env: P}}\n"))
		if err == nil || !strings.Contains(err.Error(), "cannot use a kafka block on a sink of kind") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("unset password variable", func(t *testing.T) {
		cfg := KafkaConfig{Brokers: []string{"127.0.0.1:9"}, SASL: &ingest.KafkaSASLConfig{Mechanism: "plain", Username: "u", PasswordEnv: "VIGIL_SINK_PW"}}
		_, err := newKafkaSinkEnv("k", cfg, Encoder{Format: FormatJSON}, nil, func(string) string { return "" })
		if err == nil || !strings.Contains(err.Error(), "VIGIL_SINK_PW") {
			t.Fatalf("got %v, want an error naming VIGIL_SINK_PW", err)
		}
	})
}

// lockedBuffer collects log output written from the writer's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestKafkaSinkSASLIntegration writes alerts through each SASL mechanism
// to a kfake broker that requires it, reads them back authenticated, and
// checks that a wrong password is refused and that the password never
// reaches the log.
func TestKafkaSinkSASLIntegration(t *testing.T) {
	for _, c := range []struct{ mech, kfakeMech string }{
		{"plain", "PLAIN"}, {"scram-sha-256", "SCRAM-SHA-256"}, {"scram-sha-512", "SCRAM-SHA-512"},
	} {
		t.Run(c.mech, func(t *testing.T) {
			cluster := newKafkaCluster(t, kfake.EnableSASL(), kfake.Superuser(c.kfakeMech, "vigil", saslTestPassword))
			addr := cluster.ListenAddrs()[0]
			env := map[string]string{"VIGIL_SINK_USER": "vigil", "VIGIL_SINK_PW": saslTestPassword}
			sasl := &ingest.KafkaSASLConfig{Mechanism: c.mech, UsernameEnv: "VIGIL_SINK_USER", PasswordEnv: "VIGIL_SINK_PW"}
			var logs lockedBuffer
			logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			s, err := newKafkaSinkEnv("kafka-sasl", KafkaConfig{Brokers: []string{addr}, SASL: sasl, WriteTimeout: 5 * time.Second},
				Encoder{Format: FormatJSON}, logger, func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			alerts := makeAlerts("sasl-"+c.mech, 50)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := s.Write(ctx, &detect.Output{Alerts: alerts}); err != nil {
				t.Fatalf("cannot write through sasl %s: %v", c.mech, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			mech, err := ingestkafka.SASLMechanism(sasl, func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			d := &kafka.Dialer{Timeout: 5 * time.Second, SASLMechanism: mech}
			ids := map[string]bool{}
			for _, m := range readTopicWith(t, d, addr, "vigil-alerts", len(alerts)) {
				var a struct {
					ID string `json:"id"`
				}
				if err := json.Unmarshal(m.Value, &a); err != nil {
					t.Fatalf("cannot parse alert: %v", err)
				}
				ids[a.ID] = true
			}
			for _, a := range alerts {
				if !ids[a.ID] {
					t.Fatalf("alert %s missing from the topic", a.ID)
				}
			}

			// The same sink with a wrong password must not deliver.
			bad := map[string]string{"VIGIL_SINK_USER": "vigil", "VIGIL_SINK_PW": "wrong-" + saslTestPassword}
			s2, err := newKafkaSinkEnv("kafka-sasl-bad", KafkaConfig{Brokers: []string{addr}, SASL: sasl, WriteTimeout: 2 * time.Second},
				Encoder{Format: FormatJSON}, logger, func(k string) string { return bad[k] })
			if err != nil {
				t.Fatal(err)
			}
			ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel2()
			if err := s2.Write(ctx2, &detect.Output{Alerts: alerts[:1]}); err == nil {
				t.Fatalf("a wrong %s password delivered alerts", c.mech)
			} else if strings.Contains(err.Error(), saslTestPassword) {
				t.Fatalf("the error shows the password: %v", err)
			}
			s2.Close()
			if strings.Contains(logs.String(), saslTestPassword) {
				t.Fatalf("the password reached the log:\n%s", logs.String())
			}
		})
	}
}
