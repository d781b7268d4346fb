package score

import (
	"math"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/detect"
)

const tol = 1e-9

func near(a, b float64) bool { return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b)) }

// raised and cleared build the alerts of one alarm; a zero clear leaves it
// open.
func alarmAlerts(id, device, group string, raised, cleared time.Duration) []detect.Alert {
	a := detect.Alert{ID: id, State: detect.StateAlarm, Device: device, Group: group, Detector: "self", Behavior: "cpu", EventTime: at(raised), AlarmStart: at(raised)}
	if cleared == 0 {
		return []detect.Alert{a}
	}
	c := a
	c.State, c.EventTime = detect.StateCleared, at(cleared)
	return []detect.Alert{a, c}
}

func concat(parts ...[]detect.Alert) []detect.Alert {
	var out []detect.Alert
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// TestIncidentViewPrefersRaisedInWindow: an alarm still open from before
// the incident matches it, but the alarm raised in the window is the
// detection (network alarms of one host stay open across attacks).
func TestIncidentViewPrefersRaisedInWindow(t *testing.T) {
	m := time.Minute
	incidents := []Incident{{ID: "stop", Device: "ews", Start: at(30 * m), End: at(31 * m)}}
	alerts := concat(alarmAlerts("edge", "ews", "", 0, 40*m), alarmAlerts("stop", "ews", "", 30*m, 35*m))
	alerts[2].Behavior = "plc_stop"
	alerts[3].Behavior = "plc_stop"
	v := incidentView(Alarms(alerts), incidents, &Options{})
	r := v.Incidents[0]
	if !r.Detected || r.By.ID != "stop" || r.TimeToDetect != 0 || r.Alarms != 2 {
		t.Errorf("detected %v by %+v after %s with %d alarms; want by the plc_stop alarm at once, 2 alarms", r.Detected, r.By, r.TimeToDetect, r.Alarms)
	}
}

// TestIncidentView: matching by device, group and "*", slack on both
// sides, the first alarm as detector, and false alarms by group and rate.
func TestIncidentView(t *testing.T) {
	m := time.Minute
	incidents := []Incident{
		{ID: "A", Device: "plc-1", Start: at(0), End: at(30 * m)},
		{ID: "B", Device: "plc-2", Start: at(2 * time.Hour), End: at(2*time.Hour + 10*m)},
		{ID: "C", Device: "group:line-1", Start: at(4 * time.Hour), End: at(4*time.Hour + 5*m)},
		{ID: "D", Device: "line-2", Start: at(6 * time.Hour), End: at(6*time.Hour + 5*m)}, // a fleet incident: the group key
	}
	alerts := concat(
		alarmAlerts("a1", "plc-1", "line-1", 4*m, 20*m),                          // A, 4 min in
		alarmAlerts("a2", "plc-1", "line-1", -3*m, -2*m),                         // A, in the 5 min slack before it: first, TTD −3 min
		alarmAlerts("a3", "plc-3", "line-1", 4*time.Hour+6*m, 0),                 // C by group, in the slack after it; open
		alarmAlerts("a4", "plc-2", "line-1", 2*time.Hour+30*m, 2*time.Hour+40*m), // 15 min after the slack of B: false
		alarmAlerts("a5", "plc-1", "line-1", 5*time.Hour, 5*time.Hour+m),         // false
		alarmAlerts("a6", "plc-2", "line-1", -2*time.Hour, -2*time.Hour+10*m),    // false, same group as a4
		alarmAlerts("a7", "line-2", "line-2", 6*time.Hour, 6*time.Hour+m),        // D: the fleet alarm names the group key
	)
	rep := Score(alerts, incidents, nil, Options{Slack: 5 * m, Devices: 4, Span: 48 * time.Hour})
	v := rep.IncidentView
	if v == nil || rep.RowView != nil || rep.SKABView != nil {
		t.Fatalf("views: incident %v, row %v, skab %v; want only the incident view (and NAB)", v != nil, rep.RowView != nil, rep.SKABView != nil)
	}
	if rep.Alarms != 7 || v.IncidentsTotal != 4 || v.IncidentsDetected != 3 || v.FalseAlarms != 3 {
		t.Errorf("alarms %d, incidents %d, detected %d, false %d; want 7, 4, 3, 3", rep.Alarms, v.IncidentsTotal, v.IncidentsDetected, v.FalseAlarms)
	}
	for i, want := range []struct {
		by     string
		alarms int
		ttd    time.Duration
	}{
		{"a2", 2, -3 * m}, // a2 raised at −3 min, before a1 at +4 min
		{"", 0, 0},
		{"a3", 1, 6 * m},
		{"a7", 1, 0},
	} {
		got := v.Incidents[i]
		by := ""
		if got.By != nil {
			by = got.By.ID
		}
		if by != want.by || got.Detected != (want.by != "") || got.Alarms != want.alarms || got.TimeToDetect != want.ttd {
			t.Errorf("incident %s: by %q, detected %v, alarms %d, ttd %v; want %q, %d, %v", got.ID, by, got.Detected, got.Alarms, got.TimeToDetect, want.by, want.alarms, want.ttd)
		}
	}
	// 3 false alarms / (4 devices × 2 days) = 0.375 per device-day.
	if v.FalseAlarmsPerDeviceDay == nil || !near(*v.FalseAlarmsPerDeviceDay, 0.375) {
		t.Errorf("false alarms per device-day = %v, want 0.375", v.FalseAlarmsPerDeviceDay)
	}
	wantBy := []FalseAlarmGroup{{"plc-2", "self", "cpu", 2}, {"plc-1", "self", "cpu", 1}}
	if len(v.FalseAlarmsBy) != 2 || v.FalseAlarmsBy[0] != wantBy[0] || v.FalseAlarmsBy[1] != wantBy[1] {
		t.Errorf("false alarms by = %+v, want %+v", v.FalseAlarmsBy, wantBy)
	}
	if ids := [3]string{v.FalseAlarmList[0].ID, v.FalseAlarmList[1].ID, v.FalseAlarmList[2].ID}; ids != [3]string{"a6", "a4", "a5"} {
		t.Errorf("false alarm list %v, want a6 a4 a5 (by time)", ids)
	}
}

// TestIncidentViewOpenAlarm: an alarm raised before the window and still
// open matches (time to detect beyond the slack); one that cleared before
// the window does not.
func TestIncidentViewOpenAlarm(t *testing.T) {
	incidents := []Incident{{ID: "A", Device: "plc-1", Start: at(time.Hour), End: at(2 * time.Hour)}}
	alerts := concat(
		alarmAlerts("open", "plc-1", "", 0, 0),
		alarmAlerts("cleared", "plc-1", "", 10*time.Minute, 50*time.Minute),
	)
	v := Score(alerts, incidents, nil, Options{Slack: 5 * time.Minute}).IncidentView
	if !v.Incidents[0].Detected || v.Incidents[0].TimeToDetect != -time.Hour || v.FalseAlarms != 1 || v.FalseAlarmList[0].ID != "cleared" {
		t.Errorf("got %+v, false %d", v.Incidents[0], v.FalseAlarms)
	}
	if v.FalseAlarmsPerDeviceDay != nil {
		t.Errorf("rate %v without devices and span, want nil", *v.FalseAlarmsPerDeviceDay)
	}
}

// TestLearning: alarms raised before their device's learning end are not
// scored; the alarm of another device at the same time is.
func TestLearning(t *testing.T) {
	alerts := concat(alarmAlerts("a", "plc-1", "", 0, 0), alarmAlerts("b", "plc-2", "", 0, 0))
	learn := func(dev string) time.Time {
		if dev == "plc-1" {
			return at(time.Minute)
		}
		return time.Time{}
	}
	rep := Score(alerts, []Incident{}, nil, Options{LearnUntil: learn})
	if rep.Alarms != 1 || rep.AlarmsLearning != 1 || rep.FalseAlarms != 1 || rep.FalseAlarmList[0].ID != "b" {
		t.Errorf("alarms %d, learning %d, false %d; want 1, 1, 1 (b)", rep.Alarms, rep.AlarmsLearning, rep.FalseAlarms)
	}
	if rep.NABView != nil {
		t.Error("NAB view without a window")
	}
}

// rowsEvery returns n rows of device dev, one every step from t0, with
// the given rows anomalous.
func rowsEvery(dev string, n int, step time.Duration, anomalous func(i int) bool) []Row {
	rows := make([]Row, n)
	for i := range rows {
		rows[i] = Row{Device: dev, Time: at(time.Duration(i) * step), Anomaly: anomalous(i)}
	}
	return rows
}

// TestRowView: 10 rows 10 s apart, rows 3-6 anomalous, one alarm raised at
// row 4's time and cleared at row 8's: rows 4-7 are predicted.
func TestRowView(t *testing.T) {
	s := 10 * time.Second
	rows := rowsEvery("d", 10, s, func(i int) bool { return i >= 3 && i <= 6 })
	rows[0], rows[9] = rows[9], rows[0] // order does not matter
	alerts := alarmAlerts("a", "d", "", 4*s, 8*s)
	for _, tc := range []struct {
		name           string
		learn          time.Duration
		tp, fp, tn, fn int
		learning       int
		prec, rec, f1  float64
		far, mar       float64
	}{
		// TP rows 4,5,6; FP row 7; FN row 3; TN rows 0,1,2,8,9.
		// precision 3/4, recall 3/4, F1 3/(3+(1+1)/2) = 0.75, FAR 1/(1+5), MAR 1/(1+3).
		{"all rows", 0, 3, 1, 5, 1, 0, 0.75, 0.75, 0.75, 1.0 / 6, 0.25},
		// Learning until row 2: rows 0 and 1 leave TN; FAR 1/(1+3).
		{"learning", 2 * s, 3, 1, 3, 1, 2, 0.75, 0.75, 0.75, 0.25, 0.25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			learn := func(string) time.Time { return at(tc.learn) }
			v := Score(alerts, nil, rows, Options{LearnUntil: learn}).RowView
			if v.TP != tc.tp || v.FP != tc.fp || v.TN != tc.tn || v.FN != tc.fn || v.RowsLearning != tc.learning || v.RowsScored != tc.tp+tc.fp+tc.tn+tc.fn {
				t.Errorf("counts %+v, want TP %d FP %d TN %d FN %d learning %d", *v, tc.tp, tc.fp, tc.tn, tc.fn, tc.learning)
			}
			for _, r := range []struct {
				name      string
				got, want float64
			}{{"precision", v.Precision, tc.prec}, {"recall", v.Recall, tc.rec}, {"F1", v.F1, tc.f1}, {"FAR", v.FAR, tc.far}, {"MAR", v.MAR, tc.mar}} {
				if !near(r.got, r.want) {
					t.Errorf("%s = %v, want %v", r.name, r.got, r.want)
				}
			}
		})
	}
}

