package score

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/vigil-ot/vigil/detect"
)

// Options shape the scoring. The zero value scores everything, without
// slack and without a false-alarm rate.
type Options struct {
	// Slack widens every incident window by this much on both sides before
	// alarms are matched to it (the incident view only).
	Slack time.Duration
	// LearnUntil returns when a device's learning period ends: alarms
	// raised and rows timed before it are not scored. Fleet alarms ask for
	// their group key. Nil: nothing is learning.
	LearnUntil func(device string) time.Time
	// Devices and Span (the input's time span) give the false-alarm rate
	// per device-day: false alarms / (Devices × Span in days). Span is
	// also the data length of NAB windows made from incidents. Zero: no
	// rate, and NAB windows are the incidents as labelled.
	Devices int
	Span    time.Duration
}

func (o *Options) learnUntil(device string) time.Time {
	if o.LearnUntil == nil {
		return time.Time{}
	}
	return o.LearnUntil(device)
}

// Row is one labelled row of a tabular input (one CSV line), e.g. SKAB's
// anomaly and changepoint columns.
type Row struct {
	Device      string
	Time        time.Time
	Anomaly     bool // the row is anomalous
	Changepoint bool // an anomaly starts or ends at this row
}

// Score scores alerts against labels and returns every view the labels
// allow (see Report); it does not modify its arguments.
//
//   - incidents nil: the incidents are the runs of anomalous rows
//     (RowIncidents) when rows are given, else there is no incident view.
//     An empty non-nil slice means nothing happened: every alarm is false.
//   - rows nil: no row and no SKAB view. The SKAB view also needs a
//     changepoint row.
//   - NAB scores the runs of anomalous rows when rows are given, else the
//     incidents; no view without a window.
//
// Only alarms raised at or after their device's Options.LearnUntil count.
func Score(alerts []detect.Alert, incidents []Incident, rows []Row, opt Options) *Report {
	rep := &Report{}
	var alarms []Alarm
	for _, a := range Alarms(alerts) {
		if a.Raised.Before(opt.learnUntil(a.Device)) {
			rep.AlarmsLearning++
			continue
		}
		alarms = append(alarms, a)
	}
	rep.Alarms = len(alarms)
	files := rowFiles(rows, &opt)
	if incidents == nil && rows != nil {
		incidents = RowIncidents(rows)
	}
	if incidents != nil {
		rep.IncidentView = incidentView(alarms, incidents, &opt)
	}
	if len(files) > 0 {
		rep.RowView = rowView(alarms, files)
		rep.SKABView = skabView(alarms, files)
		rep.NABView = nabRowView(alarms, files)
	} else if len(incidents) > 0 {
		rep.NABView = nabIncidentView(alarms, incidents, &opt)
	}
	return rep
}

// RowIncidents returns the runs of consecutive anomalous rows of each
// device as incidents: Start and End are the times of the run's first and
// last row, Kind is "anomaly" and ID is DEVICE#N (N counting a device's
// runs from 1). Devices come in order of first appearance, the rows of a
// device in time order. The result is never nil.
func RowIncidents(rows []Row) []Incident {
	incs := []Incident{}
	for _, f := range rowFiles(rows, &Options{}) {
		for _, r := range f.runs() {
			incs = append(incs, Incident{
				ID: fmt.Sprintf("%s#%d", f.device, len(incs)+1), Device: f.device, Kind: "anomaly",
				Start: f.rows[r[0]].Time, End: f.rows[r[1]].Time,
			})
		}
	}
	return incs
}

// rowFile holds the rows of one device in time order: a "file" in NAB's
// and SKAB's sense, scored on its own.
type rowFile struct {
	device string
	rows   []Row
	scored int // index of the first row at or after the device's learning end
}

// rowFiles groups rows by device, in order of first appearance.
func rowFiles(rows []Row, opt *Options) []rowFile {
	var files []rowFile
	index := make(map[string]int)
	for _, r := range rows {
		i, ok := index[r.Device]
		if !ok {
			i = len(files)
			index[r.Device] = i
			files = append(files, rowFile{device: r.Device})
		}
		files[i].rows = append(files[i].rows, r)
	}
	for i := range files {
		f := &files[i]
		slices.SortStableFunc(f.rows, func(a, b Row) int { return a.Time.Compare(b.Time) })
		learn := opt.learnUntil(f.device)
		f.scored = sort.Search(len(f.rows), func(i int) bool { return !f.rows[i].Time.Before(learn) })
	}
	return files
}

// runs returns the [first, last] row indexes of each run of anomalous rows.
func (f *rowFile) runs() [][2]int {
	var runs [][2]int
	for i, r := range f.rows {
		switch {
		case !r.Anomaly:
		case i > 0 && f.rows[i-1].Anomaly:
			runs[len(runs)-1][1] = i
		default:
			runs = append(runs, [2]int{i, i})
		}
	}
	return runs
}

