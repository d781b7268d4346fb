package score

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Report holds the views Score computed. A view is nil when the labels
// for it are absent, and its JSON keys are then left out. The views are
// embedded, so their keys are top-level in the JSON ("incidents_total",
// "f1", "nab_standard", …): a sweep reads a figure without knowing which
// view holds it. Check a view for nil before reading its fields.
type Report struct {
	Alarms         int `json:"alarms"`          // alarms scored
	AlarmsLearning int `json:"alarms_learning"` // alarms raised during learning, not scored

	*IncidentView
	*RowView
	*NABView
	*SKABView
}

// IncidentView scores alarms against incidents. An alarm matches an
// incident when Incident.Matches its device and group, and it was raised
// in the incident's window widened by Options.Slack on both sides, or was
// open at some time in it. An alarm already open when the window begins
// matches too, and is the detection only when no alarm is raised in the
// window: its time to detect is then negative beyond the slack.
// Incidents are scored whatever the learning period: an incident inside
// it can only be missed.
type IncidentView struct {
	IncidentsTotal    int `json:"incidents_total"`
	IncidentsDetected int `json:"incidents_detected"`
	// FalseAlarms counts the alarms that match no incident.
	FalseAlarms int `json:"false_alarms"`
	// FalseAlarmsPerDeviceDay is FalseAlarms / (Options.Devices ×
	// Options.Span in days); nil when either is zero.
	FalseAlarmsPerDeviceDay *float64          `json:"false_alarms_per_device_day"`
	Incidents               []IncidentResult  `json:"incidents"`        // in label order
	FalseAlarmsBy           []FalseAlarmGroup `json:"false_alarms_by"`  // most first
	FalseAlarmList          []Alarm           `json:"false_alarm_list"` // by Raised
}

// IncidentResult is the outcome of one incident.
type IncidentResult struct {
	Incident
	Detected bool   `json:"detected"`
	By       *Alarm `json:"by,omitempty"` // the first matching alarm (earliest raised)
	Alarms   int    `json:"alarms"`       // matching alarms
	// TimeToDetect is By.Raised − Start (negative for an alarm raised in
	// the slack before it); 0 when missed.
	TimeToDetect time.Duration `json:"time_to_detect_ns"`
}

// FalseAlarmGroup counts the false alarms of one device, detector and
// behavior.
type FalseAlarmGroup struct {
	Device   string `json:"device"`
	Detector string `json:"detector"`
	Behavior string `json:"behavior"`
	Count    int    `json:"count"`
}

// RowView judges every row: predicted anomalous while an alarm of its
// device is open (Raised ≤ row time < Cleared), against its Anomaly label.
// Rows before their device's learning end are left out. Ratios are 0
// when their denominator is; FAR and MAR are fractions, not percent.
type RowView struct {
	RowsScored   int     `json:"rows_scored"`
	RowsLearning int     `json:"rows_learning"`
	TP           int     `json:"tp"`
	FP           int     `json:"fp"`
	TN           int     `json:"tn"`
	FN           int     `json:"fn"`
	Precision    float64 `json:"precision"` // TP / (TP + FP)
	Recall       float64 `json:"recall"`    // TP / (TP + FN)
	F1           float64 `json:"f1"`        // TP / (TP + (FP + FN)/2)
	FAR          float64 `json:"far"`       // false alarm rate, FP / (FP + TN)
	MAR          float64 `json:"mar"`       // missed alarm rate, FN / (FN + TP)
}

