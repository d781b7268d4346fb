package console

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/vigil-ot/vigil/detect"
)

// statusTopic starts kfake with a status topic of one partition (so
// records of different devices keep their order, which the tests use to
// synchronise) and returns its address.
func statusTopic(t *testing.T) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "status"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

func produceShared(t *testing.T, broker string, msgs ...kafkago.Message) {
	t.Helper()
	w := &kafkago.Writer{Addr: kafkago.TCP(broker), Topic: "status", RequiredAcks: kafkago.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(t.Context(), msgs...); err != nil {
		t.Fatal(err)
	}
}

func statusMessage(t *testing.T, owner string, st detect.DeviceStatus, ev *detect.QuarantineEvent) kafkago.Message {
	t.Helper()
	v, err := json.Marshal(newStatusRecord(owner, &st, ev, nil))
	if err != nil {
		t.Fatal(err)
	}
	return kafkago.Message{Key: statusKey(st.Device), Value: v}
}

// startShared starts a console on the status topic as instance, writing
// to sink (nil: a console without an engine).
func startShared(t *testing.T, broker, instance string, sink detect.Sink) (*Console, *Shared) {
	t.Helper()
	c := New(Options{Config: DefaultConfig()})
	s := Share(c, ShareOptions{Brokers: []string{broker}, Topic: "status", Instance: instance, Logger: slog.New(slog.DiscardHandler)})
	if sink != nil {
		s.Attach(sink, nil)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return c, s
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20 s", what)
		}
	}
}

// TestSharedSkipsBadRecordsAndTombstones: a console following the status
// topic lists the devices of its status records, counts and skips records
// it cannot read, and removes a device on its tombstone.
func TestSharedSkipsBadRecordsAndTombstones(t *testing.T) {
	broker := statusTopic(t)
	at := time.Date(2026, 12, 6, 14, 0, 0, 0, time.UTC)
	produceShared(t, broker,
		statusMessage(t, "vigil-a", detect.DeviceStatus{Device: "plc-1", Group: "g", LastSeen: at}, nil),
		kafkago.Message{Key: []byte("status/plc-2"), Value: []byte("{not json")},
		statusMessage(t, "vigil-b", detect.DeviceStatus{Device: "plc-2", Group: "g", LastSeen: at, Alarms: 1}, nil),
		kafkago.Message{Key: []byte("status/plc-3"), Value: []byte(`{"v":9,"device":"plc-3"}`)},
		statusMessage(t, "vigil-b", detect.DeviceStatus{Device: "plc-4", Group: "g", LastSeen: at}, nil),
		kafkago.Message{Key: []byte("status/plc-4")}, // tombstone
		statusMessage(t, "vigil-a", detect.DeviceStatus{Device: "plc-5", Group: "g", LastSeen: at}, nil),
	)
	c, s := startShared(t, broker, "", nil)
	poll(t, "the console lists plc-5", func() bool {
		_, ok := c.Device("plc-5")
		return ok
	})
	if got := searchAll(t, c, "group:g", "", 10); !slices.Equal(got, []string{"plc-1", "plc-2", "plc-5"}) {
		t.Errorf("the console lists %v; want plc-1, plc-2 and plc-5 (plc-3 unreadable, plc-4 removed)", got)
	}
	if got := searchAll(t, c, "status:alarm", "", 10); !slices.Equal(got, []string{"plc-2"}) {
		t.Errorf("in alarm: %v", got)
	}
	if n := s.rejected.Get(); n != 2 {
		t.Errorf("%d records rejected, want the 2 bad ones", n)
	}
}

// TestSharedGroups: an instance's groups reach a console without an
// engine over the topic: learning state and per-metric distribution, a
// quantile not known yet as null.
func TestSharedGroups(t *testing.T) {
	broker := statusTopic(t)
	_, publisher := startShared(t, broker, "vigil-a", &lockedSink{})
	g := goldenGroup().Group.status()
	publisher.PublishStatus(&detect.StatusUpdate{Groups: []detect.GroupStatus{g}})
	alone, _ := startShared(t, broker, "", nil)
	h := alone.Handler(nil)
	var body map[string]any
	poll(t, "the console alone shows the group", func() bool {
		var code int
		code, body = do(t, h, "GET", "/api/v1/groups/plant-a/s7-1500", "")
		return code == 200
	})
	m, _ := body["metrics"].(map[string]any)["cpu_pct"].(map[string]any)
	p, _ := m["percentiles"].(map[string]any)
	if body["min_samples"] != float64(1000) || m["mean"] != 41.5 || p["p50"] != 41.5 || p["p99.9"] != nil {
		t.Errorf("group plant-a/s7-1500: %v", body)
	}
}

