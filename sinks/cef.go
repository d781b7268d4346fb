package sinks

import (
	"math"
	"strconv"
	"time"

	"github.com/vigil-ot/vigil/detect"
)

// CEF header values and the length limits of the ArcSight CEF
// implementation standard (revision 25); limits of 0 mean none.
const (
	cefVendor  = "Vigil"
	cefProduct = "Vigil"
	// cefVersion is the device version of the header: the alert schema
	// version, so that a parser change on the SIEM side can key on it.
	cefVersion = "1"

	cefLimitSignature = 1023
	cefLimitName      = 512
	cefLimitAct       = 63
	cefLimitApp       = 31
	cefLimitCat       = 1023
	cefLimitCS        = 4000
	cefLimitLabel     = 1023
	cefLimitExtID     = 255 // deviceExternalId
	cefLimitDvchost   = 100
	cefLimitExternal  = 40 // externalId
	cefLimitMsg       = 1023
	cefLimitProto     = 31
	cefLimitAddr      = 1023 // src/dst/smac/dmac: addresses of any family, bounded
)

// AppendAlertCEF appends a as one CEF:0 line (no syslog header, no newline)
// to dst, without dvchost. Keys come in a fixed order:
//
//	rt start end src spt dst dpt proto app smac dmac dvchost deviceExternalId
//	externalId cat act msg cs1..cs6 cn1..cn3 cfp1..cfp3
//
// with cs1 group, cs2 behavior, cs3 ATT&CK technique, cs4 observed text,
// cs5 criticality, cs6 accepted range; cn1 sample count, cn2 baseline
// version, cn3 source offset; cfp1 observed, cfp2 expected, cfp3 score;
// on rollout alerts then flexString1 and flexString2 the from and to
// versions, flexNumber1 and flexNumber2 the upgraded and not upgraded
// cohorts, cfp4 the effect in percent (the KPI is the observed text).
// A drill alert (detect.Alert.IsDrill) has cat "drill" instead of the
// detector, which stays in the signature, so a SIEM routes drills by cat.
// Observed, expected and score are floating point, which CEF's cn fields
// (64-bit integers) cannot carry, hence the cfp fields. Times are epoch
// milliseconds. Keys without a value are left out.
func AppendAlertCEF(dst []byte, a *detect.Alert) []byte {
	return appendAlertCEF(dst, a, "")
}

// AppendQuarantineCEF appends q as one CEF:0 line to dst: signature
// "quarantine:<action>", act the action, cs1 group, cs2 target group, cs3
// mode, cs4 the comma-separated alert ids behind it, end the expiry.
func AppendQuarantineCEF(dst []byte, q *detect.QuarantineEvent) []byte {
	return appendQuarantineCEF(dst, q, "")
}

