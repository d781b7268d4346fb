package sinks

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vigil-ot/vigil/detect"
)

// FuzzEncoders: whatever the strings and numbers of an alert, every format
// gives exactly one well-formed line that parses back with the same keys
// as a benign alert, and a syslog message around it parses as RFC 5424.
func FuzzEncoders(f *testing.F) {
	f.Add(forgeName, "group", "bytes_out", "msg", "10.0.0.1", 1.5, 7, uint16(100))
	f.Add(hostileName, hostileName, hostileName, hostileName, hostileName, math.NaN(), -3, uint16(1000))
	f.Add("\xff\xfe\x00", "\u2028\u0085", "a\\", "=\\=", "|", math.Inf(1), 99, uint16(480))
	f.Add(strings.Repeat("é", 400), strings.Repeat("\\", 3000), "b", strings.Repeat("x=", 900), "", 1e300, 5, uint16(600))
	f.Fuzz(func(t *testing.T, device, group, behavior, message, ip string, observed float64, severity int, maxSize uint16) {
		a := fixtureAlerts()[1]
		a.Device, a.Group, a.Behavior, a.Message, a.ObservedText, a.SrcIP = device, group, behavior, message, message, ip
		a.Observed, a.Expected, a.Severity = observed, -observed, severity
		// A rollout's versions come from the devices' reports too.
		a.Rollout = &detect.RolloutInfo{From: device, To: behavior, KPI: group, EffectPercent: observed, PValue: -observed, Upgraded: severity}
		benign := a
		// The benign twin has the same empty fields, so the same keys.
		benign.Device, benign.Group, benign.Behavior, benign.Message, benign.ObservedText, benign.SrcIP = like(device), like(group), like(behavior), like(message), like(message), like(ip)
		benign.Rollout = &detect.RolloutInfo{From: like(device), To: like(behavior), KPI: like(group), EffectPercent: observed, PValue: -observed, Upgraded: severity}

		for _, enc := range []Encoder{{Format: FormatCEF, Host: device}, {Format: FormatLEEF, Host: device}, {Format: FormatLEEF, LEEFDelimiter: '^'}, {Format: FormatJSON}, {Format: FormatECS, Host: device}} {
			line := enc.AppendAlert(nil, &a)
			benignEnc := enc
			benignEnc.Host = like(enc.Host)
			if strings.ContainsAny(string(line), "\r\n") || !utf8.Valid(line) {
				t.Fatalf("%s: not one valid UTF-8 line: %q", enc.Format, line)
			}
			want := benignEnc.AppendAlert(nil, &benign)
			switch enc.Format {
			case FormatCEF:
				h, _, keys, err := parseCEF(string(line))
				if err != nil {
					t.Fatalf("CEF does not parse back: %v\n%q", err, line)
				}
				wh, _, wantKeys, _ := parseCEF(string(want))
				if h[0] != wh[0] || h[1] != wh[1] || h[2] != wh[2] || h[3] != wh[3] || h[6] != wh[6] {
					t.Fatalf("CEF header forged: %q, want %q", h, wh)
				}
				if strings.Join(keys, " ") != strings.Join(wantKeys, " ") {
					t.Fatalf("CEF keys changed by device strings:\n got %v\nwant %v", keys, wantKeys)
				}
			case FormatLEEF:
				_, _, keys, err := parseLEEF(string(line))
				if err != nil {
					t.Fatalf("LEEF does not parse back: %v\n%q", err, line)
				}
				_, _, wantKeys, _ := parseLEEF(string(want))
				if strings.Join(keys, ",") != strings.Join(wantKeys, ",") {
					t.Fatalf("LEEF attributes changed:\n got %v\nwant %v", keys, wantKeys)
				}
			default:
				var m, w map[string]any
				if err := json.Unmarshal(line, &m); err != nil {
					t.Fatalf("invalid JSON: %v\n%q", err, line)
				}
				json.Unmarshal(want, &w)
				if len(m) != len(w) {
					t.Fatalf("JSON has %d keys, want %d", len(m), len(w))
				}
				if enc.Format == FormatJSON && utf8.ValidString(device) && m["device"] != device {
					t.Fatalf("device %q came back as %q", device, m["device"])
				}
			}
		}

		size := int(maxSize)
		if size < 480 {
			size = 480
		}
		sf := newSyslogFormat(SyslogConfig{Profile: ProfileRFC5424, Facility: "local4", AppName: behavior, Hostname: device, MaxMessageSize: size, Transport: TransportUDP}, Encoder{Format: FormatCEF})
		msg, _ := sf.appendAlert(nil, &a)
		if len(msg) > size || strings.ContainsAny(string(msg), "\r\n") {
			t.Fatalf("syslog message of %d bytes (limit %d) or with a line break", len(msg), size)
		}
		parseSyslog(t, ProfileRFC5424, msg)
	})
}

// FuzzQuarantineEncoders does the same for quarantine events.
func FuzzQuarantineEncoders(f *testing.F) {
	f.Add(forgeName, "r1", hostileName, 3)
	f.Add("\xff", "", "\u2028", 11)
	f.Fuzz(func(t *testing.T, device, reason, message string, severity int) {
		q := fixtureQuarantine()[0]
		q.Device, q.Message, q.Severity, q.TargetGroup = device, message, severity, device
		q.Reasons = []string{reason, device}
		for _, enc := range []Encoder{{Format: FormatCEF}, {Format: FormatLEEF}, {Format: FormatJSON}, {Format: FormatECS}} {
			line := enc.AppendQuarantine(nil, &q)
			if strings.ContainsAny(string(line), "\r\n") || !utf8.Valid(line) {
				t.Fatalf("%s: not one valid UTF-8 line: %q", enc.Format, line)
			}
			var err error
			switch enc.Format {
			case FormatCEF:
				_, _, _, err = parseCEF(string(line))
			case FormatLEEF:
				_, _, _, err = parseLEEF(string(line))
			default:
				var m map[string]any
				err = json.Unmarshal(line, &m)
				if err == nil && enc.Format == FormatJSON && utf8.ValidString(device) && m["device"] != device {
					t.Fatalf("device %q came back as %q", device, m["device"])
				}
			}
			if err != nil {
				t.Fatalf("%s does not parse back: %v\n%q", enc.Format, err, line)
			}
		}
	})
}

// like returns a harmless value that is empty exactly when s is.
func like(s string) string {
	if s == "" {
		return ""
	}
	return "v"
}