// NABView is the Numenta Anomaly Benchmark score of the alarm raises
// (Lavin and Ahmad 2015, "Evaluating Real-time Anomaly Detection
// Algorithms – the Numenta Anomaly Benchmark"; numenta/NAB nab/sweeper.py
// and nab/labeler.py) for NAB's profiles standard (A_TP 1, A_FP 0.11,
// A_FN 1), reward_low_FP_rate (1, 0.22, 1) and reward_low_FN_rate (1,
// 0.11, 2).
//
// Windows: NAB centres a window int(0.10 × length / anomalies) long on each
// labelled anomaly of a file and merges windows that overlap. With rows
// (NABBasis "rows") a file is a device, positions are row indexes and a
// labelled anomaly is a run of anomalous rows. With incidents ("incidents")
// the input is one file, positions are seconds, the length is Options.Span,
// and a window takes only the alarms its incident matches.
//
// Score: with σ(y) = 2/(1+e^{5y}) − 1 (−1 for y ≥ 3), the first detection
// at position i in a window [L, R] earns A_TP·σ(−(R+u−i)/(R+u−L))/σ(−1),
// where u is 1 for row indexes (NAB's "+ 1") and 0 for seconds: A_TP at the
// left edge, falling towards 0 at the right. Later detections in the window
// count for nothing. A detection in no window costs
// A_FP·σ((i−R')/(R'−L')) after the closest window [L', R'] that ended
// before it (little just after a window, A_FP three window lengths on),
// or A_FP with no window before it. A missed window costs A_FN. Raw scores
// are summed over files, then normalised once: 100·(raw − null)/(perfect −
// null), with null = −A_FN (a detector that never fires) and perfect =
// A_TP per window.
//
// Deviations from NAB: a detection is an alarm raise, not every row whose
// anomaly score passes a threshold, and no threshold is swept. A labelled
// anomaly is a run or an incident rather than a point: one longer than
// NAB's window is its own window, a shorter one is widened around it to
// NAB's length (so a one-row run gets NAB's window exactly). The learning
// period plays NAB's probationary period: windows that start in it are
// dropped (NAB drops only the first). A window of zero width earns a full
// A_TP, and a detection after one costs a full A_FP, where NAB would divide
// by zero.
type NABView struct {
	NABStandard float64      `json:"nab_standard"`
	NABLowFP    float64      `json:"nab_reward_low_fp"`
	NABLowFN    float64      `json:"nab_reward_low_fn"`
	NABBasis    string       `json:"nab_basis"` // "rows" or "incidents": what the windows were made of
	NAB         WindowScores `json:"nab"`
}

// SKABView is the score of SKAB's changepoint leaderboard: waico/SKAB
// core/metrics.py, chp_score(metric "nab", window_width "60s",
// anomaly_window_destination "righter", intersection_mode "cut right
// window"), for SKAB's profiles Standard (A_TP 1, A_FP 0.11, A_FN 1), LowFP
// (1, 0.22, 1) and LowFN (1, 0.11, 2).
//
// Detections are the rows where the row prediction (see RowView) rises or
// falls. Each changepoint row opens the window [cp, cp + 60 s]; a window
// that begins before the previous one ends begins at its end instead. The
// first detection in a window, at relative position p = (t − start)/(end −
// start), earns
//
//	k = min(⌊1000·p⌋, 999),  x = −π/2 + π·k/999,
//	−A_FP + (A_TP + A_FP)/2 · (1 − tanh(x)/tanh(π/2)):
//
// A_TP at the changepoint, falling along a tanh to −A_FP at the window's
// end. Later detections in the window count for nothing; each detection in
// no window costs A_FP, each missed window A_FN. Raw scores are summed over
// devices and normalised as NAB's: null = −A_FN and perfect = A_TP per
// window.
//
// Only rows at or after their device's learning end take part, as only
// SKAB's test rows do; the first of them is no detection, as SKAB's diff()
// leaves it NaN.
type SKABView struct {
	SKABStandard float64      `json:"skab_standard"`
	SKABLowFP    float64      `json:"skab_low_fp"`
	SKABLowFN    float64      `json:"skab_low_fn"`
	SKAB         WindowScores `json:"skab"`
}

