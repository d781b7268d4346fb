package detect

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/ingest"
)

func TestAlarmStateHysteresis(t *testing.T) {
	var s alarmState
	seq := []struct {
		breach bool
		want   transition
	}{
		{true, noChange}, {true, noChange}, {false, noChange}, // two breaches, then reset
		{true, noChange}, {true, noChange}, {true, raised}, // third consecutive: alarm
		{true, noChange}, {false, noChange}, {true, noChange}, // one clean is not enough
		{false, noChange}, {false, cleared}, // two consecutive clean: cleared
		{false, noChange}, {true, noChange},
	}
	for i, st := range seq {
		if got := s.step(int64(i), st.breach, 3, 2); got != st.want {
			t.Fatalf("datapoint %d (breach %v): got %v, want %v", i, st.breach, got, st.want)
		}
		if i == 5 && s.since != 3 {
			t.Fatalf("alarm start %d, want the first breach of the run (3)", s.since)
		}
	}
}

// spikeRuleConfig raises one rule alarm per device whose temp is 99:
// exact counts for lifecycle tests.
func spikeRuleConfig() Config {
	cfg := DefaultConfig()
	cfg.Self.Enabled, cfg.Peer.Enabled, cfg.Fleet.Enabled, cfg.Silence.Enabled = false, false, false, false
	cfg.Rules = []RuleConfig{{Name: "overheat", Metric: "temp", ComparisonOperator: OpGreaterThan, Value: fptr(90), ToClear: 2}}
	return cfg
}

func spike(devs map[int]bool, from, to int) mutator {
	return func(m, i int, d *simDevice, r *ingest.Row) bool {
		if devs[i] && m >= from && m < to {
			r.Metrics[3].Value = 99
		}
		return true
	}
}

func TestSuppression(t *testing.T) {
	cfg := spikeRuleConfig()
	cfg.Suppress = []SuppressionConfig{
		{Device: "plant-a-*-dev-01", Behavior: "over*", Reason: "known hot spot"},
		{Group: "plant-b/*", Detector: "rule", Until: "2026-11-16T00:10:00Z"},
	}
	s := newSim(t, cfg, twoGroups, 5, nil)
	// plant-a 1 suppressed forever; plant-b 6 suppressed at minute 5,
	// not at minute 20 (the suppression ended); plant-a 2 never.
	s.run(0, 30, func(m, i int, d *simDevice, r *ingest.Row) bool {
		if (i == 1 || i == 2) && m >= 5 && m < 8 || i == 6 && (m == 5 || m == 20) {
			r.Metrics[3].Value = 99
		}
		return true
	})
	got := map[string]int{}
	for _, a := range s.sink.alerts {
		got[a.Device+" "+a.State]++
	}
	want := map[string]int{
		s.devices[2].name + " alarm": 1, s.devices[2].name + " cleared": 1,
		s.devices[6].name + " alarm": 1, s.devices[6].name + " cleared": 1,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v:\n%s", got, want, s.sink.dump())
	}
	if a := s.sink.find("", "", s.devices[6].name, StateAlarm); a[0].EventTime.Before(at(20)) {
		t.Fatalf("plant-b alarm during its suppression: %v", a[0].EventTime)
	}
	if st := s.eng.Stats(); st.Suppressed != 2 {
		t.Fatalf("suppressed %d, want 2", st.Suppressed)
	}
}

