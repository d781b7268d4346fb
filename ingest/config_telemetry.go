package ingest

// TelemetryConfig configures telemetry input.
type TelemetryConfig struct{}

// DefaultTelemetryConfig returns the defaults.
func DefaultTelemetryConfig() TelemetryConfig { return TelemetryConfig{} }

// Validate checks c.
func (c *TelemetryConfig) Validate() error { return nil }
