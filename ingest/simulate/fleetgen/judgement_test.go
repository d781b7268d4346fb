package fleetgen

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

func TestGenerateJudgementIsDeterministic(t *testing.T) {
	c := DefaultJudgementConfig()
	var a, b bytes.Buffer
	if _, err := GenerateJudgement(c, &a); err != nil {
		t.Fatal(err)
	}
	if _, err := GenerateJudgement(c, &b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two runs with the same config differ")
	}
	c.Seed++
	var d bytes.Buffer
	if _, err := GenerateJudgement(c, &d); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Bytes(), d.Bytes()) {
		t.Fatal("a different seed gave the same data set")
	}
}

// judgementRow is one decoded line of the judgement telemetry.
type judgementRow struct {
	Device  string             `json:"device"`
	TS      time.Time          `json:"ts"`
	Attrs   map[string]string  `json:"attrs"`
	Metrics map[string]float64 `json:"metrics"`
	Conn    map[string]string  `json:"conn"`
}

// TestGenerateJudgementShapes decodes the data set with encoding/json (not
// the product's decoder) and checks each incident and benign event has the
// shape its label promises, and nothing else breaks it.
func TestGenerateJudgementShapes(t *testing.T) {
	c := DefaultJudgementConfig()
	var buf bytes.Buffer
	st, err := GenerateJudgement(c, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(c.Devices * c.Days * 24 * int(time.Hour/c.Step)); st.Lines != want || st.Devices != c.Devices {
		t.Fatalf("stats %+v, want %d lines of %d devices", st, want, c.Devices)
	}
	inc := map[string]JudgementIncident{}
	for _, in := range JudgementIncidents(c) {
		inc[in.ID] = in
	}
	pumps := map[string]*Pump{}
	for _, p := range JudgementFleet(c) {
		pumps[p.Name] = p
	}
	in := func(id string, r *judgementRow) bool {
		x := inc[id]
		return r.Device == x.Device && !r.TS.Before(x.Start) && r.TS.Before(x.End)
	}
	// slot is a row's device and time of day, to compare an incident with
	// the same device at the same time on the clean days.
	type slot struct {
		device string
		minute int
	}
	slotOf := func(r *judgementRow) slot { return slot{r.Device, r.TS.Hour()*60 + r.TS.Minute()} }
	clean := map[slot][]judgementRow{}
	learnEnd := c.Start.AddDate(0, 0, judgementLearnDays)
	var (
		rows, futureRows      int
		last                  time.Time
		incidentRows          = map[string][]judgementRow{}
		burstRows, burstOther int
		maxQuietErrors        float64
		peak, beforePeak      [2]float64 // sum and count of msgs_sent
		flowRange             = map[string][2]float64{}
		worstFit              float64
	)
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var r judgementRow
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %d: %v", rows+1, err)
		}
		rows++
		if len(r.Metrics) != 6 || r.Attrs["site"] == "" || r.Conn["client_id"] != r.Device {
			t.Fatalf("line %d lacks a metric, attribute or connection field: %s", rows, sc.Text())
		}
		if r.TS.Year() == FutureYear {
			futureRows++
			if r.Device != inc[IncidentFutureRecord].Device || !r.TS.AddDate(c.Start.Year()-FutureYear, 0, 0).Truncate(c.Step).Equal(futureStep(c)) {
				t.Errorf("line %d: future-dated line of %s at %s, want %s's report of %s", rows, r.Device, r.TS, inc[IncidentFutureRecord].Device, futureStep(c))
			}
			continue
		}
		if r.TS.Before(last) {
			t.Fatalf("line %d: time goes back from %s to %s", rows, last, r.TS)
		}
		last = r.TS
		m := r.Metrics
		for _, id := range []string{IncidentDropToZero, IncidentSpike, IncidentLevelShift, IncidentCorrelationBreak} {
			if in(id, &r) {
				incidentRows[id] = append(incidentRows[id], r)
			}
		}
		if m["msgs_sent"] == 0 && !in(IncidentDropToZero, &r) {
			t.Errorf("line %d: msgs_sent 0 outside the drop-to-zero incident", rows)
		}
		if r.TS.Before(learnEnd) {
			clean[slotOf(&r)] = append(clean[slotOf(&r)], r)
			fr := flowRange[r.Device]
			if fr == [2]float64{} {
				fr = [2]float64{math.Inf(1), math.Inf(-1)}
			}
			flowRange[r.Device] = [2]float64{min(fr[0], m["flow_lpm"]), max(fr[1], m["flow_lpm"])}
			p := pumps[r.Device]
			worstFit = max(worstFit, math.Abs(m["motor_current_a"]-(p.ampPerLpm*m["flow_lpm"]+p.ampBase)))
		}
		dayStart := r.TS.Truncate(24 * time.Hour)
		if r.TS.Weekday() == time.Monday && r.TS.Sub(dayStart) >= burstHour*time.Hour && r.TS.Sub(dayStart) < burstHour*time.Hour+burstLength {
			burstRows++
			if m["error_count"] < burstMin || m["error_count"] > burstMax {
				t.Errorf("line %d: error_count %g in the weekly burst, want %d-%d", rows, m["error_count"], burstMin, burstMax)
			}
		} else {
			maxQuietErrors = max(maxQuietErrors, m["error_count"])
			if m["error_count"] >= burstMin {
				burstOther++
			}
		}
		switch h := r.TS.Hour(); {
		case h >= peakStartHour && h < peakEndHour:
			peak[0] += m["msgs_sent"]
			peak[1]++
		case h >= peakStartHour-2 && h < peakStartHour:
			beforePeak[0] += m["msgs_sent"]
			beforePeak[1]++
		}
	}
	if int64(rows) != st.Lines || futureRows != 1 {
		t.Fatalf("read %d lines (stats %d), %d of them dated in %d (want 1)", rows, st.Lines, futureRows, FutureYear)
	}
	// usual is the mean of metric on the clean days, for the device and time of day of r.
	usual := func(r *judgementRow, metric string) float64 {
		var sum float64
		cl := clean[slotOf(r)]
		for _, o := range cl {
			sum += o.Metrics[metric]
		}
		return sum / float64(len(cl))
	}

	if n := len(incidentRows[IncidentDropToZero]); n != 6 {
		t.Errorf("%s: %d rows, want 6 (1 h)", IncidentDropToZero, n)
	}
	for _, r := range incidentRows[IncidentDropToZero] {
		if r.Metrics["msgs_sent"] != 0 || r.Metrics["bytes_out"] != 0 || r.Metrics["flow_lpm"] == 0 {
			t.Errorf("%s at %s: msgs_sent %g, bytes_out %g, flow_lpm %g; want 0, 0 and normal flow", IncidentDropToZero, r.TS, r.Metrics["msgs_sent"], r.Metrics["bytes_out"], r.Metrics["flow_lpm"])
		}
	}
	if rs := incidentRows[IncidentSpike]; len(rs) != 1 {
		t.Errorf("%s: %d rows, want 1", IncidentSpike, len(rs))
	} else if ratio := rs[0].Metrics["msgs_sent"] / usual(&rs[0], "msgs_sent"); ratio < 22 || ratio > 28 {
		t.Errorf("%s: msgs_sent %.1f× its usual, want %d×", IncidentSpike, ratio, spikeFactor)
	}
	var shift float64
	for _, r := range incidentRows[IncidentLevelShift] {
		shift += r.Metrics["temperature_c"] - usual(&r, "temperature_c")
	}
	sigma := pumps[inc[IncidentLevelShift].Device].TempNoise
	if rs := incidentRows[IncidentLevelShift]; len(rs) != 36 {
		t.Errorf("%s: %d rows, want 36 (6 h)", IncidentLevelShift, len(rs))
	} else if s := shift / float64(len(rs)) / sigma; s < 2.5 || s > 3.5 {
		t.Errorf("%s: temperature_c %.2fσ above its usual, want %dσ", IncidentLevelShift, s, shiftSigmas)
	}
	for _, r := range incidentRows[IncidentCorrelationBreak] {
		flow, current := r.Metrics["flow_lpm"], r.Metrics["motor_current_a"]
		fr := flowRange[r.Device]
		if ratio := flow / usual(&r, "flow_lpm"); ratio < 0.5 || ratio > 0.7 || flow < fr[0] || flow > fr[1] {
			t.Errorf("%s at %s: flow_lpm %.1f, %.2f of its usual, clean range %.1f-%.1f; want %.1f of it and inside the range",
				IncidentCorrelationBreak, r.TS, flow, ratio, fr[0], fr[1], breakFlowFactor)
		}
		if ratio := current / usual(&r, "motor_current_a"); math.Abs(ratio-1) > 0.05 {
			t.Errorf("%s at %s: motor_current_a %.2f of its usual, want it to hold", IncidentCorrelationBreak, r.TS, ratio)
		}
	}
	if n := len(incidentRows[IncidentCorrelationBreak]); n != 12 {
		t.Errorf("%s: %d rows, want 12 (2 h)", IncidentCorrelationBreak, n)
	}
	if worstFit > 0.8 {
		t.Errorf("motor_current_a strays %.2f A from a·flow + b on the clean days; want the two to move together", worstFit)
	}
	mondays := (c.Days + 6) / 7
	if want := mondays * c.Devices * int(burstLength/c.Step); burstRows != want || burstOther != 0 || maxQuietErrors > 5 {
		t.Errorf("weekly burst: %d rows (want %d), %d bursts outside it, error_count up to %g outside it (want a few at most)",
			burstRows, want, burstOther, maxQuietErrors)
	}
	if r := (peak[0] / peak[1]) / (beforePeak[0] / beforePeak[1]); r < 1.3 || r > 1.7 {
		t.Errorf("daily peak: msgs_sent %.2f× the two hours before, want about %.1f×", r, peakFactor)
	}
}