func TestMaintenanceWindows(t *testing.T) {
	cfg := spikeRuleConfig()
	cfg.Maintenance = []MaintenanceConfig{
		{Name: "firmware rollout", Group: "plant-a/*", Start: "2026-11-16T00:00:00Z", End: "2026-11-16T00:15:00Z"},
		// simEpoch is a Monday
		{Name: "weekly", Device: "plant-b-*-dev-0[0-2]", Weekly: "mon 00:30-01:00"},
	}
	s := newSim(t, cfg, twoGroups, 5, nil)
	s.run(0, 70, func(m, i int, d *simDevice, r *ingest.Row) bool {
		if (i == 0 || i == 5 || i == 8) && (m == 10 || m == 40) {
			r.Metrics[3].Value = 99
		}
		return true
	})
	var got []string
	for _, a := range s.sink.find("", "", "", StateAlarm) {
		got = append(got, fmt.Sprintf("%s@%d", a.Device, int(a.EventTime.Sub(simEpoch)/time.Minute)))
	}
	// 0@10 in the rollout; 5@40 in the weekly window; 8 is not in it.
	want := []string{
		"plant-b-s7-1200-dev-00@10", "plant-b-s7-1200-dev-03@10",
		"plant-a-s7-1500-dev-00@40", "plant-b-s7-1200-dev-03@40",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("alarms %v, want %v", got, want)
	}
	if st := s.eng.Stats(); st.Maintenance != 2 {
		t.Fatalf("maintenance-held alarms %d, want 2", st.Maintenance)
	}
	// a held alarm's clear is not sent either
	if n := len(s.sink.find("", "", "", StateCleared)); n != 4 {
		t.Fatalf("clears %d, want 4:\n%s", n, s.sink.dump())
	}
}

func TestRateLimitOneIncident(t *testing.T) {
	cfg := spikeRuleConfig()
	cfg.RateLimit = RateLimitConfig{Enabled: true, Burst: 3, Refill: time.Minute}
	s := newSim(t, cfg, twoGroups, 15, nil)
	all := map[int]bool{}
	for i := 0; i < 15; i++ {
		all[i] = true
	}
	all[20] = true // one plant-b device: its own bucket
	s.run(0, 40, spike(all, 10, 13))
	a := s.sink.find(DetectorRule, "overheat", "", StateAlarm)
	if len(a) != 4 {
		t.Fatalf("want 3 plant-a alarms + 1 plant-b, got %d:\n%s", len(a), s.sink.dump())
	}
	storm := s.sink.find(DetectorFleet, behaviorAlarmStorm, twoGroups[0], "")
	if len(storm) != 2 || storm[0].State != StateAlarm || storm[1].State != StateCleared {
		t.Fatalf("want one storm alarm and its summary:\n%s", s.sink.dump())
	}
	if storm[1].Observed != 12 || storm[1].ObservedText != "rule:12" || !strings.Contains(storm[1].Message, "12 alarms were held back") {
		t.Fatalf("storm summary %+v", storm[1])
	}
	// the summary comes once the bucket could refill: 3 minutes after the
	// last held-back alarm
	if storm[1].EventTime.Before(at(13)) || storm[1].EventTime.After(at(14)) {
		t.Fatalf("storm summary at %v", storm[1].EventTime)
	}
	if st := s.eng.Stats(); st.RateLimited != 12 || st.Alerts[DetectorRule] != 4 || st.Alerts[DetectorFleet] != 1 {
		t.Fatalf("stats %+v", st)
	}
	// held-back alarms clear silently: only the 4 sent ones clear
	if n := len(s.sink.find(DetectorRule, "", "", StateCleared)); n != 4 {
		t.Fatalf("clears %d, want 4", n)
	}
	if len(s.sink.find("", "", twoGroups[1], "")) != 0 {
		t.Fatalf("plant-b had a storm")
	}
}

func TestFlushClosesOpenStorm(t *testing.T) {
	cfg := spikeRuleConfig()
	cfg.RateLimit = RateLimitConfig{Enabled: true, Burst: 1, Refill: time.Hour}
	s := newSim(t, cfg, twoGroups[:1], 4, nil)
	s.run(0, 12, spike(map[int]bool{0: true, 1: true, 2: true, 3: true}, 10, 11))
	if n := len(s.sink.find(DetectorFleet, behaviorAlarmStorm, "", StateCleared)); n != 0 {
		t.Fatalf("storm closed before the input ended")
	}
	if err := s.eng.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	cl := s.sink.find(DetectorFleet, behaviorAlarmStorm, "", StateCleared)
	if len(cl) != 1 || cl[0].Observed != 3 || cl[0].EventTime.Before(at(10)) || cl[0].EventTime.After(at(11)) {
		t.Fatalf("want the storm summary at the last held-back alarm:\n%s", s.sink.dump())
	}
}

