package sinks

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/vigil-ot/vigil/detect"
)

// forgeName is the example: a device whose name tries to end the
// event and start a forged one.
const forgeName = "x|y\nCEF:0|evil"

// forgingAlert puts attacker text in every device-controlled field.
func forgingAlert(name string) detect.Alert {
	a := fixtureAlerts()[1]
	a.Device, a.Group, a.Behavior, a.Message, a.ObservedText = name, name, name, name, name
	a.Criticality, a.Technique, a.SrcIP, a.DstIP, a.SrcMAC, a.DstMAC, a.Protocol, a.Transport = name, name, name, name, name, name, name, name
	return a
}

// oneLine fails unless b is a single line.
func oneLine(t *testing.T, b []byte) string {
	t.Helper()
	if strings.ContainsAny(string(b), "\r\n") {
		t.Fatalf("a device string split the event: %q", b)
	}
	return string(b)
}

func TestForgeryCEF(t *testing.T) {
	for _, name := range []string{forgeName, hostileName, "a=b c=d", `\`, `x\|y`, "act=quarantine msg=ok"} {
		a := forgingAlert(name)
		benign := forgingAlert("benign")
		_, kv, order, err := parseCEF(oneLine(t, AppendAlertCEF(nil, &a)))
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		_, _, want, _ := parseCEF(string(AppendAlertCEF(nil, &benign)))
		if strings.Join(order, " ") != strings.Join(want, " ") {
			t.Fatalf("%q changed the keys:\n got %v\nwant %v", name, order, want)
		}
		if wantDev := strings.ReplaceAll(name, "\t", " "); kv["deviceExternalId"] != wantDev && !strings.ContainsAny(name, "\u2028") {
			t.Fatalf("deviceExternalId = %q, want %q", kv["deviceExternalId"], wantDev)
		}
		q := fixtureQuarantine()[1]
		q.Device, q.Message = name, name
		if _, _, _, err := parseCEF(oneLine(t, AppendQuarantineCEF(nil, &q))); err != nil {
			t.Fatalf("quarantine %q: %v", name, err)
		}
	}
}

func TestForgeryLEEF(t *testing.T) {
	for _, delim := range []byte{'\t', '^'} {
		for _, name := range []string{forgeName, hostileName, "a\tsev=10", "a^sev=10", "x|y", `\x09`} {
			a := forgingAlert(name)
			benign := forgingAlert("benign")
			header, kv, order, err := parseLEEF(oneLine(t, AppendAlertLEEF(nil, &a, delim)))
			if err != nil {
				t.Fatalf("%q: %v", name, err)
			}
			_, _, want, _ := parseLEEF(string(AppendAlertLEEF(nil, &benign, delim)))
			if strings.Join(order, ",") != strings.Join(want, ",") {
				t.Fatalf("%q with delimiter %q changed the attributes:\n got %v\nwant %v", name, delim, order, want)
			}
			if header[1] != "Vigil" || header[2] != "Vigil" {
				t.Fatalf("header forged: %q", header)
			}
			if !strings.Contains(name, "\u2028") && unescapeLEEF(kv["device"]) != name {
				t.Fatalf("device = %q unescapes to %q, want %q", kv["device"], unescapeLEEF(kv["device"]), name)
			}
		}
	}
}

func TestForgeryJSON(t *testing.T) {
	for _, enc := range []Encoder{{Format: FormatJSON}, {Format: FormatECS}} {
		for _, name := range []string{forgeName, `","device":"forged`, "\u2028}\n{"} {
			a := forgingAlert(name)
			line := oneLine(t, enc.AppendAlert(nil, &a))
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("%s %q: %v", enc.Format, name, err)
			}
			dev := m["device"]
			if enc.Format == FormatECS {
				dev = m["device"].(map[string]any)["id"]
			}
			if dev != name {
				t.Fatalf("%s: device = %q, want %q", enc.Format, dev, name)
			}
		}
	}
}

// TestForgerySyslog: the whole syslog message, header included, stays one
// message whose content is exactly the encoded event.
func TestForgerySyslog(t *testing.T) {
	a := forgingAlert(forgeName)
	for _, f := range []Format{FormatCEF, FormatLEEF, FormatJSON} {
		enc := Encoder{Format: f}
		sf := newSyslogFormat(SyslogConfig{Profile: ProfileRFC5424, Facility: "local4", AppName: "vigil", Hostname: "h", MaxMessageSize: 1 << 20, Transport: TransportTCP, Framing: FramingLF}, enc)
		msg, _ := sf.appendAlert(nil, &a)
		framed := sf.appendFramed(nil, msg)
		if strings.Count(string(framed), "\n") != 1 {
			t.Fatalf("%s: LF framing holds %d newlines", f, strings.Count(string(framed), "\n"))
		}
		_, _, body := parseSyslog(t, ProfileRFC5424, msg)
		if body != string(enc.AppendAlert(nil, &a)) {
			t.Fatalf("%s: content differs from the event", f)
		}
	}
}
