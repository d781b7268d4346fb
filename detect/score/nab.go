package score

import (
	"math"
	"slices"
	"sort"
	"time"
)

// profile weighs a window score: a true positive earns up to TP, a false
// positive costs up to FP, a missed window costs FN.
type profile struct {
	name       string
	tp, fp, fn float64
}

// NAB's application profiles (config/profiles.json of numenta/NAB).
var nabProfiles = [3]profile{
	{"standard", 1, 0.11, 1},
	{"reward_low_FP_rate", 1, 0.22, 1},
	{"reward_low_FN_rate", 1, 0.11, 2},
}

// SKAB's profiles (table_of_coef in SKAB's core/metrics.py).
var skabProfiles = [3]profile{
	{"Standard", 1, 0.11, 1},
	{"LowFP", 1, 0.22, 1},
	{"LowFN", 1, 0.11, 2},
}

// scaledSigmoid is NAB's scaled sigmoid (nab/sweeper.py):
//
//	σ(y) = 2/(1+e^{5y}) − 1, and −1 for y ≥ 3,
//
// where y is a detection's position relative to the right end of an anomaly
// window, in window lengths: −1 at the window's left edge (the earliest
// detection, σ = 0.9866), 0 at its right edge (σ = 0), positive after it
// (σ(1) = −0.9866).
func scaledSigmoid(y float64) float64 {
	if y >= 3 {
		return -1
	}
	return 2/(1+math.Exp(5*y)) - 1
}

// nabWindow is one NAB anomaly window, in the positions of its file: row
// indexes, or seconds.
type nabWindow struct {
	start, end float64
	inc        *Incident // the detections it takes; nil: all of its file's
}

// nabDetection is one alarm raise, in the positions of its file.
type nabDetection struct {
	pos           float64
	device, group string
}

func (w *nabWindow) takes(d *nabDetection) bool {
	return w.inc == nil || w.inc.Matches(d.device, d.group)
}

// nabTally sums NAB's scores over files before a profile weighs them.
type nabTally struct {
	windows, detected, falsePositives int
	tp                                float64 // Σ σ(y)/σ(−1) over detected windows
	fp                                float64 // Σ σ(y) over false positives, each in [−1, 0]
}

// addFile scores one file as NABView describes. Windows do not overlap
// others that take the same detections; detections are ordered by
// position; unit is u, the width of one position (1 for row indexes, 0 for
// seconds).
func (t *nabTally) addFile(windows []nabWindow, dets []nabDetection, unit float64) {
	t.windows += len(windows)
	maxTP := scaledSigmoid(-1)
	for i := range windows {
		w := &windows[i]
		for j := range dets {
			d := &dets[j]
			if d.pos < w.start || d.pos > w.end || !w.takes(d) {
				continue
			}
			y := -1.0
			if width := w.end + unit - w.start; width > 0 {
				y = -(w.end + unit - d.pos) / width
			}
			t.detected++
			t.tp += scaledSigmoid(y) / maxTP
			break
		}
	}
	for j := range dets {
		d := &dets[j]
		var prev *nabWindow
		inside := false
		for i := range windows {
			w := &windows[i]
			switch {
			case !w.takes(d):
			case d.pos >= w.start && d.pos <= w.end:
				inside = true
			case w.end < d.pos && (prev == nil || w.end > prev.end):
				prev = w
			}
		}
		if inside {
			continue
		}
		t.falsePositives++
		y := 3.0 // no window before it: a full FP
		if prev != nil && prev.end > prev.start {
			y = (d.pos - prev.end) / (prev.end - prev.start)
		}
		t.fp += scaledSigmoid(y)
	}
}

func (t *nabTally) view() *NABView {
	if t.windows == 0 {
		return nil
	}
	v := &NABView{NAB: WindowScores{Windows: t.windows, Detected: t.detected, FalsePositives: t.falsePositives}}
	for _, p := range nabProfiles {
		missed := float64(t.windows - t.detected)
		v.NAB.Profiles = append(v.NAB.Profiles, normalise(p, p.tp*t.tp+p.fp*t.fp-p.fn*missed, t.windows))
	}
	v.NABStandard, v.NABLowFP, v.NABLowFN = v.NAB.Profiles[0].Score, v.NAB.Profiles[1].Score, v.NAB.Profiles[2].Score
	return v
}