func TestSeverityAndCriticality(t *testing.T) {
	cfg := spikeRuleConfig()
	cfg.Rules[0].Severity = 6
	assets := assetMap{
		"plant-a-s7-1500-dev-01": {Criticality: ingest.CriticalityLow},
		"plant-a-s7-1500-dev-02": {Criticality: ingest.CriticalitySafety},
	}
	s := newSim(t, cfg, twoGroups[:1], 3, assets)
	s.run(0, 10, spike(map[int]bool{0: true, 1: true, 2: true}, 5, 6))
	sev := map[string]int{}
	for _, a := range s.sink.find("", "", "", StateAlarm) {
		sev[a.Criticality] = a.Severity
	}
	// rule base 6; excess 99/90 < 2: no score bonus
	if sev["unknown"] != 6 || sev["low"] != 5 || sev["safety-critical"] != 8 {
		t.Fatalf("severities by criticality %v", sev)
	}
	for _, a := range s.sink.find("", "", "", StateCleared) {
		if a.Severity != sev[a.Criticality] {
			t.Fatalf("clear severity %d differs from its alarm's", a.Severity)
		}
	}
}

func quarantineConfig() Config {
	cfg := spikeRuleConfig()
	cfg.RateLimit.Enabled = false
	cfg.Rules[0].Severity = 9
	cfg.Quarantine = QuarantineConfig{
		Enabled: true, Detectors: []string{DetectorRule}, MinSeverity: 8, RecommendMinSeverity: 7,
		Mode: ModeAutomatic, TargetGroup: "quarantine-{group}", Expiry: 24 * time.Hour,
		MaxGroupFraction: 0.1, MaxPerMinute: 5, ReleaseAfter: 4,
	}
	return cfg
}

func TestQuarantineRailsAndSafety(t *testing.T) {
	assets := assetMap{"plant-a-s7-1500-dev-03": {Criticality: ingest.CriticalitySafety}}
	s := newSim(t, quarantineConfig(), twoGroups[:1], 20, assets)
	// 10% of 20 devices: two automatic quarantines; device 3 is
	// safety-critical; devices 4 and 5 hit the group rail.
	s.run(0, 30, func(m, i int, d *simDevice, r *ingest.Row) bool {
		if i <= 5 && m >= 10+i && m < 16 {
			r.Metrics[3].Value = 99
		}
		return true
	})
	var got []string
	for _, q := range s.sink.quarantine {
		got = append(got, q.Action+":"+strings.TrimPrefix(q.Device, "plant-a-s7-1500-dev-")+":"+q.Mode)
	}
	want := "quarantine:00:automatic quarantine:01:automatic recommend:02:approval_required recommend:03:approval_required recommend:04:approval_required recommend:05:approval_required release:00:automatic release:01:automatic"
	if strings.Join(got, " ") != want {
		t.Fatalf("quarantine events\n got %s\nwant %s\n%s", strings.Join(got, " "), want, s.sink.dump())
	}
	q0 := s.sink.quarantine[0]
	if q0.TargetGroup != "quarantine-plant-a/s7-1500" || len(q0.Reasons) != 1 || q0.Severity != 9 ||
		!q0.Expiry.Equal(q0.Time.Add(24*time.Hour)) || q0.ID != AlertID("quarantine", q0.Device, ActionQuarantine, q0.Time) {
		t.Fatalf("quarantine event %+v", q0)
	}
	if q0.Reasons[0] != s.sink.find(DetectorRule, "overheat", q0.Device, StateAlarm)[0].ID {
		t.Fatalf("reason is not the alarm's id")
	}
	if !strings.Contains(s.sink.quarantine[3].Message, "safety-critical") || !strings.Contains(s.sink.quarantine[2].Message, "safety rail") {
		t.Fatalf("recommendations do not say why:\n%s", s.sink.dump())
	}
	rail := s.sink.find(DetectorFleet, behaviorQuarantineRail, twoGroups[0], "")
	if len(rail) != 2 || rail[0].State != StateAlarm || rail[1].State != StateCleared {
		t.Fatalf("want one rail alarm, cleared after the releases:\n%s", s.sink.dump())
	}
	// released once clear for 4 reports: the alarm clears at 17 (two clean
	// datapoints), which is the first of the 4 clean reports
	rel := s.sink.quarantine[6]
	if rel.Time.Before(at(20)) || rel.Time.After(at(21)) || rel.Reasons[0] != q0.Reasons[0] {
		t.Fatalf("release %+v", rel)
	}
}

