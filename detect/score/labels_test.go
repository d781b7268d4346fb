package score

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// TestParseIncidentsFleetLabels reads the labels of the bundled fleet
// sample, which name a group key as the device of the fleet incident.
func TestParseIncidentsFleetLabels(t *testing.T) {
	f, err := os.Open("../../testdata/fleet/labels.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	incs, err := ParseIncidents("labels.csv", f)
	if err != nil {
		t.Fatal(err)
	}
	if len(incs) != 9 {
		t.Fatalf("got %d incidents, want 9", len(incs))
	}
	last := incs[8]
	if last.ID != "fleet-1" || last.Device != "plant-c/s7-1200" || last.Detector != "fleet" || last.Behavior != "message_rate" ||
		last.Line != 10 || !last.Start.Equal(time.Date(2026, 11, 3, 3, 0, 0, 0, time.UTC)) || !strings.HasPrefix(last.Note, "every device") {
		t.Errorf("last incident = %+v", last)
	}
}

// TestParseIncidentsForms reads the same two incidents written as CSV
// (columns in another order, extra column, comment, attack for kind), as
// attackgen's TSV and as JSON, with the same lines.
func TestParseIncidentsForms(t *testing.T) {
	want := []Incident{
		{ID: "a", Device: "plc-1", Start: at(0), End: at(30 * time.Minute), Kind: "exfil", File: "f", Line: 3},
		{ID: "b", Device: "group:plant-a", Start: at(time.Hour), End: at(time.Hour), Kind: "scan", Note: "a, b", File: "f", Line: 4},
	}
	for name, in := range map[string]string{
		"csv": "end,Device,start,extra,id,attack,note\n" +
			"# a comment\n" +
			"2026-11-03T10:30:00Z,plc-1,2026-11-03T10:00:00Z,x,a,exfil,\n" +
			"2026-11-03T11:00:00Z, group:plant-a ,2026-11-03T11:00:00Z,,b,scan,\"a, b\"\n",
		"tsv": "start\tend\tattack\tdevice\tid\tnote\n" +
			"\n" +
			"2026-11-03T10:00:00Z\t2026-11-03T10:30:00Z\texfil\tplc-1\ta\t\n" +
			"2026-11-03T11:00:00Z\t2026-11-03T11:00:00Z\tscan\tgroup:plant-a\tb\ta, b\n",
		"json": "[\n" +
			"\n" +
			`  {"id": "a", "device": "plc-1", "start": "2026-11-03T10:00:00Z", "end": "2026-11-03T10:30:00Z", "kind": "exfil", "unknown": 1},` + "\n" +
			`  {"id": "b", "device": "group:plant-a", "start": "2026-11-03T11:00:00Z", "end": "2026-11-03T11:00:00Z", "kind": "scan", "note": "a, b"}` + "\n" +
			"]\n",
	} {
		t.Run(name, func(t *testing.T) {
			got, err := ParseIncidents("f", strings.NewReader(in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestParseIncidentsEmpty: a header alone (or an empty array) is a label
// file saying nothing happened, which is not the same as no labels.
func TestParseIncidentsEmpty(t *testing.T) {
	for _, in := range []string{"device,start,end\n", "[]"} {
		got, err := ParseIncidents("f", strings.NewReader(in))
		if err != nil || got == nil || len(got) != 0 {
			t.Errorf("ParseIncidents(%q) = %v, %v; want an empty non-nil slice", in, got, err)
		}
	}
}

// TestBadLabels walks testdata/score/bad: every NAME.csv, NAME.json (incident
// labels) and NAME.packets (packet labels of a 10-packet capture, one
// packet a second) fails with an error containing the text of NAME.err.
func TestBadLabels(t *testing.T) {
	const dir = "../../testdata/score/bad"
	inputs, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	times := make([]time.Time, 10)
	for i := range times {
		times[i] = at(time.Duration(i) * time.Second)
	}
	n := 0
	for _, path := range inputs {
		ext := filepath.Ext(path)
		if ext == ".err" {
			if m, _ := filepath.Glob(strings.TrimSuffix(path, ext) + ".*"); len(m) != 2 {
				t.Errorf("%s needs exactly one label file next to it, found %v", path, m)
			}
			continue
		}
		n++
		t.Run(filepath.Base(path), func(t *testing.T) {
			want, err := os.ReadFile(strings.TrimSuffix(path, ext) + ".err")
			if err != nil {
				t.Fatalf("every bad label file needs its expected error: %v", err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			name := filepath.Base(path)
			switch ext {
			case ".csv", ".json":
				_, err = ParseIncidents(name, f)
			case ".packets":
				_, err = ParsePacketLabels(name, f, times)
			default:
				t.Fatalf("unknown kind of label file %s", path)
			}
			if w := strings.TrimSpace(string(want)); err == nil || w == "" || !strings.Contains(err.Error(), w) {
				t.Errorf("error\n  %v\nwant it to contain\n  %s", err, w)
			}
		})
	}
	if n == 0 {
		t.Fatal("no bad label files found")
	}
}

func TestValidateDevices(t *testing.T) {
	incs := []Incident{
		{Device: "*", File: "l.csv", Line: 2},
		{Device: "plc-1", File: "l.csv", Line: 3},
		{Device: "plant-a/s7", File: "l.csv", Line: 4}, // a fleet incident names the group key
		{Device: "group:plant-a/s7", File: "l.csv", Line: 5},
	}
	devices := func(s string) bool { return s == "plc-1" }
	groups := func(s string) bool { return s == "plant-a/s7" }
	if err := ValidateDevices(incs, devices, groups); err != nil {
		t.Fatalf("known devices and groups: %v", err)
	}
	for _, tc := range []struct {
		inc  Incident
		want string
	}{
		{Incident{Device: "plc-9", File: "l.csv", Line: 7}, `l.csv:7: device "plc-9" never appears in the input`},
		{Incident{Device: "group:plc-1", File: "l.csv", Line: 8}, `l.csv:8: group "plc-1" never appears in the input`},
	} {
		err := ValidateDevices(append(incs[:4:4], tc.inc), devices, groups)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want it to contain %q", err, tc.want)
		}
	}
	if err := ValidateDevices(incs[1:2], nil, nil); err == nil {
		t.Error("nil functions know no device, yet plc-1 passed")
	}
}

// TestParsePacketLabels turns per-packet labels into episodes: runs of
// consecutive packets with the same attack label.
func TestParsePacketLabels(t *testing.T) {
	times := make([]time.Time, 12)
	for i := range times {
		times[i] = at(time.Duration(i) * time.Second) // packet i+1 at t0 + i s
	}
	times[4] = at(-time.Second) // capture times need not increase
	in := "No.;Label\n" +       // header
		"1;0\n2;normal\n" +
		"3;scan\n4;scan\n5;scan\n" + // episode 1: packets 3-5, times 2 s, 3 s and -1 s
		"6;Normal\n" +
		"7,flood\n" + // episode 2: a single packet (comma separator)
		"8;scan\n" + // episode 3: another label ends the flood
		"10;scan\n" + // episode 4: packet 9 is missing, so the run ends
		"\n# comment\n" +
		"11;BENIGN\n12;0.0\n"
	got, err := ParsePacketLabels("p.csv", strings.NewReader(in), times)
	if err != nil {
		t.Fatal(err)
	}
	want := []Incident{
		{ID: "packets 3-5", Device: "*", Kind: "scan", Start: at(-time.Second), End: at(3 * time.Second), File: "p.csv", Line: 4},
		{ID: "packet 7", Device: "*", Kind: "flood", Start: at(6 * time.Second), End: at(6 * time.Second), File: "p.csv", Line: 8},
		{ID: "packet 8", Device: "*", Kind: "scan", Start: at(7 * time.Second), End: at(7 * time.Second), File: "p.csv", Line: 9},
		{ID: "packet 10", Device: "*", Kind: "scan", Start: at(9 * time.Second), End: at(9 * time.Second), File: "p.csv", Line: 10},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n  %+v\nwant\n  %+v", got, want)
	}
}