// lockedSink keeps the quarantine events written to it, for tests that
// read them while a follower writes.
type lockedSink struct {
	mu     sync.Mutex
	events []detect.QuarantineEvent
}

func (s *lockedSink) Write(_ context.Context, out *detect.Output) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, out.Quarantine...)
	return nil
}

func (s *lockedSink) Close() error { return nil }

func (s *lockedSink) devices() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, e := range s.events {
		out = append(out, e.Device+" "+e.Action)
	}
	return out
}

// TestSharedDecisionSentOnce: a decision taken on a console without an
// engine goes over the topic to the instance that owns the device, which
// sends its quarantine event once and marks it sent; the same instance
// restarted does not send it again, but does send a decision still
// unsent.
func TestSharedDecisionSentOnce(t *testing.T) {
	broker := statusTopic(t)
	at := time.Date(2026, 12, 6, 14, 0, 0, 0, time.UTC)
	rec := func(dev string) *detect.QuarantineEvent {
		return &detect.QuarantineEvent{ID: "rec-" + dev, Time: at, Action: detect.ActionRecommend, Mode: detect.ModeApprovalRequired,
			Device: dev, Group: "g", TargetGroup: "quarantine-g", Reasons: []string{"a1"}, Severity: 8}
	}
	recommended := func(dev string) detect.DeviceStatus {
		return detect.DeviceStatus{Device: dev, Group: "g", LastSeen: at, Alarms: 1, Quarantine: detect.ActionRecommend,
			QuarantineID: "rec-" + dev, QuarantineSince: at}
	}
	produceShared(t, broker, statusMessage(t, "vigil-a", recommended("plc-1"), rec("plc-1")))

	sink := &lockedSink{}
	_, first := startShared(t, broker, "vigil-a", sink)
	other := &lockedSink{}
	startShared(t, broker, "vigil-b", other)
	alone, _ := startShared(t, broker, "", nil)
	poll(t, "the console alone shows the recommendation", func() bool {
		s, ok := alone.Device("plc-1")
		return ok && s.Status == StatusRecommended
	})
	if _, err := alone.Decide(t.Context(), "rec-plc-1", ActionApprove, "alice"); err != nil {
		t.Fatal(err)
	}
	poll(t, "vigil-a sends the approved quarantine and marks it sent", func() bool {
		return len(sink.devices()) > 0 && slices.Contains(sentMarks(t, broker), "decision/rec-plc-1/plc-1 vigil-a")
	})
	poll(t, "the console alone shows plc-1 quarantined", func() bool {
		s, _ := alone.Device("plc-1")
		return s.Status == StatusQuarantined
	})
	first.Stop()

	// While vigil-a is away, plc-2's recommendation is rejected. Restarted,
	// vigil-a reads plc-1's decision with its mark and plc-2's without.
	produceShared(t, broker, statusMessage(t, "vigil-a", recommended("plc-2"), rec("plc-2")))
	poll(t, "the console alone shows plc-2's recommendation", func() bool {
		s, ok := alone.Device("plc-2")
		return ok && s.Status == StatusRecommended
	})
	if _, err := alone.Decide(t.Context(), "rec-plc-2", ActionReject, "bob"); err != nil {
		t.Fatal(err)
	}
	restarted := &lockedSink{}
	_, again := startShared(t, broker, "vigil-a", restarted)
	poll(t, "vigil-a, restarted, sends plc-2's decision", func() bool { return len(restarted.devices()) > 0 })
	// One more round, after the one that sent plc-2's: it would send
	// plc-1's too if its mark were not honoured.
	again.sendOwned(t.Context())
	if got := restarted.devices(); !slices.Equal(got, []string{"plc-2 release"}) {
		t.Errorf("restarted vigil-a sent %v; want plc-2's rejection alone (plc-1's approval was sent before)", got)
	}
	if got := sink.devices(); !slices.Equal(got, []string{"plc-1 quarantine"}) {
		t.Errorf("vigil-a sent %v before its restart", got)
	}
	if got := other.devices(); len(got) > 0 {
		t.Errorf("vigil-b, which owns neither device, sent %v", got)
	}
}

