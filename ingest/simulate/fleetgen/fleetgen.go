// Package fleetgen generates a deterministic, seeded telemetry sample of a
// small IoT/OT fleet in Vigil's native JSON format, with its asset
// inventory and a labels file listing incidents injected after a clean
// learning period, one or more for every telemetry detector.
//
// The same Config always produces byte-identical output, so the bundled
// sample under testdata/fleet can be regenerated and checked, and the
// golden replay test can rely on exact incident times.
//
// It also generates the judgement data set of testdata/judgement
// (JudgementConfig), which measures the telemetry detectors on shapes the
// two-day sample cannot show: three weeks of one group of pump controllers
// whose metrics follow the working day, two clean weeks to learn from,
// then a week with one incident of each shape the detectors must catch (a
// drop to zero, a single spike, a small level shift, a broken correlation,
// a record from the future) among benign events they must leave alone (a
// weekly burst of a count metric, a daily fleet-wide peak). It has its own
// code and random streams, so the fleet sample cannot move when it changes.
//
// It is the telemetry `vigil demo` produces, so it belongs to the product
// (ingest/simulate), not to bench/; its command, cmd/fleetgen, writes the
// committed data sets.
package fleetgen

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"time"
)

// Config describes the fleet and the span to generate.
type Config struct {
	Seed            uint64
	Start           time.Time     // first report, UTC; the first day is clean
	Days            int           // at least 2: day 1 clean learning, day 2 incidents
	Step            time.Duration // report interval of every device
	DevicesPerGroup int           // devices per (site, hardware) group
	Incidents       bool          // inject the incidents of Incidents()
}

// DefaultConfig is the full fleet: 3 sites × 2 hardware versions × 50
// devices, one report a minute, two days from Monday 2 November 2026
// (864k lines, 290 MB of JSON; too big to commit, so tests generate it).
func DefaultConfig() Config {
	return Config{
		Seed:            1,
		Start:           time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC),
		Days:            2,
		Step:            time.Minute,
		DevicesPerGroup: 50,
		Incidents:       true,
	}
}

// Validate checks c.
func (c *Config) Validate() error {
	switch {
	case c.Days < 2:
		return fmt.Errorf("cannot generate %d day(s): need at least 2 (day 1 learning, day 2 incidents)", c.Days)
	case c.Step < time.Second:
		return fmt.Errorf("cannot generate with step %s: use at least 1s", c.Step)
	case c.DevicesPerGroup < 10 || c.DevicesPerGroup > 999:
		return fmt.Errorf("cannot generate %d devices per group: use 10 to 999 (incidents need devices 0-99 of some groups; below 100 they wrap)", c.DevicesPerGroup)
	}
	return nil
}

// SampleConfig is the sample committed under testdata/fleet: the fleet
// of DefaultConfig with 10 devices per group. With 60 devices a device
// reports again within gzip's 32 KiB window, so it compresses to 3.7 MB,
// where the full fleet takes 55 MB.
func SampleConfig() Config {
	c := DefaultConfig()
	c.DevicesPerGroup = 10
	return c
}

// Site is one plant of the fleet; Phase shifts its working day (hours,
// added to UTC), so the sites peak at different UTC times.
type Site struct {
	Name   string
	Letter string
	Subnet int
	Phase  float64
}

// Hardware is one hardware version with its firmware.
type HW struct {
	Name     string
	Firmware string
	Old      string // an older firmware release, for the downgrade incident
	Next     string // a newer release, for the benign rolling upgrade
}

// Sites and Hardware of the generated fleet, in generation order.
var (
	Sites = []Site{
		{Name: "plant-a", Letter: "a", Subnet: 1, Phase: 0},
		{Name: "plant-b", Letter: "b", Subnet: 2, Phase: 6},
		{Name: "plant-c", Letter: "c", Subnet: 3, Phase: -5},
	}
	Hardware = []HW{
		{Name: "s7-1500", Firmware: "2.9.4", Old: "2.8.1", Next: "3.0.1"},
		{Name: "s7-1200", Firmware: "4.6.1", Old: "4.5.0", Next: "4.7.0"},
	}
)

