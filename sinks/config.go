package sinks

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/vigil-ot/vigil/ingest"
)

// Config is the "sinks" section of the YAML configuration: the list of
// places alerts and quarantine events go. Every item goes to every sink; an
// item counts as delivered once every sink that is not optional accepted
// it. Defaults are set in code (zero values mean "the default"), not by
// YAML; Validate explains what is wrong and how to fix it.
//
//	sinks:
//	  - kind: syslog          # stdout | file | syslog | kafka
//	    format: cef           # json | ecs | cef | leef
//	    syslog: {address: "siem:6514", transport: tls, tls: {ca_file: /etc/vigil/ca.pem}}
//	  - kind: kafka
//	    kafka: {brokers: ["kafka:9092"]}
//	  - kind: file
//	    path: /var/log/vigil/alerts.jsonl
//	    optional: true
type Config []SinkConfig

// SinkConfig is one sink of the "sinks" list.
type SinkConfig struct {
	// Name labels the sink in logs and metrics; default: kind, then kind-2, …
	Name string `yaml:"name"`
	Kind string `yaml:"kind"` // stdout, file, syslog or kafka
	// Format of each line; default json, except syslog: cef.
	Format Format `yaml:"format"`
	// Optional sinks do not hold back delivery: their failures are logged
	// and counted, not reported to the source. Sinks are required by default.
	Optional bool `yaml:"optional"`
	// Host names this Vigil instance in events (CEF dvchost, LEEF
	// identHostName, ECS observer.hostname); default: the OS host name.
	Host string `yaml:"host"`
	// LEEFDelimiter is the LEEF attribute delimiter, one printable ASCII
	// character; default tab.
	LEEFDelimiter string `yaml:"leef_delimiter"`
	// Path of the file sink; lines are appended.
	Path   string       `yaml:"path"`
	Syslog SyslogConfig `yaml:"syslog"`
	Kafka  KafkaConfig  `yaml:"kafka"`
	Retry  RetryConfig  `yaml:"retry"`
}

// RetryConfig is how the fan-out retries a sink that failed a batch.
type RetryConfig struct {
	// MaxAttempts per batch, 0 for the default: unbounded (until the
	// source's context ends) for a required sink, 3 for an optional one.
	MaxAttempts int           `yaml:"max_attempts"`
	BackoffMin  time.Duration `yaml:"backoff_min"` // default 100ms
	BackoffMax  time.Duration `yaml:"backoff_max"` // default 10s
}

// SyslogConfig is the transport of a syslog sink.
type SyslogConfig struct {
	Address   string `yaml:"address"`   // host:port of the receiver
	Transport string `yaml:"transport"` // udp, tcp or tls; default tcp
	// Framing of TCP and TLS: octet-counting (RFC 6587 3.4.1, default) or
	// lf (a newline after each message).
	Framing string `yaml:"framing"`
	// Profile is the header: rfc5424 (default), rfc3164, sentinel (RFC 3164
	// header and the CEF line as tag and content, what Microsoft Sentinel's
	// CEF connector expects; format cef) or qradar (the same for LEEF).
	Profile  string `yaml:"profile"`
	Facility string `yaml:"facility"` // default local4
	AppName  string `yaml:"app_name"` // RFC 5424 APP-NAME, RFC 3164 tag; default vigil
	Hostname string `yaml:"hostname"` // syslog HOSTNAME; default: the OS host name
	// MaxMessageSize caps one message (header included); longer ones are
	// cut and end in "...". Default 2048 for UDP (RFC 5426), 8192 for TCP
	// and TLS (rsyslog's default $MaxMessageSize).
	MaxMessageSize int `yaml:"max_message_size"`
	// QueueSize is how many messages wait for the connection before Write
	// blocks (backpressure); default 10000.
	QueueSize int `yaml:"queue_size"`
	// ResendWindow is how many messages already written are kept and sent
	// again after a reconnect, since TCP does not say what the receiver
	// processed; receivers dedupe on externalId. It should exceed what the
	// receiver keeps in memory unprocessed. Default 10000.
	ResendWindow int           `yaml:"resend_window"`
	DialTimeout  time.Duration `yaml:"dial_timeout"`  // default 5s
	WriteTimeout time.Duration `yaml:"write_timeout"` // default 10s
	KeepAlive    time.Duration `yaml:"keepalive"`     // TCP keepalive period; default 30s
	BackoffMin   time.Duration `yaml:"backoff_min"`   // first reconnect delay; default 100ms
	BackoffMax   time.Duration `yaml:"backoff_max"`   // default 30s
	// CloseTimeout bounds how long Close waits for queued messages.
	CloseTimeout time.Duration `yaml:"close_timeout"` // default 10s
	TLS          TLSConfig     `yaml:"tls"`
}

