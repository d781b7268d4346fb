package ingest

import (
	"fmt"
	"net"
	"strings"
	"time"
)

// KafkaConfig is the top-level "kafka" section: the consumer group Vigil
// runs as, the topics it reads and writes besides the sinks, security and
// the HTTP observability listener. Defaults come from DefaultKafkaConfig.
type KafkaConfig struct {
	Brokers  []string `yaml:"brokers"`
	ClientID string   `yaml:"client_id"`
	GroupID  string   `yaml:"group_id"`
	// InstanceID names this instance in shared group summaries; empty means
	// the host name plus the process id.
	InstanceID string `yaml:"instance_id"`

	TelemetryTopics []string          `yaml:"telemetry_topics"`
	PacketTopics    []string          `yaml:"packet_topics"`
	Packets         KafkaPacketConfig `yaml:"packets"`

	DeadLetterTopic string `yaml:"dead_letter_topic"` // "" disables: rejects are only counted
	ChangelogTopic  string `yaml:"changelog_topic"`   // compacted; "" disables state checkpoints
	GroupStateTopic string `yaml:"group_state_topic"` // compacted; "" disables sharing group summaries

	// RepartitionByGroup makes every group whole on one instance: each
	// instance reads its share of the telemetry topics and produces each
	// record, keyed by its group, to the internal topic ByGroupTopic; the
	// consumer group judges from that topic, so group-level detectors
	// (fleet KPIs, the quarantine rail, peers-now) count every member of a
	// group whatever the assignment. It costs a second produce and consume
	// of every record. See docs/scaling.md.
	RepartitionByGroup bool `yaml:"repartition_by_group"`

	// StartOffset is where a partition without a committed offset starts:
	// "earliest" or "latest".
	StartOffset string `yaml:"start_offset"`
	// IsolationLevel is "read_committed" (records of transactions that were
	// aborted, or are still open, are never read) or "read_uncommitted"
	// (every record the producers wrote).
	IsolationLevel string `yaml:"isolation_level"`

	BatchSize          int           `yaml:"batch_size"`           // records per batch at most
	BatchLinger        time.Duration `yaml:"batch_linger"`         // how long a partial batch waits for more records
	MaxInflightBatches int           `yaml:"max_inflight_batches"` // per partition: the checkpointer's cap
	EngineQueue        int           `yaml:"engine_queue"`         // batches waiting for the engine, all partitions
	// MaxEventTimeSkew keeps this instance's partitions within this much
	// event time of each other while they have a backlog, so that group
	// detectors on event time (silence, fleet rates) see the devices of a
	// group advance together; 0 disables it.
	MaxEventTimeSkew time.Duration `yaml:"max_event_time_skew"`
	FetchMaxBytes    int           `yaml:"fetch_max_bytes"`
	FetchMaxWait     time.Duration `yaml:"fetch_max_wait"`

	CommitInterval     time.Duration `yaml:"commit_interval"`
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`  // device state to the changelog
	GroupShareInterval time.Duration `yaml:"group_share_interval"` // group summaries to peers
	NackBackoff        time.Duration `yaml:"nack_backoff"`         // wait before redelivering after a failed batch

	SessionTimeout    time.Duration `yaml:"session_timeout"`
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	RebalanceTimeout  time.Duration `yaml:"rebalance_timeout"`
	// ShutdownTimeout bounds a graceful stop (drain, flush, commit); work
	// still running at three quarters of it is abandoned uncommitted.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`

	TLS  KafkaTLSConfig  `yaml:"tls"`
	SASL KafkaSASLConfig `yaml:"sasl"`

	// HTTPListen is the address of /metrics, /healthz and /readyz; "" disables it.
	HTTPListen string `yaml:"http_listen"`
}

// KafkaPacketConfig describes the messages of packet topics that are not
// self-describing (Apache Metron's layout: the key is the capture time, the
// value one bare frame).
type KafkaPacketConfig struct {
	TimestampUnit string `yaml:"timestamp_unit"` // "ms", "us" or "ns"
	LinkType      string `yaml:"link_type"`      // "ethernet", "raw", "linux_sll", "linux_sll2", "loopback"
}