// Device is one generated device with its fixed characteristics.
type Device struct {
	Name        string
	Site        Site
	HW          HW
	Index       int // within its site: hardware 0 first, then hardware 1
	IP, MAC     string
	Cert        string
	Owner       string
	Criticality string
	Patchable   bool

	offset   time.Duration // report offset within the step
	msgRate  float64       // messages per step at the diurnal mean
	msgSize  float64       // bytes per message sent
	inBytes  float64       // bytes in per step (polling: alike across a group)
	cpuBase  float64
	diurnalA float64
}

// Group returns the group key "site/hw" of d.
func (d *Device) Group() string { return d.Site.Name + "/" + d.HW.Name }

// DeviceName returns the name of device i (within its site) of site s.
func DeviceName(s Site, i int) string { return fmt.Sprintf("plc-%s-%03d", s.Letter, i) }

// Fleet returns the devices of c in a fixed order.
func Fleet(c Config) []*Device {
	var devs []*Device
	for _, s := range Sites {
		for h, hw := range Hardware {
			for j := 0; j < c.DevicesPerGroup; j++ {
				i := h*c.DevicesPerGroup + j
				name := DeviceName(s, i)
				r := deviceRand(c.Seed, name, "static")
				d := &Device{
					Name:  name,
					Site:  s,
					HW:    hw,
					Index: i,
					IP:    fmt.Sprintf("10.%d.%d.%d", s.Subnet, h+1, j+10),
					MAC:   fmt.Sprintf("00:1b:1b:%02x:%02x:%02x", s.Subnet, h+1, j+10),
					Owner: "ops-" + s.Letter,
				}
				sum := sha256.Sum256([]byte(fmt.Sprintf("%d/%s/cert", c.Seed, name)))
				d.Cert = "sha256:" + hex.EncodeToString(sum[:])
				switch {
				case j%17 == 5:
					d.Criticality = "safety-critical"
				case j%7 == 3:
					d.Criticality = "high"
				case j%3 == 0:
					d.Criticality = "low"
				default:
					d.Criticality = "medium"
				}
				d.Patchable = j%5 != 4
				d.offset = time.Duration(uniform(r)*float64(c.Step)/float64(time.Second)) * time.Second
				// Devices of a group do the same job at different volumes:
				// message rates and sizes spread ±25%, polling traffic in
				// and CPU load spread less, as a SCADA master polls alike.
				d.msgRate = 60 * (1 + 0.25*(2*uniform(r)-1)) * float64(c.Step) / float64(time.Minute)
				d.msgSize = 180 * float64(h+1) * (1 + 0.25*(2*uniform(r)-1))
				d.inBytes = 2400 * float64(h+1) * (1 + 0.05*(2*uniform(r)-1)) * float64(c.Step) / float64(time.Minute)
				d.cpuBase = 25 + 5*float64(h) + 4*(2*uniform(r)-1)
				d.diurnalA = 0.2 + 0.1*uniform(r)
				devs = append(devs, d)
			}
		}
	}
	return devs
}

// Incident is one injected incident, as written to the labels file.
type Incident struct {
	ID       string
	Detector string // detector expected to raise it (detect.Detector* names)
	Device   string // device, or group key for fleet incidents
	Start    time.Time
	End      time.Time
	Behavior string // metric, rule or behavior name expected in the alert (rule-1: the rule in testdata/config/fleet.yaml)
	Note     string // what was injected
}

