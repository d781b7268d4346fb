package sinks

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/vigil-ot/vigil/detect"
)

// AppendAlertJSON appends a as one JSON object of the versioned alert schema
// (detect.AlertSchemaVersion) to dst. Keys come in a fixed order, times are
// RFC 3339 with nanoseconds in UTC (null when zero), non-finite numbers are
// null. It allocates nothing beyond growing dst: the hot path of every JSON
// sink does not go through encoding/json reflection. The key "drill"
// (true) is there only on drill alerts, "rollout" only on the rollout
// guard's.
func AppendAlertJSON(dst []byte, a *detect.Alert) []byte {
	dst = append(dst, `{"schema_version":`...)
	dst = strconv.AppendInt(dst, detect.AlertSchemaVersion, 10)
	dst = appendJSONKeyString(dst, "id", a.ID)
	dst = appendJSONKeyTime(dst, "event_time", a.EventTime)
	dst = appendJSONKeyTime(dst, "processing_time", a.ProcessingTime)
	dst = appendJSONKeyTime(dst, "alarm_start", a.AlarmStart)
	dst = appendJSONKeyString(dst, "state", a.State)
	dst = appendJSONKeyString(dst, "device", a.Device)
	dst = appendJSONKeyString(dst, "group", a.Group)
	dst = appendJSONKeyString(dst, "criticality", a.Criticality)
	dst = appendJSONKeyString(dst, "detector", a.Detector)
	dst = appendJSONKeyString(dst, "behavior", a.Behavior)
	dst = appendJSONKeyFloat(dst, "observed", a.Observed)
	dst = appendJSONKeyString(dst, "observed_text", a.ObservedText)
	dst = appendJSONKeyFloat(dst, "expected", a.Expected)
	dst = appendJSONKeyFloat(dst, "lower", a.Lower)
	dst = appendJSONKeyFloat(dst, "upper", a.Upper)
	dst = appendJSONKeyFloat(dst, "score", a.Score)
	dst = appendJSONKeyInt(dst, "severity", int64(clampSeverity(a.Severity)))
	dst = appendJSONKeyString(dst, "severity_name", detect.SeverityName(a.Severity))
	dst = appendJSONKeyInt(dst, "sample_count", a.SampleCount)
	dst = append(dst, `,"baseline":`...)
	dst = strconv.AppendUint(dst, a.Baseline, 10)
	dst = appendJSONKeyString(dst, "technique", a.Technique)
	dst = appendJSONKeyString(dst, "message", a.Message)
	dst = appendJSONKeyString(dst, "src_ip", a.SrcIP)
	dst = appendJSONKeyInt(dst, "src_port", int64(a.SrcPort))
	dst = appendJSONKeyString(dst, "dst_ip", a.DstIP)
	dst = appendJSONKeyInt(dst, "dst_port", int64(a.DstPort))
	dst = appendJSONKeyString(dst, "transport", a.Transport)
	dst = appendJSONKeyString(dst, "protocol", a.Protocol)
	dst = appendJSONKeyString(dst, "src_mac", a.SrcMAC)
	dst = appendJSONKeyString(dst, "dst_mac", a.DstMAC)
	dst = appendJSONKeyInt(dst, "partition", int64(a.Partition))
	dst = appendJSONKeyInt(dst, "offset", a.Offset)
	if a.IsDrill() {
		dst = append(dst, `,"drill":true`...)
	}
	if a.Rollout != nil {
		dst = appendRolloutJSON(appendJSONKey(dst, "rollout"), a.Rollout)
	}
	return append(dst, '}')
}

// appendRolloutJSON appends a rollout alert's context as a JSON object:
// the key is there only on alerts of the rollout guard.
func appendRolloutJSON(dst []byte, r *detect.RolloutInfo) []byte {
	dst = append(dst, '{')
	dst = appendJSONString(append(dst, `"from_version":`...), r.From)
	dst = appendJSONKeyString(dst, "to_version", r.To)
	dst = appendJSONKeyString(dst, "kpi", r.KPI)
	dst = appendJSONKeyFloat(dst, "effect_percent", r.EffectPercent)
	dst = appendJSONKeyFloat(dst, "p_value", r.PValue)
	dst = appendJSONKeyInt(dst, "upgraded", int64(r.Upgraded))
	dst = appendJSONKeyInt(dst, "not_upgraded", int64(r.NotUpgraded))
	dst = appendJSONKeyInt(dst, "silent", int64(r.Silent))
	return append(dst, '}')
}

