package fleetgen

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// JudgementConfig describes the judgement data set.
type JudgementConfig struct {
	Seed    uint64
	Start   time.Time     // a Monday 00:00 UTC: the weekly bursts fall on Mondays
	Days    int           // at least 21: 14 clean days, then the incident week
	Step    time.Duration // report interval of every device
	Devices int           // controllers in the one group
}

// DefaultJudgementConfig is the data set committed under
// testdata/judgement: 30 controllers reporting every 10 minutes for 22
// days from Monday 2 November 2026 (95,040 lines, 2.3 MB compressed; a
// report every 5 minutes would take 3.9 MB). The 22nd day brings a fourth
// Monday, so the weekly burst is seen once more after the incident week.
func DefaultJudgementConfig() JudgementConfig {
	return JudgementConfig{
		Seed:    1,
		Start:   time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC),
		Days:    22,
		Step:    10 * time.Minute,
		Devices: 30,
	}
}

// judgementLearnDays is the clean learning period before the incident week.
const judgementLearnDays = 14

// Validate checks c.
func (c *JudgementConfig) Validate() error {
	switch {
	case c.Start.Weekday() != time.Monday || !c.Start.Equal(c.Start.Truncate(24*time.Hour)):
		return fmt.Errorf("cannot start the judgement data set at %s: start on a Monday at 00:00 UTC, as the weekly burst and the incident days count from it", c.Start.Format(time.RFC3339))
	case c.Days < judgementLearnDays+7:
		return fmt.Errorf("cannot generate %d day(s): need at least %d (%d clean days, then the incident week)", c.Days, judgementLearnDays+7, judgementLearnDays)
	case c.Step < time.Minute || c.Step%time.Minute != 0 || time.Hour%c.Step != 0:
		return fmt.Errorf("cannot generate with step %s: use whole minutes that divide 1h, e.g. 10m", c.Step)
	case c.Devices < 22 || c.Devices > 999:
		return fmt.Errorf("cannot generate %d devices: use 22 to 999 (the incidents are on devices 4 to 21)", c.Devices)
	}
	return nil
}

// The one site and hardware of the judgement fleet.
const (
	judgementSite     = "plant-w"
	judgementHW       = "pump-ctl"
	judgementFirmware = "1.4.2"
)

// JudgementGroup is the group key (site/hw) of every judgement device.
const JudgementGroup = judgementSite + "/" + judgementHW

// Pump is one pump controller of the judgement fleet with its fixed
// characteristics.
type Pump struct {
	Name        string
	IP, MAC     string
	Cert        string
	Criticality string
	Patchable   bool

	offset    time.Duration // report offset within the step
	msgRate   float64       // messages per step at full working-day load
	msgSize   float64       // bytes per message
	flowMax   float64       // l/min at full demand
	ampPerLpm float64       // motor current per l/min of flow
	ampBase   float64       // motor current at no flow
	tempBase  float64       // °C, the daily mean
	tempAmp   float64       // °C, half the daily swing
	// TempNoise is the standard deviation (°C) of the device's temperature
	// around its daily profile: the σ of the level-shift incident.
	TempNoise float64
}

// PumpName returns the name of pump controller i.
func PumpName(i int) string { return fmt.Sprintf("pump-%03d", i) }