// TestRowIncidents: each run of anomalous rows of a device is an incident,
// and rows give an incident view when no incidents are passed.
func TestRowIncidents(t *testing.T) {
	s := time.Second
	rows := append(rowsEvery("a", 10, s, func(i int) bool { return i == 2 || i == 3 || i == 7 }),
		rowsEvery("b", 3, s, func(int) bool { return false })...)
	got := RowIncidents(rows)
	if len(got) != 2 || got[0].ID != "a#1" || !got[0].Start.Equal(at(2*s)) || !got[0].End.Equal(at(3*s)) ||
		got[1].ID != "a#2" || !got[1].Start.Equal(at(7*s)) || !got[1].End.Equal(at(7*s)) {
		t.Errorf("RowIncidents = %+v", got)
	}
	rep := Score(alarmAlerts("x", "b", "", s, 0), nil, rows, Options{})
	if rep.IncidentsTotal != 2 || rep.IncidentsDetected != 0 || rep.FalseAlarms != 1 {
		t.Errorf("incident view from rows: %d incidents, %d detected, %d false; want 2, 0, 1", rep.IncidentsTotal, rep.IncidentsDetected, rep.FalseAlarms)
	}
}

// TestScaledSigmoid checks the values nab/sweeper.py documents.
func TestScaledSigmoid(t *testing.T) {
	for _, tc := range []struct{ y, want float64 }{
		{-1, 0.98661429815143}, // 2/(1+e^-5) − 1
		{-0.5, 0.84828363995751},
		{0, 0},
		{1, -0.98661429815143},
		{3, -1},
		{10, -1},
	} {
		if got := scaledSigmoid(tc.y); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("scaledSigmoid(%v) = %.14f, want %.14f", tc.y, got, tc.want)
		}
	}
}

