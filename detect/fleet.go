package detect

import (
	"math"
	"strconv"
	"time"

	"github.com/vigil-ot/vigil/baseline"
)

// maxGapWindows bounds how many empty windows a group's return after a
// gap judges; a longer gap is one restart of the window sequence.
const maxGapWindows = 1440

// fleetAhead is how many windows past the open one a group counts ahead,
// for reports of partitions read ahead of the others.
const fleetAhead = 64

// fleetCount is what one window has counted so far.
type fleetCount struct {
	msgs      float64
	reporting int32
}

// fleetState is a group's KPI windows: the message count and the devices
// reporting in the open window, and the decayed mean and variance of
// earlier windows. Windows are tumbling, aligned to the epoch on event time,
// and closed by the group's own reports once the event-time watermark (the
// slowest active partition) has passed them too, so batching does not
// matter and reports of a partition read behind the others still count in
// their window. Reports of partitions read ahead are counted in up to
// fleetAhead later windows.
type fleetState struct {
	winStart  int64
	rowWin    int64 // the window of the group's previous row: see judgeFleet
	msgs      float64
	reporting int32
	ahead     [fleetAhead]fleetCount // windows after the open one
	windows   int32                  // windows learned
	started   bool
	rate      baseline.Moments
	frac      baseline.Moments
	rateAlarm alarmState
	fracAlarm alarmState
}

// judgeFleet counts the current row into its group's window, closing the
// windows that ended before it.
func (e *Engine) judgeFleet(ds *deviceState, g int32, gs *groupState, t int64) {
	cfg := &e.cfg.Fleet
	w := int64(cfg.Window)
	f := &gs.fleet
	// The window of t; floorDiv by a configured width is a 64-bit division,
	// and a group's rows mostly fall in the window of its previous row.
	ws := f.rowWin
	if !f.started || uint64(t-ws) >= uint64(w) { // also when t-ws wraps
		ws = floorDiv(t, w) * w
		f.rowWin = ws
	}
	if !f.started {
		f.started = true
		f.winStart = ws
		f.rate = baseline.NewMoments(cfg.HalfLife)
		f.frac = baseline.NewMoments(cfg.HalfLife)
		f.windows = -1 // the first window is partial: not learned
	}
	// Windows that ended before this report and before the watermark are
	// complete. A report further ahead than fleetAhead windows closes
	// windows anyway, so the state stays bounded; those windows may lack
	// the reports of slower partitions, so they are neither judged nor
	// learned.
	limit := min(t, e.wm)
	complete := limit
	if ws > f.winStart+fleetAhead*w {
		limit = ws - fleetAhead*w
	}
	gap := 0
	for f.winStart+w <= limit {
		if gap == maxGapWindows {
			f.winStart = floorDiv(limit, w) * w
			f.msgs, f.reporting, f.ahead = 0, 0, [fleetAhead]fleetCount{}
			break
		}
		if f.winStart+w <= complete {
			e.closeWindow(g, gs, f.winStart+w)
		}
		f.winStart += w
		f.msgs, f.reporting = f.ahead[0].msgs, f.ahead[0].reporting
		copy(f.ahead[:], f.ahead[1:])
		f.ahead[fleetAhead-1] = fleetCount{}
		gap++
	}
	if ws-f.winStart >= w { // k > 0, without dividing for the open window
		k := (ws - f.winStart) / w
		c := &f.ahead[k-1]
		c.msgs++
		if ds.fleetWin != ws+1 {
			ds.fleetWin = ws + 1
			c.reporting++
		}
		return
	}
	// The open window, or a late report of a window already closed.
	f.msgs++
	if ds.fleetWin != f.winStart+1 { // +1: window 0 (the epoch) is not "never"
		ds.fleetWin = f.winStart + 1
		f.reporting++
	}
}