// JudgementFleet returns the devices of c in a fixed order.
func JudgementFleet(c JudgementConfig) []*Pump {
	devs := make([]*Pump, c.Devices)
	for i := range devs {
		name := PumpName(i)
		r := deviceRand(c.Seed, name, "judgement/static")
		p := &Pump{
			Name: name,
			IP:   fmt.Sprintf("10.9.%d.%d", 1+i/200, 10+i%200),
			MAC:  fmt.Sprintf("00:1b:1b:09:%02x:%02x", 1+i/200, 10+i%200),
		}
		sum := sha256.Sum256(fmt.Appendf(nil, "%d/%s/cert", c.Seed, name))
		p.Cert = "sha256:" + hex.EncodeToString(sum[:])
		switch {
		case i%10 == 3:
			p.Criticality = "safety-critical"
		case i%4 == 1:
			p.Criticality = "high"
		case i%3 == 0:
			p.Criticality = "low"
		default:
			p.Criticality = "medium"
		}
		p.Patchable = i%6 != 5
		// Whole seconds keep the file small; the millisecond jitter of
		// each report is drawn with the series.
		p.offset = time.Duration(uniform(r)*float64(c.Step-time.Second)/float64(time.Second)) * time.Second
		// Pumps of one station do the same job at different sizes: each
		// scale spreads ±20-30 %, the physics (current per flow, the
		// temperature's swing) less.
		perMinute := float64(c.Step) / float64(time.Minute)
		p.msgRate = 40 * perMinute * (1 + 0.3*(2*uniform(r)-1))
		p.msgSize = 120 * (1 + 0.25*(2*uniform(r)-1))
		p.flowMax = 400 * (1 + 0.2*(2*uniform(r)-1))
		p.ampPerLpm = 0.04 * (1 + 0.1*(2*uniform(r)-1))
		p.ampBase = 3 * (1 + 0.1*(2*uniform(r)-1))
		p.tempBase = 38 * (1 + 0.1*(2*uniform(r)-1))
		p.tempAmp = 2 * (1 + 0.25*(2*uniform(r)-1))
		p.TempNoise = 0.08 + 0.08*uniform(r)
		devs[i] = p
	}
	return devs
}

// JudgementIncident is one labelled incident of the judgement data set,
// as written to labels.csv.
type JudgementIncident struct {
	ID       string
	Device   string
	Start    time.Time
	End      time.Time // exclusive
	Kind     string
	Detector string // what should ideally fire: self, peer, joint, clock
	Behavior string // the metric (or metric pair) it should name
	Note     string
}

// Incident ids of the judgement data set, in the order of the incident week.
const (
	IncidentDropToZero       = "drop-to-zero"
	IncidentSpike            = "spike-25x"
	IncidentLevelShift       = "level-shift"
	IncidentCorrelationBreak = "correlation-break"
	IncidentFutureRecord     = "future-record"
)

// FutureYear is the year the future-record incident's line is dated in.
const FutureYear = 2030

// The incident week's devices and shapes. Each incident has its own device
// and day, none on a Monday or in the 17:00-19:00 peak, so an alarm can be
// told apart from the benign events.
const (
	dropDevice, spikeDevice, shiftDevice, breakDevice, futureDevice = 7, 13, 21, 4, 18

	spikeFactor     = 25
	shiftSigmas     = 3
	breakFlowFactor = 0.6
)

// JudgementIncidents returns the incidents of c's incident week, the days
// after the 14 clean ones, in time order.
func JudgementIncidents(c JudgementConfig) []JudgementIncident {
	week := c.Start.AddDate(0, 0, judgementLearnDays)
	at := func(day, h int) time.Time { return week.AddDate(0, 0, day).Add(time.Duration(h) * time.Hour) }
	devs := JudgementFleet(c)
	shift := devs[shiftDevice]
	future := futureStep(c)
	return []JudgementIncident{
		{ID: IncidentDropToZero, Device: PumpName(dropDevice), Start: at(1, 10), End: at(1, 11), Kind: "drop",
			Detector: "self", Behavior: "msgs_sent",
			Note: "msgs_sent and bytes_out are 0 for 1 h of the working day; the device keeps reporting, its other metrics and its peers are normal"},
		{ID: IncidentSpike, Device: PumpName(spikeDevice), Start: at(2, 14), End: at(2, 14).Add(c.Step), Kind: "spike",
			Detector: "self", Behavior: "msgs_sent",
			Note: fmt.Sprintf("one report with msgs_sent %dx its normal for the hour (bytes_out follows)", spikeFactor)},
		{ID: IncidentLevelShift, Device: PumpName(shiftDevice), Start: at(3, 8), End: at(3, 14), Kind: "level-shift",
			Detector: "self", Behavior: "temperature_c",
			Note: fmt.Sprintf("temperature_c +%dσ = +%.2f °C for 6 h (σ %.3f °C: the device's noise around its daily profile; the daily swing is ±%.1f °C)",
				shiftSigmas, shiftSigmas*shift.TempNoise, shift.TempNoise, shift.tempAmp)},
		{ID: IncidentCorrelationBreak, Device: PumpName(breakDevice), Start: at(4, 10), End: at(4, 12), Kind: "correlation-break",
			Detector: "joint", Behavior: "flow_lpm/motor_current_a",
			Note: fmt.Sprintf("flow_lpm drops by %.0f %% while motor_current_a holds for 2 h (cavitation or a blocked line); each alone stays inside its normal daily range", 100*(1-breakFlowFactor))},
		{ID: IncidentFutureRecord, Device: PumpName(futureDevice), Start: future.Add(-c.Step), End: future.Add(2 * c.Step), Kind: "clock",
			Detector: "clock", Behavior: "future_timestamp",
			Note: fmt.Sprintf("the report of the step at %s is dated in %d (a corrupted clock year); the window spans its neighbours. It must be rejected and counted, not alarmed on",
				future.Format("15:04"), FutureYear)},
	}
}