// Incidents returns the incidents injected into c's second day, one row
// per device an alert is expected on (the shared certificate implicates
// its owner too). Every incident is on a different device, and those in
// the same group do not overlap in time, so each alert can be attributed
// to one incident.
func Incidents(c Config) []Incident {
	day := c.Start.Add(24 * time.Hour)
	at := func(h, m int) time.Time { return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute) }
	n := c.DevicesPerGroup
	dev := func(site, hw, j int) string { return DeviceName(Sites[site], hw*n+j%n) }
	return []Incident{
		{ID: "self-1", Detector: "self", Device: dev(0, 0, 12), Start: at(10, 0), End: at(10, 30), Behavior: "bytes_out",
			Note: "bytes_out x10 for 30 min with an unchanged message count (exfiltration)"},
		{ID: "peer-1", Detector: "peer", Device: dev(1, 1, 11), Start: at(13, 0), End: at(16, 0), Behavior: "cpu_pct",
			Note: "cpu_pct held near 90% for 3 h, far above the group's p99 (cryptominer)"},
		{ID: "rule-1", Detector: "rule", Device: dev(2, 0, 23), Start: at(8, 0), End: at(8, 15), Behavior: "auth-brute-force",
			Note: "auth_failures 8-20 a minute for 15 min (credential brute force)"},
		{ID: "silence-1", Detector: "silence", Device: dev(0, 1, 27), Start: at(15, 0), End: at(16, 0), Behavior: "silence",
			Note: "no reports for 1 h while the rest of the group reports"},
		{ID: "identity-src-1", Detector: "identity", Device: dev(1, 0, 30), Start: at(11, 0), End: at(11, 30), Behavior: "multiple_src_ip",
			Note: "a second reporter from 10.66.6.6 under the same device id and client id for 30 min (cloned device)"},
		{ID: "identity-cert-1", Detector: "identity", Device: dev(2, 1, 38), Start: at(18, 0), End: at(19, 0), Behavior: "shared_certificate",
			Note: "presents the certificate of " + dev(2, 1, 21) + " for 1 h (stolen credential)"},
		{ID: "identity-cert-1-owner", Detector: "identity", Device: dev(2, 1, 21), Start: at(18, 0), End: at(19, 0), Behavior: "shared_certificate",
			Note: "the certificate's owner: its certificate is also used by " + dev(2, 1, 38)},
		{ID: "identity-fw-1", Detector: "identity", Device: dev(0, 0, 40), Start: at(20, 0), End: at(20, 30), Behavior: "firmware_downgrade",
			Note: "firmware goes back from " + Hardware[0].Firmware + " to " + Hardware[0].Old + " and stays there"},
		{ID: "fleet-1", Detector: "fleet", Device: Sites[2].Name + "/" + Hardware[1].Name, Start: at(3, 0), End: at(3, 20), Behavior: "message_rate",
			Note: "every device of the group reports every other minute only, for 20 min: the group's message rate halves"},
	}
}

// Benign returns the events of normal operation on c's second day that
// look unusual but must not alert: a rolling firmware upgrade with reboots,
// a DHCP address change, a planned production increase. Their Detector is
// empty; they touch no incident device while its incident runs.
func Benign(c Config) []Incident {
	day := c.Start.Add(24 * time.Hour)
	at := func(h, m int) time.Time { return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute) }
	return []Incident{
		{ID: "benign-upgrade", Device: Sites[1].Name + "/" + Hardware[1].Name, Start: at(2, 0), End: at(2, 30), Behavior: "firmware_upgrade",
			Note: "rolling upgrade " + Hardware[1].Firmware + " -> " + Hardware[1].Next + ": each device misses 2 reports (reboot), then reports a CPU spike at boot"},
		{ID: "benign-dhcp", Device: DeviceName(Sites[0], 5), Start: at(9, 0), End: at(9, 1), Behavior: "src_ip_change",
			Note: "DHCP gives the device a new address for good (one switch, not two sources at once)"},
		{ID: "benign-production", Device: Sites[0].Name, Start: at(14, 0), End: at(18, 0), Behavior: "production_increase",
			Note: "planned production increase at the site: every device sends 30% more messages and bytes"},
	}
}

