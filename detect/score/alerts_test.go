package score_test

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/detect/score"
	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/sinks"
)

var t0 = time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// TestReadAlertsRoundTrip reads back what the JSON sink writes: every field
// of an alert survives, NaN included, and the quarantine event between the
// alerts is skipped. A change to the sink's wire form that the reader
// misses fails here.
func TestReadAlertsRoundTrip(t *testing.T) {
	alarm := detect.Alert{
		ID: detect.AlertID(detect.DetectorSelf, "plc-a", "bytes_out", at(0)), EventTime: at(2 * time.Minute),
		ProcessingTime: at(2 * time.Minute), AlarmStart: at(0), State: detect.StateAlarm,
		Device: "plc-a", Group: "plant-a/s7", Criticality: "high", Detector: detect.DetectorSelf, Behavior: "bytes_out",
		Observed: 1234.5, ObservedText: "", Expected: 100, Lower: 50, Upper: 150, Score: 12.5,
		Severity: 7, SampleCount: 1440, Baseline: 3, Technique: "T0882", Message: "plc-a sent \"10x\"\nmore",
		SrcIP: "10.0.0.1", DstIP: "10.0.0.2", SrcPort: 502, DstPort: 40000, Transport: "tcp", Protocol: "modbus",
		SrcMAC: "00:1b:1b:00:01:20", DstMAC: "00:1b:1b:00:01:10", Partition: 4, Offset: 99,
	}
	cleared := alarm
	cleared.State, cleared.EventTime, cleared.ProcessingTime = detect.StateCleared, at(20*time.Minute), at(20*time.Minute)
	cleared.Observed, cleared.Score = math.NaN(), math.NaN()
	q := detect.QuarantineEvent{ID: "q1", Time: at(3 * time.Minute), Action: detect.ActionQuarantine, Mode: detect.ModeAutomatic,
		Device: "plc-a", Group: "plant-a/s7", TargetGroup: "quarantine", Reasons: []string{alarm.ID}, Severity: 7}

	var buf []byte
	buf = append(sinks.AppendAlertJSON(buf, &alarm), '\n')
	buf = append(sinks.AppendQuarantineJSON(buf, &q), "\n\n"...)
	buf = sinks.AppendAlertJSON(buf, &cleared) // no final newline

	got, err := score.ReadAlerts(strings.NewReader(string(buf)))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("read %d alerts, want 2 (the quarantine event skipped)", len(got))
	}
	if !math.IsNaN(got[1].Observed) || !math.IsNaN(got[1].Score) {
		t.Errorf("null observed/score came back as %v/%v, want NaN", got[1].Observed, got[1].Score)
	}
	got[1].Observed, got[1].Score = cleared.Observed, cleared.Score // NaN != NaN
	for i, want := range []detect.Alert{alarm, cleared} {
		g := got[i]
		if !g.EventTime.Equal(want.EventTime) || !g.AlarmStart.Equal(want.AlarmStart) || !g.ProcessingTime.Equal(want.ProcessingTime) {
			t.Errorf("alert %d times = %v %v %v, want %v %v %v", i, g.EventTime, g.AlarmStart, g.ProcessingTime, want.EventTime, want.AlarmStart, want.ProcessingTime)
		}
		g.EventTime, g.AlarmStart, g.ProcessingTime = want.EventTime, want.AlarmStart, want.ProcessingTime
		if i == 1 {
			g.Observed, g.Score = 0, 0
			want.Observed, want.Score = 0, 0
		}
		if !reflect.DeepEqual(g, want) {
			t.Errorf("alert %d:\n got %+v\nwant %+v", i, g, want)
		}
	}
}

func TestReadAlertsErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"not JSON", `{"state":"alarm","event_time":"2026-11-03T10:00:00Z"}` + "\n\nnot json\n", "line 3: cannot parse alert JSON"},
		{"no event time", `{"id":"x","state":"alarm","event_time":null}`, `line 1: alert "x" has no event_time`},
		{"newer schema", "\n" + `{"schema_version":2,"state":"alarm","event_time":"2026-11-03T10:00:00Z"}`, "line 2: alert schema_version 2 is newer than 1"},
		{"bad time", `{"state":"alarm","event_time":"yesterday"}`, "line 1: cannot parse alert JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := score.ReadAlerts(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestAlarms pairs raises with clears by detector, device, behavior and
// alarm start (a clear's ID is its own, as detect makes it): a redelivered
// raise and clear
// change nothing, an alarm without a clear stays open, and a clear without
// an alarm is ignored. Input order does not matter, event time does.
func TestAlarms(t *testing.T) {
	raise := func(id, dev string, tm time.Duration) detect.Alert {
		return detect.Alert{ID: id, State: detect.StateAlarm, Device: dev, Detector: "self", Behavior: "cpu", EventTime: at(tm), AlarmStart: at(tm)}
	}
	clear := func(dev string, start, tm time.Duration) detect.Alert {
		return detect.Alert{ID: dev + "/cleared", State: detect.StateCleared, Device: dev, Detector: "self", Behavior: "cpu", EventTime: at(tm), AlarmStart: at(start)}
	}
	got := score.Alarms([]detect.Alert{
		clear("plc-1", time.Minute, 10*time.Minute), // before its raise in the input, after it in event time
		raise("a", "plc-1", time.Minute),
		raise("b", "plc-2", 5*time.Minute),
		raise("a", "plc-1", time.Minute),            // redelivered
		clear("plc-1", time.Minute, 10*time.Minute), // redelivered
		clear("plc-9", time.Minute, 2*time.Minute),  // no such alarm
		{ID: "c", State: "unknown", EventTime: at(0)},
	})
	want := []score.Alarm{
		{ID: "a", Device: "plc-1", Detector: "self", Behavior: "cpu", Raised: at(time.Minute), Cleared: at(10 * time.Minute)},
		{ID: "b", Device: "plc-2", Detector: "self", Behavior: "cpu", Raised: at(5 * time.Minute)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Alarms:\n got %+v\nwant %+v", got, want)
	}
	if got[0].Open() || !got[1].Open() {
		t.Errorf("Open() = %v, %v; want false, true", got[0].Open(), got[1].Open())
	}
}

// FuzzReadAlerts feeds arbitrary lines to ReadAlerts: no panic, and every
// alert it accepts survives another trip through the JSON sink and back.
func FuzzReadAlerts(f *testing.F) {
	paths, _ := filepath.Glob("../../testdata/score/*/alerts.jsonl")
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		for _, line := range bytes.Split(data, []byte("\n")) {
			f.Add(line)
		}
	}
	f.Add([]byte(`{"state":"alarm","event_time":"2026-11-03T10:00:00+02:00","device":"\u2028x\ud800","observed":-0,"score":1e400}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		alerts, err := score.ReadAlerts(bytes.NewReader(data))
		if err != nil {
			return
		}
		for i := range alerts {
			a := &alerts[i]
			if a.EventTime.IsZero() {
				t.Fatalf("accepted an alert without event time: %+v", a)
			}
			line := sinks.AppendAlertJSON(nil, a)
			back, err := score.ReadAlerts(bytes.NewReader(line))
			if err != nil || len(back) != 1 {
				t.Fatalf("cannot read back %s: %v", line, err)
			}
			want := *a
			want.Severity = min(max(want.Severity, 0), 10) // the sink clamps it
			if !sameAlert(back[0], want) {
				t.Fatalf("round trip changed the alert:\n got %+v\nwant %+v", back[0], want)
			}
		}
		score.Alarms(alerts)
	})
}

// sameAlert compares alerts with times by Equal and NaN equal to NaN.
func sameAlert(a, b detect.Alert) bool {
	for _, tm := range []struct{ a, b *time.Time }{{&a.EventTime, &b.EventTime}, {&a.ProcessingTime, &b.ProcessingTime}, {&a.AlarmStart, &b.AlarmStart}} {
		if !tm.a.Equal(*tm.b) {
			return false
		}
		*tm.a = *tm.b
	}
	for _, f := range []struct{ a, b *float64 }{{&a.Observed, &b.Observed}, {&a.Expected, &b.Expected}, {&a.Lower, &b.Lower}, {&a.Upper, &b.Upper}, {&a.Score, &b.Score}} {
		if math.IsNaN(*f.a) != math.IsNaN(*f.b) || !math.IsNaN(*f.a) && *f.a != *f.b {
			return false
		}
		*f.a, *f.b = 0, 0
	}
	return reflect.DeepEqual(a, b)
}

// TestRejectionAlertsFindClockIncidents: a refused row is a clock alarm
// at the stream time it was refused, so a clock incident is found by its
// record's refusal, and a refusal outside every incident is false.
func TestRejectionAlertsFindClockIncidents(t *testing.T) {
	at := time.Date(2026, 11, 22, 15, 0, 0, 0, time.UTC)
	rows := []ingest.RejectedRow{
		{Device: "pump-018", Reason: ingest.RejectFutureTime, StreamTime: at.UnixNano(), Offset: -1},
		{Device: "pump-002", Reason: ingest.RejectFutureTime, StreamTime: at.Add(48 * time.Hour).UnixNano(), Offset: -1},
	}
	incidents := []score.Incident{{ID: "future-record", Device: "pump-018", Start: at.Add(-10 * time.Minute), End: at.Add(20 * time.Minute)}}
	rep := score.Score(score.RejectionAlerts(rows), incidents, nil, score.Options{})
	v := rep.IncidentView
	if v.IncidentsDetected != 1 || v.Incidents[0].By == nil || v.Incidents[0].By.Detector != score.DetectorClock ||
		v.Incidents[0].By.Behavior != ingest.RejectFutureTime || !v.Incidents[0].By.Raised.Equal(at) {
		t.Fatalf("incident result %+v, want found by clock/%s at %s", v.Incidents[0], ingest.RejectFutureTime, at)
	}
	if v.FalseAlarms != 1 || v.FalseAlarmList[0].Device != "pump-002" {
		t.Errorf("false alarms %+v, want the refusal on pump-002", v.FalseAlarmList)
	}
	if rep.Alarms != 2 {
		t.Errorf("%d alarms, want one per refused row", rep.Alarms)
	}
}