// futureStep is the step whose report the future-record incident dates in
// FutureYear: Sunday of the incident week, 15:00.
func futureStep(c JudgementConfig) time.Time {
	return c.Start.AddDate(0, 0, judgementLearnDays+6).Add(15 * time.Hour)
}

// Benign event ids of the judgement data set; a row's id is one of these
// followed by its date.
const (
	BenignWeeklyBurst = "weekly-burst"
	BenignDailyPeak   = "daily-peak"
)

// The benign events' shapes.
const (
	burstHour, burstLength     = 3, 20 * time.Minute // every Monday
	burstMin, burstMax         = 30, 60
	peakStartHour, peakEndHour = 17, 19 // every day
	peakFactor                 = 1.5
	errorRate                  = 0.03 // error_count's Poisson mean outside the bursts
)

// JudgementBenign returns the benign events of c, in time order: every
// Monday's error burst and every day's fleet-wide peak, all devices ("*")
// at once. They recur from the first day, so by the incident week they
// are part of normal operation.
func JudgementBenign(c JudgementConfig) []Incident {
	var ev []Incident
	for d := 0; d < c.Days; d++ {
		day := c.Start.AddDate(0, 0, d)
		if day.Weekday() == time.Monday {
			start := day.Add(burstHour * time.Hour)
			ev = append(ev, Incident{ID: BenignWeeklyBurst + "-" + day.Format(time.DateOnly), Device: "*", Start: start, End: start.Add(burstLength),
				Behavior: "error_count", Note: fmt.Sprintf("every device's error_count bursts to %d-%d for 20 min, every Monday at 03:00 (a weekly self-test)", burstMin, burstMax)})
		}
		ev = append(ev, Incident{ID: BenignDailyPeak + "-" + day.Format(time.DateOnly), Device: "*",
			Start: day.Add(peakStartHour * time.Hour), End: day.Add(peakEndHour * time.Hour),
			Behavior: "msgs_sent", Note: fmt.Sprintf("every device sends %.1fx the messages and bytes from 17:00 to 19:00, every day (shift handover reports)", peakFactor)})
	}
	return ev
}

// workingDay is the plant's load at hour h (UTC, the plant's time): 0 at
// night, 1 through the working day, ramping up around 07:00 and down
// around 21:00.
func workingDay(h float64) float64 {
	s := func(x float64) float64 { return 1 / (1 + math.Exp(-1.5*x)) }
	return s(h-7) * s(21-h)
}

// pumpReport is one device's values for one step.
type pumpReport struct {
	msgs, bytesOut, flow, current, temp, errors float64
}

// expectedMsgs is p's mean message count at t, before noise: what the
// spike incident multiplies.
func (p *Pump) expectedMsgs(t time.Time) float64 {
	h := hourOfDay(t)
	mu := p.msgRate * (0.3 + 0.7*workingDay(h))
	if h >= peakStartHour && h < peakEndHour {
		mu *= peakFactor
	}
	return mu
}

func hourOfDay(t time.Time) float64 { return float64(t.Unix()%86400) / 3600 }