// normalise scales a raw score summed over all files as NAB and SKAB do,
// once over the totals: 100·(raw − null)/(perfect − null), where the null
// detector never fires (null = −FN per window) and the perfect one earns a
// full TP per window.
func normalise(p profile, raw float64, windows int) ProfileScore {
	null, perfect := -p.fn*float64(windows), p.tp*float64(windows)
	return ProfileScore{Profile: p.name, Raw: raw, Null: null, Perfect: perfect, Score: 100 * (raw - null) / (perfect - null)}
}

// nabRowView scores the runs of anomalous rows, each device a NAB file
// (see NABView). A detection is the first row at or after an alarm's raise.
func nabRowView(alarms []Alarm, files []rowFile) *NABView {
	var t nabTally
	byDevice := alarmsByDevice(alarms)
	for i := range files {
		f := &files[i]
		runs := f.runs()
		if len(runs) == 0 {
			t.addFile(nil, f.detections(byDevice[f.device]), 1) // every detection is false
			continue
		}
		n := len(f.rows)
		length := int(0.10 * float64(n) / float64(len(runs)))
		var windows []nabWindow
		for _, r := range runs {
			first, last := r[0], r[1]
			if width := last - first + 1; width < length {
				pad := (length + 1 - width) / 2
				first, last = max(first-pad, 0), min(last+pad, n-1)
			}
			if k := len(windows) - 1; k >= 0 && float64(first) <= windows[k].end {
				windows[k].end = max(windows[k].end, float64(last))
				continue
			}
			windows = append(windows, nabWindow{start: float64(first), end: float64(last)})
		}
		windows = slices.DeleteFunc(windows, func(w nabWindow) bool { return int(w.start) < f.scored })
		t.addFile(windows, f.detections(byDevice[f.device]), 1)
	}
	v := t.view()
	if v != nil {
		v.NABBasis = "rows"
	}
	return v
}

// detections returns the row index of each alarm raise (the first row at
// or after it; raises after the last row have none), once per row.
func (f *rowFile) detections(alarms []Alarm) []nabDetection {
	var dets []nabDetection
	for _, a := range alarms {
		i := sort.Search(len(f.rows), func(i int) bool { return !f.rows[i].Time.Before(a.Raised) })
		if i == len(f.rows) || len(dets) > 0 && dets[len(dets)-1].pos >= float64(i) {
			continue
		}
		dets = append(dets, nabDetection{pos: float64(i), device: a.Device, group: a.Group})
	}
	return dets
}

// nabIncidentView scores incidents as one NAB file in seconds (see
// NABView); windows of the same Device that overlap once widened are
// merged. Options.Slack does not apply: NAB's window is the slack. Every
// alarm raise is a detection.
func nabIncidentView(alarms []Alarm, incidents []Incident, opt *Options) *NABView {
	base := incidents[0].Start
	for _, inc := range incidents {
		base = minTime(base, inc.Start)
	}
	for _, a := range alarms {
		base = minTime(base, a.Raised)
	}
	pos := func(t time.Time) float64 { return t.Sub(base).Seconds() }
	length := 0.10 * opt.Span.Seconds() / float64(len(incidents))
	order := make([]*Incident, len(incidents))
	for i := range incidents {
		order[i] = &incidents[i]
	}
	slices.SortStableFunc(order, func(a, b *Incident) int { return a.Start.Compare(b.Start) })
	var windows []nabWindow
	last := make(map[string]int) // Device → index of its latest window
	for _, inc := range order {
		w := nabWindow{start: pos(inc.Start), end: pos(inc.End), inc: inc}
		if width := w.end - w.start; width < length {
			w.start, w.end = w.start-(length-width)/2, w.end+(length-width)/2
		}
		if k, ok := last[inc.Device]; ok && w.start <= windows[k].end {
			windows[k].end = max(windows[k].end, w.end)
			continue
		}
		last[inc.Device] = len(windows)
		windows = append(windows, w)
	}
	dets := make([]nabDetection, len(alarms))
	for i, a := range alarms {
		dets[i] = nabDetection{pos: pos(a.Raised), device: a.Device, group: a.Group}
	}
	var t nabTally
	t.addFile(windows, dets, 0)
	v := t.view()
	if v != nil {
		v.NABBasis = "incidents"
	}
	return v
}