func TestQuarantinePerMinuteRail(t *testing.T) {
	cfg := quarantineConfig()
	cfg.Quarantine.MaxGroupFraction = 1
	cfg.Quarantine.MaxPerMinute = 2
	s := newSim(t, cfg, twoGroups[:1], 10, nil)
	s.run(0, 12, spike(map[int]bool{0: true, 1: true, 2: true, 3: true}, 5, 6))
	var actions []string
	for _, q := range s.sink.quarantine {
		actions = append(actions, q.Action)
	}
	if strings.Join(actions, ",") != "quarantine,quarantine,recommend,recommend,release,release" {
		t.Fatalf("actions %v:\n%s", actions, s.sink.dump())
	}
	if n := len(s.sink.find(DetectorFleet, behaviorQuarantineRail, "", StateAlarm)); n != 1 {
		t.Fatalf("want one rail alert, got %d", n)
	}
}

func TestQuarantineApprovalModeAndLowSeverity(t *testing.T) {
	cfg := quarantineConfig()
	cfg.Quarantine.Mode = ModeApprovalRequired
	cfg.Rules = append(cfg.Rules, RuleConfig{Name: "warm", Metric: "cpu", ComparisonOperator: OpGreaterThan, Value: fptr(200), Severity: 3})
	s := newSim(t, cfg, twoGroups[:1], 10, nil)
	s.run(0, 12, func(m, i int, d *simDevice, r *ingest.Row) bool {
		if i == 0 && m == 5 {
			r.Metrics[3].Value = 99
		}
		if i == 1 && m == 5 {
			r.Metrics[2].Value = 300 // severity 3: below recommend_min_severity
		}
		return true
	})
	if len(s.sink.quarantine) != 1 || s.sink.quarantine[0].Action != ActionRecommend || s.sink.quarantine[0].Mode != ModeApprovalRequired {
		t.Fatalf("approval mode:\n%s", s.sink.dump())
	}
}

// runScenario runs a mixed incident scenario cut into batches of
// batchMinutes and returns its output as text, in full and as the alarm
// lifecycle alone (ids, states, times).
func runScenario(t *testing.T, batchMinutes int) (full, lifecycle string) {
	cfg := DefaultConfig()
	cfg.Rules = []RuleConfig{{Name: "auth", Metric: "auth_failures", ComparisonOperator: OpGreaterThan, Value: fptr(5), Duration: 5 * time.Minute}}
	cfg.Quarantine = quarantineConfig().Quarantine
	s := newSim(t, cfg, twoGroups, 20, nil)
	s.batchMinutes = batchMinutes
	s.run(0, 300, func(m, i int, d *simDevice, r *ingest.Row) bool {
		switch {
		case i == 3 && m >= 200 && m < 215:
			r.Metrics[0].Value *= 15
		case i == 4 && m >= 210 && m < 240:
			return false
		case i == 5 && m >= 220 && m < 225:
			r.Metrics[4].Value = 3
		case i == 25 && m >= 230:
			r.Firmware = "1.0.0"
		case i == 25:
			r.Firmware = "1.2.0"
		}
		return true
	})
	var b, l strings.Builder
	for _, a := range s.sink.alerts {
		fmt.Fprintf(&b, "%+v\n", a)
		fmt.Fprintf(&l, "%s %s %s %s/%s %s %s\n", a.ID, a.State, a.Device, a.Detector, a.Behavior, a.EventTime, a.AlarmStart)
	}
	for _, q := range s.sink.quarantine {
		fmt.Fprintf(&b, "%+v\n", q)
		fmt.Fprintf(&l, "%s %s %s %s\n", q.ID, q.Action, q.Device, q.Time)
	}
	return b.String(), l.String()
}