// samplePump draws p's report for the step at t. It draws the same number
// of values from r whatever the incidents, so injecting one changes no
// other value.
func samplePump(p *Pump, r *rand.Rand, t time.Time) pumpReport {
	h := hourOfDay(t)
	mu := p.expectedMsgs(t)
	msgs := math.Max(0, math.Round(mu+normal(r)*math.Sqrt(mu)))
	flow := p.flowMax * (0.4 + 0.6*workingDay(h)) * (1 + 0.02*normal(r))
	rep := pumpReport{
		msgs:     msgs,
		bytesOut: math.Round(msgs * p.msgSize * (1 + 0.03*normal(r))),
		flow:     math.Round(flow*10) / 10,
		current:  math.Round((p.ampPerLpm*flow+p.ampBase+0.1*normal(r))*100) / 100,
		temp:     math.Round((p.tempBase+p.tempAmp*math.Sin(2*math.Pi*(h-9)/24)+p.TempNoise*normal(r))*100) / 100,
		errors:   float64(poisson(r, errorRate)),
	}
	burst := float64(burstMin + int(uniform(r)*(burstMax-burstMin+1)))
	if t.Weekday() == time.Monday && t.Sub(t.Truncate(24*time.Hour)) >= burstHour*time.Hour &&
		t.Sub(t.Truncate(24*time.Hour)) < burstHour*time.Hour+burstLength {
		rep.errors = burst
	}
	return rep
}

// applyJudgementIncident changes rep, p's report for the step at t, when
// an incident of inc is on p then. The future record's line keeps its
// values: only its date changes, which the caller does.
func applyJudgementIncident(rep *pumpReport, p *Pump, t time.Time, inc []JudgementIncident) {
	for i := range inc {
		x := &inc[i]
		if x.Device != p.Name || t.Before(x.Start) || !t.Before(x.End) {
			continue
		}
		switch x.ID {
		case IncidentDropToZero:
			rep.msgs, rep.bytesOut = 0, 0
		case IncidentSpike:
			bytesPerMsg := rep.bytesOut / math.Max(rep.msgs, 1)
			rep.msgs = math.Round(spikeFactor * p.expectedMsgs(t))
			rep.bytesOut = math.Round(rep.msgs * bytesPerMsg)
		case IncidentLevelShift:
			rep.temp = math.Round((rep.temp+shiftSigmas*p.TempNoise)*100) / 100
		case IncidentCorrelationBreak:
			// The current was drawn from the unbroken flow: it holds.
			rep.flow = math.Round(rep.flow*breakFlowFactor*10) / 10
		}
	}
}

// GenerateJudgement writes c's telemetry as JSON lines in event-time order
// to w: the fleet sample's native format (device, ts, attrs, metrics,
// conn). The future-dated line stands where its report would have been.
func GenerateJudgement(c JudgementConfig, w io.Writer) (Stats, error) {
	if err := c.Validate(); err != nil {
		return Stats{}, err
	}
	devs := JudgementFleet(c)
	inc := JudgementIncidents(c)
	future, futureName := futureStep(c), PumpName(futureDevice)
	rngs := make([]*rand.Rand, len(devs))
	for i, p := range devs {
		rngs[i] = deviceRand(c.Seed, p.Name, "judgement/series")
	}
	var (
		rows  = make([]timedLine, len(devs))
		st    = Stats{Devices: len(devs)}
		steps = int(time.Duration(c.Days) * 24 * time.Hour / c.Step)
	)
	for i := range rows {
		rows[i].line = make([]byte, 0, 512)
	}
	for s := 0; s < steps; s++ {
		t0 := c.Start.Add(time.Duration(s) * c.Step)
		for i, p := range devs {
			r := rngs[i]
			rep := samplePump(p, r, t0)
			ts := t0.Add(p.offset).Add(time.Duration(r.Uint64()%1000) * time.Millisecond)
			applyJudgementIncident(&rep, p, t0, inc)
			stamp := ts
			if p.Name == futureName && t0.Equal(future) {
				stamp = ts.AddDate(FutureYear-ts.Year(), 0, 0)
			}
			rows[i] = timedLine{ts.UnixNano(), appendPumpLine(rows[i].line[:0], p, stamp, &rep)}
		}
		if err := writeStep(w, rows, &st); err != nil {
			return st, err
		}
	}
	return st, nil
}

