package ingest

import (
	"fmt"
	"strings"
	"time"
)

// Telemetry formats accepted by input.telemetry.format.
const (
	FormatAuto     = "auto"     // detect per record from its first distinguishing key
	FormatNative   = "native"   // Vigil's own JSON: device, ts, attrs, metrics, conn
	FormatTelegraf = "telegraf" // Telegraf's JSON serializer: name, tags, fields, timestamp
	FormatDefender = "defender" // AWS IoT Device Defender device-side metrics report
	FormatCSV      = "csv"      // CSV time series files, one row a line (files only, see ingest/csvts)
)

// TelemetryConfig is input.telemetry: how telemetry messages (Kafka records
// or JSONL lines) are decoded into observations.
type TelemetryConfig struct {
	// Format is auto, native, telegraf, defender or csv. For files, auto
	// also tells CSV from JSONL per file by its first lines.
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
	CSV      CSVConfig      `yaml:"csv"`
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

// CSVConfig says how a CSV time series file (a header line, then one row a
// line) becomes observations; ingest/csvts reads it. Column names compare
// case-insensitively.
type CSVConfig struct {
	// TimeColumn names the event-time column. Empty (the default) takes the
	// first column named time, timestamp, datetime, date or ts, else the
	// first column.
	TimeColumn string `yaml:"time_column"`
	// TimeLayout is how times are written: auto (RFC 3339, "2006-01-02
	// 15:04:05" with optional fractional seconds, or epoch seconds or
	// milliseconds told by magnitude), rfc3339, epoch_s, epoch_ms,
	// epoch_us, epoch_ns, or a Go time layout.
	TimeLayout string `yaml:"time_layout"`
	// TimeZone is the IANA zone of times written without an offset.
	TimeZone string `yaml:"time_zone"`
	// Separator is auto (sniffed from the header: ';', ',' or tab), ",",
	// ";", "\t" (or "tab") or "|".
	Separator string `yaml:"separator"`
	// DeviceColumn names the column holding the device id. Empty (the
	// default) makes each file one device named after the file.
	DeviceColumn string `yaml:"device_column"`
	// LabelColumns are ground truth (anomaly marks), never metrics; the
	// scorer reads them with jsonl.ReadRowLabels.
	LabelColumns []string `yaml:"label_columns"`
	// ExcludeColumns are neither metrics nor labels.
	ExcludeColumns []string `yaml:"exclude_columns"`
}

// CSV time layouts with a name; any other value of time_layout is a Go
// layout.
const (
	CSVTimeAuto    = "auto"
	CSVTimeRFC3339 = "rfc3339"
	CSVTimeEpochS  = "epoch_s"
	CSVTimeEpochMS = "epoch_ms"
	CSVTimeEpochUS = "epoch_us"
	CSVTimeEpochNS = "epoch_ns"
)

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
		CSV: CSVConfig{
			TimeLayout:   CSVTimeAuto,
			TimeZone:     "UTC",
			Separator:    "auto",
			LabelColumns: []string{"anomaly", "changepoint", "label", "attack"},
		},
	}
}

// Validate checks c and says how to fix it.
func (c *TelemetryConfig) Validate() error {
	switch c.Format {
	case FormatAuto, FormatNative, FormatTelegraf, FormatDefender, FormatCSV:
	default:
		return fmt.Errorf("telemetry: unknown format %q; use auto, native, telegraf, defender or csv", c.Format)
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
	return c.CSV.validate()
}

func (c *CSVConfig) validate() error {
	if !validCSVTimeLayout(c.TimeLayout) {
		return fmt.Errorf("telemetry: csv.time_layout %q is unknown; use auto, rfc3339, epoch_s, epoch_ms, epoch_us, epoch_ns or a Go layout naming year, month and day such as \"2006-01-02 15:04:05\"", c.TimeLayout)
	}
	if _, err := time.LoadLocation(c.TimeZone); err != nil || c.TimeZone == "" {
		return fmt.Errorf("telemetry: csv.time_zone %q is not a known IANA zone; use a name such as UTC or Europe/Moscow (the system's tzdata must have it)", c.TimeZone)
	}
	if _, ok := CSVSeparator(c.Separator); !ok && c.Separator != "auto" {
		return fmt.Errorf("telemetry: csv.separator %q is unknown; use auto, \",\", \";\", \"|\" or tab", c.Separator)
	}
	for _, list := range []struct {
		key   string
		names []string
	}{{"label_columns", c.LabelColumns}, {"exclude_columns", c.ExcludeColumns}} {
		for _, n := range list.names {
			if strings.TrimSpace(n) == "" {
				return fmt.Errorf("telemetry: csv.%s has an empty entry; remove it", list.key)
			}
			for _, role := range []struct{ key, name string }{{"time_column", c.TimeColumn}, {"device_column", c.DeviceColumn}} {
				if strings.EqualFold(strings.TrimSpace(n), strings.TrimSpace(role.name)) {
					return fmt.Errorf("telemetry: csv.%s lists %q, which is the csv.%s; remove it from one of them", list.key, n, role.key)
				}
			}
		}
	}
	if c.DeviceColumn != "" && strings.EqualFold(strings.TrimSpace(c.DeviceColumn), strings.TrimSpace(c.TimeColumn)) {
		return fmt.Errorf("telemetry: csv.device_column %q is also the csv.time_column; name two different columns", c.DeviceColumn)
	}
	return nil
}

// validCSVTimeLayout reports whether s is a named layout or a Go layout
// that writes a date: a reference time formatted with it parses back to
// the same day.
func validCSVTimeLayout(s string) bool {
	switch s {
	case CSVTimeAuto, CSVTimeRFC3339, CSVTimeEpochS, CSVTimeEpochMS, CSVTimeEpochUS, CSVTimeEpochNS:
		return true
	}
	ref := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	t, err := time.Parse(s, ref.Format(s))
	return err == nil && t.Year() == 2021 && t.Month() == 3 && t.Day() == 4
}

// CSVSeparator returns the byte csv.separator names; ok is false for auto
// and unknown values.
func CSVSeparator(s string) (sep byte, ok bool) {
	switch s {
	case ",", ";", "|":
		return s[0], true
	case "\t", "tab":
		return '\t', true
	}
	return 0, false
}