// TestSharedFirstDecisionStands: two consoles decide on one event at
// once; every console shows the first decision, and the owner sends the
// first alone.
func TestSharedFirstDecisionStands(t *testing.T) {
	broker := statusTopic(t)
	at := time.Date(2026, 12, 6, 14, 0, 0, 0, time.UTC)
	rec := detect.QuarantineEvent{ID: "rec-1", Time: at, Action: detect.ActionRecommend, Mode: detect.ModeApprovalRequired,
		Device: "plc-1", Group: "g", TargetGroup: "quarantine-g", Reasons: []string{"a1"}, Severity: 8}
	st := detect.DeviceStatus{Device: "plc-1", Group: "g", LastSeen: at, Alarms: 1, Quarantine: detect.ActionRecommend, QuarantineID: "rec-1"}
	decide := func(action, by, sent, eventAction string) kafkago.Message {
		v, err := json.Marshal(&decisionRecord{V: sharedVersion, Decision: Decision{Action: action, By: by, At: at, Event: "rec-1", Sent: sent},
			Event: wireEvent{ID: sent, Time: at, Action: eventAction, Mode: detect.ModeApprovalRequired, Device: "plc-1"}})
		if err != nil {
			t.Fatal(err)
		}
		return kafkago.Message{Key: decisionKey("rec-1", "plc-1"), Value: v}
	}
	produceShared(t, broker, statusMessage(t, "vigil-a", st, &rec),
		decide(ActionApprove, "alice", "q-approve", detect.ActionQuarantine),
		decide(ActionReject, "bob", "q-reject", detect.ActionRelease))
	sink := &lockedSink{}
	c, s := startShared(t, broker, "vigil-a", sink)
	poll(t, "vigil-a sends", func() bool { return len(sink.devices()) > 0 })
	s.sendOwned(t.Context()) // would send bob's, were it waiting
	if got := sink.devices(); !slices.Equal(got, []string{"plc-1 quarantine"}) {
		t.Errorf("vigil-a sent %v; want alice's approval alone", got)
	}
	if d, _ := c.Device("plc-1"); d.Status != StatusQuarantined {
		t.Errorf("plc-1 is %s; want quarantined, as alice decided first", d.Status)
	}
}

// sentMarks returns "KEY SENT_BY" of every decision record of the status
// topic marked sent.
func sentMarks(t *testing.T, broker string) []string {
	t.Helper()
	conn, err := kafkago.DialLeader(t.Context(), "tcp", broker, "status", 0)
	if err != nil {
		t.Fatal(err)
	}
	first, last, err := conn.ReadOffsets()
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: []string{broker}, Topic: "status", Partition: 0, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	r.SetOffset(first)
	var out []string
	for off := first; off < last; off++ {
		m, err := r.FetchMessage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var d decisionRecord
		if json.Unmarshal(m.Value, &d) == nil && d.SentBy != "" {
			out = append(out, string(m.Key)+" "+d.SentBy)
		}
	}
	return out
}

