package detect

import (
	"hash/maphash"
	"strconv"
	"strings"

	"github.com/vigil-ot/vigil/detect/query"
)

// trackSlots is how many distinct values (source addresses, client ids,
// devices of a certificate) are remembered per device or certificate;
// enough to tell one from several, small enough for the memory budget.
const trackSlots = 4

// valueTrack remembers the last few distinct values of one identity field
// of a device, when each was last seen, and when the field last switched
// between them.
type valueTrack struct {
	vals     [trackSlots]string
	seen     [trackSlots]int64
	switches [2]int64 // the last two switches: the breach needs two in the window
	cur      int8     // index of the current value; -1 none
	sw       uint8
}

// observe records value s at event time t. It copies s only when it is new
// to the track, so a steady device allocates nothing.
//
// Most rows bring the current value again; again, small enough to inline,
// handles those, and the caller calls observe for the others.
func (v *valueTrack) observe(s string, t int64) {
	i := -1
	for k := range v.vals {
		if v.seen[k] != 0 && v.vals[k] == s {
			i = k
			break
		}
	}
	if i < 0 {
		i = 0
		for k := 1; k < trackSlots; k++ {
			if v.seen[k] < v.seen[i] {
				i = k
			}
		}
		v.vals[i] = strings.Clone(s)
	}
	if t > v.seen[i] || v.seen[i] == 0 {
		v.seen[i] = t
	}
	if v.seen[int(max(v.cur, 0))] != 0 && int(v.cur) != i && v.cur >= 0 {
		v.switches[v.sw%2] = t
		v.sw++
	}
	v.cur = int8(i)
}

// again records s at t and reports true when s is the current value (the
// values of slots seen are distinct, so observe's search would find this
// slot, and nothing switches); otherwise it does nothing.
func (v *valueTrack) again(s string, t int64) bool {
	if c := uint(v.cur); c < trackSlots && v.seen[c] != 0 && v.vals[c] == s { // cur -1 (none) wraps
		v.seen[c] = max(v.seen[c], t)
		return true
	}
	return false
}

func (v *valueTrack) distinct(since int64) int {
	n := 0
	for k := range v.seen {
		if v.seen[k] != 0 && v.seen[k] >= since {
			n++
		}
	}
	return n
}

func (v *valueTrack) switchesSince(since int64) int {
	n := 0
	for k := range v.switches {
		if v.switches[k] != 0 && v.switches[k] >= since {
			n++
		}
	}
	return n
}

// list renders the values seen since, for the alert.
func (v *valueTrack) list(since int64) string {
	var parts []string
	for k := range v.vals {
		if v.seen[k] != 0 && v.seen[k] >= since {
			parts = append(parts, v.vals[k])
		}
	}
	return strings.Join(parts, ",")
}

// identityState is a device's identity history; allocated the first time
// the device reports a source address, client id, certificate or firmware.
// It is kept small (a few hundred bytes per device): the certificate is
// known by its hash, and the alarm states exist only once one breached.
type identityState struct {
	src, client valueTrack
	certHash    uint64 // hash of the certificate last used
	certIdx     int32  // its index in the engine's certs (-1: none, or none since the state was restored)
	fw          string // firmware of the latest report with one: the reference for downgrades
	fwSince     int64  // event time of the first report of fw (0: unknown, from before a restore)
	fwEarlier   []firmwareRun
	alarms      *identityAlarms
}

// firmwareRun is a firmware a device reported, from its first report of it.
type firmwareRun struct {
	version string
	since   int64 // event time, Unix ns (0: unknown)
}

// firmwareHistory is how many firmware versions a device's identity keeps:
// the latest and the ones before it.
const firmwareHistory = 8

// newFirmware makes fw, first reported at t, the device's firmware, keeping
// the previous one in the history.
func (id *identityState) newFirmware(fw string, t int64) {
	if id.fw != "" {
		if len(id.fwEarlier) == firmwareHistory-1 {
			id.fwEarlier = id.fwEarlier[:copy(id.fwEarlier, id.fwEarlier[1:])]
		}
		id.fwEarlier = append(id.fwEarlier, firmwareRun{id.fw, id.fwSince})
	}
	id.fw, id.fwSince = fw, t
}

