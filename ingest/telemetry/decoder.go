// Package telemetry owns the decoding of device telemetry messages — Vigil's
// native JSON, Telegraf's JSON serializer output and AWS IoT Device Defender
// device-side metrics reports — into ingest.Row values, one message at a
// time, without reflection and without allocating per message in steady
// state.
//
// A Decoder is used by one goroutine (one Kafka partition worker, one file
// reader). What it returns aliases its own buffers, as documented on Decode.
package telemetry

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unsafe"

	"github.com/valyala/fastjson"

	"github.com/vigil-ot/vigil/ingest"
)

// Reasons a message is rejected. They are stable labels for metrics and the
// replay summary; Reasons lists them all.
const (
	ReasonOversized     = "oversized"             // longer than max_message_bytes
	ReasonJSONSyntax    = "json_syntax"           // not one well-formed JSON value
	ReasonUnknownFormat = "unknown_format"        // auto detection found no known layout
	ReasonMissingDevice = "missing_device"        // neither the message nor the key names a device
	ReasonBadTimestamp  = "bad_timestamp"         // timestamp missing, unparsable or out of range
	ReasonNoMetrics     = "no_metrics"            // nothing numeric to learn from
	ReasonBadMetric     = "bad_metric"            // a metric is not a finite number or has no name
	ReasonBadField      = "bad_field"             // a known field has the wrong JSON type
	ReasonTooManyNames  = "too_many_metric_names" // a new metric name past max_metric_names
)

// Reasons lists every rejection reason, for registering counters up front.
var Reasons = []string{
	ReasonOversized, ReasonJSONSyntax, ReasonUnknownFormat, ReasonMissingDevice,
	ReasonBadTimestamp, ReasonNoMetrics, ReasonBadMetric, ReasonBadField, ReasonTooManyNames,
}

// DecodeError is why one message was rejected. Reason is one of the Reason
// constants; Detail explains it for a log line.
type DecodeError struct {
	Reason string
	Detail string
}

func (e *DecodeError) Error() string {
	return "cannot decode telemetry message: " + e.Reason + ": " + e.Detail
}

// ReasonOf returns the rejection reason of err, or "" when err is not a
// *DecodeError.
func ReasonOf(err error) string {
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Reason
	}
	return ""
}

func reject(reason, format string, args ...any) error {
	return &DecodeError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Set names carried in Row.Sets by Device Defender reports.
const (
	SetListeningTCPPorts = "listening_tcp_ports"
	SetListeningUDPPorts = "listening_udp_ports"
	SetRemoteAddrs       = "remote_addrs"
)

// maxInterned bounds the decoder's string interning table (set members and
// composite metric names). Past it, new strings are copied per row: still
// correct, just no longer allocation-free.
const maxInterned = 1 << 16

type format uint8

const (
	formatAuto format = iota
	formatNative
	formatTelegraf
	formatDefender
)

// Decoder turns one telemetry message into rows. It is not safe for
// concurrent use; give each goroutine its own.
type Decoder struct {
	format          format
	maxMessageBytes int
	maxMetricNames  int

	telegrafDevice   string
	telegrafAttrTags []string // empty: every tag but the device tag
	telegrafUnit     int64    // nanoseconds per timestamp unit
	defenderFromKey  bool
	defenderFromFld  bool
	defenderDeviceFl string

	parser fastjson.Parser
	rows   []ingest.Row

	// metricNames interns every accepted metric name, which both caps their
	// number and gives rows stable names that outlive the parser buffer.
	metricNames map[string]string
	// The keys of the objects of the previous native messages the scanner
	// read, by place, so that it matches a message of the same layout
	// without tokenizing its keys (see keyCache). Metric names in
	// metricKeys are the ones in metricNames.
	topKeys, attrKeys, metricKeys, connKeys keyCache
	// minutes spares the scanner re-reading the date of RFC 3339 times.
	minutes minuteCache
	// interned holds set members and other stable strings (ports, addresses).
	interned map[string]string
	scratch  []byte

	// referenceOnly disables the fast native scanner, for tests that
	// compare it with the reference decoder.
	referenceOnly bool
	// learnNames lets the scanner intern new metric names itself, so tests
	// can compare it with the reference on messages the reference rejects.
	learnNames bool
}

// NewDecoder returns a decoder for cfg, which must have passed Validate.
func NewDecoder(cfg ingest.TelemetryConfig) (*Decoder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot create telemetry decoder: %w", err)
	}
	d := &Decoder{
		maxMessageBytes:  cfg.MaxMessageBytes,
		maxMetricNames:   cfg.MaxMetricNames,
		telegrafDevice:   cfg.Telegraf.DeviceTag,
		telegrafAttrTags: append([]string(nil), cfg.Telegraf.AttrTags...),
		defenderFromKey:  cfg.Defender.DeviceSource != "field",
		defenderFromFld:  cfg.Defender.DeviceSource != "key",
		defenderDeviceFl: cfg.Defender.DeviceField,
		metricNames:      make(map[string]string),
		interned:         make(map[string]string),
	}
	switch cfg.Format {
	case ingest.FormatNative:
		d.format = formatNative
	case ingest.FormatTelegraf:
		d.format = formatTelegraf
	case ingest.FormatDefender:
		d.format = formatDefender
	}
	switch cfg.Telegraf.TimestampUnit {
	case "s":
		d.telegrafUnit = int64(time.Second)
	case "ms":
		d.telegrafUnit = int64(time.Millisecond)
	case "us":
		d.telegrafUnit = int64(time.Microsecond)
	default:
		d.telegrafUnit = 1
	}
	return d, nil
}