// TLSConfig configures the client side of TLS. Verification is on unless
// InsecureSkipVerify says otherwise.
type TLSConfig struct {
	CAFile     string `yaml:"ca_file"`     // PEM CA bundle; default: the system roots
	CertFile   string `yaml:"cert_file"`   // client certificate (PEM), with KeyFile
	KeyFile    string `yaml:"key_file"`    // client key (PEM)
	ServerName string `yaml:"server_name"` // default: the host of the address
	// InsecureSkipVerify turns certificate verification off: tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// KafkaConfig is the destination of a Kafka sink: alerts and quarantine
// events in their own topics, keyed by device so that one device's events
// stay in order, acknowledged by all in-sync replicas.
type KafkaConfig struct {
	Brokers         []string `yaml:"brokers"`
	AlertsTopic     string   `yaml:"alerts_topic"`     // default vigil-alerts
	QuarantineTopic string   `yaml:"quarantine_topic"` // default vigil-quarantine
	// RolloutTopic, when set, takes the rollout guard's alerts (detector
	// rollout: abort_recommended and the rest) instead of alerts_topic, so
	// the update service can subscribe to them alone.
	RolloutTopic string        `yaml:"rollout_topic"`
	WriteTimeout time.Duration `yaml:"write_timeout"` // default 10s
	BatchTimeout time.Duration `yaml:"batch_timeout"` // linger before a partial batch goes; default 5ms
	TLS          *TLSConfig    `yaml:"tls"`           // nil: plaintext
	// SASL is the consumer's kafka.sasl shape: the password only comes
	// from the environment variable it names; nil: no authentication.
	SASL *ingest.KafkaSASLConfig `yaml:"sasl"`
}

// Sink kinds.
const (
	KindStdout = "stdout"
	KindFile   = "file"
	KindSyslog = "syslog"
	KindKafka  = "kafka"
)

// Syslog transports, framings and profiles.
const (
	TransportUDP = "udp"
	TransportTCP = "tcp"
	TransportTLS = "tls"

	FramingOctetCounting = "octet-counting"
	FramingLF            = "lf"

	ProfileRFC5424  = "rfc5424"
	ProfileRFC3164  = "rfc3164"
	ProfileSentinel = "sentinel"
	ProfileQRadar   = "qradar"
)

// DefaultConfig returns the defaults of the "sinks" section: JSON lines on
// stdout. A "sinks" list in the config file replaces it.
func DefaultConfig() Config {
	return Config{{Kind: KindStdout, Format: FormatJSON}}
}

// Validate checks c.
func (c *Config) Validate() error {
	if len(*c) == 0 {
		return errors.New("cannot run without sinks: list at least one, e.g. `- kind: stdout`")
	}
	names := make(map[string]bool)
	for i, s := range c.resolved() {
		if err := s.validate(); err != nil {
			return fmt.Errorf("sink %d (%s): %w", i+1, s.Name, err)
		}
		if names[s.Name] {
			return fmt.Errorf("sink %d: cannot use name %q twice: give each sink its own name", i+1, s.Name)
		}
		names[s.Name] = true
	}
	return nil
}

// resolved returns the sinks with their defaults filled in.
// Names returns the sinks' names, as their metrics label them: the
// configured name, or the kind (numbered from the second of a kind).
func (c Config) Names() []string {
	var names []string
	for _, s := range c.resolved() {
		names = append(names, s.Name)
	}
	return names
}

func (c Config) resolved() []SinkConfig {
	out := make([]SinkConfig, len(c))
	seen := make(map[string]int)
	for i, s := range c {
		s = s.withDefaults()
		if s.Name == "" {
			seen[s.Kind]++
			s.Name = s.Kind
			if n := seen[s.Kind]; n > 1 {
				s.Name = fmt.Sprintf("%s-%d", s.Kind, n)
			}
		}
		out[i] = s
	}
	return out
}

func (s SinkConfig) withDefaults() SinkConfig {
	if s.Format == "" {
		s.Format = FormatJSON
		if s.Kind == KindSyslog {
			s.Format = FormatCEF
		}
	}
	if s.Host == "" {
		s.Host, _ = os.Hostname()
	}
	if s.Retry.BackoffMin == 0 {
		s.Retry.BackoffMin = 100 * time.Millisecond
	}
	if s.Retry.BackoffMax == 0 {
		s.Retry.BackoffMax = 10 * time.Second
	}
	if s.Retry.MaxAttempts == 0 && s.Optional {
		s.Retry.MaxAttempts = 3
	}
	if s.Kind == KindSyslog {
		s.Syslog = s.Syslog.withDefaults()
	}
	if s.Kind == KindKafka {
		s.Kafka = s.Kafka.withDefaults()
	}
	return s
}

func (c SyslogConfig) withDefaults() SyslogConfig {
	if c.Transport == "" {
		c.Transport = TransportTCP
	}
	if c.Framing == "" {
		c.Framing = FramingOctetCounting
	}
	if c.Profile == "" {
		c.Profile = ProfileRFC5424
	}
	if c.Facility == "" {
		c.Facility = "local4"
	}
	if c.AppName == "" {
		c.AppName = "vigil"
	}
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = 8192
		if c.Transport == TransportUDP {
			c.MaxMessageSize = 2048
		}
	}
	if c.QueueSize == 0 {
		c.QueueSize = 10000
	}
	if c.ResendWindow == 0 {
		c.ResendWindow = 10000
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = 30 * time.Second
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = 100 * time.Millisecond
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = 30 * time.Second
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = 10 * time.Second
	}
	return c
}