// TestSharedOpenAlarms: a device's open alarms travel in its status
// record: a console without an engine shows them on the device page, its
// status and its timeline (each alert once, however often the record
// comes), and drops them when the owner's next record has none.
func TestSharedOpenAlarms(t *testing.T) {
	broker := statusTopic(t)
	owner, publisher := startShared(t, broker, "vigil-a", &lockedSink{})
	at := time.Date(2026, 12, 6, 14, 0, 0, 0, time.UTC)
	alarm := detect.Alert{ID: "a-77", EventTime: at, AlarmStart: at, State: detect.StateAlarm, Device: "plc-1", Group: "g",
		Detector: detect.DetectorSelf, Behavior: "bytes_out", Observed: 75300, Expected: 9097, Lower: -734, Upper: 18900,
		Score: 40.39, Severity: 8, Message: "plc-1 (g) bytes_out 75.3 kB, 8.3× its usual 9.1 kB"}
	tee := teeSink{owner}
	if err := tee.Write(t.Context(), &detect.Output{Alerts: []detect.Alert{alarm}}); err != nil {
		t.Fatal(err)
	}
	st := detect.DeviceStatus{Device: "plc-1", Group: "g", LastSeen: at, Alarms: 1}
	publisher.PublishStatus(&detect.StatusUpdate{Devices: []detect.DeviceStatus{st}})
	alone, follower := startShared(t, broker, "", nil)
	story := func() *DeviceStory {
		s, _ := alone.Device("plc-1")
		return s
	}
	poll(t, "the console alone shows plc-1's open alarm", func() bool { s := story(); return s != nil && len(s.OpenAlarms) == 1 })
	// what the record cost the writer and the consoles, for the engine's spacing
	poll(t, "the publisher tells what its records cost", func() bool {
		return publisher.encodeCost.mean() > 0 && publisher.applyCost.mean() > 0 &&
			publisher.StatusCost() == publisher.encodeCost.mean()+publisher.applyCost.mean()
	})
	if c := follower.StatusCost(); c <= 0 || follower.encodeCost.mean() != 0 {
		t.Fatalf("a console that writes nothing: StatusCost %v, encoding %v", c, follower.encodeCost.mean())
	}
	applied := follower.applied.Get()
	publisher.PublishStatus(&detect.StatusUpdate{Devices: []detect.DeviceStatus{st}}) // again: the alert once still
	poll(t, "the console alone applies the record again", func() bool { return follower.applied.Get() > applied })
	if s := story(); s.Status != StatusAlarm || len(s.OpenAlarms) != 1 || len(s.Alerts) != 1 {
		t.Fatalf("plc-1 on the console alone: status %s, %d open alarms, %d recent alerts; want alarm, 1 and 1",
			s.Status, len(s.OpenAlarms), len(s.Alerts))
	}
	var got map[string]any
	if err := json.Unmarshal(story().OpenAlarms[0], &got); err != nil || got["id"] != "a-77" || got["score"] != 40.39 || got["detector"] != "self" {
		t.Fatalf("open alarm %s (%v)", story().OpenAlarms[0], err)
	}
	if ids := searchAll(t, alone, "detector:self", "", 10); !slices.Equal(ids, []string{"plc-1"}) {
		t.Fatalf("detector:self finds %v", ids)
	}
	cleared := alarm
	cleared.ID, cleared.State, cleared.EventTime = "a-78", detect.StateCleared, at.Add(10*time.Minute)
	if err := tee.Write(t.Context(), &detect.Output{Alerts: []detect.Alert{cleared}}); err != nil {
		t.Fatal(err)
	}
	st.Alarms, st.LastSeen = 0, at.Add(10*time.Minute)
	publisher.PublishStatus(&detect.StatusUpdate{Devices: []detect.DeviceStatus{st}})
	poll(t, "the console alone drops plc-1's open alarm", func() bool { return len(story().OpenAlarms) == 0 })
	if s := story(); s.Status != StatusNormal || len(s.Alerts) != 1 {
		t.Fatalf("plc-1 cleared, on the console alone: status %s, %d recent alerts; want normal and 1", s.Status, len(s.Alerts))
	}
}

// TestSharedEvictedLeavesTheFleet: a device the engine evicted
// (detect.when_full evict_idle) leaves every console that follows the
// topic: its status record gets a tombstone, while the device that took
// its id and a device evicted and back in the same update stay.
func TestSharedEvictedLeavesTheFleet(t *testing.T) {
	broker := statusTopic(t)
	_, publisher := startShared(t, broker, "vigil-a", &lockedSink{})
	at := time.Date(2026, 12, 6, 14, 0, 0, 0, time.UTC)
	old := detect.DeviceStatus{ID: 3, Device: "plc-old", Group: "g", LastSeen: at}
	back := detect.DeviceStatus{ID: 4, Device: "plc-back", Group: "g", LastSeen: at}
	publisher.PublishStatus(&detect.StatusUpdate{Devices: []detect.DeviceStatus{old, back}})
	alone, _ := startShared(t, broker, "", nil)
	has := func(name string) bool { s, _ := alone.Device(name); return s != nil }
	poll(t, "the console alone shows plc-old", func() bool { return has("plc-old") && has("plc-back") })
	back.LastSeen = at.Add(time.Hour)
	publisher.PublishStatus(&detect.StatusUpdate{Evicted: []string{"plc-old", "plc-back"},
		Devices: []detect.DeviceStatus{{ID: 3, Device: "plc-new", Group: "g", LastSeen: at.Add(time.Hour)}, back}})
	poll(t, "the console alone drops plc-old and shows plc-new", func() bool { return !has("plc-old") && has("plc-new") })
	if !has("plc-back") {
		t.Fatal("plc-back, evicted and back in the same update, left the fleet")
	}
}