func applyBenign(rep *report, d *Device, t time.Time, ev []Incident, c Config, missing *bool) {
	up, dhcp, prod := ev[0], ev[1], ev[2]
	if d.Group() == up.Device {
		// Device j of n upgrades at its own minute within the window.
		j := d.Index % c.DevicesPerGroup
		at := up.Start.Add(time.Duration(int64(up.End.Sub(up.Start)) * int64(j) / int64(c.DevicesPerGroup)))
		at = at.Truncate(c.Step)
		switch {
		case t.Before(at):
		case t.Before(at.Add(2 * c.Step)):
			*missing = true
			rep.fw = d.HW.Next
		case t.Before(at.Add(3 * c.Step)):
			rep.cpu = clamp(rep.cpu*2, 0, 100)
			rep.fw = d.HW.Next
		default:
			rep.fw = d.HW.Next
		}
	}
	if d.Name == dhcp.Device && !t.Before(dhcp.Start) {
		rep.srcIP = fmt.Sprintf("10.%d.%d.%d", d.Site.Subnet, 1, 200)
	}
	if d.Site.Name == prod.Device && !t.Before(prod.Start) && t.Before(prod.End) {
		rep.msgs = math.Round(rep.msgs * 1.3)
		rep.bytesOut = math.Round(rep.bytesOut * 1.3)
	}
}

// certDonor is the device whose certificate identity-cert-1 presents.
func certDonor(c Config) string {
	return DeviceName(Sites[2], 1*c.DevicesPerGroup+21%c.DevicesPerGroup)
}

// Stats counts what Generate wrote.
type Stats struct {
	Lines   int64
	Devices int
}

// Generate writes c's telemetry as JSON lines in event-time order to w.
func Generate(c Config, w io.Writer) (Stats, error) {
	if err := c.Validate(); err != nil {
		return Stats{}, err
	}
	devs := Fleet(c)
	var inc []Incident
	if c.Incidents {
		inc = Incidents(c)
	}
	benign := Benign(c)
	byID := make(map[string]Incident, len(inc))
	for _, in := range inc {
		byID[in.ID] = in
	}
	var certOf = make(map[string]string, len(devs))
	for _, d := range devs {
		certOf[d.Name] = d.Cert
	}
	rngs := make([]*rand.Rand, len(devs))
	for i, d := range devs {
		rngs[i] = deviceRand(c.Seed, d.Name, "series")
	}
	// rows of one step, sorted by time; reused.
	var (
		rows  []timedLine
		pool  [][]byte
		st    = Stats{Devices: len(devs)}
		steps = int(time.Duration(c.Days) * 24 * time.Hour / c.Step)
	)
	for s := 0; s < steps; s++ {
		t0 := c.Start.Add(time.Duration(s) * c.Step)
		rows = rows[:0]
		used := 0
		next := func() []byte {
			if used == len(pool) {
				pool = append(pool, make([]byte, 0, 512))
			}
			b := pool[used][:0]
			used++
			return b
		}
		for i, d := range devs {
			r := rngs[i]
			rep := sample(d, r, t0, c)
			ts := t0.Add(d.offset).Add(time.Duration(r.Uint64()%1000) * time.Millisecond)
			missing := uniform(r) < 0.0005 // a benign lost report now and then
			applyBenign(&rep, d, t0, benign, c, &missing)
			if c.Incidents {
				applyIncidents(&rep, d, t0, s, byID, certOf, certDonor(c), &missing)
			}
			if !missing {
				rows = append(rows, timedLine{ts.UnixNano(), appendLine(next(), d, ts, &rep)})
			}
			if rep.clone {
				// The clone reports from its own address half a step
				// apart, within the same step so the output stays sorted.
				cl := rep
				cl.srcIP = "10.66.6.6"
				cl.bytesOut = math.Round(cl.bytesOut * (0.9 + 0.2*uniform(r)))
				cts := t0.Add((ts.Sub(t0) + c.Step/2) % c.Step)
				rows = append(rows, timedLine{cts.UnixNano(), appendLine(next(), d, cts, &cl)})
			}
		}
		if err := writeStep(w, rows, &st); err != nil {
			return st, err
		}
	}
	return st, nil
}

