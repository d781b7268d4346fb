package detect

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ot/vigil/baseline"
)

// PeerNowConfig configures the "peers now" test: a device's residual
// against its own expectation ((value − expectation) / its spread, the
// self detector's band) against the residuals its group's other devices
// reported in the last Window. A daily pattern, a device's own scale and a
// shift of the whole group cancel; a device that leaves its peers does not.
type PeerNowConfig struct {
	Enabled bool          `yaml:"enabled"`
	Window  time.Duration `yaml:"window"` // how recent a peer's residual must be
	// Threshold: how many of the peers' robust spreads (scaled MAD of their
	// residuals) the device's residual must lie from their median.
	Threshold float64 `yaml:"threshold"`
	// MinDevices: distinct devices of the group (the judged one included)
	// with a residual in the window before the test judges.
	MinDevices int `yaml:"min_devices"`
	// MinSpread floors the peers' spread, in units of the devices' own
	// spreads: peers that agree closely do not turn a small difference into
	// a large score.
	MinSpread float64 `yaml:"min_spread"`
}

func (n *PeerNowConfig) validate() error {
	if n.Enabled && (n.Window <= 0 || n.Threshold <= 0 || n.MinDevices < 1 || n.MinSpread <= 0) {
		return fmt.Errorf("peer.now: window, threshold, min_devices and min_spread must be positive (window %v, threshold %v, min_devices %d, min_spread %v); set enabled: false to turn the test off",
			n.Window, n.Threshold, n.MinDevices, n.MinSpread)
	}
	return nil
}

// peerNowRing is how many recent residuals a group keeps per metric for
// the "peers now" test. The test counts each device's newest residual in
// the window once, so a ring this long holds the present of a group of
// ~30 devices reporting together; in a larger group it is a sample of the
// devices that reported last (512 bytes per group and metric).
const peerNowRing = 32

// madScale turns a median absolute deviation into the standard deviation
// of a normal distribution.
const madScale = 1.4826

// peerNowRefreshes is how many times per peer.now.window the peers'
// center and spread are summarized again. A summary costs two sorts of up
// to 32 values; once per row and metric that was 15 times the cost of the
// rest of the row (BenchmarkEngineProcess: 360 → 5700 ns a row).
const peerNowRefreshes = 30

// peerNowResiduals is one group metric's recent standardized residuals, in
// order of arrival, and their summary as of the start of the current
// refresh period (a period of event time: window / peerNowRefreshes).
type peerNowResiduals struct {
	next, n int
	t       [peerNowRing]int64
	dev     [peerNowRing]int32
	r       [peerNowRing]float32

	period      int64 // the refresh period summarized, when summarized
	summarized  bool
	med, spread float64
	devices     int
}

// peersNow is the state of the "peers now" test: a device's residual
// against its own expectation, compared with its peers' residuals of the
// last peer.now.window. Residuals are standardized by each device's own
// spread, so device scale and a shared daily pattern cancel, and a shift
// of the whole group moves the peers' center with the device.
type peersNow struct {
	groups [][]peerNowResiduals // group -> metric slot; nil until the group's first residual
	alarms [][]alarmState       // device -> metric slot; nil until the device's first breach
	seen   []uint32             // device -> the summary that last counted it (stamp)
	stamp  uint32
	vals   [peerNowRing]float64
	devs   [peerNowRing]float64
}

// residuals returns group g's residual ring of metric slot.
func (pn *peersNow) residuals(g int32, slot, slots int) *peerNowResiduals {
	for int(g) >= len(pn.groups) {
		pn.groups = append(pn.groups, nil)
	}
	if rs := pn.groups[g]; slot >= len(rs) {
		// a metric first seen after the group's first residual (a
		// protocol a host starts to speak) has a slot beyond the slice
		pn.groups[g] = append(rs, make([]peerNowResiduals, max(slots, slot+1)-len(rs))...)
	}
	return &pn.groups[g][slot]
}

// push appends device d's residual r at time t, overwriting the oldest.
func (pn *peersNow) push(ring *peerNowResiduals, t int64, d int32, r float64) {
	for int(d) >= len(pn.seen) {
		pn.seen = append(pn.seen, 0)
	}
	i := ring.next
	ring.t[i], ring.dev[i], ring.r[i] = t, d, float32(r)
	ring.next = (i + 1) % peerNowRing
	ring.n = min(ring.n+1, peerNowRing)
}

// summary returns the median and robust spread (scaled MAD, floored at
// minSpread) of the newest residual of each device within window of t, and
// how many devices that is. Only the centre and spread are meaningful when
// n >= minDevices; below that it does not compute them.
func (pn *peersNow) summary(ring *peerNowResiduals, t, window int64, minDevices int, minSpread float64) (med, spread float64, n int) {
	pn.stamp++
	if pn.stamp == 0 {
		clear(pn.seen)
		pn.stamp = 1
	}
	for k := 1; k <= ring.n; k++ {
		i := (ring.next - k + peerNowRing) % peerNowRing
		dev := ring.dev[i]
		if pn.seen[dev] == pn.stamp || t-ring.t[i] > window {
			continue
		}
		pn.seen[dev] = pn.stamp
		pn.vals[n] = float64(ring.r[i])
		n++
	}
	if n < minDevices {
		return 0, 0, n
	}
	vals := pn.vals[:n]
	slices.Sort(vals)
	med = median(vals)
	devs := pn.devs[:n]
	for i, v := range vals {
		devs[i] = math.Abs(v - med)
	}
	slices.Sort(devs)
	return med, max(madScale*median(devs), minSpread), n
}