// closeWindow judges the window of group g that ends at end.
func (e *Engine) closeWindow(g int32, gs *groupState, end int64) {
	cfg := &e.cfg.Fleet
	f := &gs.fleet
	active := 0
	since := end - int64(cfg.ActiveFor)
	for _, d := range gs.members {
		if e.devices.At(d).last >= since || e.devices.At(d).fleetWin == f.winStart+1 {
			active++
		}
	}
	if active < cfg.MinDevices {
		return
	}
	frac := math.Min(1, float64(f.reporting)/float64(active))
	toAlarm := int(cfg.Period / cfg.Window)
	breachRate, breachFrac := false, false
	var zRate, zFrac float64
	rateMean, fracMean := f.rate.Mean(), f.frac.Mean()
	rateSpread := math.Max(f.rate.Std(), math.Max(cfg.MinSpreadRatio*math.Abs(rateMean), 1))
	fracSpread := math.Max(f.frac.Std(), math.Max(cfg.MinSpreadRatio*math.Abs(fracMean), 0.01))
	judged := f.windows >= int32(cfg.MinWindows)
	if judged {
		zRate = (f.msgs - rateMean) / rateSpread
		zFrac = (frac - fracMean) / fracSpread
		breachRate = math.Abs(zRate) > cfg.Threshold
		breachFrac = zFrac < -cfg.Threshold
		e.fleetDatapoint(&f.rateAlarm, breachRate, toAlarm, g, end, behaviorMessageRate, f.msgs, rateMean, rateSpread, zRate, active, f.reporting)
		e.fleetDatapoint(&f.fracAlarm, breachFrac, toAlarm, g, end, behaviorReportingFraction, frac, fracMean, fracSpread, zFrac, active, f.reporting)
	}
	// Broken windows and windows during an alarm are not learned.
	if breachRate || breachFrac || f.rateAlarm.active() || f.fracAlarm.active() {
		return
	}
	if f.windows >= 0 {
		f.rate.Add(end, f.msgs)
		f.frac.Add(end, frac)
	}
	if f.windows < math.MaxInt32 {
		f.windows++
	}
}

func (e *Engine) fleetDatapoint(st *alarmState, breach bool, toAlarm int, g int32, end int64, behavior string, v, mean, spread, z float64, active int, reporting int32) {
	// The alarm starts where the first broken window starts.
	tr := st.step(end-int64(e.cfg.Fleet.Window), breach, toAlarm, e.cfg.Fleet.ToClear)
	if tr == noChange {
		return
	}
	group := e.reg.GroupName(g)
	a := e.newAlert(DetectorFleet, behavior, -1, g, end)
	a.Device = group
	th := e.cfg.Fleet.Threshold
	a.Observed, a.Expected, a.Lower, a.Upper, a.Score = v, mean, mean-th*spread, mean+th*spread, z
	a.SampleCount = int64(e.groups[g].fleet.windows)
	win := e.cfg.Fleet.Window.String()
	at := time.Unix(0, end).UTC().Format(time.RFC3339)
	if behavior == behaviorReportingFraction {
		a.Technique = TechniqueDenialOfView
		a.Message = group + ": " + strconv.Itoa(int(reporting)) + " of " + strconv.Itoa(active) + " active devices reported in the " +
			win + " to " + at + " (" + strconv.FormatFloat(100*v, 'f', 0, 64) + "%), usually " + strconv.FormatFloat(100*mean, 'f', 0, 64) + "%"
	} else {
		a.Message = group + " sent " + formatValue("", v) + " messages in the " + win + " to " + at + ", usually " + formatValue("", mean)
		if r, ok := formatRatio(v, mean); ok {
			a.Message += " (" + r + ")"
		}
	}
	if tr == raised {
		e.raise(a, st, -1, g, math.Abs(z)/th, 0)
		return
	}
	e.clear(a, st, -1)
}

// restartFleet starts group g's KPI windows again, learning from nothing:
// the devices this instance judges of the group changed otherwise than by
// devices appearing or going quiet (a rebalance moved some of them to or
// from another instance: ForgetDevice, a restore). Its counts would no
// longer be comparable with what it learned: half the devices send half
// the messages, and an alarm raised on that could never clear while they
// stay away. An open fleet alarm of the group is cleared, saying why.
func (e *Engine) restartFleet(g int32) {
	f := &e.groups[g].fleet
	if !f.started {
		return
	}
	end := f.winStart
	for _, k := range [...]struct {
		st       *alarmState
		behavior string
	}{{&f.rateAlarm, behaviorMessageRate}, {&f.fracAlarm, behaviorReportingFraction}} {
		if !k.st.active() {
			continue
		}
		group := e.reg.GroupName(g)
		a := e.newAlert(DetectorFleet, k.behavior, -1, g, end)
		a.Device = group
		a.Observed, a.Expected, a.Lower, a.Upper = math.NaN(), math.NaN(), math.NaN(), math.NaN()
		a.Message = group + ": the devices this instance judges of the group changed (a rebalance moved some to or from another instance); its fleet KPIs learn again"
		e.clear(a, k.st, -1) // between batches: it goes out with the next delivery (Process, Flush)
	}
	*f = fleetState{}
}