func appendAlertCEF(dst []byte, a *detect.Alert, host string) []byte {
	dst = appendCEFPrefix(dst)
	start := len(dst)
	dst = appendCEFHeaderField(dst, a.Detector, 0)
	dst = append(dst, ':')
	dst = appendCEFHeaderField(dst, a.Behavior, cefLimitSignature-(len(dst)-start))
	dst = append(dst, '|')
	if a.Message != "" {
		dst = appendCEFHeaderField(dst, a.Message, cefLimitName)
	} else {
		start = len(dst)
		dst = appendCEFHeaderField(dst, a.Detector, 0)
		dst = append(dst, ' ')
		dst = appendCEFHeaderField(dst, a.Behavior, cefLimitName-(len(dst)-start))
	}
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, int64(clampSeverity(a.Severity)), 10)
	dst = append(dst, '|')

	x := cefExt{dst: dst}
	x.timestamp("rt", a.EventTime)
	x.timestamp("start", a.AlarmStart)
	if a.State == detect.StateCleared {
		x.timestamp("end", a.EventTime)
	}
	x.str("src", a.SrcIP, cefLimitAddr)
	x.port("spt", a.SrcPort)
	x.str("dst", a.DstIP, cefLimitAddr)
	x.port("dpt", a.DstPort)
	x.str("proto", a.Transport, cefLimitProto)
	x.str("app", a.Protocol, cefLimitApp)
	x.str("smac", a.SrcMAC, cefLimitAddr)
	x.str("dmac", a.DstMAC, cefLimitAddr)
	x.str("dvchost", host, cefLimitDvchost)
	x.str("deviceExternalId", a.Device, cefLimitExtID)
	x.str("externalId", a.ID, cefLimitExternal)
	x.str("cat", alertCategory(a), cefLimitCat)
	x.str("act", a.State, cefLimitAct)
	x.str("msg", a.Message, cefLimitMsg)
	x.labeled("cs1Label=group cs1=", a.Group)
	x.labeled("cs2Label=behavior cs2=", a.Behavior)
	x.labeled("cs3Label=attackTechnique cs3=", a.Technique)
	x.labeled("cs4Label=observedText cs4=", a.ObservedText)
	x.labeled("cs5Label=criticality cs5=", a.Criticality)
	x.rangeValue("cs6Label=acceptedRange cs6=", a.Lower, a.Upper)
	x.int("cn1Label=sampleCount cn1=", a.SampleCount)
	x.int("cn2Label=baselineVersion cn2=", int64(a.Baseline))
	x.int("cn3Label=sourceOffset cn3=", a.Offset)
	x.float("cfp1Label=observed cfp1=", a.Observed)
	x.float("cfp2Label=expected cfp2=", a.Expected)
	x.float("cfp3Label=score cfp3=", a.Score)
	if r := a.Rollout; r != nil {
		x.labeled("flexString1Label=fromVersion flexString1=", r.From)
		x.labeled("flexString2Label=toVersion flexString2=", r.To)
		x.int("flexNumber1Label=upgradedDevices flexNumber1=", int64(r.Upgraded))
		x.int("flexNumber2Label=notUpgradedDevices flexNumber2=", int64(r.NotUpgraded))
		x.float("cfp4Label=effectPercent cfp4=", r.EffectPercent)
	}
	return x.dst
}

// alertCategory is an alert's CEF cat: "drill" on drill alerts, else the
// detector.
func alertCategory(a *detect.Alert) string {
	if a.IsDrill() {
		return "drill"
	}
	return a.Detector
}

func appendQuarantineCEF(dst []byte, q *detect.QuarantineEvent, host string) []byte {
	dst = appendCEFPrefix(dst)
	dst = append(dst, "quarantine:"...)
	dst = appendCEFHeaderField(dst, q.Action, cefLimitSignature-len("quarantine:"))
	dst = append(dst, '|')
	if q.Message != "" {
		dst = appendCEFHeaderField(dst, q.Message, cefLimitName)
	} else {
		start := len(dst)
		dst = appendCEFHeaderField(dst, q.Action, 0)
		dst = append(dst, ' ')
		dst = appendCEFHeaderField(dst, q.Device, cefLimitName-(len(dst)-start))
	}
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, int64(clampSeverity(q.Severity)), 10)
	dst = append(dst, '|')

	x := cefExt{dst: dst}
	x.timestamp("rt", q.Time)
	x.timestamp("end", q.Expiry)
	x.str("dvchost", host, cefLimitDvchost)
	x.str("deviceExternalId", q.Device, cefLimitExtID)
	x.str("externalId", q.ID, cefLimitExternal)
	x.str("cat", "quarantine", cefLimitCat)
	x.str("act", q.Action, cefLimitAct)
	x.str("msg", q.Message, cefLimitMsg)
	x.labeled("cs1Label=group cs1=", q.Group)
	x.labeled("cs2Label=targetGroup cs2=", q.TargetGroup)
	x.labeled("cs3Label=mode cs3=", q.Mode)
	if len(q.Reasons) > 0 {
		x.pair("cs4Label=reasons cs4=")
		x.reasons(q.Reasons)
	}
	return x.dst
}