func appendPumpLine(b []byte, p *Pump, ts time.Time, rep *pumpReport) []byte {
	b = append(b, `{"device":"`...)
	b = append(b, p.Name...)
	b = append(b, `","ts":"`...)
	b = ts.AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","attrs":{"site":"`+judgementSite+`","hw":"`+judgementHW+`","fw":"`+judgementFirmware+`"},"metrics":{"msgs_sent":`...)
	b = strconv.AppendFloat(b, rep.msgs, 'f', 0, 64)
	b = append(b, `,"bytes_out":`...)
	b = strconv.AppendFloat(b, rep.bytesOut, 'f', 0, 64)
	b = append(b, `,"flow_lpm":`...)
	b = strconv.AppendFloat(b, rep.flow, 'f', 1, 64)
	b = append(b, `,"motor_current_a":`...)
	b = strconv.AppendFloat(b, rep.current, 'f', 2, 64)
	b = append(b, `,"temperature_c":`...)
	b = strconv.AppendFloat(b, rep.temp, 'f', 2, 64)
	b = append(b, `,"error_count":`...)
	b = strconv.AppendFloat(b, rep.errors, 'f', 0, 64)
	b = append(b, `},"conn":{"src_ip":"`...)
	b = append(b, p.IP...)
	b = append(b, `","client_id":"`...)
	b = append(b, p.Name...)
	b = append(b, `","cert":"`...)
	b = append(b, p.Cert...)
	b = append(b, "\"}}\n"...)
	return b
}

// WriteJudgementInventory writes the judgement fleet's asset inventory as
// CSV with the fleet sample's header
// device,ip,mac,site,hw,fw,owner,criticality,patchable.
func WriteJudgementInventory(c JudgementConfig, w io.Writer) error {
	b := []byte("device,ip,mac,site,hw,fw,owner,criticality,patchable\n")
	for _, p := range JudgementFleet(c) {
		b = fmt.Appendf(b, "%s,%s,%s,%s,%s,%s,%s,%s,%t\n", p.Name, p.IP, p.MAC, judgementSite, judgementHW, judgementFirmware, "ops-w", p.Criticality, p.Patchable)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("cannot write inventory: %w", err)
	}
	return nil
}

// WriteJudgementLabels writes c's incidents as CSV with the header
// id,device,start,end,kind,detector,behavior,note (what vigil score
// reads); times are RFC 3339 UTC and end is exclusive.
func WriteJudgementLabels(c JudgementConfig, w io.Writer) error {
	b := []byte("id,device,start,end,kind,detector,behavior,note\n")
	for _, in := range JudgementIncidents(c) {
		b = fmt.Appendf(b, "%s,%s,%s,%s,%s,%s,%s,%q\n", in.ID, in.Device, in.Start.Format(time.RFC3339), in.End.Format(time.RFC3339),
			in.Kind, in.Detector, in.Behavior, in.Note)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("cannot write labels: %w", err)
	}
	return nil
}

// WriteJudgementBenign writes c's benign events as CSV with the header
// id,device,start,end,behavior,note; device "*" is every device.
func WriteJudgementBenign(c JudgementConfig, w io.Writer) error {
	b := []byte("id,device,start,end,behavior,note\n")
	for _, ev := range JudgementBenign(c) {
		b = fmt.Appendf(b, "%s,%s,%s,%s,%s,%q\n", ev.ID, ev.Device, ev.Start.Format(time.RFC3339), ev.End.Format(time.RFC3339), ev.Behavior, ev.Note)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("cannot write benign events: %w", err)
	}
	return nil
}

// poisson draws a Poisson count of mean lambda by inversion (small lambda
// only), written out for the reason uniform and normal are.
func poisson(r *rand.Rand, lambda float64) int {
	limit, p, k := math.Exp(-lambda), uniform(r), 0
	for p > limit {
		p *= uniform(r)
		k++
	}
	return k
}

