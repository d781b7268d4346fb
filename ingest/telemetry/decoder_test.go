package telemetry

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/ingest"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/telemetry-formats/good")

const formatsDir = "../../testdata/telemetry-formats"

func newDecoder(t testing.TB, mutate func(*ingest.TelemetryConfig)) *Decoder {
	t.Helper()
	cfg := ingest.DefaultTelemetryConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	d, err := NewDecoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// render prints rows in a stable text form for golden files.
func render(rows []ingest.Row) string {
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "device=%q ts=%s", r.Device, time.Unix(0, r.TimeNanos).UTC().Format(time.RFC3339Nano))
		for _, f := range []struct{ k, v string }{{"src_ip", r.SrcIP}, {"client_id", r.ClientID}, {"cert", r.Cert}, {"fw", r.Firmware}} {
			if f.v != "" {
				fmt.Fprintf(&b, " %s=%q", f.k, f.v)
			}
		}
		b.WriteString("\n  attrs:")
		for _, a := range r.Attrs {
			fmt.Fprintf(&b, " %s=%q", a.Key, a.Value)
		}
		b.WriteString("\n  metrics:")
		for _, m := range r.Metrics {
			fmt.Fprintf(&b, " %s=%g", m.Name, m.Value)
		}
		b.WriteString("\n  sets:")
		for _, s := range r.Sets {
			fmt.Fprintf(&b, " %s=%s", s.Set, s.Value)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// messages splits a case file: .jsonl holds one message per line, .json one
// (pretty-printed) message.
func messages(t *testing.T, path string) [][]byte {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(path, ".json") {
		return [][]byte{data}
	}
	var out [][]byte
	for _, l := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(l)) > 0 {
			out = append(out, l)
		}
	}
	return out
}

// TestGoodFormats decodes every case under good/ in auto mode with the
// message key "from-key" and compares the rows to the .golden file beside.
func TestGoodFormats(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join(formatsDir, "good", "*.json*"))
	if len(paths) < 4 {
		t.Fatalf("found %d cases, want at least 4", len(paths))
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			d := newDecoder(t, nil)
			var got strings.Builder
			for i, msg := range messages(t, p) {
				rows, err := d.Decode([]byte("from-key"), msg, 0)
				if err != nil {
					t.Fatalf("message %d: %v", i+1, err)
				}
				got.WriteString(render(rows))
			}
			golden := strings.TrimSuffix(strings.TrimSuffix(p, ".jsonl"), ".json") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got.String() != string(want) {
				t.Errorf("rows differ from %s:\ngot:\n%s\nwant:\n%s", golden, got.String(), want)
			}
		})
	}
}

// TestBadFormats decodes every case under bad/ without a key or transport
// time; the file name starts with the reason it must be rejected for.
func TestBadFormats(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join(formatsDir, "bad", "*.json"))
	seen := map[string]bool{}
	for _, p := range paths {
		name := filepath.Base(p)
		want, _, _ := strings.Cut(name, "__")
		seen[want] = true
		t.Run(name, func(t *testing.T) {
			d := newDecoder(t, nil)
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			rows, err := d.Decode(nil, data, 0)
			if err == nil {
				t.Fatalf("accepted: %s", render(rows))
			}
			if got := ReasonOf(err); got != want {
				t.Fatalf("reason %q, want %q (%v)", got, want, err)
			}
			if rows != nil {
				t.Fatalf("rows returned with an error")
			}
		})
	}
	for _, r := range Reasons {
		if r == ReasonOversized || r == ReasonTooManyNames {
			continue // covered by their own tests
		}
		if !seen[r] {
			t.Errorf("no bad case for reason %q", r)
		}
	}
}

func TestNativeFields(t *testing.T) {
	d := newDecoder(t, nil)
	msg := `{"device":"plc-17","ts":"2026-11-21T10:00:00.123Z","attrs":{"site":"plant-a","hw":"s7-1500","fw":"2.9.4"},"metrics":{"bytes_out":1234,"msgs_sent":12,"auth_failures":0},"conn":{"src_ip":"10.1.2.3","client_id":"plc-17","cert":"sha256:ab"}}`
	rows, err := d.Decode(nil, []byte(msg), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("%d rows", len(rows))
	}
	r := rows[0]
	want := time.Date(2026, 11, 21, 10, 0, 0, 123e6, time.UTC).UnixNano()
	if r.Device != "plc-17" || r.TimeNanos != want || r.Firmware != "2.9.4" || r.SrcIP != "10.1.2.3" || r.ClientID != "plc-17" || r.Cert != "sha256:ab" {
		t.Fatalf("row %+v", r)
	}
	if len(r.Metrics) != 3 || r.Metrics[0] != (ingest.Metric{Name: "bytes_out", Value: 1234}) {
		t.Fatalf("metrics %+v", r.Metrics)
	}
	// Epoch milliseconds and the key as device.
	rows, err = d.Decode([]byte("plc-99"), []byte(`{"ts":1795687200123,"metrics":{"x":1}}`), 0)
	if err != nil || rows[0].Device != "plc-99" || rows[0].TimeNanos != 1795687200123*int64(time.Millisecond) {
		t.Fatalf("key/epoch: %v %+v", err, rows)
	}
	// The transport time stands in for a missing ts.
	rows, err = d.Decode([]byte("plc-99"), []byte(`{"metrics":{"x":1}}`), 42)
	if err != nil || rows[0].TimeNanos != 42 {
		t.Fatalf("transport time: %v %+v", err, rows)
	}
}

