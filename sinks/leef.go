package sinks

import (
	"math"
	"strconv"
	"time"

	"github.com/vigil-ot/vigil/detect"
)

// LEEF header values. LEEF defines no length limits; values are bounded
// like their CEF counterparts so a line stays within a syslog message.
const (
	leefVendor  = "Vigil"
	leefProduct = "Vigil"
	leefVersion = "1"

	// leefTimeFormat is declared in devTimeFormat (Java SimpleDateFormat),
	// so QRadar parses devTime without guessing.
	leefTimeFormat = "yyyy-MM-dd'T'HH:mm:ss.SSSZ"
	leefGoTime     = "2006-01-02T15:04:05.000-0700"
)

// AppendAlertLEEF appends a as one LEEF 2.0 line (no syslog header, no
// newline) to dst, with attributes separated by delim (tab when 0). The
// delimiter is declared in the header, as LEEF 2.0 requires for anything
// but tab. Attributes come in a fixed order: devTime devTimeFormat cat sev
// src srcPort dst dstPort proto srcMAC dstMAC identHostName, then Vigil's
// keys externalId device group criticality behavior state alarmStart
// observed observedText expected lower upper score technique sampleCount
// baseline msg.
//
// LEEF defines no escape mechanism and QRadar splits on the raw delimiter,
// so values are made safe without relying on the parser: a backslash is
// doubled, CR, LF and tab become \r \n \t, the delimiter (when not tab) and
// other control characters become \xHH. No value can hold the delimiter or
// a line break, so none can add an attribute or start an event.
func AppendAlertLEEF(dst []byte, a *detect.Alert, delim byte) []byte {
	if delim == 0 {
		delim = '\t'
	}
	return appendAlertLEEF(dst, a, "", delim)
}

func appendAlertLEEF(dst []byte, a *detect.Alert, host string, delim byte) []byte {
	dst = appendLEEFPrefix(dst)
	dst = appendLEEFHeaderField(dst, a.Detector, 0)
	dst = append(dst, ':')
	dst = appendLEEFHeaderField(dst, a.Behavior, cefLimitSignature)
	dst = appendLEEFDelimiter(dst, delim)

	x := leefAttrs{dst: dst, delim: delim}
	x.time("devTime", a.EventTime)
	if !a.EventTime.IsZero() {
		x.raw("devTimeFormat", leefTimeFormat)
	}
	x.str("cat", a.Detector, cefLimitCat)
	x.int("sev", int64(leefSeverity(a.Severity)))
	x.str("src", a.SrcIP, cefLimitAddr)
	x.port("srcPort", a.SrcPort)
	x.str("dst", a.DstIP, cefLimitAddr)
	x.port("dstPort", a.DstPort)
	x.str("proto", a.Transport, cefLimitProto)
	x.str("srcMAC", a.SrcMAC, cefLimitAddr)
	x.str("dstMAC", a.DstMAC, cefLimitAddr)
	x.str("identHostName", host, cefLimitDvchost)
	x.str("externalId", a.ID, cefLimitExternal)
	x.str("device", a.Device, cefLimitExtID)
	x.str("group", a.Group, cefLimitCS)
	x.str("criticality", a.Criticality, cefLimitCS)
	x.str("behavior", a.Behavior, cefLimitCS)
	x.str("state", a.State, cefLimitAct)
	x.time("alarmStart", a.AlarmStart)
	x.float("observed", a.Observed)
	x.str("observedText", a.ObservedText, cefLimitCS)
	x.float("expected", a.Expected)
	x.float("lower", a.Lower)
	x.float("upper", a.Upper)
	x.float("score", a.Score)
	x.str("technique", a.Technique, cefLimitCS)
	x.int("sampleCount", a.SampleCount)
	x.key("baseline")
	x.dst = strconv.AppendUint(x.dst, a.Baseline, 10)
	x.str("applicationProtocol", a.Protocol, cefLimitApp)
	if a.IsDrill() {
		x.raw("drill", "true")
	}
	if r := a.Rollout; r != nil {
		x.str("fromVersion", r.From, cefLimitCS)
		x.str("toVersion", r.To, cefLimitCS)
		x.str("kpi", r.KPI, cefLimitCS)
		x.float("effectPercent", r.EffectPercent)
		x.float("pValue", r.PValue)
		x.int("upgradedDevices", int64(r.Upgraded))
		x.int("notUpgradedDevices", int64(r.NotUpgraded))
		x.int("silentDevices", int64(r.Silent))
	}
	x.str("msg", a.Message, cefLimitMsg)
	return x.dst
}