// TestNABRows: 100 rows one second apart, rows 40-44 anomalous (one run).
// NAB's window: int(0.10 × 100 / 1) = 10 rows; the 5-row run is widened by
// (10+1−5)/2 = 3 rows each side to [37, 47]. Raises at rows 10, 39, 60.
func TestNABRows(t *testing.T) {
	s := time.Second
	rows := rowsEvery("d", 100, s, func(i int) bool { return i >= 40 && i <= 44 })
	alerts := concat(
		alarmAlerts("early", "d", "", 10*s, 12*s),
		alarmAlerts("tp", "d", "", 39*s, 45*s),
		alarmAlerts("late", "d", "", 60*s, 61*s),
		alarmAlerts("other", "e", "", 60*s, 0), // another device: not in this file
	)
	v := Score(alerts, nil, rows, Options{}).NABView
	if v == nil || v.NABBasis != "rows" || v.NAB.Windows != 1 || v.NAB.Detected != 1 || v.NAB.FalsePositives != 2 {
		t.Fatalf("NAB = %+v; want rows, 1 window, 1 detected, 2 false positives", v)
	}
	// Row 39 in [37, 47]: y = −(47+1−39)/(47+1−37) = −9/11,
	//   TP = σ(−9/11)/σ(−1) = 0.967102/0.986614 = 0.980223.
	// Row 10, no window before it: σ = −1.
	// Row 60 after [37, 47]: y = (60−47)/(47−37) = 1.3, σ(1.3) = 2/(1+e^6.5) − 1 = −0.996998.
	// standard: 1×0.980223 + 0.11×(−1 − 0.996998) = 0.760553; null −1, perfect 1: 100×(0.760553+1)/2 = 88.0277
	// low FP:   1×0.980223 + 0.22×(−1.996998)      = 0.540884; 100×1.540884/2 = 77.0442
	// low FN:   0.760553; null −2, perfect 1: 100×2.760553/3 = 92.0184
	for i, want := range []float64{88.02766865223236, 77.04418165705647, 92.0184457681549} {
		if got := v.NAB.Profiles[i].Score; !near(got, want) {
			t.Errorf("%s = %v, want %v", v.NAB.Profiles[i].Profile, got, want)
		}
	}
	if v.NABStandard != v.NAB.Profiles[0].Score || v.NABLowFP != v.NAB.Profiles[1].Score || v.NABLowFN != v.NAB.Profiles[2].Score {
		t.Error("the headline NAB scores differ from the profiles")
	}
}