// KafkaTLSConfig enables TLS to the brokers.
type KafkaTLSConfig struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// KafkaSASLConfig enables SASL authentication. Secrets never appear in the
// config: it names the environment variables that hold them.
type KafkaSASLConfig struct {
	Mechanism   string `yaml:"mechanism"` // "", "plain", "scram-sha-256", "scram-sha-512"
	Username    string `yaml:"username"`
	UsernameEnv string `yaml:"username_env"`
	PasswordEnv string `yaml:"password_env"`
}

// DefaultKafkaConfig returns the defaults of the "kafka" section.
func DefaultKafkaConfig() KafkaConfig {
	return KafkaConfig{
		Brokers:            []string{"localhost:9092"},
		ClientID:           "vigil",
		GroupID:            "vigil",
		Packets:            KafkaPacketConfig{TimestampUnit: "us", LinkType: "ethernet"},
		DeadLetterTopic:    "vigil-dead-letter",
		ChangelogTopic:     "vigil-state-changelog",
		GroupStateTopic:    "vigil-group-state",
		StartOffset:        "earliest",
		IsolationLevel:     "read_committed",
		BatchSize:          1024,
		BatchLinger:        20 * time.Millisecond,
		MaxInflightBatches: 8,
		EngineQueue:        16,
		MaxEventTimeSkew:   time.Minute,
		FetchMaxBytes:      8 << 20,
		FetchMaxWait:       100 * time.Millisecond,
		CommitInterval:     time.Second,
		CheckpointInterval: 5 * time.Second,
		GroupShareInterval: 10 * time.Second,
		NackBackoff:        time.Second,
		SessionTimeout:     10 * time.Second,
		HeartbeatInterval:  3 * time.Second,
		RebalanceTimeout:   30 * time.Second,
		ShutdownTimeout:    30 * time.Second,
		HTTPListen:         "127.0.0.1:9464",
	}
}