// predict returns for each row whether one of the alarms (those of the
// row's device, ordered by Raised) is open at its time.
func (f *rowFile) predict(alarms []Alarm) []bool {
	pred := make([]bool, len(f.rows))
	var until time.Time // latest clear among alarms raised so far
	forever := false    // one of them never clears
	j := 0
	for i, r := range f.rows {
		for ; j < len(alarms) && !alarms[j].Raised.After(r.Time); j++ {
			if alarms[j].Open() {
				forever = true
			} else if alarms[j].Cleared.After(until) {
				until = alarms[j].Cleared
			}
		}
		pred[i] = forever || r.Time.Before(until)
	}
	return pred
}

func alarmsByDevice(alarms []Alarm) map[string][]Alarm {
	m := make(map[string][]Alarm)
	for _, a := range alarms {
		m[a.Device] = append(m[a.Device], a)
	}
	return m
}

// overlaps reports whether the alarm was raised in [from, to] or was open
// at some time in it.
func (a *Alarm) overlaps(from, to time.Time) bool {
	if a.Raised.After(to) {
		return false
	}
	return !a.Raised.Before(from) || a.Open() || a.Cleared.After(from)
}

func incidentView(alarms []Alarm, incidents []Incident, opt *Options) *IncidentView {
	v := &IncidentView{
		IncidentsTotal: len(incidents),
		Incidents:      make([]IncidentResult, len(incidents)),
		FalseAlarmsBy:  []FalseAlarmGroup{},
		FalseAlarmList: []Alarm{},
	}
	matched := make([]bool, len(alarms))
	for i := range incidents {
		inc := &incidents[i]
		res := IncidentResult{Incident: *inc}
		from, to := inc.Start.Add(-opt.Slack), inc.End.Add(opt.Slack)
		for j := range alarms {
			a := &alarms[j]
			if !inc.Matches(a.Device, a.Group) || !a.overlaps(from, to) {
				continue
			}
			matched[j] = true
			res.Alarms++
			// The detection is the first alarm raised in the window; one
			// already open when it began counts only when none is (alarms
			// are ordered by Raised).
			if res.By == nil || res.By.Raised.Before(from) && !a.Raised.Before(from) {
				by := *a
				res.By = &by
				res.TimeToDetect = a.Raised.Sub(inc.Start)
			}
		}
		res.Detected = res.By != nil
		if res.Detected {
			v.IncidentsDetected++
		}
		v.Incidents[i] = res
	}
	groups := make(map[FalseAlarmGroup]int)
	for j, a := range alarms {
		if matched[j] {
			continue
		}
		v.FalseAlarmList = append(v.FalseAlarmList, a)
		groups[FalseAlarmGroup{Device: a.Device, Detector: a.Detector, Behavior: a.Behavior}]++
	}
	v.FalseAlarms = len(v.FalseAlarmList)
	for g, n := range groups {
		g.Count = n
		v.FalseAlarmsBy = append(v.FalseAlarmsBy, g)
	}
	slices.SortFunc(v.FalseAlarmsBy, func(a, b FalseAlarmGroup) int {
		return cmp.Or(b.Count-a.Count, cmp.Compare(a.Device, b.Device), cmp.Compare(a.Detector, b.Detector), cmp.Compare(a.Behavior, b.Behavior))
	})
	if opt.Devices > 0 && opt.Span > 0 {
		rate := float64(v.FalseAlarms) / (float64(opt.Devices) * opt.Span.Hours() / 24)
		v.FalseAlarmsPerDeviceDay = &rate
	}
	return v
}

func rowView(alarms []Alarm, files []rowFile) *RowView {
	v := &RowView{}
	byDevice := alarmsByDevice(alarms)
	for i := range files {
		f := &files[i]
		pred := f.predict(byDevice[f.device])
		v.RowsLearning += f.scored
		for k := f.scored; k < len(f.rows); k++ {
			switch anomaly := f.rows[k].Anomaly; {
			case pred[k] && anomaly:
				v.TP++
			case pred[k]:
				v.FP++
			case anomaly:
				v.FN++
			default:
				v.TN++
			}
		}
	}
	v.RowsScored = v.TP + v.FP + v.TN + v.FN
	v.Precision = ratio(v.TP, v.TP+v.FP)
	v.Recall = ratio(v.TP, v.TP+v.FN)
	v.F1 = ratio(2*v.TP, 2*v.TP+v.FP+v.FN) // TP / (TP + (FP+FN)/2), as SKAB writes it
	v.FAR = ratio(v.FP, v.FP+v.TN)
	v.MAR = ratio(v.FN, v.FN+v.TP)
	return v
}

// ratio is a/b, or 0 when b is 0.
func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
