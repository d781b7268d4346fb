package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/vigil-ot/vigil/ingest"
)

// connSettings is how Vigil talks to the brokers: TLS and SASL, built once
// from config and the environment. Secrets live only inside the mechanism.
type connSettings struct {
	tls  *tls.Config
	sasl sasl.Mechanism
}

func newConnSettings(cfg *ingest.KafkaConfig) (connSettings, error) {
	var s connSettings
	if cfg.TLS.Enabled {
		t, err := tlsConfig(&cfg.TLS)
		if err != nil {
			return s, err
		}
		s.tls = t
	}
	m, err := SASLMechanism(&cfg.SASL, os.Getenv)
	if err != nil {
		return s, err
	}
	s.sasl = m
	return s, nil
}

func tlsConfig(c *ingest.KafkaTLSConfig) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read kafka tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cannot use kafka tls ca_file %s: no PEM certificate in it", c.CAFile)
		}
		t.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cannot load kafka tls client certificate: %w; check cert_file and key_file", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

// SASLMechanism builds the configured mechanism (nil when c.Mechanism is
// empty), reading the secrets from the environment through getenv; the
// Kafka alert sink uses it too, so both speak the same config. Errors name
// the variable, never its value.
func SASLMechanism(c *ingest.KafkaSASLConfig, getenv func(string) string) (sasl.Mechanism, error) {
	mech := strings.ToLower(c.Mechanism)
	if mech == "" {
		return nil, nil
	}
	user := c.Username
	if c.UsernameEnv != "" {
		user = getenv(c.UsernameEnv)
		if user == "" {
			return nil, fmt.Errorf("cannot read kafka sasl username: environment variable %s is empty or unset", c.UsernameEnv)
		}
	}
	pass := getenv(c.PasswordEnv)
	if pass == "" {
		return nil, fmt.Errorf("cannot read kafka sasl password: environment variable %s is empty or unset", c.PasswordEnv)
	}
	switch mech {
	case "plain":
		return plain.Mechanism{Username: user, Password: pass}, nil
	case "scram-sha-256":
		m, err := scram.Mechanism(scram.SHA256, user, pass)
		if err != nil {
			return nil, fmt.Errorf("cannot set up kafka sasl scram-sha-256: %w", err)
		}
		return m, nil
	case "scram-sha-512":
		m, err := scram.Mechanism(scram.SHA512, user, pass)
		if err != nil {
			return nil, fmt.Errorf("cannot set up kafka sasl scram-sha-512: %w", err)
		}
		return m, nil
	}
	return nil, fmt.Errorf("cannot use kafka sasl mechanism %q; use plain, scram-sha-256 or scram-sha-512", c.Mechanism)
}

// NewDialer returns a dialer to cfg's brokers with its TLS and SASL
// settings (the password from the environment), for tools beside the
// consumer such as vigil drill.
func NewDialer(cfg *ingest.KafkaConfig, clientID string) (*kafkago.Dialer, error) {
	s, err := newConnSettings(cfg)
	if err != nil {
		return nil, err
	}
	return s.dialer(clientID), nil
}

func (s connSettings) dialer(clientID string) *kafkago.Dialer {
	return &kafkago.Dialer{ClientID: clientID, Timeout: 10 * time.Second, DualStack: true, TLS: s.tls, SASLMechanism: s.sasl}
}

func (s connSettings) transport(clientID string) *kafkago.Transport {
	return &kafkago.Transport{ClientID: clientID, TLS: s.tls, SASL: s.sasl, DialTimeout: 10 * time.Second}
}
