package console

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/detect"
)

var updateShared = flag.Bool("update", false, "rewrite the golden records in testdata/shared")

// goldenRecords are a status record with its quarantine episode's event
// and a decision on it, as the status topic carries them.
func goldenRecords() (status, decision sharedRecord) {
	at := time.Date(2026, 12, 6, 14, 0, 0, 0, time.UTC)
	rec := detect.QuarantineEvent{ID: "q-1f2e", Time: at, Action: detect.ActionRecommend, Mode: detect.ModeApprovalRequired,
		Device: "plc-a-002", Group: "plant-a/s7-1500", TargetGroup: "quarantine-plant-a", Reasons: []string{"a-77"}, Severity: 8,
		Message: "recommend quarantine of plc-a-002"}
	st := detect.DeviceStatus{Device: "plc-a-002", Group: "plant-a/s7-1500", LastSeen: at.Add(time.Minute), Alarms: 2,
		Quarantine: detect.ActionRecommend, QuarantineID: "q-1f2e", QuarantineSince: at, Interval: time.Minute,
		SourceIPs: []string{"10.1.0.2"}, ClientIDs: []string{"plc-a-002"}, Firmware: "2.9.4", FirmwareSince: at.Add(-72 * time.Hour),
		EarlierFirmware: []detect.FirmwareRun{{Version: "2.9.1", Since: at.Add(-90 * 24 * time.Hour)}}}
	open := []detect.Alert{{ID: "a-77", EventTime: at, ProcessingTime: at, AlarmStart: at, State: detect.StateAlarm, Device: "plc-a-002",
		Group: "plant-a/s7-1500", Detector: detect.DetectorSelf, Behavior: "bytes_out", Observed: 75300, Expected: 9097, Lower: -734,
		Upper: 18900, Score: 40.39, Severity: 8, SampleCount: 2037, Message: "plc-a-002 (plant-a/s7-1500) bytes_out 75.3 kB, 8.3× its usual 9.1 kB"}}
	sr := newStatusRecord("vigil-a", &st, &rec, open)
	sent := detect.QuarantineEvent{ID: "q-9c0d", Time: at.Add(2 * time.Minute), Action: detect.ActionQuarantine, Mode: detect.ModeApprovalRequired,
		Device: "plc-a-002", Group: "plant-a/s7-1500", TargetGroup: "quarantine-plant-a", Reasons: []string{"q-1f2e", "a-77"}, Severity: 8,
		Message: "quarantine plc-a-002 into quarantine-plant-a: recommendation approved by alice at 2026-12-06T14:02:00Z"}
	dr := decisionRecord{V: sharedVersion, Decision: Decision{Action: ActionApprove, By: "alice", At: sent.Time, Event: "q-1f2e", Sent: "q-9c0d"},
		Event: toWireEvent(&sent), SentBy: "vigil-a"}
	return sharedRecord{Device: st.Device, Status: &sr}, sharedRecord{Device: st.Device, Decision: &dr}
}

// goldenGroup is a protecting group with one metric learned (a quantile
// not known yet: null on the wire, NaN in the console), and its
// hour-of-day profile (one hour not learned yet: null, NaN).
func goldenGroup() sharedRecord {
	at := time.Date(2026, 12, 6, 14, 0, 0, 0, time.UTC)
	profile := make([]float64, 24)
	for h := range profile {
		profile[h] = float64(h%12) - 5.5
	}
	profile[3] = math.NaN()
	g := detect.GroupStatus{GroupInfo: baseline.GroupInfo{Name: "plant-a/s7-1500", Rows: 14400, First: at.Add(-48 * time.Hour), Last: at,
		Span: 48 * time.Hour, Devices: 10, Metrics: []baseline.MetricInfo{{Name: "cpu_pct", Samples: 14400, Mean: 41.5, Std: 3.25,
			Quantiles: [baseline.NumQuantiles]float64{31, 33, 36, 41.5, 47, 50, math.NaN()}, SeasonalBuckets: 48,
			ProfileKind: baseline.ProfileHourOfDay, Profile: profile}}},
		MinSamples: 1000, MinDuration: 24 * time.Hour}
	r := newGroupRecord("vigil-a", &g)
	return sharedRecord{Group: &r}
}

// TestSharedRecordsGolden: the wire format of the status topic is the
// one docs/kafka.md shows; a change to it shows up here.
func TestSharedRecordsGolden(t *testing.T) {
	status, decision := goldenRecords()
	for _, c := range []struct {
		file string
		key  []byte
		rec  sharedRecord
		v    any
	}{
		{"status.json", statusKey("plc-a-002"), status, status.Status},
		{"decision.json", decisionKey("q-1f2e", "plc-a-002"), decision, decision.Decision},
		{"group.json", groupKey("plant-a/s7-1500"), goldenGroup(), goldenGroup().Group},
	} {
		got, err := json.MarshalIndent(c.v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, '\n')
		path := filepath.Join("testdata", "shared", c.file)
		if *updateShared {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s changed (go test -update rewrites it):\n%s", path, got)
		}
		back, err := decodeShared(c.key, want)
		if err != nil {
			t.Fatalf("%s does not decode: %v", path, err)
		}
		if again, _ := json.MarshalIndent(sharedValue(back), "", "  "); !bytes.Equal(append(again, '\n'), want) {
			t.Errorf("%s does not survive a round trip:\n%s", path, again)
		}
	}
}

