package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/ingest"
	ingestkafka "github.com/vigil-ot/vigil/ingest/kafka"
)

// kafkaSink produces alerts and quarantine events to their own topics with
// kafka-go's Writer, keyed by device (one device's events stay in order in
// one partition), acknowledged by every in-sync replica.
type kafkaSink struct {
	name  string
	cfg   KafkaConfig
	w     *kafka.Writer
	tr    *kafka.Transport // owned, so Close can drop its connections
	enc   Encoder
	stats *sinkStats

	buf  []byte
	ends []int // end offsets in buf of each item's value, then its key
	msgs []kafka.Message
}

// Headers every message carries, so consumers can pick a decoder without
// parsing the value first.
var (
	kafkaAlertHeaders      = []kafka.Header{{Key: "vigil-schema", Value: []byte("alert/" + strconv.Itoa(detect.AlertSchemaVersion))}}
	kafkaQuarantineHeaders = []kafka.Header{{Key: "vigil-schema", Value: []byte("quarantine/" + strconv.Itoa(detect.QuarantineSchemaVersion))}}
)

// NewKafkaSink returns a sink producing to cfg.Brokers: alerts to
// cfg.AlertsTopic (the rollout guard's to cfg.RolloutTopic when set),
// quarantine events to cfg.QuarantineTopic, one message
// per item with the device as key, in enc's format (JSON or ECS). Write
// returns once every message is acknowledged by all in-sync replicas
// (acks=all); messages Kafka refused are named in a *detect.DeliveryError.
// Topics are not created: a missing topic is an error, not a surprise
// topic with default settings.
func NewKafkaSink(name string, cfg KafkaConfig, enc Encoder, logger *slog.Logger) (detect.Sink, error) {
	return newKafkaSink(name, cfg, enc, logger)
}

func newKafkaSink(name string, cfg KafkaConfig, enc Encoder, logger *slog.Logger) (*kafkaSink, error) {
	return newKafkaSinkEnv(name, cfg, enc, logger, os.Getenv)
}

// newKafkaSinkEnv reads the SASL secrets through getenv, so tests need not
// touch the process environment.
func newKafkaSinkEnv(name string, cfg KafkaConfig, enc Encoder, logger *slog.Logger, getenv func(string) string) (*kafkaSink, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("cannot build kafka sink %s: %w", name, err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("sink", name)
	w := &kafka.Writer{
		Addr:         kafka.TCP(cfg.Brokers...),
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: cfg.BatchTimeout,
		BatchSize:    1000,
		WriteTimeout: cfg.WriteTimeout,
		ReadTimeout:  cfg.WriteTimeout,
		// The fan-out retries with its own backoff and reports per item;
		// a few quick attempts here absorb leader elections.
		MaxAttempts: 3,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			logger.Warn(fmt.Sprintf(msg, args...))
		}),
	}
	d, err := kafkaDialer(cfg, getenv)
	if err != nil {
		return nil, fmt.Errorf("cannot build kafka sink %s: %w", name, err)
	}
	tr := &kafka.Transport{TLS: d.TLS, SASL: d.SASLMechanism}
	w.Transport = tr
	return &kafkaSink{name: name, cfg: cfg, w: w, tr: tr, enc: enc, stats: newSinkStats(name)}, nil
}

// KafkaDialer returns a dialer to the brokers of a Kafka sink with its TLS
// and SASL settings, for tools that read what the sink wrote (vigil drill).
func KafkaDialer(cfg KafkaConfig) (*kafka.Dialer, error) {
	return kafkaDialer(cfg.withDefaults(), os.Getenv)
}

func kafkaDialer(cfg KafkaConfig, getenv func(string) string) (*kafka.Dialer, error) {
	d := &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true}
	if cfg.TLS != nil {
		tc, err := cfg.TLS.clientConfig(cfg.Brokers[0])
		if err != nil {
			return nil, err
		}
		d.TLS = tc
	}
	if cfg.SASL != nil {
		// The mechanism holds the password; it is never logged, and
		// errors name the variable only.
		m, err := ingestkafka.SASLMechanism(cfg.SASL, getenv)
		if err != nil {
			return nil, err
		}
		d.SASLMechanism = m
	}
	return d, nil
}