// median of sorted values.
func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// state returns device d's "peers now" alarm state of metric slot.
func (pn *peersNow) state(d int32, slot, slots int) *alarmState {
	for int(d) >= len(pn.alarms) {
		pn.alarms = append(pn.alarms, nil)
	}
	if as := pn.alarms[d]; slot >= len(as) { // nil, or a metric first seen since
		pn.alarms[d] = append(as, make([]alarmState, max(slots, slot+1)-len(as))...)
	}
	return &pn.alarms[d][slot]
}

func (pn *peersNow) hasState(d int32) bool { return int(d) < len(pn.alarms) && pn.alarms[d] != nil }

// forget drops device d's alarm states; its residuals age out of the rings.
func (pn *peersNow) forget(d int32) {
	if int(d) < len(pn.alarms) {
		pn.alarms[d] = nil
	}
}

// judgePeerNow judges one metric's residual against its device's own band
// (mean, spread: the self detector's) against the residuals its group
// reported in the last peer.now.window, summarized when the row's refresh
// period began, then adds the residual to them. The summary depends on
// the rows and their order only, never on batches. It counts the device's
// own newest residual with its peers' (one of at least min_devices, and
// the median is robust to it). It reports whether the datapoint breached.
//
// Its alarms are the peer detector's: when the statistic test already
// holds an alarm on the metric as the now test's is raised (on the same
// row, the statistic test judged first), the now test's alarm is kept
// muted, so one deviation makes one peer alert.
func (e *Engine) judgePeerNow(p *metricParams, ex *baseline.Expectation, mean, spread float64, slot int, d int32, ds *deviceState, g int32, t int64) bool {
	nc := &e.cfg.Peer.Now
	pn := &e.peersNow
	r := (ex.Value - mean) / spread
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return false
	}
	ring := pn.residuals(g, slot, len(e.metrics))
	if period := floorDiv(t, max(int64(nc.Window)/peerNowRefreshes, 1)); !ring.summarized || period != ring.period {
		ring.med, ring.spread, ring.devices = pn.summary(ring, t, int64(nc.Window), nc.MinDevices, nc.MinSpread)
		ring.period, ring.summarized = period, true
	}
	med, peerSpread, n := ring.med, ring.spread, ring.devices
	pn.push(ring, t, d, r)
	var z float64
	breach := false
	if n >= nc.MinDevices {
		z = (r - med) / peerSpread
		breach = p.up && z > nc.Threshold || p.down && z < -nc.Threshold
	}
	if !breach && !pn.hasState(d) {
		return false
	}
	pc := &e.cfg.Peer
	st := pn.state(d, slot, len(e.metrics))
	tr := st.step(t, breach, pc.ToAlarm, pc.ToClear)
	if tr == noChange {
		return breach
	}
	low := z < 0
	if tr == cleared {
		low = st.low()
	}
	a := e.newAlert(DetectorPeer, p.name, d, g, t)
	a.Observed, a.Score = ex.Value, z
	a.Expected = mean + med*spread
	a.Lower, a.Upper = mean+(med-nc.Threshold*peerSpread)*spread, mean+(med+nc.Threshold*peerSpread)*spread
	a.Technique, a.Baseline, a.SampleCount = p.technique, ex.Version, int64(n)
	a.Message = peerNowMessage(a.Device, a.Group, p.name, ex.Value, a.Expected, z, med, peerSpread, n, nc.Window.String())
	switch tr {
	case raised:
		st.setLow(low)
		if k := 2*slot + 1; !ds.noMetricState() && k < len(ds.more.metric) && ds.more.metric[k].active() {
			st.flags |= alarmMuted // as raise mutes: clear balances the count and sends nothing
			e.devices.At(d).alarms++
			return breach
		}
		e.raise(a, st, d, g, math.Abs(z)/nc.Threshold, 0)
	case cleared:
		e.clear(a, st, d)
	}
	return breach
}

// peerNowMessage explains a "peers now" breach: where the device's residual
// sits among its peers' residuals of the window, and the value the peers'
// center implies for it.
func peerNowMessage(device, group, metric string, v, expected, z, med, spread float64, n int, window string) string {
	var b strings.Builder
	writeReading(&b, device, group, metric, v)
	b.WriteString(", " + strconv.FormatFloat(math.Abs(z), 'f', 1, 64) + " robust units ")
	if z < 0 {
		b.WriteString("below")
	} else {
		b.WriteString("above")
	}
	b.WriteString(" its peers now (peers' residuals in the last " + window + ": median " +
		strconv.FormatFloat(med, 'f', 2, 64) + "σ, spread " + strconv.FormatFloat(spread, 'f', 2, 64) + "σ, " +
		strconv.Itoa(n) + " devices); about " + formatValue(metric, expected) + " expected now")
	return b.String()
}