// Decode decodes one message: value is its bytes, key the Kafka record key
// (nil when there is none) and transportNanos the time the transport
// recorded it (the Kafka record timestamp, 0 when unknown), used only when
// the message carries no event time of its own.
//
// It returns the message's rows — usually one; a Telegraf batch may give
// several — or a *DecodeError naming the reason. Partition and Offset are
// left zero for the caller to fill. The rows, and the strings in them, are
// valid until the next call of Decode, and key and value must stay unchanged
// until then, because Device, attribute and connection strings alias them or
// the parser's buffer; ingest.ObservationBuilder.Append copies what it keeps.
// Metric names and set members are interned and stay valid for good.
func (d *Decoder) Decode(key, value []byte, transportNanos int64) ([]ingest.Row, error) {
	d.rows = d.rows[:0]
	if len(value) > d.maxMessageBytes {
		return nil, reject(ReasonOversized, "message has %d bytes, over max_message_bytes %d", len(value), d.maxMessageBytes)
	}
	if (d.format == formatAuto || d.format == formatNative) && !d.referenceOnly {
		if d.scanNative(value, key, transportNanos) {
			return d.rows, nil
		}
		d.rows = d.rows[:0]
	}
	v, err := d.parser.ParseBytes(value)
	if err != nil {
		return nil, reject(ReasonJSONSyntax, "%s", err)
	}
	obj, err := v.Object()
	if err != nil {
		return nil, reject(ReasonUnknownFormat, "message is a JSON %s, not an object", v.Type())
	}
	f := d.format
	if f == formatAuto {
		f = detect(obj)
	}
	switch f {
	case formatNative:
		err = d.decodeNative(obj, key, transportNanos)
	case formatTelegraf:
		err = d.decodeTelegraf(obj, key)
	case formatDefender:
		err = d.decodeDefender(obj, key, transportNanos)
	default:
		return nil, reject(ReasonUnknownFormat, "no native (device, metrics), Telegraf (name, fields) or Device Defender (header, metrics) keys; set input.telemetry.format if the layout is known")
	}
	if err != nil {
		d.rows = d.rows[:0]
		return nil, err
	}
	return d.rows, nil
}

// detect names the format by the first top-level key that tells them apart.
// "metrics" alone is ambiguous: an array is a Telegraf batch, an object of
// objects a Defender report, an object of numbers native. "ts" decides
// nothing, as a bridge may add it to a Defender report.
func detect(obj *fastjson.Object) format {
	f := formatAuto
	obj.Visit(func(key []byte, v *fastjson.Value) {
		if f != formatAuto {
			return
		}
		switch string(key) {
		case "device", "attrs", "conn":
			f = formatNative
		case "name", "tags", "fields", "timestamp":
			f = formatTelegraf
		case "header", "hed", "met", "cmet", "custom_metrics":
			f = formatDefender
		case "metrics":
			switch v.Type() {
			case fastjson.TypeArray:
				f = formatTelegraf
			case fastjson.TypeObject:
				f = formatNative
				o, _ := v.Object()
				o.Visit(func(_ []byte, mv *fastjson.Value) {
					if mv.Type() == fastjson.TypeObject {
						f = formatDefender
					}
				})
			}
		}
	})
	return f
}

// nextRow appends a reset row and returns it.
func (d *Decoder) nextRow() *ingest.Row {
	if len(d.rows) < cap(d.rows) {
		d.rows = d.rows[:len(d.rows)+1]
	} else {
		d.rows = append(d.rows, ingest.Row{})
	}
	r := &d.rows[len(d.rows)-1]
	r.Reset()
	return r
}