// skabWindow is the length of SKAB's changepoint windows.
const skabWindow = 60 * time.Second

// skabTally sums SKAB's changepoint scores over files.
type skabTally struct {
	windows, detected, falsePositives int
	positions                         []float64 // relative position in its window of each first detection
}

// addFile scores one device's changepoints and detections (both in time
// order) as SKABView describes.
func (t *skabTally) addFile(changepoints, dets []time.Time) {
	type window struct{ start, end time.Time }
	windows := make([]window, len(changepoints))
	for i, cp := range changepoints {
		windows[i] = window{cp, cp.Add(skabWindow)}
		if i > 0 && !windows[i-1].end.Before(windows[i].start) {
			windows[i].start = windows[i-1].end
		}
	}
	t.windows += len(windows)
	inside := make([]bool, len(dets))
	for _, w := range windows {
		first := true
		for j, d := range dets {
			if d.Before(w.start) || d.After(w.end) {
				continue
			}
			inside[j] = true
			if first {
				first = false
				t.detected++
				p := 0.0
				if span := w.end.Sub(w.start); span > 0 {
					p = float64(d.Sub(w.start)) / float64(span)
				}
				t.positions = append(t.positions, p)
			}
		}
	}
	for _, in := range inside {
		if !in {
			t.falsePositives++
		}
	}
}

// skabCurve is SKAB's scoring curve (my_scale in core/metrics.py, koef 1,
// 1000 steps) for a first detection at relative position p in its window:
//
//	k = min(⌊1000·p⌋, 999),  x = −π/2 + π·k/999,
//	score = lo + (hi − lo)/2 · (1 − tanh(x)/tanh(π/2)),
//
// with hi = A_TP and lo = −A_FP: the full A_TP at the changepoint, falling
// along a tanh to the cost of a false positive at the window's end.
func skabCurve(p float64, pr profile) float64 {
	k := min(math.Floor(1000*p), 999)
	x := -math.Pi/2 + math.Pi*k/999
	hi, lo := pr.tp, -pr.fp
	return lo + (hi-lo)/2*(1-math.Tanh(x)/math.Tanh(math.Pi/2))
}

// skabView scores the row predictions of each device as SKABView
// describes.
func skabView(alarms []Alarm, files []rowFile) *SKABView {
	var t skabTally
	byDevice := alarmsByDevice(alarms)
	for i := range files {
		f := &files[i]
		pred := f.predict(byDevice[f.device])
		var cps, dets []time.Time
		for k := f.scored; k < len(f.rows); k++ {
			if f.rows[k].Changepoint {
				cps = append(cps, f.rows[k].Time)
			}
			if k > f.scored && pred[k] != pred[k-1] {
				dets = append(dets, f.rows[k].Time)
			}
		}
		t.addFile(cps, dets)
	}
	if t.windows == 0 {
		return nil
	}
	v := &SKABView{SKAB: WindowScores{Windows: t.windows, Detected: t.detected, FalsePositives: t.falsePositives}}
	for _, p := range skabProfiles {
		raw := -p.fp*float64(t.falsePositives) - p.fn*float64(t.windows-t.detected)
		for _, pos := range t.positions {
			raw += skabCurve(pos, p)
		}
		v.SKAB.Profiles = append(v.SKAB.Profiles, normalise(p, raw, t.windows))
	}
	v.SKABStandard, v.SKABLowFP, v.SKABLowFN = v.SKAB.Profiles[0].Score, v.SKAB.Profiles[1].Score, v.SKAB.Profiles[2].Score
	return v
}