// AppendQuarantineJSON appends q as one JSON object of the versioned
// quarantine schema (detect.QuarantineSchemaVersion) to dst, under the same
// rules as AppendAlertJSON. Expiry is null when the event does not expire.
func AppendQuarantineJSON(dst []byte, q *detect.QuarantineEvent) []byte {
	dst = append(dst, `{"schema_version":`...)
	dst = strconv.AppendInt(dst, detect.QuarantineSchemaVersion, 10)
	dst = appendJSONKeyString(dst, "id", q.ID)
	dst = appendJSONKeyTime(dst, "time", q.Time)
	dst = appendJSONKeyString(dst, "action", q.Action)
	dst = appendJSONKeyString(dst, "mode", q.Mode)
	dst = appendJSONKeyString(dst, "device", q.Device)
	dst = appendJSONKeyString(dst, "group", q.Group)
	dst = appendJSONKeyString(dst, "target_group", q.TargetGroup)
	dst = append(dst, `,"reasons":`...)
	dst = appendJSONStrings(dst, q.Reasons)
	dst = appendJSONKeyInt(dst, "severity", int64(clampSeverity(q.Severity)))
	dst = appendJSONKeyString(dst, "severity_name", detect.SeverityName(q.Severity))
	dst = appendJSONKeyTime(dst, "expiry", q.Expiry)
	dst = appendJSONKeyString(dst, "message", q.Message)
	return append(dst, '}')
}

func appendJSONStrings(dst []byte, ss []string) []byte {
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, s)
	}
	return append(dst, ']')
}

func appendJSONKey(dst []byte, key string) []byte {
	dst = append(dst, ',', '"')
	dst = append(dst, key...)
	return append(dst, '"', ':')
}

func appendJSONKeyString(dst []byte, key, s string) []byte {
	return appendJSONString(appendJSONKey(dst, key), s)
}

func appendJSONKeyInt(dst []byte, key string, n int64) []byte {
	return strconv.AppendInt(appendJSONKey(dst, key), n, 10)
}

func appendJSONKeyFloat(dst []byte, key string, f float64) []byte {
	return appendJSONFloat(appendJSONKey(dst, key), f)
}

func appendJSONKeyTime(dst []byte, key string, t time.Time) []byte {
	return appendJSONTime(appendJSONKey(dst, key), t)
}

// appendJSONTime appends t as an RFC 3339 string in UTC, or null for the
// zero time, which means "not set" in every schema of Vigil.
func appendJSONTime(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

// appendJSONFloat appends f the way encoding/json does (shortest form that
// round-trips, exponent only for very small or large magnitudes), and null
// for NaN and ±Inf, which JSON cannot represent.
func appendJSONFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	// Most bounds and counts are whole numbers: skip the shortest-float
	// search for them.
	if f == math.Trunc(f) && f > -1e15 && f < 1e15 && (f != 0 || !math.Signbit(f)) {
		return strconv.AppendInt(dst, int64(f), 10)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// Clean up e-09 to e-9, as encoding/json does.
		n := len(dst) - start
		if n >= 4 && dst[len(dst)-4] == 'e' && dst[len(dst)-3] == '-' && dst[len(dst)-2] == '0' {
			dst[len(dst)-2] = dst[len(dst)-1]
			dst = dst[:len(dst)-1]
		}
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Control characters, quotes
// and backslashes are escaped, invalid UTF-8 becomes U+FFFD, and U+2028 and
// U+2029 are escaped so that the line is also safe JavaScript: whatever a
// device puts in a name, the object stays one line and one value. C1
// controls (NEL) are escaped for the same reason.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if isUnicodeBreak(r) {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', hexDigits[r>>12], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