// metricName returns the interned copy of name, or an error when name is
// new and the decoder already holds max_metric_names names.
func (d *Decoder) metricName(name []byte) (string, error) {
	if s, ok := d.metricNames[string(name)]; ok {
		return s, nil
	}
	if len(name) == 0 {
		return "", reject(ReasonBadMetric, "a metric has an empty name")
	}
	if len(d.metricNames) >= d.maxMetricNames {
		return "", reject(ReasonTooManyNames, "new metric %q past max_metric_names %d; raise it if the fleet really has that many metrics", truncate(name), d.maxMetricNames)
	}
	s := string(name)
	d.metricNames[s] = s
	return s, nil
}

// intern returns a copy of b that outlives the parser buffer, shared with
// earlier equal strings while the table has room.
func (d *Decoder) intern(b []byte) string {
	if s, ok := d.interned[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(d.interned) < maxInterned {
		d.interned[s] = s
	}
	return s
}

// addMetric appends a finite numeric metric to r.
func (d *Decoder) addMetric(r *ingest.Row, name []byte, v *fastjson.Value) error {
	var x float64
	switch v.Type() {
	case fastjson.TypeNumber:
		var err error
		x, err = v.Float64()
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return reject(ReasonBadMetric, "metric %q is not a finite number", truncate(name))
		}
	case fastjson.TypeTrue:
		x = 1
	case fastjson.TypeFalse:
		x = 0
	default:
		return reject(ReasonBadMetric, "metric %q is a JSON %s, not a number", truncate(name), v.Type())
	}
	n, err := d.metricName(name)
	if err != nil {
		return err
	}
	r.Metrics = append(r.Metrics, ingest.Metric{Name: n, Value: x})
	return nil
}

// setAttr records attribute k=v, and the firmware column when k is "fw".
func setAttr(r *ingest.Row, k, v string) {
	r.Attrs = append(r.Attrs, ingest.Attr{Key: k, Value: v})
	if k == "fw" {
		r.Firmware = v
	}
}

// parseTime reads an event time: an RFC 3339 string, or a number in units
// of unitNanos.
func parseTime(v *fastjson.Value, unitNanos int64) (int64, error) {
	switch v.Type() {
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return parseTimeString(b)
	case fastjson.TypeNumber:
		if n, err := v.Int64(); err == nil {
			return timeFromInt(n, unitNanos)
		}
		x, err := v.Float64()
		if err != nil {
			return 0, reject(ReasonBadTimestamp, "timestamp is not a number")
		}
		return timeFromFloat(x, unitNanos)
	}
	return 0, reject(ReasonBadTimestamp, "timestamp is a JSON %s", v.Type())
}

func parseTimeString(b []byte) (int64, error) { return parseTimeStringCached(nil, b) }

// parseTimeStringCached is parseTimeString with the minute of the previous
// timestamp remembered in c (see minuteCache).
func parseTimeStringCached(c *minuteCache, b []byte) (int64, error) {
	if ns, y, ok := c.parse(b); ok {
		if y < 1970 || y > 2261 {
			return 0, reject(ReasonBadTimestamp, "timestamp %q is out of range", truncate(b))
		}
		return ns, nil
	}
	t, err := time.Parse(time.RFC3339Nano, b2s(b))
	if err != nil {
		return 0, reject(ReasonBadTimestamp, "timestamp %q is not RFC 3339", truncate(b))
	}
	if y := t.Year(); y < 1970 || y > 2261 {
		return 0, reject(ReasonBadTimestamp, "timestamp %q is out of range", truncate(b))
	}
	return t.UnixNano(), nil
}

// timeFromInt converts an integer epoch timestamp exactly (float64 cannot
// hold epoch nanoseconds).
func timeFromInt(n, unitNanos int64) (int64, error) {
	if n < 0 || n > math.MaxInt64/unitNanos {
		return 0, reject(ReasonBadTimestamp, "timestamp %d is out of range for its unit", n)
	}
	return n * unitNanos, nil
}

// timeFromFloat converts a fractional epoch timestamp.
func timeFromFloat(x float64, unitNanos int64) (int64, error) {
	ns := x * float64(unitNanos)
	// Timestamps before 1970 or past 2262 do not fit int64 nanoseconds.
	if !(ns >= 0 && ns < math.MaxInt64) {
		return 0, reject(ReasonBadTimestamp, "timestamp %v is out of range for its unit", x)
	}
	return int64(ns), nil
}

// stringField returns v as a string aliasing the parser buffer.
func stringField(v *fastjson.Value, what string) (string, error) {
	b, err := v.StringBytes()
	if err != nil {
		return "", reject(ReasonBadField, "%s is a JSON %s, not a string", what, v.Type())
	}
	return b2s(b), nil
}

func truncate(b []byte) string {
	const max = 64
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

// b2s views b as a string without copying; b must not change while the
// string is in use.
func b2s(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// deviceFromKey returns the Kafka key as a device id, or "".
func deviceFromKey(key []byte) string {
	return strings.TrimSpace(b2s(key))
}