// appendQuarantineLEEF appends q as one LEEF 2.0 line to dst: event id
// "quarantine:<action>", then devTime cat sev identHostName externalId
// device group targetGroup action mode expiry reasons msg.
func appendQuarantineLEEF(dst []byte, q *detect.QuarantineEvent, host string, delim byte) []byte {
	dst = appendLEEFPrefix(dst)
	dst = append(dst, "quarantine:"...)
	dst = appendLEEFHeaderField(dst, q.Action, cefLimitSignature)
	dst = appendLEEFDelimiter(dst, delim)

	x := leefAttrs{dst: dst, delim: delim}
	x.time("devTime", q.Time)
	if !q.Time.IsZero() {
		x.raw("devTimeFormat", leefTimeFormat)
	}
	x.raw("cat", "quarantine")
	x.int("sev", int64(leefSeverity(q.Severity)))
	x.str("identHostName", host, cefLimitDvchost)
	x.str("externalId", q.ID, cefLimitExternal)
	x.str("device", q.Device, cefLimitExtID)
	x.str("group", q.Group, cefLimitCS)
	x.str("targetGroup", q.TargetGroup, cefLimitCS)
	x.str("action", q.Action, cefLimitAct)
	x.str("mode", q.Mode, cefLimitAct)
	x.time("expiry", q.Expiry)
	if len(q.Reasons) > 0 {
		x.key("reasons")
		budget := cefLimitCS
		for i, id := range q.Reasons {
			if i > 0 {
				x.dst = append(x.dst, ',')
			}
			if len(id)+1 > budget {
				x.dst = append(x.dst, truncMarker...)
				break
			}
			x.dst = appendLEEFValue(x.dst, id, 0, delim)
			budget -= len(id) + 1
		}
	}
	x.str("msg", q.Message, cefLimitMsg)
	return x.dst
}

// leefSeverity maps Vigil's 0-10 onto LEEF's 1-10.
func leefSeverity(sev int) int {
	if sev = clampSeverity(sev); sev < 1 {
		return 1
	}
	return sev
}

func appendLEEFPrefix(dst []byte) []byte {
	return append(dst, "LEEF:2.0|"+leefVendor+"|"+leefProduct+"|"+leefVersion+"|"...)
}

// appendLEEFDelimiter appends the delimiter header field: tab as "x09" and
// any other character as itself, then the closing pipe.
func appendLEEFDelimiter(dst []byte, delim byte) []byte {
	dst = append(dst, '|')
	if delim == '\t' {
		dst = append(dst, "x09"...)
	} else {
		dst = append(dst, 'x', hexDigits[delim>>4], hexDigits[delim&0xf])
	}
	return append(dst, '|')
}

// appendLEEFHeaderField appends s for a pipe-separated header field: pipe,
// backslash and control characters become backslash sequences, which no
// LEEF parser reads as a separator.
func appendLEEFHeaderField(dst []byte, s string, limit int) []byte {
	return appendEscaped(dst, s, limit, leefHeaderEscapes, '|')
}

// appendLEEFValue appends s for an attribute value; see AppendAlertLEEF.
func appendLEEFValue(dst []byte, s string, limit int, delim byte) []byte {
	return appendEscaped(dst, s, limit, leefValueEscapes, delim)
}

// leefAttrs appends key=value attributes separated by the delimiter.
type leefAttrs struct {
	dst   []byte
	delim byte
	n     int
}

func (x *leefAttrs) key(k string) {
	if x.n > 0 {
		x.dst = append(x.dst, x.delim)
	}
	x.n++
	x.dst = append(x.dst, k...)
	x.dst = append(x.dst, '=')
}

func (x *leefAttrs) raw(k, v string) {
	x.key(k)
	x.dst = append(x.dst, v...)
}

func (x *leefAttrs) str(k, v string, limit int) {
	if v == "" {
		return
	}
	x.key(k)
	x.dst = appendLEEFValue(x.dst, v, limit, x.delim)
}

func (x *leefAttrs) int(k string, v int64) {
	x.key(k)
	x.dst = strconv.AppendInt(x.dst, v, 10)
}

func (x *leefAttrs) port(k string, p uint16) {
	if p == 0 {
		return
	}
	x.int(k, int64(p))
}

func (x *leefAttrs) float(k string, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	x.key(k)
	x.dst = appendJSONFloat(x.dst, v)
}

func (x *leefAttrs) time(k string, t time.Time) {
	if t.IsZero() {
		return
	}
	x.key(k)
	x.dst = appendLEEFTime(x.dst, t)
}

// appendLEEFTime appends t in UTC as yyyy-MM-dd'T'HH:mm:ss.SSS+0000 (the
// declared devTimeFormat) without the generic layout interpreter.
func appendLEEFTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	if year := t.Year(); year < 0 || year > 9999 {
		return t.AppendFormat(dst, leefGoTime)
	}
	dst = appendDateTime(dst, t)
	dst = append(dst, '.')
	dst = appendDigits(dst, t.Nanosecond()/1e6, 3)
	return append(dst, "+0000"...)
}

// appendDateTime appends t as 2006-01-02T15:04:05, digit by digit: the
// generic layout interpreter costs more than the rest of a syslog header.
// The year must have four digits (0 to 9999).
func appendDateTime(dst []byte, t time.Time) []byte {
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	dst = appendDigits(dst, year, 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, int(month), 2)
	dst = append(dst, '-')
	dst = appendDigits(dst, day, 2)
	dst = append(dst, 'T')
	dst = appendDigits(dst, hour, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, minute, 2)
	dst = append(dst, ':')
	return appendDigits(dst, sec, 2)
}

// appendDigits appends v (0 <= v < 10^width) zero-padded to width digits.
func appendDigits(dst []byte, v, width int) []byte {
	var b [8]byte
	for i := width - 1; i >= 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, b[:width]...)
}