// TestDecodeSharedRejects: records a console did not write, or that
// disagree with their key, are errors (the follower counts and skips
// them); a status tombstone removes its device.
func TestDecodeSharedRejects(t *testing.T) {
	status, _ := goldenRecords()
	good, _ := json.Marshal(status.Status)
	for _, c := range []struct {
		name       string
		key, value string
	}{
		{"no prefix", "plc-a-002", string(good)},
		{"another device", "status/plc-a-003", string(good)},
		{"not JSON", "status/plc-a-002", "\x01\x02"},
		{"version 2", "status/plc-a-002", `{"v":2,"device":"plc-a-002"}`},
		{"no version", "status/plc-a-002", `{"device":"plc-a-002"}`},
		{"unknown quarantine", "status/plc-a-002", `{"v":1,"device":"plc-a-002","quarantine":"maybe"}`},
		{"event of another episode", "status/plc-a-002", `{"v":1,"device":"plc-a-002","quarantine":"recommend","quarantine_id":"q1","event":{"id":"q2","device":"plc-a-002"}}`},
		{"open alarm of another device", "status/plc-a-002", `{"v":1,"device":"plc-a-002","open_alarms":[{"id":"a-1","event_time":"2026-12-06T14:00:00Z","state":"alarm","device":"plc-a-003"}]}`},
		{"open alarm cleared", "status/plc-a-002", `{"v":1,"device":"plc-a-002","open_alarms":[{"id":"a-1","event_time":"2026-12-06T14:00:00Z","state":"cleared","device":"plc-a-002"}]}`},
		{"open alarm not an alert", "status/plc-a-002", `{"v":1,"device":"plc-a-002","open_alarms":[{"id":"a-1","event_time":"2026-12-06T14:00:00Z","device":"plc-a-002"}]}`},
		{"open alarm without time", "status/plc-a-002", `{"v":1,"device":"plc-a-002","open_alarms":[{"id":"a-1","state":"alarm","device":"plc-a-002"}]}`},
		{"too many open alarms", "status/plc-a-002", `{"v":1,"device":"plc-a-002","open_alarms":[` + strings.Repeat(`{"id":"a-1","event_time":"2026-12-06T14:00:00Z","state":"alarm","device":"plc-a-002"},`, sharedOpenAlarms) + `{"id":"a-1","event_time":"2026-12-06T14:00:00Z","state":"alarm","device":"plc-a-002"}]}`},
		{"decision without device", "decision/q-1", `{"v":1}`},
		{"decision tombstone", "decision/q-1/plc-a-002", ""},
		{"decision on another event", "decision/q-1/plc-a-002", `{"v":1,"decision":{"action":"approve","event":"q-2","sent":"q-3"},"event":{"id":"q-3","device":"plc-a-002","action":"quarantine"}}`},
		{"unknown action", "decision/q-1/plc-a-002", `{"v":1,"decision":{"action":"ignore","event":"q-1","sent":"q-3"},"event":{"id":"q-3","device":"plc-a-002","action":"quarantine"}}`},
		{"event to send of another device", "decision/q-1/plc-a-002", `{"v":1,"decision":{"action":"approve","event":"q-1","sent":"q-3"},"event":{"id":"q-3","device":"plc-b-001","action":"quarantine"}}`},
		{"group of another name", "group/plant-b", `{"v":1,"group":"plant-a"}`},
		{"group tombstone", "group/plant-b", ""},
		{"event to send recommends", "decision/q-1/plc-a-002", `{"v":1,"decision":{"action":"approve","event":"q-1","sent":"q-3"},"event":{"id":"q-3","device":"plc-a-002","action":"recommend"}}`},
	} {
		var value []byte
		if c.value != "" {
			value = []byte(c.value)
		}
		if r, err := decodeShared([]byte(c.key), value); err == nil {
			t.Errorf("%s: decoded %+v", c.name, r)
		}
	}
	r, err := decodeShared([]byte("status/plc-a-002"), nil)
	if err != nil || r.Device != "plc-a-002" || r.Status != nil || r.Decision != nil {
		t.Errorf("a tombstone decodes as %+v, %v; want the removal of plc-a-002", r, err)
	}
}

// sharedValue is the value a decoded record came from.
func sharedValue(r sharedRecord) any {
	switch {
	case r.Status != nil:
		return r.Status
	case r.Group != nil:
		return r.Group
	}
	return r.Decision
}

// FuzzDecodeShared: no record of the status topic crashes the decoder,
// and one it accepts encodes to a value that decodes to the same record.
// The seed corpus (testdata/fuzz/FuzzDecodeShared) holds the golden
// records and their near misses.
func FuzzDecodeShared(f *testing.F) {
	status, decision := goldenRecords()
	sv, _ := json.Marshal(status.Status)
	dv, _ := json.Marshal(decision.Decision)
	f.Add([]byte("status/plc-a-002"), sv)
	f.Add([]byte("decision/q-1f2e/plc-a-002"), dv)
	gv, _ := json.Marshal(goldenGroup().Group)
	f.Add([]byte("group/plant-a/s7-1500"), gv)
	f.Fuzz(func(t *testing.T, key, value []byte) {
		r, err := decodeShared(key, value)
		if err != nil || (r.Status == nil && r.Decision == nil && r.Group == nil) {
			return
		}
		once, err := json.Marshal(sharedValue(r))
		if err != nil {
			t.Fatalf("an accepted record does not encode: %v", err)
		}
		back, err := decodeShared(key, once)
		if err != nil {
			t.Fatalf("an accepted record, encoded again, is refused: %v\n%s", err, once)
		}
		if twice, _ := json.Marshal(sharedValue(back)); !bytes.Equal(once, twice) {
			t.Fatalf("the round trip changed the record:\n%s\n%s", once, twice)
		}
	})
}