type identityAlarms struct {
	src, client, cert, fw alarmState
}

// alarm returns the alarm state *st of id, allocating the states when a
// datapoint breached; nil when none exists and there is nothing to step.
func (id *identityState) alarm(breach bool, st func(*identityAlarms) *alarmState) *alarmState {
	if id.alarms == nil {
		if !breach {
			return nil
		}
		id.alarms = &identityAlarms{}
	}
	return st(id.alarms)
}

// certState is a certificate and which devices used it recently. The
// table is keyed by the certificate's hash.
type certState struct {
	cert string
	devs [trackSlots]int32
	seen [trackSlots]int64
}

func (c *certState) touch(d int32, t int64) {
	oldest := 0
	for k := range c.devs {
		if c.seen[k] != 0 && c.devs[k] == d {
			if t > c.seen[k] {
				c.seen[k] = t
			}
			return
		}
		if c.seen[k] < c.seen[oldest] {
			oldest = k
		}
	}
	c.devs[oldest], c.seen[oldest] = d, t
}

func (c *certState) devicesSince(since int64) int {
	n := 0
	for k := range c.devs {
		if c.seen[k] != 0 && c.seen[k] >= since {
			n++
		}
	}
	return n
}

// certOf returns the state of certificate cert, adding it. id, when not
// nil, keeps its index for the device's next row.
func (e *Engine) certOf(id *identityState, cert string) *certState {
	h := maphash.String(e.hashSeed, cert)
	if id != nil && id.certIdx >= 0 && id.certHash == h {
		return &e.certs[id.certIdx]
	}
	idx, ok := e.certIndex[h]
	if !ok {
		idx = int32(len(e.certs))
		e.certIndex[h] = idx
		e.certs = append(e.certs, certState{cert: strings.Clone(cert)})
	}
	if id != nil {
		id.certIdx, id.certHash = idx, h
	}
	return &e.certs[idx]
}