// timedLine is one telemetry line and its event time.
type timedLine struct {
	ts   int64
	line []byte
}

// writeStep writes one step's lines to w in event-time order, counting
// them in st.
func writeStep(w io.Writer, rows []timedLine, st *Stats) error {
	sort.SliceStable(rows, func(a, b int) bool { return rows[a].ts < rows[b].ts })
	for _, rw := range rows {
		if _, err := w.Write(rw.line); err != nil {
			return fmt.Errorf("cannot write telemetry: %w", err)
		}
		st.Lines++
	}
	return nil
}

// report is one device's values for one step.
type report struct {
	bytesOut, bytesIn, msgs, authFail, cpu float64
	fw, cert, srcIP                        string
	clone                                  bool
}

func sample(d *Device, r *rand.Rand, t time.Time, c Config) report {
	hour := float64(t.Unix()%86400)/3600 + d.Site.Phase
	// Working-day shape: peak mid-afternoon local time, trough at night.
	diurnal := math.Sin(2 * math.Pi * (hour - 9) / 24)
	msgs := d.msgRate * (1 + 0.5*d.diurnalA*diurnal)
	msgs = math.Max(0, math.Round(msgs+normal(r)*math.Sqrt(msgs)))
	rep := report{
		msgs:     msgs,
		bytesOut: math.Round(msgs * d.msgSize * (1 + 0.05*normal(r))),
		bytesIn:  math.Round(d.inBytes * (1 + 0.04*normal(r))),
		cpu:      clamp(d.cpuBase*(1+d.diurnalA*diurnal)+1.5*normal(r), 0, 100),
		fw:       d.HW.Firmware,
		cert:     d.Cert,
		srcIP:    d.IP,
	}
	if uniform(r) < 0.003 { // an operator mistypes a password
		rep.authFail = 1
	}
	return rep
}

func applyIncidents(rep *report, d *Device, t time.Time, step int, inc map[string]Incident, certOf map[string]string, donor string, missing *bool) {
	in := func(id string) bool {
		x, ok := inc[id]
		return ok && x.Device == d.Name && !t.Before(x.Start) && t.Before(x.End)
	}
	switch {
	case in("self-1"):
		rep.bytesOut *= 10
	case in("peer-1"):
		rep.cpu = clamp(90+2*math.Sin(float64(step)), 0, 100)
	case in("rule-1"):
		rep.authFail = float64(8 + step%13)
	case in("silence-1"):
		*missing = true
	case in("identity-src-1"):
		rep.clone = true
	case in("identity-cert-1"):
		rep.cert = certOf[donor]
	}
	if x, ok := inc["identity-fw-1"]; ok && x.Device == d.Name && !t.Before(x.Start) {
		rep.fw = d.HW.Old
	}
	if x, ok := inc["fleet-1"]; ok && x.Device == d.Group() && !t.Before(x.Start) && t.Before(x.End) {
		if (step+d.Index)%2 == 1 {
			*missing = true
		}
	}
}