// Validate checks c and says how to fix what is wrong.
func (c *KafkaConfig) Validate() error {
	if len(c.Brokers) == 0 {
		return fmt.Errorf("brokers is empty; list at least one host:port")
	}
	for _, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return fmt.Errorf("cannot parse broker %q: %w; write it as host:port", b, err)
		}
	}
	if c.GroupID == "" {
		return fmt.Errorf("group_id is empty; every instance of one deployment needs the same group id")
	}
	for _, t := range append(append([]string{}, c.TelemetryTopics...), c.PacketTopics...) {
		if err := CheckTopicName(t); err != nil {
			return err
		}
	}
	for _, t := range []string{c.DeadLetterTopic, c.ChangelogTopic, c.GroupStateTopic} {
		if t == "" {
			continue
		}
		if err := CheckTopicName(t); err != nil {
			return err
		}
	}
	if c.RepartitionByGroup {
		if len(c.PacketTopics) > 0 {
			return fmt.Errorf("repartition_by_group: packet topics are not repartitioned yet; remove kafka.packet_topics or set repartition_by_group: false")
		}
		if err := CheckTopicName(c.ByGroupTopic()); err != nil {
			return fmt.Errorf("repartition_by_group: the internal topic is named after group_id: %w", err)
		}
	}
	if _, err := TimestampUnitNanos(c.Packets.TimestampUnit); err != nil {
		return fmt.Errorf("packets: %w", err)
	}
	switch c.Packets.LinkType {
	case "ethernet", "raw", "linux_sll", "linux_sll2", "loopback":
	default:
		return fmt.Errorf("packets: unknown link_type %q; use ethernet, raw, linux_sll, linux_sll2 or loopback", c.Packets.LinkType)
	}
	switch c.StartOffset {
	case "earliest", "latest":
	default:
		return fmt.Errorf("unknown start_offset %q; use earliest or latest", c.StartOffset)
	}
	switch c.IsolationLevel {
	case "read_committed", "read_uncommitted":
	default:
		return fmt.Errorf("unknown isolation_level %q; use read_committed (records of aborted transactions are skipped) or read_uncommitted", c.IsolationLevel)
	}
	if c.BatchSize < 1 || c.MaxInflightBatches < 1 || c.EngineQueue < 1 {
		return fmt.Errorf("batch_size, max_inflight_batches and engine_queue must be at least 1")
	}
	for name, d := range map[string]time.Duration{
		"batch_linger": c.BatchLinger, "fetch_max_wait": c.FetchMaxWait, "commit_interval": c.CommitInterval,
		"checkpoint_interval": c.CheckpointInterval, "group_share_interval": c.GroupShareInterval,
		"session_timeout": c.SessionTimeout, "heartbeat_interval": c.HeartbeatInterval,
		"rebalance_timeout": c.RebalanceTimeout, "shutdown_timeout": c.ShutdownTimeout,
	} {
		if d <= 0 {
			return fmt.Errorf("%s must be positive, got %s", name, d)
		}
	}
	if c.MaxEventTimeSkew < 0 {
		return fmt.Errorf("max_event_time_skew must not be negative; 0 disables the alignment of partitions")
	}
	if c.HeartbeatInterval >= c.SessionTimeout {
		return fmt.Errorf("heartbeat_interval (%s) must be shorter than session_timeout (%s); a third of it is usual", c.HeartbeatInterval, c.SessionTimeout)
	}
	if c.TLS.Enabled && (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return fmt.Errorf("tls: cert_file and key_file go together; set both for a client certificate or neither")
	}
	switch strings.ToLower(c.SASL.Mechanism) {
	case "":
	case "plain", "scram-sha-256", "scram-sha-512":
		if c.SASL.Username == "" && c.SASL.UsernameEnv == "" {
			return fmt.Errorf("sasl: set username or username_env")
		}
		if c.SASL.PasswordEnv == "" {
			return fmt.Errorf("sasl: set password_env to the name of the environment variable holding the password; passwords are never written in the config")
		}
	default:
		return fmt.Errorf("sasl: unknown mechanism %q; use plain, scram-sha-256 or scram-sha-512", c.SASL.Mechanism)
	}
	if c.HTTPListen != "" {
		if _, _, err := net.SplitHostPort(c.HTTPListen); err != nil {
			return fmt.Errorf("cannot parse http_listen %q: %w; write it as host:port, e.g. 127.0.0.1:9464", c.HTTPListen, err)
		}
	}
	return nil
}

// ByGroupTopic is the internal topic of repartition_by_group: the
// telemetry records keyed by their group, read by the consumer group in
// place of the telemetry topics. Its name follows group_id, so that two
// deployments never share it.
func (c *KafkaConfig) ByGroupTopic() string { return c.GroupID + "-by-group" }

// RepartitionGroupID is the consumer group of the instances' repartition
// stage, which reads the telemetry topics for ByGroupTopic.
func (c *KafkaConfig) RepartitionGroupID() string { return c.GroupID + "-repartition" }

// TimestampUnitNanos returns the nanoseconds in one unit of a Metron key.
func TimestampUnitNanos(unit string) (int64, error) {
	switch unit {
	case "ms":
		return int64(time.Millisecond), nil
	case "us", "µs":
		return int64(time.Microsecond), nil
	case "ns":
		return 1, nil
	}
	return 0, fmt.Errorf("unknown timestamp_unit %q; use ms, us or ns", unit)
}

// CheckTopicName checks that t is a legal Kafka topic name.
func CheckTopicName(t string) error {
	if t == "" || len(t) > 249 || t == "." || t == ".." {
		return fmt.Errorf("invalid topic name %q; Kafka topic names are 1-249 characters", t)
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("invalid topic name %q; use only letters, digits, '.', '_' and '-'", t)
		}
	}
	return nil
}