func TestTelegrafTagsAndUnits(t *testing.T) {
	d := newDecoder(t, func(c *ingest.TelemetryConfig) {
		c.Format = ingest.FormatTelegraf
		c.Telegraf.DeviceTag = "device"
		c.Telegraf.AttrTags = []string{"site", "fw"}
		c.Telegraf.TimestampUnit = "ms"
	})
	msg := `{"fields":{"rx":5,"ok":true},"name":"link","tags":{"device":"rtu-3","site":"s1","fw":"1.2","host":"collector"},"timestamp":1795687200500}`
	rows, err := d.Decode(nil, []byte(msg), 0)
	if err != nil {
		t.Fatal(err)
	}
	r := rows[0]
	if r.Device != "rtu-3" || r.TimeNanos != 1795687200500*int64(time.Millisecond) || r.Firmware != "1.2" {
		t.Fatalf("row %+v", r)
	}
	if len(r.Attrs) != 2 || r.Attrs[0] != (ingest.Attr{Key: "site", Value: "s1"}) {
		t.Fatalf("attrs %+v: only configured tags may become attributes", r.Attrs)
	}
	if len(r.Metrics) != 2 || r.Metrics[0].Name != "link.rx" || r.Metrics[1] != (ingest.Metric{Name: "link.ok", Value: 1}) {
		t.Fatalf("metrics %+v", r.Metrics)
	}
	// RFC 3339 timestamps are accepted whatever the unit.
	rows, err = d.Decode(nil, []byte(`{"fields":{"rx":5},"name":"link","tags":{"device":"rtu-3"},"timestamp":"2026-11-21T10:00:00Z"}`), 0)
	if err != nil || rows[0].TimeNanos != time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC).UnixNano() {
		t.Fatalf("rfc3339: %v", err)
	}
}

func TestTelegrafBatchMerge(t *testing.T) {
	d := newDecoder(t, nil)
	msg := `{"metrics":[` +
		`{"fields":{"a":1},"name":"m1","tags":{"host":"h1"},"timestamp":100},` +
		`{"fields":{"b":2},"name":"m2","tags":{"host":"h1"},"timestamp":100},` +
		`{"fields":{"a":3},"name":"m1","tags":{"host":"h2"},"timestamp":100},` +
		`{"fields":{"a":4},"name":"m1","tags":{"host":"h1"},"timestamp":100}]}`
	rows, err := d.Decode(nil, []byte(msg), 0)
	if err != nil {
		t.Fatal(err)
	}
	// Only consecutive metrics merge: h1, h2, h1 again.
	if len(rows) != 3 || len(rows[0].Metrics) != 2 || rows[1].Device != "h2" || rows[2].Device != "h1" {
		t.Fatalf("rows:\n%s", render(rows))
	}
}

