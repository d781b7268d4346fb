package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/detect"
)

// drillAndReal returns an alert of a drill device (in a drill group) and
// the same alert of a real device.
func drillAndReal() (drill, real detect.Alert) {
	real = fixtureAlerts()[1]
	real.ID = "real-1"
	drill = real
	drill.ID, drill.Device, drill.Group = "drill-1", "vigil-drill-x-0", "drill/vigil-drill-x/unknown"
	return drill, real
}

// TestDrillFlagJSON: the drill flag is "drill":true in JSON and
// vigil.drill in ECS, on drill alerts only.
func TestDrillFlagJSON(t *testing.T) {
	drill, real := drillAndReal()
	for _, tc := range []struct {
		a    detect.Alert
		want bool
	}{{drill, true}, {real, false}} {
		var j struct {
			Drill bool `json:"drill"`
		}
		if err := json.Unmarshal(AppendAlertJSON(nil, &tc.a), &j); err != nil || j.Drill != tc.want {
			t.Errorf("JSON of %s: drill %v (%v), want %v", tc.a.ID, j.Drill, err, tc.want)
		}
		var e struct {
			Vigil struct {
				Drill bool `json:"drill"`
			} `json:"vigil"`
		}
		if err := json.Unmarshal(AppendAlertECS(nil, &tc.a), &e); err != nil || e.Vigil.Drill != tc.want {
			t.Errorf("ECS of %s: vigil.drill %v (%v), want %v", tc.a.ID, e.Vigil.Drill, err, tc.want)
		}
	}
}

// TestDrillFlagRsyslogIntegration: through a real rsyslog, a drill
// alert's CEF line has cat=drill (its detector stays in the signature) and
// its LEEF line drill=true; a real alert's have neither.
func TestDrillFlagRsyslogIntegration(t *testing.T) {
	r := startRsyslog(t, newTestPKI(t), "")
	drill, real := drillAndReal()
	for _, f := range []Format{FormatCEF, FormatLEEF} {
		app := "vigil-" + string(f)
		before := len(r.lines())
		s, err := NewSyslogSink(string(f), SyslogConfig{Address: fmt.Sprintf("127.0.0.1:%d", r.tcpPort), Transport: TransportTCP, AppName: app}, Encoder{Format: f}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		sendInBatches(t, s, []detect.Alert{drill, real}, 2)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		var lines []string
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if lines = r.lines()[before:]; len(lines) >= 2 || time.Now().After(deadline) {
				break
			}
		}
		got := map[string]map[string]string{} // alert id -> extension
		for _, msg := range msgsOf(t, lines, app) {
			var header []string
			var kv map[string]string
			if f == FormatCEF {
				header, kv, _, err = parseCEF(msg)
			} else {
				// rsyslog writes the tab delimiter as #011 (its escaping of
				// control characters on input).
				header, kv, _, err = parseLEEF(strings.ReplaceAll(msg, "#011", "\t"))
			}
			if err != nil {
				t.Fatalf("%s line %q: %v", f, msg, err)
			}
			if want := real.Detector + ":" + real.Behavior; header[4] != want {
				t.Errorf("%s signature %q, want %q", f, header[4], want)
			}
			got[kv["externalId"]] = kv
		}
		if len(got) != 2 {
			t.Fatalf("%s: rsyslog has %d alerts: %q", f, len(got), lines)
		}
		switch f {
		case FormatCEF:
			if got["drill-1"]["cat"] != "drill" || got["real-1"]["cat"] != real.Detector {
				t.Errorf("CEF cat: drill alert %q, real alert %q", got["drill-1"]["cat"], got["real-1"]["cat"])
			}
		case FormatLEEF:
			if got["drill-1"]["drill"] != "true" || got["real-1"]["drill"] != "" || got["drill-1"]["cat"] != real.Detector {
				t.Errorf("LEEF drill: drill alert %q, real alert %q", got["drill-1"]["drill"], got["real-1"]["drill"])
			}
		}
	}
}

// TestFanoutCountsDrillAlerts: vigil_drill_alerts_delivered_total counts
// each drill alert once, when its sink accepts it, across retries; real
// alerts and refusals are not counted.
func TestFanoutCountsDrillAlerts(t *testing.T) {
	drill, real := drillAndReal()
	drill2 := drill
	drill2.ID = "drill-2"
	flaky := &rejectingSink{reject: map[string]int{"drill-2": 2}}
	f := NewFanoutOf(testLogger(t), Member{Name: "drill-count-test", Sink: flaky, Retry: fastRetry(0)})
	counter := newSinkStats("drill-count-test").drills
	before := counter.Get()
	if err := f.Write(context.Background(), &detect.Output{Alerts: []detect.Alert{drill, real, drill2}}); err != nil {
		t.Fatal(err)
	}
	if got := counter.Get() - before; got != 2 {
		t.Errorf("counted %d drill alerts accepted, want 2 (writes %v)", got, flaky.writes)
	}
}
