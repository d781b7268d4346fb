package score

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Plot is one panel of the HTML report: one metric of one device over
// time, with Vigil's expectation and band, the alarms raised and the
// labelled windows.
type Plot struct {
	Title  string // e.g. "missed: self-1 plc-a-002 bytes_out"
	Note   string // one line under the title
	Points []PlotPoint
	Alarms []Span // when the device was in alarm
	Labels []Span // the labelled incident or anomaly windows
}

// PlotPoint is one judged value; Expected, Lower and Upper are NaN where
// Vigil had no band yet.
type PlotPoint struct {
	Time                          int64 // Unix ns
	Value, Expected, Lower, Upper float64
}

// Span is a time interval [From, To) in Unix ns, with a short text.
type Span struct {
	From, To int64
	Text     string
}

// Page is the HTML report: a title, the text report and the plots.
type Page struct {
	Title   string
	Summary string // the terminal report, shown as preformatted text
	Plots   []Plot
}

// WriteHTML writes page as one self-contained HTML document: inline CSS
// and SVG, no script and nothing fetched, so it opens anywhere offline.
func WriteHTML(w io.Writer, page Page) error {
	type panel struct {
		Title, Note string
		SVG         template.HTML
	}
	data := struct {
		Title, Summary string
		Generated      string
		Panels         []panel
	}{Title: page.Title, Summary: page.Summary}
	for _, p := range page.Plots {
		data.Panels = append(data.Panels, panel{Title: p.Title, Note: p.Note, SVG: template.HTML(plotSVG(p))})
	}
	return htmlPage.Execute(w, data)
}