// WindowScores details a window score.
type WindowScores struct {
	Windows        int            `json:"windows"`
	Detected       int            `json:"detected"`
	FalsePositives int            `json:"false_positives"`
	Profiles       []ProfileScore `json:"profiles"`
}

// ProfileScore is one profile's score: Raw summed over all files,
// normalised once as 100·(Raw − Null)/(Perfect − Null).
type ProfileScore struct {
	Profile string  `json:"profile"`
	Raw     float64 `json:"raw"`
	Null    float64 `json:"null"`
	Perfect float64 `json:"perfect"`
	Score   float64 `json:"score"`
}

// WriteJSON writes the report as one indented JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// maxFalseAlarmGroups is how many false-alarm groups WriteText lists.
const maxFalseAlarmGroups = 20

// WriteText writes the report as tables for a terminal: each view that
// is present, in the order incidents, false alarms, rows, NAB, SKAB.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	p("Alarms scored: %d", r.Alarms)
	if r.AlarmsLearning > 0 {
		p(" (%d more raised while learning)", r.AlarmsLearning)
	}
	p("\n")
	if v := r.IncidentView; v != nil {
		p("\nIncidents: %d of %d detected\n", v.IncidentsDetected, v.IncidentsTotal)
		if len(v.Incidents) > 0 {
			p("  ID\tDEVICE\tSTART\tEND\tRESULT\tBY\tTIME TO DETECT\n")
		}
		for _, in := range v.Incidents {
			result, by, ttd := "missed", "-", "-"
			if in.Detected {
				result = "detected"
				by = in.By.Detector + "/" + in.By.Behavior + " on " + in.By.Device
				ttd = in.TimeToDetect.String()
			}
			p("  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", orDash(in.ID), in.Device, in.Start.Format(time.RFC3339), in.End.Format(time.RFC3339), result, by, ttd)
		}
		p("\nFalse alarms: %d", v.FalseAlarms)
		if v.FalseAlarmsPerDeviceDay != nil {
			p(" (%.3g per device-day)", *v.FalseAlarmsPerDeviceDay)
		}
		p("\n")
		if len(v.FalseAlarmsBy) > 0 {
			p("  COUNT\tDEVICE\tDETECTOR\tBEHAVIOR\n")
		}
		for i, g := range v.FalseAlarmsBy {
			if i == maxFalseAlarmGroups {
				p("  … %d more devices and behaviors\n", len(v.FalseAlarmsBy)-i)
				break
			}
			p("  %d\t%s\t%s\t%s\n", g.Count, g.Device, g.Detector, g.Behavior)
		}
	}
	if v := r.RowView; v != nil {
		p("\nRows: %d scored (%d while learning)\n", v.RowsScored, v.RowsLearning)
		p("  TP\tFP\tTN\tFN\tPRECISION\tRECALL\tF1\tFAR\tMAR\n")
		p("  %d\t%d\t%d\t%d\t%.3f\t%.3f\t%.3f\t%.2f%%\t%.2f%%\n", v.TP, v.FP, v.TN, v.FN, v.Precision, v.Recall, v.F1, 100*v.FAR, 100*v.MAR)
	}
	if v := r.NABView; v != nil {
		writeWindowScores(p, "NAB (windows from "+v.NABBasis+")", &v.NAB)
	}
	if v := r.SKABView; v != nil {
		writeWindowScores(p, "SKAB changepoints (60 s windows)", &v.SKAB)
	}
	return tw.Flush()
}

func writeWindowScores(p func(string, ...any), title string, s *WindowScores) {
	p("\n%s: %d windows, %d detected, %d false positives\n", title, s.Windows, s.Detected, s.FalsePositives)
	p("  PROFILE\tSCORE\tRAW\tNULL\tPERFECT\n")
	for _, ps := range s.Profiles {
		p("  %s\t%.2f\t%.4f\t%g\t%g\n", ps.Profile, ps.Score, ps.Raw, ps.Null, ps.Perfect)
	}
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