func TestJudgementLabelsAndBenign(t *testing.T) {
	c := DefaultJudgementConfig()
	var lab, ben, inv strings.Builder
	for _, err := range []error{WriteJudgementLabels(c, &lab), WriteJudgementBenign(c, &ben), WriteJudgementInventory(c, &inv)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSpace(lab.String()), "\n")
	if lines[0] != "id,device,start,end,kind,detector,behavior,note" || len(lines) != 6 {
		t.Errorf("labels: header %q and %d incidents, want the judgement header and 5", lines[0], len(lines)-1)
	}
	week := c.Start.AddDate(0, 0, judgementLearnDays)
	for _, in := range JudgementIncidents(c) {
		if in.Start.Before(week) || !in.End.After(in.Start) {
			t.Errorf("incident %s at %s-%s: want it in the incident week, from %s", in.ID, in.Start, in.End, week)
		}
	}
	if !strings.Contains(lab.String(), ",clock,clock,") {
		t.Error("labels: the future record is not of kind and detector clock")
	}
	if n := strings.Count(ben.String(), "\n"+BenignDailyPeak+"-"); n != c.Days {
		t.Errorf("benign: %d daily peaks, want one a day (%d)", n, c.Days)
	}
	if n := strings.Count(ben.String(), "\n"+BenignWeeklyBurst+"-"); n != (c.Days+6)/7 {
		t.Errorf("benign: %d weekly bursts, want one each Monday (%d)", n, (c.Days+6)/7)
	}
	if n := strings.Count(inv.String(), "\n"); n != c.Devices+1 {
		t.Errorf("inventory has %d lines, want %d", n, c.Devices+1)
	}
}

