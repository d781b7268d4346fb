package ingest

// KafkaConfig configures kafka input.
type KafkaConfig struct{}

// DefaultKafkaConfig returns the defaults.
func DefaultKafkaConfig() KafkaConfig { return KafkaConfig{} }

// Validate checks c.
func (c *KafkaConfig) Validate() error { return nil }