func appendCEFPrefix(dst []byte) []byte {
	return append(dst, "CEF:0|"+cefVendor+"|"+cefProduct+"|"+cefVersion+"|"...)
}

// appendCEFHeaderField appends s escaped for a CEF header field: backslash
// and pipe get a backslash; CR, LF and every other control character become
// a space, because the standard allows line breaks only in extension values
// and a raw one would end the event.
func appendCEFHeaderField(dst []byte, s string, limit int) []byte {
	return appendEscaped(dst, s, limit, cefHeaderEscapes, 0)
}

// appendCEFValue appends s escaped for a CEF extension value: backslash and
// equals sign get a backslash, CR and LF become \r and \n, other control
// characters a space, invalid UTF-8 U+FFFD. A value so escaped can neither
// start a new key nor a new event.
func appendCEFValue(dst []byte, s string, limit int) []byte {
	return appendEscaped(dst, s, limit, cefValueEscapes, 0)
}

// cefExt appends extension key=value pairs separated by single spaces.
type cefExt struct {
	dst []byte
	n   int
}

func (x *cefExt) key(k string) {
	if x.n > 0 {
		x.dst = append(x.dst, ' ')
	}
	x.n++
	x.dst = append(x.dst, k...)
	x.dst = append(x.dst, '=')
}

// pair starts a labeled custom field: keys is the whole
// "csNLabel=<label> csN=" prefix, a constant, so nothing is concatenated
// per alert.
func (x *cefExt) pair(keys string) {
	if x.n > 0 {
		x.dst = append(x.dst, ' ')
	}
	x.n++
	x.dst = append(x.dst, keys...)
}

func (x *cefExt) str(k, v string, limit int) {
	if v == "" {
		return
	}
	x.key(k)
	x.dst = appendCEFValue(x.dst, v, limit)
}

func (x *cefExt) labeled(keys, v string) {
	if v == "" {
		return
	}
	x.pair(keys)
	x.dst = appendCEFValue(x.dst, v, cefLimitCS)
}

func (x *cefExt) timestamp(k string, t time.Time) {
	if t.IsZero() {
		return
	}
	x.key(k)
	x.dst = strconv.AppendInt(x.dst, t.UnixMilli(), 10)
}

func (x *cefExt) port(k string, p uint16) {
	if p == 0 {
		return
	}
	x.key(k)
	x.dst = strconv.AppendUint(x.dst, uint64(p), 10)
}

func (x *cefExt) int(keys string, v int64) {
	x.pair(keys)
	x.dst = strconv.AppendInt(x.dst, v, 10)
}

func (x *cefExt) float(keys string, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	x.pair(keys)
	x.dst = appendJSONFloat(x.dst, v)
}

// rangeValue appends the accepted bounds as "lower..upper"; an open side
// (±Inf) is written as -inf or inf, and NaN bounds leave the key out.
func (x *cefExt) rangeValue(keys string, lo, hi float64) {
	if math.IsNaN(lo) || math.IsNaN(hi) || (lo == 0 && hi == 0) {
		return
	}
	x.pair(keys)
	x.dst = appendBound(x.dst, lo)
	x.dst = append(x.dst, ".."...)
	x.dst = appendBound(x.dst, hi)
}

func appendBound(dst []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return append(dst, "inf"...)
	case math.IsInf(f, -1):
		return append(dst, "-inf"...)
	}
	return appendJSONFloat(dst, f)
}

func (x *cefExt) reasons(ids []string) {
	budget := cefLimitCS
	for i, id := range ids {
		if i > 0 {
			if budget <= len(truncMarker)+1 {
				x.dst = append(x.dst, truncMarker...)
				return
			}
			x.dst = append(x.dst, ',')
			budget--
		}
		if len(id) > budget {
			x.dst = appendCEFValue(x.dst, id, budget)
			return
		}
		x.dst = appendCEFValue(x.dst, id, 0)
		budget -= len(id)
	}
}