func (s *kafkaSink) Write(ctx context.Context, out *detect.Output) error {
	n := out.Len()
	if n == 0 {
		return nil
	}
	// Encode every value and key into one buffer first, then slice it:
	// slices taken while it grows would pin the old arrays.
	s.buf, s.ends = s.buf[:0], s.ends[:0]
	for i := range out.Alerts {
		s.buf = s.enc.AppendAlert(s.buf, &out.Alerts[i])
		s.ends = append(s.ends, len(s.buf))
		s.buf = append(s.buf, out.Alerts[i].Device...)
		s.ends = append(s.ends, len(s.buf))
	}
	for i := range out.Quarantine {
		s.buf = s.enc.AppendQuarantine(s.buf, &out.Quarantine[i])
		s.ends = append(s.ends, len(s.buf))
		s.buf = append(s.buf, out.Quarantine[i].Device...)
		s.ends = append(s.ends, len(s.buf))
	}
	s.msgs = s.msgs[:0]
	start := 0
	for i := 0; i < n; i++ {
		vEnd, kEnd := s.ends[2*i], s.ends[2*i+1]
		m := kafka.Message{Value: s.buf[start:vEnd:vEnd], Key: s.buf[vEnd:kEnd:kEnd]}
		if i < len(out.Alerts) {
			m.Topic, m.Headers = s.cfg.AlertsTopic, kafkaAlertHeaders
			if s.cfg.RolloutTopic != "" && out.Alerts[i].Detector == detect.DetectorRollout {
				m.Topic = s.cfg.RolloutTopic
			}
		} else {
			m.Topic, m.Headers = s.cfg.QuarantineTopic, kafkaQuarantineHeaders
		}
		s.msgs = append(s.msgs, m)
		start = kEnd
	}

	err := s.w.WriteMessages(ctx, s.msgs...)
	if err == nil {
		s.stats.delivered.Add(n)
		return nil
	}
	var werrs kafka.WriteErrors
	if !errors.As(err, &werrs) || len(werrs) != n {
		// The writer may still hold the messages (a cancelled context):
		// leave the buffer to it and start a new one next time.
		s.buf, s.msgs = nil, nil
		s.stats.failed.Add(n)
		return deliveryErrorAll(s.name, out, fmt.Errorf("cannot produce to kafka: %w", err))
	}
	de := &detect.DeliveryError{Sink: s.name}
	var first error
	for i, e := range werrs {
		if e == nil {
			continue
		}
		if first == nil {
			first = e
		}
		if i < len(out.Alerts) {
			de.Failed = append(de.Failed, out.Alerts[i].ID)
		} else {
			de.Failed = append(de.Failed, out.Quarantine[i-len(out.Alerts)].ID)
		}
	}
	s.stats.delivered.Add(n - len(de.Failed))
	s.stats.failed.Add(len(de.Failed))
	de.Err = fmt.Errorf("cannot produce %d of %d message(s) to kafka: %w", len(de.Failed), n, first)
	return de
}

func (s *kafkaSink) Close() error {
	err := s.w.Close()
	s.tr.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("cannot close kafka sink %s: %w", s.name, err)
	}
	return nil
}

// validateKafkaSASL checks a sink's sasl block as the consumer checks its
// own: a known mechanism, a user, and the name of the variable holding the
// password (never the password itself).
func validateKafkaSASL(c *ingest.KafkaSASLConfig) error {
	switch strings.ToLower(c.Mechanism) {
	case "plain", "scram-sha-256", "scram-sha-512":
	case "":
		return errors.New("cannot use kafka.sasl without a mechanism: set mechanism to plain, scram-sha-256 or scram-sha-512, or remove the block")
	default:
		return fmt.Errorf("cannot use kafka.sasl mechanism %q: use plain, scram-sha-256 or scram-sha-512", c.Mechanism)
	}
	if c.Username == "" && c.UsernameEnv == "" {
		return errors.New("cannot use kafka.sasl without a user: set username or username_env")
	}
	if c.PasswordEnv == "" {
		return errors.New("cannot use kafka.sasl without password_env: set it to the name of the environment variable holding the password; passwords are never written in the config")
	}
	return nil
}