// JudgementFiguresHeading starts the part of testdata/judgement/README.md
// the generator does not write: today's scores, measured and pasted by
// hand ("## Figures at commit 1234abc"). WriteJudgementReadme keeps it.
const JudgementFiguresHeading = "## Figures"

// FiguresSection returns the part of readme from its first line that is
// JudgementFiguresHeading, alone or followed by a space and more words, or
// nil when it has none.
func FiguresSection(readme []byte) []byte {
	for off := 0; off < len(readme); {
		line, _, _ := bytes.Cut(readme[off:], []byte("\n"))
		rest, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r"), []byte(JudgementFiguresHeading))
		if ok && (len(rest) == 0 || rest[0] == ' ') {
			return readme[off:]
		}
		off += len(line) + 1
	}
	return nil
}

// WriteJudgementReadme writes the README of c's data set, st being what
// GenerateJudgement wrote, followed by figures: the section
// FiguresSection took from the README being replaced, or a placeholder
// when it is nil.
func WriteJudgementReadme(c JudgementConfig, st Stats, figures []byte, w io.Writer) error {
	var b bytes.Buffer
	week := c.Start.AddDate(0, 0, judgementLearnDays)
	devs := JudgementFleet(c)
	fmt.Fprintf(&b, `# Telemetry judgement data set

Made by `+"`ingest/simulate/fleetgen`"+` (deterministic, seed %d). Do not edit it by hand above %q: the generator
rewrites everything before that heading and keeps the rest.

`+"```sh"+`
go run ./ingest/simulate/fleetgen/cmd/fleetgen -judgement     # this directory, byte for byte
`+"```"+`

It measures what the telemetry detectors should catch and what must stay quiet, on shapes the two-day
fleet sample (`+"`testdata/fleet`"+`) cannot show: a daily pattern learned over two weeks and a weekly
recurrence. Its golden figures are not asserted yet: `+"`TestJudgementScore`"+` in `+"`cmd/vigil`"+` logs them
and asserts only what holds today, to be tightened as the detectors improve.

| file | what |
|---|---|
| `+"`telemetry.jsonl.gz`"+` | native JSON telemetry in the fleet sample's shape (`+"`device, ts, attrs, metrics, conn`"+`): %d pump controllers `+"`%s`"+` … `+"`%s`"+` of one group (`+"`%s`"+`), one report every %d minutes, %d days from %s %s (%s lines) |
| `+"`labels.csv`"+` | the %d incidents of the last week: `+"`id,device,start,end,kind,detector,behavior,note`"+`; times RFC 3339, `+"`end`"+` exclusive; `+"`detector`/`behavior`"+` name what should ideally fire |
| `+"`benign.csv`"+` | events of normal operation that must raise no alarm: `+"`id,device,start,end,behavior,note`"+`; device `+"`*`"+` is every device |
| `+"`inventory.csv`"+` | the asset inventory, in the fleet sample's columns (site, hw, criticality, patchable, …) |
| `+"`vigil.yaml`"+` | the configuration to score with (written by hand, not by the generator) |

## Timeline

Times are UTC, the plant's time; the plant works seven days a week.

- days 1–%d (%s to %s): clean, the learning period. `+"`vigil.yaml`"+` ends the group's learning after its first
  day; the baseline trusts an hour-of-week profile after 14 days (`+"`seasonal_min_history`"+`).
- days %d–%d (%s to %s): one incident on each of five days (none on the Monday, none at 17:00–19:00).
- the days after: clean, with one more Monday burst.

## Metrics

| metric | shape |
|---|---|
| `+"`msgs_sent`"+` | a count following the working day: %.1f of the day's load at night, ramping up around 07:00 and down around 21:00; a per-device scale (±30 %%); noise √mean; ×%.1f from 17:00 to 19:00 (the daily peak) |
| `+"`bytes_out`"+` | tracks `+"`msgs_sent`"+`: messages × the device's message size (±25 %% across devices), 3 %% noise |
| `+"`flow_lpm`"+` | demand following the day: 0.4 of the device's maximum (400 l/min ±20 %%) at night to 1.0 by day, 2 %% noise, to 0.1 l/min |
| `+"`motor_current_a`"+` | moves with the flow: a·flow + b + noise (a ≈ 0.04 A per l/min, b ≈ 3 A, σ 0.1 A), to 0.01 A |
| `+"`temperature_c`"+` | a slow daily cycle (±1.5–2.5 °C, warmest at 15:00) around 34–42 °C; noise σ %.2f–%.2f °C by device; to 0.01 °C |
| `+"`error_count`"+` | a bursty count: mostly 0 (Poisson, mean %.2f a report), %d–%d for 20 minutes every Monday at 03:00 |

## Incidents

| id | device | start | end | should fire | what |
|---|---|---|---|---|---|
`, c.Seed, JudgementFiguresHeading,
		len(devs), devs[0].Name, devs[len(devs)-1].Name, JudgementGroup, int(c.Step/time.Minute), c.Days, c.Start.Weekday(), c.Start.Format(time.DateOnly), thousands(st.Lines),
		len(JudgementIncidents(c)),
		judgementLearnDays, c.Start.Format(time.DateOnly), week.AddDate(0, 0, -1).Format(time.DateOnly),
		judgementLearnDays+1, judgementLearnDays+7, week.Format(time.DateOnly), week.AddDate(0, 0, 6).Format(time.DateOnly),
		0.3, peakFactor, 0.08, 0.16, errorRate, burstMin, burstMax)
	for _, in := range JudgementIncidents(c) {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s/%s | %s |\n", in.ID, in.Device, in.Start.Format(time.RFC3339), in.End.Format(time.RFC3339), in.Detector, in.Behavior, in.Note)
	}
	fmt.Fprintf(&b, `
`+"`joint`"+` is a detector of two metrics together (today's self and peer detectors judge one metric at a
time); the correlation break is made so that neither metric alone leaves its normal daily range.

**The future-dated record** (`+"`%s`, kind `clock`"+`) is one line of %s dated in %d where its report
was due; the device's other lines are normal. What is expected is not an alarm: the record must be
rejected at ingest and counted (the replay summary's "rejected"), and must not move event time, the
baseline or the silence detector's clock for the other devices. Its label spans the line's neighbours,
so that an alarm it provokes on its device is listed against it rather than lost among the false
alarms; `+"`vigil score`"+` then shows it "detected", which here is a fault, and a perfect engine scores
%d of %d incidents with this row missed. Lines after it must be judged as if it were never read.

## Benign events

| id | device | when | what |
|---|---|---|---|
| `+"`%s-DATE`"+` | `+"`*`"+` | every Monday %02d:00–%02d:%02d | %d–%d errors a report on every device (a weekly self-test); from the third week on it is part of the learned week |
| `+"`%s-DATE`"+` | `+"`*`"+` | every day %02d:00–%02d:00 | every device ×%.1f messages and bytes (shift handover reports); benign by construction, as it recurs daily |

## Scoring

`+"```sh"+`
go build -o bin/vigil ./cmd/vigil
bin/vigil score --config testdata/judgement/vigil.yaml --labels testdata/judgement/labels.csv testdata/judgement/telemetry.jsonl.gz
go test ./cmd/vigil -run TestJudgementScore -v     # the same, with false alarms by detector and in benign windows
`+"```"+`

The target: every alarm incident detected, by the detector its label names; the future record rejected
and not alarmed on; no false alarm, on clean devices or in benign windows.

`, IncidentFutureRecord, PumpName(futureDevice), FutureYear, len(JudgementIncidents(c))-1, len(JudgementIncidents(c)),
		BenignWeeklyBurst, burstHour, burstHour, int(burstLength/time.Minute), burstMin, burstMax,
		BenignDailyPeak, peakStartHour, peakEndHour, peakFactor)
	if figures == nil {
		figures = []byte(JudgementFiguresHeading + "\n\nNot measured yet: run the score above and paste its output here, with the commit.\n")
	}
	b.Write(figures)
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("cannot write README: %w", err)
	}
	return nil
}

// thousands formats n with commas between groups of three digits.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
