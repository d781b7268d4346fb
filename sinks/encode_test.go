package sinks

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-ot/vigil/detect"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/sinks")

var goldenDir = filepath.Join("..", "testdata", "sinks")

// encodeAll encodes every fixture with enc, one line each.
func encodeAll(enc *Encoder) []byte {
	out := detect.Output{Alerts: fixtureAlerts(), Quarantine: fixtureQuarantine()}
	return appendLines(nil, enc, &out)
}

func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		file string
		enc  Encoder
	}{
		{"json.golden", Encoder{Format: FormatJSON}},
		{"ecs.golden", Encoder{Format: FormatECS, Host: "vigil-1"}},
		{"cef.golden", Encoder{Format: FormatCEF, Host: "vigil-1"}},
		{"leef.golden", Encoder{Format: FormatLEEF, Host: "vigil-1"}},
		{"leef-caret.golden", Encoder{Format: FormatLEEF, Host: "vigil-1", LEEFDelimiter: '^'}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got := encodeAll(&tc.enc)
			path := filepath.Join(goldenDir, tc.file)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("cannot read golden file (run go test ./sinks -run TestGolden -update): %v", err)
			}
			if !bytes.Equal(got, want) {
				gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
				for i := 0; i < len(gl) && i < len(wl); i++ {
					if gl[i] != wl[i] {
						t.Fatalf("line %d differs:\n got: %s\nwant: %s", i+1, gl[i], wl[i])
					}
				}
				t.Fatalf("output differs from %s in line count: got %d, want %d", path, len(gl), len(wl))
			}
		})
	}
}

// TestJSONRoundTrip decodes the hot-path JSON with encoding/json and checks
// the values a consumer reads, including the hostile strings verbatim.
func TestJSONRoundTrip(t *testing.T) {
	alerts := fixtureAlerts()
	for i := range alerts {
		a := &alerts[i]
		line := AppendAlertJSON(nil, a)
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("alert %d: invalid JSON %s: %v", i, line, err)
		}
		if m["schema_version"] != float64(detect.AlertSchemaVersion) {
			t.Errorf("schema_version = %v", m["schema_version"])
		}
		if m["id"] != a.ID || m["behavior"] != a.Behavior || m["group"] != a.Group {
			t.Errorf("alert %d: id/behavior/group did not survive: %v", i, m)
		}
		if !strings.Contains(a.Device, "\xff") && m["device"] != a.Device {
			t.Errorf("alert %d: device = %q, want %q", i, m["device"], a.Device)
		}
		if m["event_time"] != a.EventTime.UTC().Format("2006-01-02T15:04:05.999999999Z07:00") {
			t.Errorf("event_time = %v", m["event_time"])
		}
	}
	// NaN and Inf are null, not invalid JSON.
	var m map[string]any
	if err := json.Unmarshal(AppendAlertJSON(nil, &alerts[1]), &m); err != nil {
		t.Fatal(err)
	}
	if m["observed"] != nil || m["score"] != nil || m["upper"] != nil {
		t.Errorf("non-finite numbers must be null: observed=%v score=%v upper=%v", m["observed"], m["score"], m["upper"])
	}
	qs := fixtureQuarantine()
	for i := range qs {
		line := AppendQuarantineJSON(nil, &qs[i])
		var q map[string]any
		if err := json.Unmarshal(line, &q); err != nil {
			t.Fatalf("quarantine %d: invalid JSON %s: %v", i, line, err)
		}
		if q["device"] != qs[i].Device || q["action"] != qs[i].Action || len(q["reasons"].([]any)) != len(qs[i].Reasons) {
			t.Errorf("quarantine %d did not survive: %v", i, q)
		}
	}
	if q := AppendQuarantineJSON(nil, &qs[1]); !bytes.Contains(q, []byte(`"expiry":null`)) {
		t.Errorf("zero expiry must be null: %s", q)
	}
}

func TestJSONFloatsMatchEncodingJSON(t *testing.T) {
	for _, f := range []float64{0, 1, -1, 0.1, 1e-7, 123456789.125, 1e20, 1e21, 1.5e-300, -2.5e25} {
		want, _ := json.Marshal(f)
		if got := appendJSONFloat(nil, f); string(got) != string(want) {
			t.Errorf("appendJSONFloat(%v) = %s, want %s", f, got, want)
		}
	}
}

func TestJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "quote\"back\\slash", "nl\ncr\rtab\t", "\x00\x1f\x7f", "é€😀", "\u2028\u2029", "<>&"} {
		got := appendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("appendJSONString(%q) = %s: %v", s, got, err)
		}
		if back != s {
			t.Errorf("round trip of %q gave %q", s, back)
		}
	}
}

// TestRolloutFieldsRoundTrip decodes the rollout alert of the fixtures in
// every format with a parser of its own and checks the rollout's context
// comes back: versions, KPI, effect, p-value and cohorts.
func TestRolloutFieldsRoundTrip(t *testing.T) {
	a := fixtureAlerts()[4]
	r := a.Rollout
	var m struct {
		Rollout struct {
			From          string  `json:"from_version"`
			To            string  `json:"to_version"`
			KPI           string  `json:"kpi"`
			EffectPercent float64 `json:"effect_percent"`
			PValue        float64 `json:"p_value"`
			Upgraded      int     `json:"upgraded"`
			NotUpgraded   int     `json:"not_upgraded"`
		} `json:"rollout"`
	}
	if err := json.Unmarshal(AppendAlertJSON(nil, &a), &m); err != nil {
		t.Fatal(err)
	}
	got := m.Rollout
	if got.From != r.From || got.To != r.To || got.KPI != r.KPI || got.EffectPercent != r.EffectPercent ||
		got.PValue != r.PValue || got.Upgraded != r.Upgraded || got.NotUpgraded != r.NotUpgraded {
		t.Errorf("JSON rollout %+v, want %+v", got, *r)
	}
	var noRollout map[string]any
	if err := json.Unmarshal(AppendAlertJSON(nil, &fixtureAlerts()[0]), &noRollout); err != nil || noRollout["rollout"] != nil {
		t.Errorf("an alert of another detector has a rollout key: %v %v", noRollout["rollout"], err)
	}
	_, cef, _, err := parseCEF(string(AppendAlertCEF(nil, &a)))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"flexString1Label": "fromVersion", "flexString1": r.From, "flexString2Label": "toVersion", "flexString2": r.To,
		"flexNumber1": "8", "flexNumber2": "90", "cfp4Label": "effectPercent", "cfp4": "-42.1", "cs4": r.KPI} {
		if cef[k] != v {
			t.Errorf("CEF %s = %q, want %q", k, cef[k], v)
		}
	}
	_, leef, _, err := parseLEEF(string(AppendAlertLEEF(nil, &a, '\t')))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"fromVersion": r.From, "toVersion": r.To, "kpi": r.KPI, "effectPercent": "-42.1",
		"pValue": "0.0000018", "upgradedDevices": "8", "notUpgradedDevices": "90", "silentDevices": "0"} {
		if leef[k] != v {
			t.Errorf("LEEF %s = %q, want %q", k, leef[k], v)
		}
	}
}
