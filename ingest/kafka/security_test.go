package kafka_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/kafka"
)

const testPassword = "s3cret-Pa55word"

// testCA writes a CA, a server certificate for 127.0.0.1 and a client
// certificate to dir and returns the server's TLS config.
func testCA(t *testing.T, dir string) *tls.Config {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vigil test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(name string, usage x509.ExtKeyUsage, serial int64) (certPEM, keyPEM []byte) {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := x509.MarshalECPrivateKey(k)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	sc, sk := issue("broker", x509.ExtKeyUsageServerAuth, 2)
	cc, ck := issue("vigil", x509.ExtKeyUsageClientAuth, 3)
	write("client.pem", cc)
	write("client-key.pem", ck)
	pair, err := tls.X509KeyPair(sc, sk)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
}

// syncBuffer is a log destination safe for the consumer's goroutines.
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

// TLS with a client certificate and each SASL mechanism: the consumer
// reads everything, and the password never reaches the log.
func TestKafkaSecurityIntegration(t *testing.T) {
	skipShort(t)
	for _, c := range []struct {
		mech, kfakeMech string
		tls             bool
	}{
		{"plain", "PLAIN", false},
		{"scram-sha-256", "SCRAM-SHA-256", false},
		{"scram-sha-512", "SCRAM-SHA-512", true},
	} {
		t.Run(c.mech, func(t *testing.T) {
			dir := t.TempDir()
			opts := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(1, topicIn, topicChangelog, topicGroups, topicDLQ),
				kfake.GroupMinSessionTimeout(100 * time.Millisecond), kfake.EnableSASL(), kfake.Superuser(c.kfakeMech, "vigil", testPassword)}
			var clientTLS *tls.Config
			if c.tls {
				opts = append(opts, kfake.TLS(testCA(t, dir)))
				pool := x509.NewCertPool()
				caPEM, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
				pool.AppendCertsFromPEM(caPEM)
				cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem"))
				if err != nil {
					t.Fatal(err)
				}
				clientTLS = &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}
			}
			kc, err := kfake.NewCluster(opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer kc.Close()
			addr := kc.ListenAddrs()[0]

			msgs := fleet(5, 20, 1000)
			w := &kafkago.Writer{Addr: kafkago.TCP(addr), Topic: topicIn, Balancer: &kafkago.Hash{}, BatchTimeout: time.Millisecond,
				Transport: securedTransport(clientTLS, c.mech)}
			if err := w.WriteMessages(context.Background(), msgs...); err != nil {
				t.Fatalf("cannot produce over %s: %v", c.mech, err)
			}
			w.Close()

			cfg := ingest.DefaultKafkaConfig()
			cfg.Brokers = []string{addr}
			cfg.GroupID, cfg.InstanceID = "gs", "is"
			cfg.TelemetryTopics = []string{topicIn}
			cfg.DeadLetterTopic, cfg.ChangelogTopic, cfg.GroupStateTopic = topicDLQ, topicChangelog, topicGroups
			cfg.SessionTimeout, cfg.HeartbeatInterval, cfg.RebalanceTimeout = 1500*time.Millisecond, 100*time.Millisecond, 2*time.Second
			cfg.CommitInterval, cfg.BatchLinger, cfg.HTTPListen = 50*time.Millisecond, 5*time.Millisecond, ""
			cfg.SASL = ingest.KafkaSASLConfig{Mechanism: c.mech, Username: "vigil", PasswordEnv: "VIGIL_TEST_KAFKA_PASSWORD"}
			if c.tls {
				cfg.TLS = ingest.KafkaTLSConfig{Enabled: true, CAFile: filepath.Join(dir, "ca.pem"),
					CertFile: filepath.Join(dir, "client.pem"), KeyFile: filepath.Join(dir, "client-key.pem")}
			}
			t.Setenv("VIGIL_TEST_KAFKA_PASSWORD", testPassword)
			var logs syncBuffer
			reg := ingest.NewRegistry()
			store := baseline.NewStore(baselineConfig(), reg)
			eng, err := detect.NewEngine(detect.DefaultConfig(), detect.Deps{Registry: reg, Baseline: store, Sink: &collectSink{}})
			if err != nil {
				t.Fatal(err)
			}
			tcfg := ingest.DefaultTelemetryConfig()
			judged := &rowCounter{Engine: eng}
			cons, err := kafka.New(kafka.Options{Config: cfg, Engine: judged, State: store, Groups: store, Registry: reg, Grouper: siteGrouper{},
				Decoders: func(string, string, int32) (kafka.Decoder, error) {
					return kafka.NewTelemetryDecoder(tcfg, kafka.DrillCheck{})
				},
				Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- cons.Run(ctx) }()
			deadline := time.Now().Add(20 * time.Second)
			for judged.rows.Load() < int64(len(msgs)) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if got := eng.Stats().Rows; got != int64(len(msgs)) {
				t.Errorf("judged %d of %d records over %s", got, len(msgs), c.mech)
			}
			if strings.Contains(logs.String(), testPassword) {
				t.Error("the SASL password appears in the log")
			}
		})
	}
}

// rowCounter counts the rows its engine judged, so the test goroutine can
// wait for them while the engine's goroutine works; Engine.Stats is for the
// engine's own goroutine only. Flush and ForgetDevice are the engine's.
type rowCounter struct {
	*detect.Engine
	rows atomic.Int64
}

func (c *rowCounter) Process(ctx context.Context, b *ingest.Batch) error {
	n := b.Record.NumRows()
	err := c.Engine.Process(ctx, b)
	c.rows.Add(n)
	return err
}

func securedTransport(t *tls.Config, mech string) *kafkago.Transport {
	tr := &kafkago.Transport{TLS: t}
	switch mech {
	case "plain":
		tr.SASL = plain.Mechanism{Username: "vigil", Password: testPassword}
	case "scram-sha-256":
		tr.SASL, _ = scram.Mechanism(scram.SHA256, "vigil", testPassword)
	default:
		tr.SASL, _ = scram.Mechanism(scram.SHA512, "vigil", testPassword)
	}
	return tr
}

// A missing password is an explained error naming the variable.
func TestKafkaSASLPasswordFromEnvironment(t *testing.T) {
	cfg := ingest.DefaultKafkaConfig()
	cfg.TelemetryTopics = []string{topicIn}
	cfg.SASL = ingest.KafkaSASLConfig{Mechanism: "scram-sha-256", Username: "vigil", PasswordEnv: "VIGIL_TEST_UNSET_PASSWORD"}
	t.Setenv("VIGIL_TEST_UNSET_PASSWORD", "")
	reg := ingest.NewRegistry()
	_, err := kafka.New(kafka.Options{Config: cfg, Engine: nopEngine{}, Registry: reg,
		Decoders: func(string, string, int32) (kafka.Decoder, error) { return nil, nil }})
	if err == nil || !strings.Contains(err.Error(), "VIGIL_TEST_UNSET_PASSWORD") {
		t.Fatalf("New without the password: %v; want an error naming the variable", err)
	}
}

type nopEngine struct{}

func (nopEngine) Process(ctx context.Context, b *ingest.Batch) error {
	b.Release()
	b.Ack(ctx, nil)
	return nil
}