var htmlPage = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f6f7f9;color:#1d232b}
header{background:#1d2b3a;color:#fff;padding:14px 24px}
header h1{font-size:19px;margin:0}
main{padding:16px 24px;max-width:1400px}
pre{background:#fff;border:1px solid #d8dde3;border-radius:6px;padding:12px;overflow-x:auto;font-size:12.5px}
section.plot{background:#fff;border:1px solid #d8dde3;border-radius:6px;margin:14px 0;padding:10px 12px}
section.plot h2{font-size:15px;margin:0 0 2px}
section.plot p{margin:0 0 6px;color:#4a5562;font-size:13px}
.legend span{display:inline-block;margin-right:14px;font-size:12px;color:#4a5562}
.legend i{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle}
svg{width:100%;height:auto;display:block}
svg text{font:11px system-ui,sans-serif;fill:#4a5562}
</style></head>
<body>
<header><h1>{{.Title}}</h1></header>
<main>
<pre>{{.Summary}}</pre>
<h2>Missed incidents and false alarms</h2>
<div class="legend">
<span><i style="background:#1f5fbf"></i>observed</span>
<span><i style="background:#8a94a0;height:2px"></i>expected</span>
<span><i style="background:#c8d7ee"></i>Vigil's band</span>
<span><i style="background:#d9534f;height:4px"></i><i style="background:#f2b8b5;margin-left:-4px"></i>in alarm</span>
<span><i style="background:#fbe3a6"></i>labelled window</span>
</div>
{{range .Panels}}<section class="plot"><h2>{{.Title}}</h2>{{if .Note}}<p>{{.Note}}</p>{{end}}
{{.SVG}}</section>
{{else}}<p>No missed incident and no false alarm to plot.</p>
{{end}}
</main></body></html>
`))

// plot geometry in SVG user units.
const (
	plotW, plotH             = 1000.0, 240.0
	padL, padR, padT, padB   = 64.0, 12.0, 10.0, 26.0
	innerW, innerH           = plotW - padL - padR, plotH - padT - padB
	maxPlotPoints            = 2000
	bandClipSpreadsOfValues  = 1.0 // a band reaching further than this many value ranges is clipped
	timeTicks, valueTicks    = 6, 5
	labelFill, alarmFill     = "#fbe3a6", "#f2b8b5"
	bandFill, valueStroke    = "#c8d7ee", "#1f5fbf"
	expectedStroke, gridLine = "#8a94a0", "#e6e9ed"
)

// plotSVG draws p as an inline SVG: the band as an area, the expectation
// dashed, labelled windows and alarms as shaded columns over them, and the
// value as a line. Points beyond maxPlotPoints are thinned by keeping each bucket's
// extreme, so a spike survives.
func plotSVG(p Plot) string {
	pts := thin(p.Points, maxPlotPoints)
	if len(pts) == 0 {
		return `<svg viewBox="0 0 1000 40"><text x="10" y="24">no metric values of this device in this window (fleet alarms name a group, network alarms a host)</text></svg>`
	}
	t0, t1 := pts[0].Time, pts[len(pts)-1].Time
	for _, s := range append(append([]Span(nil), p.Alarms...), p.Labels...) {
		t0, t1 = min(t0, s.From), max(t1, s.To)
	}
	if t1 == t0 {
		t1 = t0 + int64(time.Second)
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, q := range pts {
		lo, hi = min(lo, q.Value), max(hi, q.Value)
	}
	// The band widens the range, but never so far that the values become a
	// flat line: a band wider than a few value ranges is clipped.
	vr := max(hi-lo, math.Abs(hi)*1e-6, 1e-12)
	blo, bhi := lo-bandClipSpreadsOfValues*vr, hi+bandClipSpreadsOfValues*vr
	for _, q := range pts {
		if !math.IsNaN(q.Lower) {
			lo = min(lo, max(q.Lower, blo))
		}
		if !math.IsNaN(q.Upper) {
			hi = max(hi, min(q.Upper, bhi))
		}
	}
	if hi == lo {
		lo, hi = lo-1, hi+1
	}
	margin := (hi - lo) * 0.05
	lo, hi = lo-margin, hi+margin
	x := func(t int64) float64 { return padL + innerW*float64(t-t0)/float64(t1-t0) }
	y := func(v float64) float64 {
		v = min(max(v, lo), hi)
		return padT + innerH*(1-(v-lo)/(hi-lo))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg viewBox="0 0 %g %g" role="img">`, plotW, plotH)
	// grid and value axis
	for i := 0; i <= valueTicks; i++ {
		v := lo + (hi-lo)*float64(i)/valueTicks
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s"/>`, padL, plotW-padR, y(v), y(v), gridLine)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`, padL-6, y(v)+4, template.HTMLEscapeString(shortNumber(v)))
	}
	for i := 0; i <= timeTicks; i++ {
		t := t0 + (t1-t0)*int64(i)/timeTicks
		anchor := "middle"
		if i == 0 {
			anchor = "start"
		} else if i == timeTicks {
			anchor = "end"
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="%s">%s</text>`, x(t), plotH-8, anchor, timeLabel(t, t1-t0))
	}
	shade := func(spans []Span, fill string, opacity float64) {
		for _, s := range spans {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" opacity="%g"><title>%s</title></rect>`,
				x(s.From), padT, max(x(s.To)-x(s.From), 1.5), innerH, fill, opacity, template.HTMLEscapeString(s.Text))
		}
	}
	// band: one polygon per run of points that have one
	for _, run := range bandRuns(pts) {
		var poly strings.Builder
		for _, q := range run {
			fmt.Fprintf(&poly, "%.1f,%.1f ", x(q.Time), y(q.Upper))
		}
		for i := len(run) - 1; i >= 0; i-- {
			fmt.Fprintf(&poly, "%.1f,%.1f ", x(run[i].Time), y(run[i].Lower))
		}
		fmt.Fprintf(&b, `<polygon points="%s" fill="%s" opacity="0.8"/>`, strings.TrimSpace(poly.String()), bandFill)
		var line strings.Builder
		for _, q := range run {
			fmt.Fprintf(&line, "%.1f,%.1f ", x(q.Time), y(q.Expected))
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.2" stroke-dasharray="4 3"/>`, strings.TrimSpace(line.String()), expectedStroke)
	}
	// Labelled windows and alarms over the band, translucent, so a band
	// filling the panel cannot hide them.
	shade(p.Labels, labelFill, 0.6)
	shade(p.Alarms, alarmFill, 0.3)
	for _, s := range p.Alarms { // and a bar along the top, so overlaps stay readable
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="8" fill="#d9534f"><title>%s</title></rect>`,
			x(s.From), padT, max(x(s.To)-x(s.From), 1.5), template.HTMLEscapeString(s.Text))
	}
	var line strings.Builder
	for _, q := range pts {
		fmt.Fprintf(&line, "%.1f,%.1f ", x(q.Time), y(q.Value))
	}
	fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.4"/>`, strings.TrimSpace(line.String()), valueStroke)
	fmt.Fprintf(&b, `<rect x="%g" y="%g" width="%g" height="%g" fill="none" stroke="#b9c1ca"/>`, padL, padT, innerW, innerH)
	b.WriteString(`</svg>`)
	return b.String()
}

// bandRuns splits pts into runs of consecutive points that have a band.
func bandRuns(pts []PlotPoint) [][]PlotPoint {
	var runs [][]PlotPoint
	start := -1
	for i, q := range pts {
		has := !math.IsNaN(q.Lower) && !math.IsNaN(q.Upper) && !math.IsNaN(q.Expected)
		switch {
		case has && start < 0:
			start = i
		case !has && start >= 0:
			runs = append(runs, pts[start:i])
			start = -1
		}
	}
	if start >= 0 {
		runs = append(runs, pts[start:])
	}
	return runs
}

// thin keeps at most n points of pts (sorted by time): it splits them into
// n/2 buckets and keeps each bucket's lowest and highest value in time
// order, so spikes and dips stay visible.
func thin(pts []PlotPoint, n int) []PlotPoint {
	if len(pts) <= n {
		return pts
	}
	buckets := n / 2
	out := make([]PlotPoint, 0, n)
	for i := 0; i < buckets; i++ {
		b := pts[i*len(pts)/buckets : (i+1)*len(pts)/buckets]
		if len(b) == 0 {
			continue
		}
		lo, hi := 0, 0
		for j, q := range b {
			if q.Value < b[lo].Value {
				lo = j
			}
			if q.Value > b[hi].Value {
				hi = j
			}
		}
		keep := []int{lo, hi}
		sort.Ints(keep)
		out = append(out, b[keep[0]])
		if keep[1] != keep[0] {
			out = append(out, b[keep[1]])
		}
	}
	return out
}

func shortNumber(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e9:
		return strconv.FormatFloat(v/1e9, 'g', 3, 64) + "G"
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 3, 64) + "M"
	case a >= 1e4:
		return strconv.FormatFloat(v/1e3, 'g', 3, 64) + "k"
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// timeLabel formats t for an axis spanning span: dates and hours for long
// spans, seconds for short ones; UTC.
func timeLabel(t, span int64) string {
	tt := time.Unix(0, t).UTC()
	switch {
	case span > int64(2*time.Hour):
		return tt.Format("Jan 2 15:04")
	case span > int64(2*time.Minute):
		return tt.Format("15:04")
	}
	return tt.Format("15:04:05")
}