func TestDeterministicAcrossRunsAndBatching(t *testing.T) {
	a, al := runScenario(t, 1)
	for _, want := range []string{"Detector:self", "Detector:silence", "Detector:rule", "Behavior:firmware_downgrade", "Action:recommend"} {
		if !strings.Contains(a, want) {
			t.Fatalf("scenario lacks %s:\n%s", want, a)
		}
	}
	if b, _ := runScenario(t, 1); a != b {
		t.Fatalf("same input twice gave different output:\n%s\n---\n%s", a, b)
	}
	// Cut differently, the output is the same, to the baseline versions
	// and peer percentiles in the alerts: every row is judged against the
	// state as of that row.
	if c, cl := runScenario(t, 7); al != cl || a != c {
		t.Fatalf("batching changed the output:\n%s\n---\n%s", a, c)
	}
}

func TestFailedDeliveryIsRetriedAndNacked(t *testing.T) {
	s := newSim(t, spikeRuleConfig(), twoGroups[:1], 5, nil)
	s.run(0, 5, nil)
	var acks []error
	send := func(m int) error {
		for i := range s.devices {
			r := &s.row
			r.Reset()
			r.TimeNanos = at(m).Add(time.Duration(i) * time.Second).UnixNano()
			r.Device, r.Group = s.devices[i].name, s.devices[i].group
			temp := 40.0
			if m == 5 && i == 0 {
				temp = 99
			}
			r.Metrics = append(r.Metrics, ingest.Metric{Name: "temp", Value: temp})
			s.builder.Append(r)
		}
		rec, _ := s.builder.NewRecord()
		return s.eng.Process(context.Background(), ingest.NewBatch(rec, func(_ context.Context, err error) { acks = append(acks, err) }))
	}
	refused := errors.New("receiver down")
	s.sink.fail = refused
	if err := send(5); !errors.Is(err, refused) {
		t.Fatalf("Process returned %v, want the sink's error", err)
	}
	if len(acks) != 1 || !errors.Is(acks[0], refused) {
		t.Fatalf("batch acked with %v, want the delivery error", acks)
	}
	s.sink.fail = nil
	if err := send(6); err != nil {
		t.Fatal(err)
	}
	if len(acks) != 2 || acks[1] != nil {
		t.Fatalf("acks %v", acks)
	}
	if a := s.sink.find(DetectorRule, "overheat", s.devices[0].name, StateAlarm); len(a) != 1 {
		t.Fatalf("the undelivered alarm was not sent with the next batch:\n%s", s.sink.dump())
	}
	if err := s.eng.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// failSecond is a sink that refuses its second Write, once.
type failSecond struct {
	collectSink
	err error
}

func (s *failSecond) Write(ctx context.Context, out *Output) error {
	if s.writes++; s.writes == 2 {
		return s.err
	}
	s.writes-- // counted again by collectSink.Write
	return s.collectSink.Write(ctx, out)
}

// TestDeliveryInOrderOfMaking: an output with an alert after a quarantine
// event goes out in Writes that keep the order things were made in; when a
// later Write fails, only what it held is sent again.
func TestDeliveryInOrderOfMaking(t *testing.T) {
	refused := errors.New("receiver down")
	sink := &failSecond{err: refused}
	var box Outbox
	alert := func(id string) { box.AddAlert(&Alert{ID: id}) }
	event := func(id string) { box.AddQuarantine(&QuarantineEvent{ID: id}) }
	alert("a1")
	event("q1")
	event("q2")
	alert("a2")
	alert("a3")
	event("q3")
	if err := box.Deliver(context.Background(), sink); !errors.Is(err, refused) {
		t.Fatalf("deliver: %v, want the refusal of the second Write", err)
	}
	alert("a4") // the next batch's
	if err := box.Deliver(context.Background(), sink); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(sink.order, " "), "a1 q1 q2 | a2 a3 q3 | a4"; got != want {
		t.Fatalf("writes %q, want %q", got, want)
	}
}

// networkLike is a real batch detector: one alert per NetEvent.
type networkLike struct{}

func (networkLike) DetectBatch(b *ingest.Batch, out *Output) {
	for _, ev := range b.Events {
		out.Alerts = append(out.Alerts, Alert{
			EventTime: time.Unix(0, ev.TimeNanos).UTC(), Device: ev.Device, Group: ev.Group,
			Detector: DetectorScan, Behavior: ev.Kind, Observed: ev.Value, Upper: ev.Threshold,
			Message: ev.Detail,
		})
	}
}

func TestBatchDetectorsGoThroughLifecycle(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Suppress = []SuppressionConfig{{Device: "10.0.0.66", Detector: "scan"}}
	reg := ingest.NewRegistry()
	sink := &collectSink{}
	eng, err := NewEngine(cfg, Deps{Registry: reg, Baseline: baseline.NewStore(testBaselineConfig(), reg), Sink: sink, Extra: []BatchDetector{networkLike{}}})
	if err != nil {
		t.Fatal(err)
	}
	ev := func(m int, dev string) ingest.NetEvent {
		return ingest.NetEvent{TimeNanos: at(m).UnixNano(), Kind: "scan_ports", Device: dev, Group: "plant-a/ot", Value: 400, Threshold: 50, Detail: dev + " probed 400 ports"}
	}
	for _, evs := range [][]ingest.NetEvent{
		{ev(1, "10.0.0.5"), ev(2, "10.0.0.5"), ev(1, "10.0.0.66")}, // the repeat folds, .66 is suppressed
		{ev(20, "10.0.0.5")}, // after repeat_window: a new alert
	} {
		b := ingest.NewBatch(nil, nil)
		b.Events = evs
		if err := eng.Process(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	if len(sink.alerts) != 2 {
		t.Fatalf("want 2 scan alerts:\n%s", sink.dump())
	}
	a := sink.alerts[0]
	// base 6 + floor(log2(400/50)) = 3 → 9
	if a.ID != AlertID(DetectorScan, "10.0.0.5", "scan_ports", at(1)) || a.Severity != 9 || a.State != StateAlarm || a.Criticality != "unknown" {
		t.Fatalf("batch alert %+v", a)
	}
	if st := eng.Stats(); st.Folded != 1 || st.Suppressed != 1 || st.Alerts[DetectorScan] != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestProcessingTimeFromClock(t *testing.T) {
	cfg := spikeRuleConfig()
	s := newSim(t, cfg, twoGroups[:1], 3, nil)
	wall := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s.eng.deps.Clock = func() time.Time { return wall }
	s.run(0, 10, spike(map[int]bool{0: true}, 5, 6))
	for _, a := range s.sink.alerts {
		if !a.ProcessingTime.Equal(wall) || a.EventTime.Equal(wall) {
			t.Fatalf("processing time %v event time %v", a.ProcessingTime, a.EventTime)
		}
	}
	if len(s.sink.alerts) != 2 {
		t.Fatalf("want alarm and clear:\n%s", s.sink.dump())
	}
}