// AlertsTopicOrDefault returns the topic the sink writes alerts to.
func (c KafkaConfig) AlertsTopicOrDefault() string { return c.withDefaults().AlertsTopic }

func (c KafkaConfig) withDefaults() KafkaConfig {
	if c.AlertsTopic == "" {
		c.AlertsTopic = "vigil-alerts"
	}
	if c.QuarantineTopic == "" {
		c.QuarantineTopic = "vigil-quarantine"
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.BatchTimeout == 0 {
		c.BatchTimeout = 5 * time.Millisecond
	}
	return c
}

func (s SinkConfig) validate() error {
	if s.Kind != KindSyslog && s.Syslog != (SyslogConfig{}) {
		return fmt.Errorf("cannot use a syslog block on a sink of kind %q: set kind: syslog or remove the block", s.Kind)
	}
	k := s.Kafka
	if s.Kind != KindKafka && (len(k.Brokers) > 0 || k.AlertsTopic != "" || k.QuarantineTopic != "" || k.RolloutTopic != "" || k.TLS != nil || k.SASL != nil || k.WriteTimeout != 0 || k.BatchTimeout != 0) {
		return fmt.Errorf("cannot use a kafka block on a sink of kind %q: set kind: kafka or remove the block", s.Kind)
	}
	if s.Kind != KindFile && s.Path != "" {
		return fmt.Errorf("cannot use path on a sink of kind %q: only kind: file writes to a path", s.Kind)
	}
	if _, err := ParseFormat(string(s.Format)); err != nil {
		return err
	}
	if _, err := s.leefDelimiter(); err != nil {
		return err
	}
	if s.Retry.MaxAttempts < 0 {
		return fmt.Errorf("cannot use retry.max_attempts %d: set it to 0 (default) or more", s.Retry.MaxAttempts)
	}
	if s.Retry.BackoffMin < 0 || s.Retry.BackoffMax < s.Retry.BackoffMin {
		return fmt.Errorf("cannot use retry backoff %v..%v: backoff_min must be positive and at most backoff_max", s.Retry.BackoffMin, s.Retry.BackoffMax)
	}
	switch s.Kind {
	case KindStdout:
	case KindFile:
		if s.Path == "" {
			return errors.New("cannot write a file sink without a path: set path, e.g. path: /var/log/vigil/alerts.jsonl")
		}
	case KindSyslog:
		return s.Syslog.validate(s.Format)
	case KindKafka:
		if s.Format != FormatJSON && s.Format != FormatECS {
			return fmt.Errorf("cannot send format %q to Kafka: set format to json or ecs", s.Format)
		}
		return s.Kafka.validate()
	case "":
		return errors.New("cannot build a sink without a kind: set kind to stdout, file, syslog or kafka")
	default:
		return fmt.Errorf("cannot build a sink of kind %q: set kind to stdout, file, syslog or kafka", s.Kind)
	}
	return nil
}

// leefDelimiter returns the configured delimiter byte (0: tab).
func (s SinkConfig) leefDelimiter() (byte, error) {
	switch d := s.LEEFDelimiter; {
	case d == "":
		return 0, nil
	case d == `\t` || d == "\t" || strings.EqualFold(d, "x09") || strings.EqualFold(d, "0x09"):
		return '\t', nil
	case len(d) == 1 && d[0] > ' ' && d[0] < 0x7f && d[0] != '=' && d[0] != '\\' && d[0] != '|':
		return d[0], nil
	}
	return 0, fmt.Errorf("cannot use leef_delimiter %q: set one printable ASCII character other than '=', '\\' and '|' (e.g. ^), or leave it empty for tab", s.LEEFDelimiter)
}

func (c SyslogConfig) validate(format Format) error {
	if c.Address == "" {
		return errors.New("cannot send syslog without an address: set syslog.address, e.g. siem.example.com:6514")
	}
	if _, _, err := net.SplitHostPort(c.Address); err != nil {
		return fmt.Errorf("cannot parse syslog.address %q: %w; write it as host:port", c.Address, err)
	}
	switch c.Transport {
	case TransportUDP, TransportTCP, TransportTLS:
	default:
		return fmt.Errorf("cannot use syslog.transport %q: set it to udp, tcp or tls", c.Transport)
	}
	switch c.Framing {
	case FramingOctetCounting, FramingLF:
	default:
		return fmt.Errorf("cannot use syslog.framing %q: set it to octet-counting or lf", c.Framing)
	}
	switch c.Profile {
	case ProfileRFC5424, ProfileRFC3164:
	case ProfileSentinel:
		if format != FormatCEF {
			return fmt.Errorf("cannot use syslog.profile sentinel with format %q: Sentinel's CEF connector reads format cef", format)
		}
	case ProfileQRadar:
		if format != FormatLEEF {
			return fmt.Errorf("cannot use syslog.profile qradar with format %q: set format to leef", format)
		}
	default:
		return fmt.Errorf("cannot use syslog.profile %q: set it to rfc5424, rfc3164, sentinel or qradar", c.Profile)
	}
	if _, ok := facilities[c.Facility]; !ok {
		return fmt.Errorf("cannot use syslog.facility %q: set it to one of kern, user, daemon, auth, syslog, local0 … local7", c.Facility)
	}
	if c.MaxMessageSize < 480 {
		return fmt.Errorf("cannot use syslog.max_message_size %d: every receiver takes 480 bytes (RFC 5426), set at least that", c.MaxMessageSize)
	}
	if c.QueueSize < 1 || c.ResendWindow < 0 {
		return fmt.Errorf("cannot use syslog.queue_size %d and resend_window %d: the queue needs room for one message and the window cannot be negative", c.QueueSize, c.ResendWindow)
	}
	if c.BackoffMax < c.BackoffMin {
		return fmt.Errorf("cannot use syslog backoff %v..%v: backoff_max must be at least backoff_min", c.BackoffMin, c.BackoffMax)
	}
	tlsSet := c.TLS != (TLSConfig{})
	if tlsSet && c.Transport != TransportTLS {
		return fmt.Errorf("cannot use syslog.tls with transport %q: set transport to tls or remove the tls block", c.Transport)
	}
	return c.TLS.validate("syslog.tls")
}

func (t TLSConfig) validate(where string) error {
	if (t.CertFile == "") != (t.KeyFile == "") {
		return fmt.Errorf("cannot use a client certificate without its key: set both %s.cert_file and %s.key_file", where, where)
	}
	for _, f := range []string{t.CAFile, t.CertFile, t.KeyFile} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("cannot read %s file: %w", where, err)
		}
	}
	return nil
}

func (c KafkaConfig) validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("cannot send to Kafka without brokers: set kafka.brokers, e.g. [\"kafka-1:9092\"]")
	}
	for _, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return fmt.Errorf("cannot parse kafka broker %q: %w; write it as host:port", b, err)
		}
	}
	if c.AlertsTopic == c.QuarantineTopic {
		return fmt.Errorf("cannot send alerts and quarantine events to the same topic %q: device management reads the quarantine topic; give it its own", c.AlertsTopic)
	}
	if c.RolloutTopic == c.QuarantineTopic {
		return fmt.Errorf("cannot send rollout alerts and quarantine events to the same topic %q: device management reads the quarantine topic; give rollout_topic its own, or leave it out to use alerts_topic", c.RolloutTopic)
	}
	if c.SASL != nil {
		if err := validateKafkaSASL(c.SASL); err != nil {
			return err
		}
	}
	if c.TLS != nil {
		return c.TLS.validate("kafka.tls")
	}
	return nil
}