// TestNABRowsLearning: a window that starts in the learning rows is
// dropped, as NAB drops one in its probationary period; without a window
// there is no NAB view.
func TestNABRowsLearning(t *testing.T) {
	s := time.Second
	rows := rowsEvery("d", 100, s, func(i int) bool { return i >= 40 && i <= 44 })
	learn := func(string) time.Time { return at(38 * s) } // the window starts at row 37
	if v := Score(nil, nil, rows, Options{LearnUntil: learn}).NABView; v != nil {
		t.Errorf("NAB view %+v, want none", v)
	}
}

// TestNABIncidents: incident windows in seconds, each taking only the
// alarms its incident matches. Span 10000 s and 2 incidents make NAB's
// length 0.10×10000/2 = 500 s: X [1000, 1100] widens to [800, 1300], the
// point Y at 5000 to [4750, 5250].
func TestNABIncidents(t *testing.T) {
	s := time.Second
	incidents := []Incident{
		{ID: "X", Device: "plc-1", Start: at(1000 * s), End: at(1100 * s)},
		{ID: "Y", Device: "*", Start: at(5000 * s), End: at(5000 * s)},
	}
	alerts := concat(
		alarmAlerts("tp", "plc-1", "", 900*s, 0), // in X: y = −(1300−900)/500 = −0.8
		alarmAlerts("fp1", "plc-2", "", 1000*s, 1001*s),
		alarmAlerts("fp2", "plc-2", "", 5300*s, 5301*s),
	)
	v := Score(alerts, incidents, nil, Options{Span: 10000 * s}).NABView
	if v == nil || v.NABBasis != "incidents" || v.NAB.Windows != 2 || v.NAB.Detected != 1 || v.NAB.FalsePositives != 2 {
		t.Fatalf("NAB = %+v; want incidents, 2 windows, 1 detected, 2 false positives", v)
	}
	// TP = σ(−0.8)/σ(−1) = 0.964028/0.986614 = 0.977107.
	// fp1: plc-2 is not X's device, Y has not begun: no window before it, −1.
	// fp2: after Y: y = (5300−5250)/500 = 0.1, σ(0.1) = −0.244919.
	// Y is missed.
	// standard: 0.977107 + 0.11×(−1.244919) − 1 = −0.159834; null −2, perfect 2: 100×1.840166/4 = 46.0041
	// low FP:   0.977107 + 0.22×(−1.244919) − 1 = −0.296775; 100×1.703225/4 = 42.5806
	// low FN:   0.977107 + 0.11×(−1.244919) − 2 = −1.159834; null −4, perfect 2: 100×2.840166/6 = 47.3361
	for i, want := range []float64{46.004144701454905, 42.58061837984471, 47.3360964676366} {
		if got := v.NAB.Profiles[i].Score; !near(got, want) {
			t.Errorf("%s = %v, want %v", v.NAB.Profiles[i].Profile, got, want)
		}
	}
}

