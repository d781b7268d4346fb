package ingest

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// decodeStrict parses YAML the way cmd/vigil does: over the defaults,
// unknown keys rejected.
func decodeStrict(t *testing.T, doc string) (Config, error) {
	t.Helper()
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func TestTelemetryAndInventoryYAML(t *testing.T) {
	cfg, err := decodeStrict(t, `
telemetry:
  format: telegraf
  max_message_bytes: 65536
  batch_rows: 1024
  telegraf:
    device_tag: device
    attr_tags: [site, hw, fw]
    timestamp_unit: ms
  defender:
    device_source: key
inventory:
  path: /etc/vigil/assets.csv
  group_by: [site, hw, fw]
  reload_interval: 5s
`)
	if err != nil {
		t.Fatal(err)
	}
	tc, ic := cfg.Telemetry, cfg.Inventory
	if tc.Format != FormatTelegraf || tc.MaxMessageBytes != 65536 || tc.BatchRows != 1024 || tc.MaxMetricNames != 1024 ||
		tc.Telegraf.DeviceTag != "device" || len(tc.Telegraf.AttrTags) != 3 || tc.Telegraf.TimestampUnit != "ms" ||
		tc.Defender.DeviceSource != "key" || tc.Defender.DeviceField != "thing" {
		t.Fatalf("telemetry %+v", tc)
	}
	if c := tc.CSV; c.TimeColumn != "" || c.TimeLayout != "auto" || c.TimeZone != "UTC" || c.Separator != "auto" ||
		c.DeviceColumn != "" || strings.Join(c.LabelColumns, ",") != "anomaly,changepoint,label,attack" || len(c.ExcludeColumns) != 0 {
		t.Fatalf("csv defaults %+v", c)
	}
	if ic.Path != "/etc/vigil/assets.csv" || len(ic.GroupBy) != 3 || ic.ReloadInterval != 5*time.Second || ic.Format != "auto" {
		t.Fatalf("inventory %+v", ic)
	}
}

func TestCSVYAML(t *testing.T) {
	cfg, err := decodeStrict(t, `
telemetry:
  format: csv
  csv:
    time_column: Zeit
    time_layout: "02.01.2006 15:04:05"
    time_zone: Europe/Berlin
    separator: "\t"
    device_column: Anlage
    label_columns: [Stoerung]
    exclude_columns: [Kommentar]
`)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Telemetry.CSV
	if cfg.Telemetry.Format != FormatCSV || c.TimeColumn != "Zeit" || c.TimeLayout != "02.01.2006 15:04:05" || c.TimeZone != "Europe/Berlin" ||
		c.Separator != "\t" || c.DeviceColumn != "Anlage" || len(c.LabelColumns) != 1 || c.ExcludeColumns[0] != "Kommentar" {
		t.Fatalf("csv %+v", c)
	}
	for _, sep := range []string{"tab", ",", ";", "|", "auto"} {
		if _, err := decodeStrict(t, "telemetry: {csv: {separator: '"+sep+"'}}"); err != nil {
			t.Errorf("separator %q: %v", sep, err)
		}
	}
	for _, layout := range []string{"rfc3339", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns", "2006-01-02", "Jan _2 2006 15:04", "20060102150405"} {
		if _, err := decodeStrict(t, "telemetry: {csv: {time_layout: '"+layout+"'}}"); err != nil {
			t.Errorf("time_layout %q: %v", layout, err)
		}
	}
}

func TestTelemetryAndInventoryBadConfig(t *testing.T) {
	cases := []struct{ doc, want string }{
		{"telemetry: {format: xml}", `unknown format "xml"; use auto, native, telegraf, defender or csv`},
		{"telemetry: {csv: {time_layout: unix}}", `csv.time_layout "unix" is unknown; use auto, rfc3339, epoch_s, epoch_ms`},
		{"telemetry: {csv: {time_layout: '15:04:05'}}", `csv.time_layout "15:04:05" is unknown`},
		{"telemetry: {csv: {time_zone: Mars/Olympus}}", `csv.time_zone "Mars/Olympus" is not a known IANA zone`},
		{"telemetry: {csv: {time_zone: ''}}", `csv.time_zone "" is not a known IANA zone`},
		{"telemetry: {csv: {separator: ':'}}", `csv.separator ":" is unknown`},
		{"telemetry: {csv: {label_columns: [anomaly, ' ']}}", "csv.label_columns has an empty entry"},
		{"telemetry: {csv: {exclude_columns: ['']}}", "csv.exclude_columns has an empty entry"},
		{"telemetry: {csv: {device_column: host, exclude_columns: [HOST]}}", `csv.exclude_columns lists "HOST", which is the csv.device_column`},
		{"telemetry: {csv: {time_column: t, label_columns: [t]}}", `csv.label_columns lists "t", which is the csv.time_column`},
		{"telemetry: {csv: {time_column: t, device_column: t}}", `csv.device_column "t" is also the csv.time_column`},
		{"telemetry: {csv: {sep: ','}}", "field sep not found"},
		{"telemetry: {max_message_bytes: 10}", "max_message_bytes 10 is out of range; set it between 64"},
		{"telemetry: {batch_rows: 0}", "batch_rows 0 is out of range"},
		{"telemetry: {max_metric_names: 0}", "max_metric_names 0 is out of range"},
		{"telemetry: {telegraf: {device_tag: ''}}", "telegraf.device_tag is empty"},
		{"telemetry: {telegraf: {attr_tags: [site, '']}}", "telegraf.attr_tags has an empty entry"},
		{"telemetry: {telegraf: {timestamp_unit: h}}", `telegraf.timestamp_unit "h" is unknown`},
		{"telemetry: {defender: {device_source: topic}}", `defender.device_source "topic" is unknown`},
		{"telemetry: {defender: {device_field: ''}}", "defender.device_field is empty"},
		{"telemetry: {fromat: native}", "field fromat not found"},
		{"inventory: {format: xlsx}", `unknown format "xlsx"`},
		{"inventory: {group_by: []}", "group_by is empty"},
		{"inventory: {group_by: [site, site]}", `group_by lists "site" twice`},
		{"inventory: {group_by: [site/hw]}", `group_by entry "site/hw" is not an attribute name`},
		{"inventory: {reload_interval: 10ms}", "reload_interval 10ms is too short"},
		{"inventory: {reload_interval: soon}", "cannot unmarshal"},
		{"inventory: {groupby: [site]}", "field groupby not found"},
	}
	for _, c := range cases {
		_, err := decodeStrict(t, c.doc)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got  %v\n want %s", c.doc, err, c.want)
		}
	}
}