// judgeIdentity runs the identity detector on the current row: it keeps
// the device's identity history and, when the detector is enabled, judges
// it. With the detector disabled it runs only for the operator console,
// which shows the history (PublishStatus), and nothing breaches.
func (e *Engine) judgeIdentity(d int32, ds *deviceState, g int32, t int64) {
	c, i := &e.cols, e.row
	src, hasSrc := c.srcIP.value(i)
	cid, hasCID := c.clientID.value(i)
	cert, hasCert := c.cert.value(i)
	fw, hasFW := c.fw.value(i)
	if !hasSrc && !hasCID && !hasCert && !hasFW {
		return
	}
	if ds.ident == nil {
		ds.ident = &identityState{certIdx: -1}
		ds.ident.src.cur, ds.ident.client.cur = -1, -1
	}
	id := ds.ident
	cfg := &e.cfg.Identity
	since := t - int64(cfg.Window)
	if hasSrc {
		if !id.src.again(src, t) {
			id.src.observe(src, t)
		}
		breach := cfg.Enabled && id.src.switchesSince(since) >= 2 && id.src.distinct(since) > cfg.MaxSrcIPs
		if st := id.alarm(breach, func(a *identityAlarms) *alarmState { return &a.src }); st != nil && (breach || st.active()) {
			e.identityDatapoint(st, breach, behaviorMultiSrcIP, TechniqueSpoofReporting, d, g, t, func(a *Alert) {
				a.ObservedText = id.src.list(since)
				a.Observed, a.Upper = float64(id.src.distinct(since)), float64(cfg.MaxSrcIPs)
				a.Message = who(a.Device, a.Group) + " reported from " + strconv.Itoa(id.src.distinct(since)) +
					" source addresses within " + cfg.Window.String() + ", switching between them (" + a.ObservedText + ")"
			})
		}
	}
	if hasCID {
		if !id.client.again(cid, t) {
			id.client.observe(cid, t)
		}
		breach := cfg.Enabled && id.client.switchesSince(since) >= 2 && id.client.distinct(since) > cfg.MaxClientIDs
		if st := id.alarm(breach, func(a *identityAlarms) *alarmState { return &a.client }); st != nil && (breach || st.active()) {
			e.identityDatapoint(st, breach, behaviorMultiClientID, TechniqueValidAccounts, d, g, t, func(a *Alert) {
				a.ObservedText = id.client.list(since)
				a.Observed, a.Upper = float64(id.client.distinct(since)), float64(cfg.MaxClientIDs)
				a.Message = who(a.Device, a.Group) + " connected with " + strconv.Itoa(id.client.distinct(since)) +
					" client ids within " + cfg.Window.String() + ", switching between them (" + a.ObservedText + ")"
			})
		}
	}
	if hasCert {
		cs := e.certOf(id, cert) // id keeps its index: the certificate the console shows
		n := 0
		if cfg.Enabled { // which devices use a certificate is the detector's alone
			cs.touch(d, t)
			n = cs.devicesSince(since)
		}
		breach := cfg.Enabled && n > cfg.MaxDevicesPerCert
		if st := id.alarm(breach, func(a *identityAlarms) *alarmState { return &a.cert }); st != nil && (breach || st.active()) {
			e.identityDatapoint(st, breach, behaviorSharedCert, TechniqueValidAccounts, d, g, t, func(a *Alert) {
				var others []string
				for k := range cs.devs {
					if cs.seen[k] >= since && cs.seen[k] != 0 && cs.devs[k] != d {
						others = append(others, e.reg.DeviceName(cs.devs[k]))
					}
				}
				a.ObservedText = strings.Clone(cert)
				a.Observed, a.Upper = float64(n), float64(cfg.MaxDevicesPerCert)
				a.Message = who(a.Device, a.Group) + " uses certificate " + cert + ", which " + strconv.Itoa(n) +
					" devices used within " + cfg.Window.String() + " (also " + strings.Join(others, ", ") + ")"
			})
		}
	}
	if !hasFW {
		return
	}
	breach, from := false, ""
	if fw != id.fw {
		if id.fw != "" && query.CompareVersions(fw, id.fw) < 0 {
			breach, from = true, id.fw
		}
		id.newFirmware(strings.Clone(fw), t)
	}
	if !cfg.Enabled || !cfg.FirmwareDowngrade {
		return
	}
	st := id.alarm(breach, func(a *identityAlarms) *alarmState { return &a.fw })
	if st == nil || !breach && !st.active() {
		return
	}
	e.identityDatapoint(st, breach, behaviorFirmwareDowngrade, TechniqueSystemFirmware, d, g, t, func(a *Alert) {
		a.ObservedText = id.fw
		if from != "" {
			a.ObservedText = from + " -> " + id.fw
			a.Message = who(a.Device, a.Group) + " firmware went back from " + from + " to " + id.fw
		} else {
			a.Message = who(a.Device, a.Group) + " runs firmware " + id.fw + " without further downgrade"
		}
	})
}

// identityDatapoint steps one identity alarm; fill completes the alert
// only when the alarm changes state. Callers skip it for clean datapoints
// of a device not in alarm: with one datapoint to alarm, such a step
// changes nothing.
func (e *Engine) identityDatapoint(st *alarmState, breach bool, behavior, technique string, d, g int32, t int64, fill func(*Alert)) {
	switch st.step(t, breach, 1, e.cfg.Identity.ToClear) {
	case raised:
		a := e.newAlert(DetectorIdentity, behavior, d, g, t)
		a.Technique = technique
		a.Score = 1
		fill(a)
		e.raise(a, st, d, g, 1, 0)
	case cleared:
		a := e.newAlert(DetectorIdentity, behavior, d, g, t)
		a.Technique = technique
		fill(a)
		if behavior != behaviorFirmwareDowngrade {
			a.Message = who(a.Device, a.Group) + " " + behavior + " no longer seen for " + strconv.Itoa(e.cfg.Identity.ToClear) + " reports"
		}
		e.clear(a, st, d)
	}
}