// TestSKABCurve checks SKAB's curve at its ends and middle: the full A_TP
// at the changepoint, −A_FP at the window's end, their mean half way.
func TestSKABCurve(t *testing.T) {
	std := skabProfiles[0]
	for _, tc := range []struct{ p, want float64 }{
		{0, 1},
		{1, -0.11},
		{2, -0.11}, // clamped to the last step
		// k = 500: x = −π/2 + π·500/999 = 0.001572; −0.11 + 1.11/2·(1 − tanh(x)/tanh(π/2)) = 0.444049
		{0.5, 0.4440485},
	} {
		if got := skabCurve(tc.p, std); math.Abs(got-tc.want) > 1e-6 {
			t.Errorf("skabCurve(%v) = %.7f, want %.7f", tc.p, got, tc.want)
		}
	}
}

// TestSKAB: 300 rows one second apart; changepoints at rows 100 and 130
// open [100, 160] and [130, 190], cut to [160, 190]. One alarm from row
// 115 to 125 rises and falls in the first window; one raised at row 250
// and never cleared rises outside every window.
func TestSKAB(t *testing.T) {
	s := time.Second
	rows := rowsEvery("d", 300, s, func(i int) bool { return i >= 100 && i < 130 })
	rows[100].Changepoint, rows[130].Changepoint = true, true
	alerts := concat(alarmAlerts("a", "d", "", 115*s, 125*s), alarmAlerts("b", "d", "", 250*s, 0))
	v := Score(alerts, nil, rows, Options{}).SKABView
	if v == nil || v.SKAB.Windows != 2 || v.SKAB.Detected != 1 || v.SKAB.FalsePositives != 1 {
		t.Fatalf("SKAB = %+v; want 2 windows, 1 detected, 1 false positive", v)
	}
	// Rise at 115: p = 15/60 = 0.25, k = 250, x = −π/2 + π·250/999 = −0.784612,
	//   1 − tanh(x)/tanh(π/2) = 1.714544.
	// Fall at 125 in the same window: nothing. Second window missed. Rise at 250: FP.
	// standard: (−0.11 + 1.11/2×1.714544) − 0.11 − 1 = 0.841572 − 1.11 = −0.268428;
	//           null −2, perfect 2: 100×1.731572/4 = 43.2893
	// low FP:   (−0.22 + 1.22/2×1.714544) − 0.22 − 1 = 0.825872 − 1.22 = −0.394128; 100×1.605872/4 = 40.1468
	// low FN:   0.841572 − 0.11 − 2 = −1.268428; null −4, perfect 2: 100×2.731572/6 = 45.5262
	for i, want := range []float64{43.28930102403452, 40.14679932371361, 45.52620068268968} {
		if got := v.SKAB.Profiles[i].Score; !near(got, want) {
			t.Errorf("%s = %v, want %v", v.SKAB.Profiles[i].Profile, got, want)
		}
	}
}

// TestSKABLearning: a changepoint in the learning rows opens no window,
// and the first scored row is never a detection even when an alarm is open
// at it.
func TestSKABLearning(t *testing.T) {
	s := time.Second
	rows := rowsEvery("d", 100, s, func(int) bool { return false })
	rows[10].Changepoint, rows[60].Changepoint = true, true
	alerts := alarmAlerts("a", "d", "", 50*s, 0) // open from row 50 on
	learn := func(string) time.Time { return at(50 * s) }
	v := Score(alerts, nil, rows, Options{LearnUntil: learn}).SKABView
	if v == nil || v.SKAB.Windows != 1 || v.SKAB.Detected != 0 || v.SKAB.FalsePositives != 0 {
		t.Fatalf("SKAB = %+v; want 1 window, nothing detected, no false positive", v)
	}
	if v.SKABStandard != 0 {
		t.Errorf("a detector that never fires scores %v, want 0", v.SKABStandard)
	}
}