func TestDefenderLongAndShortAgree(t *testing.T) {
	d := newDecoder(t, func(c *ingest.TelemetryConfig) { c.Format = ingest.FormatDefender })
	long, _ := os.ReadFile(filepath.Join(formatsDir, "good", "defender-long.json"))
	short, _ := os.ReadFile(filepath.Join(formatsDir, "good", "defender-short.json"))
	lr, err := d.Decode(nil, long, 0)
	if err != nil {
		t.Fatal(err)
	}
	l := render(lr)
	sr, err := d.Decode([]byte("meter-0042"), short, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := sr[0]
	if r.Device != "meter-0042" || r.TimeNanos != 1530305228*int64(time.Second) {
		t.Fatalf("short row %+v", r)
	}
	got := map[string]float64{}
	for _, m := range r.Metrics {
		got[m.Name] = m.Value
	}
	want := map[string]float64{"bytes_in": 29359307173, "bytes_out": 26490711, "packets_in": 10014614354, "packets_out": 11387620,
		"listening_tcp_ports": 3, "listening_udp_ports": 2, "established_connections": 2, "MyMetricOfType_Number": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("metrics %v, want %v", got, want)
	}
	if !strings.Contains(l, "listening_tcp_ports=24800 listening_tcp_ports=22 listening_tcp_ports=53") ||
		!strings.Contains(render(sr), "remote_addrs=192.168.0.1 remote_addrs=2001:db8::7") {
		t.Fatalf("sets:\n%s\n%s", l, render(sr))
	}
	// device_source: key ignores the thing field.
	dk := newDecoder(t, func(c *ingest.TelemetryConfig) { c.Defender.DeviceSource = "key" })
	rows, err := dk.Decode([]byte("from-key"), long, 0)
	if err != nil || rows[0].Device != "from-key" {
		t.Fatalf("device_source key: %v %+v", err, rows)
	}
	// A counter report_id falls back to the transport time.
	rows, err = d.Decode([]byte("m"), []byte(`{"hed":{"rid":7},"met":{"ns":{"bi":1}}}`), 99)
	if err != nil || rows[0].TimeNanos != 99 {
		t.Fatalf("transport fallback: %v %+v", err, rows)
	}
}

func TestOversized(t *testing.T) {
	d := newDecoder(t, func(c *ingest.TelemetryConfig) { c.MaxMessageBytes = 64 })
	msg := []byte(`{"device":"plc-17","ts":1,"metrics":{"bytes_out":1234,"msgs_sent":12,"auth_failures":0}}`)
	_, err := d.Decode(nil, msg, 0)
	if ReasonOf(err) != ReasonOversized {
		t.Fatalf("got %v", err)
	}
}

func TestMetricNameCap(t *testing.T) {
	d := newDecoder(t, func(c *ingest.TelemetryConfig) { c.MaxMetricNames = 2 })
	if _, err := d.Decode(nil, []byte(`{"device":"a","ts":1,"metrics":{"x":1,"y":2}}`), 0); err != nil {
		t.Fatal(err)
	}
	_, err := d.Decode(nil, []byte(`{"device":"a","ts":1,"metrics":{"x":1,"z":2}}`), 0)
	if ReasonOf(err) != ReasonTooManyNames {
		t.Fatalf("got %v", err)
	}
	// Known names keep working after the cap is reached.
	if _, err := d.Decode(nil, []byte(`{"device":"a","ts":1,"metrics":{"y":1}}`), 0); err != nil {
		t.Fatal(err)
	}
}

// TestFixedFormat checks that a fixed format does not guess: a native
// message read as Telegraf is rejected.
func TestFixedFormat(t *testing.T) {
	d := newDecoder(t, func(c *ingest.TelemetryConfig) { c.Format = ingest.FormatTelegraf })
	_, err := d.Decode(nil, []byte(`{"device":"a","ts":1,"metrics":{"x":1}}`), 0)
	if ReasonOf(err) == "" {
		t.Fatalf("native message accepted as Telegraf: %v", err)
	}
}

// TestStableStrings checks the aliasing contract: set members and metric
// names survive the next Decode, which overwrites the parser buffer.
func TestStableStrings(t *testing.T) {
	d := newDecoder(t, nil)
	rows, err := d.Decode(nil, []byte(`{"thing":"t1","hed":{"rid":1530305228},"met":{"tp":{"pts":[{"pt":502}]}}}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	set := rows[0].Sets[0]
	name := rows[0].Metrics[0].Name
	if _, err := d.Decode(nil, []byte(`{"thing":"xx","hed":{"rid":1530305229},"met":{"tp":{"pts":[{"pt":999}]}}}`), 0); err != nil {
		t.Fatal(err)
	}
	if set.Value != "502" || set.Set != SetListeningTCPPorts || name != MetricListeningTCPPorts {
		t.Fatalf("strings changed under us: %+v %q", set, name)
	}
}

// TestDetectBridgedDefender: a bridge that puts "thing" and "ts" first must
// not make a Device Defender report look native.
func TestDetectBridgedDefender(t *testing.T) {
	d := newDecoder(t, nil)
	rows, err := d.Decode(nil, []byte(`{"thing":"m-1","ts":"2026-11-21T10:00:00Z","met":{"ns":{"bi":5}}}`), 0)
	if err != nil || rows[0].Device != "m-1" || rows[0].Metrics[0] != (ingest.Metric{Name: MetricBytesIn, Value: 5}) {
		t.Fatalf("%v %+v", err, rows)
	}
	rows, err = d.Decode(nil, []byte(`{"ts":1,"metrics":{"x":2},"device":"n-1"}`), 0)
	if err != nil || rows[0].Device != "n-1" {
		t.Fatalf("native with ts first: %v %+v", err, rows)
	}
}
