package fleetgen

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func smallConfig() Config { return SampleConfig() }

func TestGenerateIsDeterministic(t *testing.T) {
	c := smallConfig()
	c.Step = 5 * time.Minute // the committed sample's equality is checked in cmd/vigil
	var a, b bytes.Buffer
	if _, err := Generate(c, &a); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(c, &b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two runs with the same config differ")
	}
	c.Seed++
	var d bytes.Buffer
	if _, err := Generate(c, &d); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Bytes(), d.Bytes()) {
		t.Fatal("a different seed gave the same sample")
	}
}

// TestGenerateInjectsIncidents decodes the sample with encoding/json (not
// the product's decoder) and checks each incident is in the data and the
// first day is clean.
func TestGenerateInjectsIncidents(t *testing.T) {
	c := smallConfig()
	var buf bytes.Buffer
	st, err := Generate(c, &buf)
	if err != nil {
		t.Fatal(err)
	}
	inc := map[string]Incident{}
	for _, in := range Incidents(c) {
		inc[in.ID] = in
	}
	type rec struct {
		Device  string            `json:"device"`
		TS      time.Time         `json:"ts"`
		Attrs   map[string]string `json:"attrs"`
		Metrics map[string]float64
		Conn    map[string]string
	}
	within := func(id string, r *rec) bool {
		in := inc[id]
		return r.Device == in.Device && !r.TS.Before(in.Start) && r.TS.Before(in.End)
	}
	var (
		last                        time.Time
		selfMax, peerMin, cleanCPU  = 0.0, 1e9, 0.0
		ruleRows, silenceRows, fw   = 0, 0, 0
		cloneRows, stolenCert, rows = 0, 0, 0
		fleetRows, fleetGroupBefore = 0, 0
	)
	upgraded, dhcp := map[string]bool{}, 0
	certs := map[string]string{}
	for _, d := range Fleet(c) {
		certs[d.Name] = d.Cert
	}
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<20)
	dayTwo := c.Start.Add(24 * time.Hour)
	for sc.Scan() {
		var r rec
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %d: %v", rows+1, err)
		}
		rows++
		if r.TS.Before(last) {
			t.Fatalf("line %d: time goes back from %s to %s", rows, last, r.TS)
		}
		last = r.TS
		if r.TS.Before(dayTwo) {
			if r.Metrics["auth_failures"] > 1 || r.Attrs["fw"] != map[string]string{"s7-1500": "2.9.4", "s7-1200": "4.6.1"}[r.Attrs["hw"]] ||
				r.Conn["cert"] != certs[r.Device] || r.Conn["src_ip"] == "10.66.6.6" {
				t.Fatalf("line %d: day 1 must be clean: %s", rows, sc.Text())
			}
			cleanCPU = max(cleanCPU, r.Metrics["cpu_pct"])
		}
		switch {
		case within("self-1", &r):
			selfMax = max(selfMax, r.Metrics["bytes_out"]/r.Metrics["msgs_sent"])
		case within("peer-1", &r):
			peerMin = min(peerMin, r.Metrics["cpu_pct"])
		case within("rule-1", &r):
			if r.Metrics["auth_failures"] > 5 {
				ruleRows++
			}
		case within("silence-1", &r):
			silenceRows++
		case within("identity-src-1", &r):
			if r.Conn["src_ip"] == "10.66.6.6" {
				cloneRows++
			}
		case within("identity-cert-1", &r):
			if r.Conn["cert"] != certs[r.Device] {
				stolenCert++
			}
		}
		if r.Device == inc["identity-fw-1"].Device && r.Attrs["fw"] == "2.8.1" {
			fw++
		}
		if r.Attrs["fw"] == "4.7.0" {
			upgraded[r.Device] = true
		}
		if r.Conn["src_ip"] == "10.1.1.200" {
			dhcp++
		}
		if g := r.Attrs["site"] + "/" + r.Attrs["hw"]; g == inc["fleet-1"].Device {
			if !r.TS.Before(inc["fleet-1"].Start) && r.TS.Before(inc["fleet-1"].End) {
				fleetRows++
			} else if !r.TS.Before(inc["fleet-1"].Start.Add(-20*time.Minute)) && r.TS.Before(inc["fleet-1"].Start) {
				fleetGroupBefore++
			}
		}
	}
	if int64(rows) != st.Lines {
		t.Fatalf("stats say %d lines, read %d", st.Lines, rows)
	}
	if selfMax < 1000 {
		t.Errorf("self-1: bytes per message at most %.0f, want the x10 spike", selfMax)
	}
	if peerMin < cleanCPU+30 {
		t.Errorf("peer-1: cpu_pct down to %.1f, clean day 1 reaches %.1f", peerMin, cleanCPU)
	}
	if ruleRows != 15 || silenceRows != 0 || cloneRows != 30 || stolenCert != 60 {
		t.Errorf("rule rows %d (want 15), silence rows %d (want 0), clone rows %d (want 30), stolen cert rows %d (want 60)",
			ruleRows, silenceRows, cloneRows, stolenCert)
	}
	if want := int(last.Sub(inc["identity-fw-1"].Start)/time.Minute) - 1; fw < want {
		t.Errorf("downgraded firmware in %d rows, want at least %d", fw, want)
	}
	if len(upgraded) != c.DevicesPerGroup || dhcp < 14*60 {
		t.Errorf("benign events: %d devices upgraded (want %d), %d reports from the new DHCP address", len(upgraded), c.DevicesPerGroup, dhcp)
	}
	if r := float64(fleetRows) / float64(fleetGroupBefore); r < 0.45 || r > 0.55 {
		t.Errorf("fleet-1: group rows during the incident / before = %.2f, want 0.5", r)
	}
}

func TestLabelsAndInventory(t *testing.T) {
	c := smallConfig()
	var inv, lab strings.Builder
	if err := WriteInventory(c, &inv); err != nil {
		t.Fatal(err)
	}
	if err := WriteLabels(c, &lab); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(inv.String(), "\n"); n != 61 {
		t.Errorf("inventory has %d lines, want 61", n)
	}
	for _, crit := range []string{",high,", ",safety-critical,", ",low,", ",medium,"} {
		if !strings.Contains(inv.String(), crit) {
			t.Errorf("inventory has no %s asset", crit)
		}
	}
	for _, det := range []string{"self", "peer", "rule", "silence", "identity", "fleet"} {
		if !strings.Contains(lab.String(), ","+det+",") {
			t.Errorf("labels have no %s incident", det)
		}
	}
}

func TestValidate(t *testing.T) {
	c := DefaultConfig()
	c.Days = 1
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "at least 2") {
		t.Fatalf("Days=1: got %v", err)
	}
}