func appendLine(b []byte, d *Device, ts time.Time, rep *report) []byte {
	b = append(b, `{"device":"`...)
	b = append(b, d.Name...)
	b = append(b, `","ts":"`...)
	b = ts.AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","attrs":{"site":"`...)
	b = append(b, d.Site.Name...)
	b = append(b, `","hw":"`...)
	b = append(b, d.HW.Name...)
	b = append(b, `","fw":"`...)
	b = append(b, rep.fw...)
	b = append(b, `"},"metrics":{"bytes_out":`...)
	b = strconv.AppendFloat(b, rep.bytesOut, 'f', 0, 64)
	b = append(b, `,"bytes_in":`...)
	b = strconv.AppendFloat(b, rep.bytesIn, 'f', 0, 64)
	b = append(b, `,"msgs_sent":`...)
	b = strconv.AppendFloat(b, rep.msgs, 'f', 0, 64)
	b = append(b, `,"auth_failures":`...)
	b = strconv.AppendFloat(b, rep.authFail, 'f', 0, 64)
	b = append(b, `,"cpu_pct":`...)
	b = strconv.AppendFloat(b, rep.cpu, 'f', 1, 64)
	b = append(b, `},"conn":{"src_ip":"`...)
	b = append(b, rep.srcIP...)
	b = append(b, `","client_id":"`...)
	b = append(b, d.Name...)
	b = append(b, `","cert":"`...)
	b = append(b, rep.cert...)
	b = append(b, "\"}}\n"...)
	return b
}

// WriteInventory writes the fleet's asset inventory as CSV with the header
// device,ip,mac,site,hw,fw,owner,criticality,patchable.
func WriteInventory(c Config, w io.Writer) error {
	b := []byte("device,ip,mac,site,hw,fw,owner,criticality,patchable\n")
	for _, d := range Fleet(c) {
		b = fmt.Appendf(b, "%s,%s,%s,%s,%s,%s,%s,%s,%t\n", d.Name, d.IP, d.MAC, d.Site.Name, d.HW.Name, d.HW.Firmware, d.Owner, d.Criticality, d.Patchable)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("cannot write inventory: %w", err)
	}
	return nil
}

// WriteLabels writes c's incidents as CSV with the header
// id,detector,device,start,end,behavior,note; times are RFC 3339 UTC and
// end is exclusive.
func WriteLabels(c Config, w io.Writer) error {
	b := []byte("id,detector,device,start,end,behavior,note\n")
	if c.Incidents {
		for _, in := range Incidents(c) {
			b = fmt.Appendf(b, "%s,%s,%s,%s,%s,%s,%q\n", in.ID, in.Detector, in.Device,
				in.Start.Format(time.RFC3339), in.End.Format(time.RFC3339), in.Behavior, in.Note)
		}
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("cannot write labels: %w", err)
	}
	return nil
}

// WriteBenign writes c's benign events as CSV with the header
// id,device,start,end,behavior,note: things that happen in a healthy fleet
// and must raise no alert (device is a group key or a site for
// fleet-wide events).
func WriteBenign(c Config, w io.Writer) error {
	b := []byte("id,device,start,end,behavior,note\n")
	for _, ev := range Benign(c) {
		b = fmt.Appendf(b, "%s,%s,%s,%s,%s,%q\n", ev.ID, ev.Device,
			ev.Start.Format(time.RFC3339), ev.End.Format(time.RFC3339), ev.Behavior, ev.Note)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("cannot write benign events: %w", err)
	}
	return nil
}

// deviceRand returns a generator for one device and purpose, independent
// of every other device, so adding a device does not change the others.
func deviceRand(seed uint64, device, purpose string) *rand.Rand {
	sum := sha256.Sum256([]byte(device + "/" + purpose))
	var s uint64
	for _, x := range sum[:8] {
		s = s<<8 | uint64(x)
	}
	return rand.New(rand.NewPCG(seed, s))
}

// uniform and normal are written here rather than taken from math/rand so
// that their algorithms, and the committed sample, cannot change with Go.
func uniform(r *rand.Rand) float64 { return float64(r.Uint64()>>11) / (1 << 53) }

func normal(r *rand.Rand) float64 {
	u1 := uniform(r)
	for u1 == 0 {
		u1 = uniform(r)
	}
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*uniform(r))
}

func clamp(v, lo, hi float64) float64 {
	v = math.Round(v*10) / 10
	return math.Max(lo, math.Min(hi, v))
}
