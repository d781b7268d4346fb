package score

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/vigil-ot/vigil/detect"
)

// PlotTarget is what one panel of the HTML report shows: a device over a
// window of time, and the metric when one is known (else the one that
// strayed furthest from Vigil's band is picked).
type PlotTarget struct {
	Title, Note string
	Device      string
	Metric      string // "" to pick
	From, To    time.Time
}

// maxPlotsEach caps the panels of each kind (missed incidents, false
// alarms), so a noisy config still gives a readable page.
const maxPlotsEach = 12

// PlotTargets picks what the HTML report plots: each missed incident of a
// single device, then the false alarms of the devices with most of them
// (one panel each), at most maxPlotsEach of each. A window shows the
// incident or alarm with as much time again on each side (at least a
// minute).
func PlotTargets(rep *Report) []PlotTarget {
	if rep.IncidentView == nil {
		return nil
	}
	var out []PlotTarget
	for _, r := range rep.Incidents {
		if r.Detected || r.Device == "*" || len(out) == maxPlotsEach {
			continue
		}
		t := PlotTarget{Title: "missed: " + incidentName(&r.Incident), Note: r.Note, Device: r.Device, From: r.Start, To: r.End}
		if r.Behavior != "" {
			t.Metric = r.Behavior
		}
		out = append(out, widen(t))
	}
	n := 0
	seen := map[string]bool{}
	for _, a := range rep.FalseAlarmList {
		if seen[a.Device+"\x00"+a.Behavior] || n == maxPlotsEach {
			continue
		}
		seen[a.Device+"\x00"+a.Behavior] = true
		to := a.Cleared
		if a.Open() {
			to = a.Raised.Add(time.Minute)
		}
		out = append(out, widen(PlotTarget{Title: fmt.Sprintf("false alarm: %s %s %s", a.Device, a.Detector, a.Behavior),
			Note: a.Message, Device: a.Device, Metric: a.Behavior, From: a.Raised, To: to}))
		n++
	}
	return out
}

func incidentName(inc *Incident) string {
	name := inc.ID
	if name == "" {
		name = inc.Kind
	}
	return fmt.Sprintf("%s %s %s", name, inc.Device, inc.Start.Format(time.RFC3339))
}

func widen(t PlotTarget) PlotTarget {
	pad := max(t.To.Sub(t.From), time.Minute)
	t.From, t.To = t.From.Add(-pad), t.To.Add(pad)
	return t
}

// BuildPlot makes the panel of target from the traced values of its
// device (any order; other devices' points are ignored), the alarms of
// the device and the incidents that name it.
func BuildPlot(target PlotTarget, points []detect.TracePoint, alarms []Alarm, incidents []Incident) Plot {
	from, to := target.From.UnixNano(), target.To.UnixNano()
	byMetric := map[string][]PlotPoint{}
	for _, p := range points {
		if p.Device != target.Device || p.Time < from || p.Time > to {
			continue
		}
		byMetric[p.Metric] = append(byMetric[p.Metric], PlotPoint{Time: p.Time, Value: p.Value, Expected: p.Expected, Lower: p.Lower, Upper: p.Upper})
	}
	metric := target.Metric
	if _, ok := byMetric[metric]; !ok {
		metric = mostDeviant(byMetric)
	}
	pts := byMetric[metric]
	sort.Slice(pts, func(i, j int) bool { return pts[i].Time < pts[j].Time })
	plot := Plot{Title: target.Title, Note: target.Note, Points: pts}
	if metric != "" {
		plot.Title += " — " + metric
	}
	for _, a := range alarms {
		if a.Device != target.Device {
			continue
		}
		end := to
		if !a.Open() {
			end = a.Cleared.UnixNano()
		}
		if a.Raised.UnixNano() <= to && end >= from {
			plot.Alarms = append(plot.Alarms, Span{From: max(a.Raised.UnixNano(), from), To: min(end, to), Text: a.Detector + " " + a.Behavior})
		}
	}
	for i := range incidents {
		inc := &incidents[i]
		if !inc.Matches(target.Device, "") || inc.Device == "*" && inc.Start.UnixNano() > to {
			continue
		}
		if s, e := inc.Start.UnixNano(), inc.End.UnixNano(); s <= to && e >= from {
			plot.Labels = append(plot.Labels, Span{From: max(s, from), To: min(max(e, s+1), to), Text: incidentName(inc)})
		}
	}
	return plot
}

// mostDeviant returns the metric whose values strayed furthest outside
// Vigil's band, in band widths; without bands, the one with the widest
// range relative to its mean. Ties go to the name first in order.
func mostDeviant(byMetric map[string][]PlotPoint) string {
	best, bestScore := "", math.Inf(-1)
	names := make([]string, 0, len(byMetric))
	for m := range byMetric {
		names = append(names, m)
	}
	sort.Strings(names)
	for _, m := range names {
		score := math.Inf(-1)
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, p := range byMetric[m] {
			lo, hi = min(lo, p.Value), max(hi, p.Value)
			if half := (p.Upper - p.Lower) / 2; half > 0 {
				score = max(score, math.Abs(p.Value-p.Expected)/half)
			}
		}
		if math.IsInf(score, -1) {
			score = (hi - lo) / max(math.Abs(hi+lo)/2, 1e-12) / 1e6 // below any banded metric
		}
		if score > bestScore {
			best, bestScore = m, score
		}
	}
	return best
}