func TestJudgementReadmeKeepsFigures(t *testing.T) {
	c := DefaultJudgementConfig()
	st := Stats{Lines: 95040, Devices: 30}
	var fresh bytes.Buffer
	if err := WriteJudgementReadme(c, st, nil, &fresh); err != nil {
		t.Fatal(err)
	}
	placeholder := FiguresSection(fresh.Bytes())
	if placeholder == nil {
		t.Fatal("a new README has no figures section")
	}
	generated := fresh.Bytes()[:fresh.Len()-len(placeholder)]
	for _, heading := range []string{JudgementFiguresHeading, JudgementFiguresHeading + " at commit abc1234"} {
		figures := heading + "\n\nmeasured by hand\n"
		old := append(bytes.Clone(generated), figures...)
		var again bytes.Buffer
		if err := WriteJudgementReadme(c, st, FiguresSection(old), &again); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again.Bytes(), old) {
			t.Errorf("heading %q: the README did not keep its figures:\n%s", heading, again.String())
		}
	}
	if FiguresSection([]byte("## Figuresque\n")) != nil {
		t.Error("a heading that only starts with the figures heading's letters was taken for it")
	}
	if !strings.Contains(fresh.String(), "95,040 lines") {
		t.Error("README does not count the lines")
	}
}

func TestJudgementValidate(t *testing.T) {
	for name, change := range map[string]func(*JudgementConfig){
		"Monday":    func(c *JudgementConfig) { c.Start = c.Start.Add(24 * time.Hour) },
		"21":        func(c *JudgementConfig) { c.Days = 20 },
		"divide 1h": func(c *JudgementConfig) { c.Step = 7 * time.Minute },
		"22 to":     func(c *JudgementConfig) { c.Devices = 10 },
	} {
		c := DefaultJudgementConfig()
		change(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}
