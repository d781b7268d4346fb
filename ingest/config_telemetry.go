package ingest

import (
	"fmt"
	"strings"
)

// Telemetry formats accepted by input.telemetry.format.
const (
	FormatAuto     = "auto"     // detect per record from its first distinguishing key
	FormatNative   = "native"   // Vigil's own JSON: device, ts, attrs, metrics, conn
	FormatTelegraf = "telegraf" // Telegraf's JSON serializer: name, tags, fields, timestamp
	FormatDefender = "defender" // AWS IoT Device Defender device-side metrics report
)

// TelemetryConfig is input.telemetry: how telemetry messages (Kafka records
// or JSONL lines) are decoded into observations.
type TelemetryConfig struct {
	// Format is auto, native, telegraf or defender.
	Format string `yaml:"format"`
	// MaxMessageBytes rejects larger messages (reason "oversized") before
	// parsing, so one huge record cannot exhaust memory.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// BatchRows is the most rows a file source puts in one batch.
	BatchRows int `yaml:"batch_rows"`
	// MaxMetricNames caps the distinct metric names one decoder accepts.
	// Every name becomes an Arrow column for the life of the process, so a
	// device inventing names must not grow them without bound; records with
	// a new name past the cap are rejected (reason "too_many_metric_names").
	MaxMetricNames int `yaml:"max_metric_names"`

	Telegraf TelegrafConfig `yaml:"telegraf"`
	Defender DefenderConfig `yaml:"defender"`
}

// TelegrafConfig maps Telegraf's JSON serializer output to observations.
type TelegrafConfig struct {
	// DeviceTag is the tag holding the device id; when a metric lacks it the
	// Kafka key is used.
	DeviceTag string `yaml:"device_tag"`
	// AttrTags are the tags kept as device attributes (site, hw, fw, …).
	// Empty keeps every tag except DeviceTag.
	AttrTags []string `yaml:"attr_tags"`
	// TimestampUnit is Telegraf's json_timestamp_units for numeric
	// timestamps: s, ms, us or ns. RFC 3339 string timestamps are always
	// accepted.
	TimestampUnit string `yaml:"timestamp_unit"`
}

// DefenderConfig says where a Device Defender report's device comes from;
// the report itself does not name its thing.
type DefenderConfig struct {
	// DeviceSource is auto (DeviceField, else the Kafka key), key or field.
	DeviceSource string `yaml:"device_source"`
	// DeviceField is the top-level string field naming the thing, added by
	// whatever bridged the report from MQTT.
	DeviceField string `yaml:"device_field"`
}

// DefaultTelemetryConfig returns the defaults.
func DefaultTelemetryConfig() TelemetryConfig {
	return TelemetryConfig{
		Format:          FormatAuto,
		MaxMessageBytes: 1 << 20,
		BatchRows:       4096,
		MaxMetricNames:  1024,
		Telegraf: TelegrafConfig{
			DeviceTag:     "host",
			TimestampUnit: "s",
		},
		Defender: DefenderConfig{
			DeviceSource: "auto",
			DeviceField:  "thing",
		},
	}
}

// Validate checks c and says how to fix it.
func (c *TelemetryConfig) Validate() error {
	switch c.Format {
	case FormatAuto, FormatNative, FormatTelegraf, FormatDefender:
	default:
		return fmt.Errorf("telemetry: unknown format %q; use auto, native, telegraf or defender", c.Format)
	}
	if c.MaxMessageBytes < 64 || c.MaxMessageBytes > 64<<20 {
		return fmt.Errorf("telemetry: max_message_bytes %d is out of range; set it between 64 and 67108864 (default 1048576)", c.MaxMessageBytes)
	}
	if c.BatchRows < 1 || c.BatchRows > 1<<20 {
		return fmt.Errorf("telemetry: batch_rows %d is out of range; set it between 1 and 1048576 (default 4096)", c.BatchRows)
	}
	if c.MaxMetricNames < 1 || c.MaxMetricNames > 1<<16 {
		return fmt.Errorf("telemetry: max_metric_names %d is out of range; set it between 1 and 65536 (default 1024)", c.MaxMetricNames)
	}
	if strings.TrimSpace(c.Telegraf.DeviceTag) == "" {
		return fmt.Errorf("telemetry: telegraf.device_tag is empty; name the tag that holds the device id (default host)")
	}
	for _, t := range c.Telegraf.AttrTags {
		if strings.TrimSpace(t) == "" {
			return fmt.Errorf("telemetry: telegraf.attr_tags has an empty entry; remove it")
		}
	}
	switch c.Telegraf.TimestampUnit {
	case "s", "ms", "us", "ns":
	default:
		return fmt.Errorf("telemetry: telegraf.timestamp_unit %q is unknown; use s, ms, us or ns as in Telegraf's json_timestamp_units", c.Telegraf.TimestampUnit)
	}
	switch c.Defender.DeviceSource {
	case "auto", "key", "field":
	default:
		return fmt.Errorf("telemetry: defender.device_source %q is unknown; use auto, key or field", c.Defender.DeviceSource)
	}
	if c.Defender.DeviceSource != "key" && strings.TrimSpace(c.Defender.DeviceField) == "" {
		return fmt.Errorf("telemetry: defender.device_field is empty; name the report field holding the thing name (default thing) or set device_source: key")
	}
	return nil
}
