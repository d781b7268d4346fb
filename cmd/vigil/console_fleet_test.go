package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/sinks/console"
)

// fleetConsoleConfig is the config of one vigil run instance of the
// three-instance test: one consumer group, the status topic, a rule that
// alarms on cpu_pct above 90, and quarantines that wait for approval.
func fleetConsoleConfig(t *testing.T, broker, instance string) Config {
	t.Helper()
	cfg, err := ParseConfig(fmt.Appendf(nil, `
kafka:
  brokers: [%q]
  group_id: vigil-fleet
  instance_id: %s
  telemetry_topics: [telemetry]
  dead_letter_topic: dead-letter
  changelog_topic: ""
  group_state_topic: ""
  http_listen: ""
  commit_interval: 100ms
  session_timeout: 2s
  heartbeat_interval: 200ms
  rebalance_timeout: 2s
  shutdown_timeout: 4s
console:
  status_topic: vigil-status
  publish_interval: 100ms
detect:
  rules:
    - name: cpu-high
      metric: cpu_pct
      comparison_operator: greater-than
      value: 90
      consecutive_datapoints_to_alarm: 1
      severity: 9
  quarantine:
    enabled: true
    mode: approval_required
`, broker, instance))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// quarantineSink keeps the quarantine events an instance sends.
type quarantineSink struct {
	mu     sync.Mutex
	events []detect.QuarantineEvent
}

func (s *quarantineSink) Write(_ context.Context, out *detect.Output) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, out.Quarantine...)
	return nil
}

func (s *quarantineSink) Close() error { return nil }

// find returns the events of device with action.
func (s *quarantineSink) find(device, action string) []detect.QuarantineEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []detect.QuarantineEvent
	for _, e := range s.events {
		if e.Device == device && e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

// assignedPartitions reads inst's vigil_kafka_assigned_partitions.
func assignedPartitions(inst *instance) string {
	var b bytes.Buffer
	inst.metrics.Set.WritePrometheus(&b)
	for line := range strings.Lines(b.String()) {
		if v, ok := strings.CutPrefix(line, "vigil_kafka_assigned_partitions "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// TestConsoleNeedsStatusTopic: vigil console on a config without a status
// topic says what to set, instead of serving an empty fleet.
func TestConsoleNeedsStatusTopic(t *testing.T) {
	t.Chdir(repoRoot)
	code, out := runCaptured(t, "console", "--config", "testdata/config/minimal.yaml", "--http", "127.0.0.1:0")
	if code != 1 || !strings.Contains(out, "set console.status_topic and kafka.brokers") {
		t.Errorf("vigil console without a status topic exits %d:\n%s", code, out)
	}
}

// TestRunInstancesShareConsole: three vigil run instances of one consumer
// group (each with two engine shards) each own two of the telemetry's six
// partitions and the devices in them, and publish those devices' status
// to the status topic; vigil
// console, alone, lists every device of the fleet with the status its
// owner has (the last report's time, the recommendation on the hot
// device) and their group; an approve on that console makes the owning instance, and only
// it, send the quarantine event to its sinks, and the console then shows
// the device quarantined.
func TestRunInstancesShareConsole(t *testing.T) {
	if testing.Short() {
		t.Skip("three consumer-group members and a console against kfake")
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, "telemetry"), kfake.SeedTopics(3, "vigil-status"),
		kfake.SeedTopics(1, "dead-letter"), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	broker := cluster.ListenAddrs()[0]
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var last string // what the condition polled last saw
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last seen: %s\n%s", last, logs.String())
		}
	})

	names := []string{"vigil-a", "vigil-b", "vigil-c"}
	sinks := make([]*quarantineSink, len(names))
	insts := make([]chan *instance, len(names))
	var running sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); running.Wait() }()
	for i, name := range names {
		cfg := fleetConsoleConfig(t, broker, name)
		cfg.shards = 2 // each judges with two engines, whose status the console sees all the same
		sinks[i], insts[i] = &quarantineSink{}, make(chan *instance, 1)
		running.Add(1)
		go func() {
			defer running.Done()
			err := runInstance(ctx, cfg, sinks[i], log, nil, func(inst *instance) { insts[i] <- inst })
			if ctx.Err() == nil {
				t.Errorf("%s stopped: %v", name, err)
			}
		}()
	}
	var members []*instance
	for i := range insts {
		select {
		case inst := <-insts[i]:
			if inst.pipe.Shards() != 2 {
				t.Fatalf("%s judges with %d engines, want 2", names[i], inst.pipe.Shards())
			}
			members = append(members, inst)
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not start:\n%s", names[i], logs.String())
		}
	}
	waitFor(t, 30*time.Second, "each instance owns two partitions", func() bool {
		var got []string
		for _, m := range members {
			got = append(got, assignedPartitions(m))
			if !m.consumer.Ready() {
				last = "not ready"
				return false
			}
		}
		last = strings.Join(got, " ")
		return slices.Equal(got, []string{"2", "2", "2"})
	})

	// 24 devices, three reports a minute apart; plc-07's last is hot.
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var msgs []kafkago.Message
	for m := range 3 {
		for d := range 24 {
			cpu := 40 + d%5
			if d == 7 && m == 2 {
				cpu = 97
			}
			dev := fmt.Sprintf("plc-%02d", d)
			msgs = append(msgs, kafkago.Message{Key: []byte(dev),
				Value: fmt.Appendf(nil, `{"device":%q,"ts":%q,"metrics":{"cpu_pct":%d}}`, dev, t0.Add(time.Duration(m)*time.Minute).Format(time.RFC3339), cpu)})
		}
	}
	w := &kafkago.Writer{Addr: kafkago.TCP(broker), Topic: "telemetry", Balancer: &kafkago.Hash{}, RequiredAcks: kafkago.RequireAll, BatchTimeout: time.Millisecond}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()
	waitFor(t, 30*time.Second, "every instance consumes its share", func() bool {
		var total int64
		var got []string
		for _, m := range members {
			n := m.consumer.Consumed()
			total += n
			got = append(got, fmt.Sprint(n))
			if n == 0 {
				last = strings.Join(got, " ")
				return false
			}
		}
		last = strings.Join(got, " ")
		return total >= int64(len(msgs))
	})

	// vigil console, alone, on the instances' config.
	served := make(chan string, 1)
	running.Add(1)
	go func() {
		defer running.Done()
		cfg := fleetConsoleConfig(t, broker, "")
		if err := serveFleetConsole(ctx, cfg, "127.0.0.1:0", log, func(addr string) { served <- addr }); err != nil {
			t.Errorf("vigil console: %v", err)
			served <- ""
		}
	}()
	addr := <-served
	if addr == "" {
		t.FailNow()
	}
	get := func(path string, v any) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
	}
	type fleet struct {
		Total   int                 `json:"total"`
		Devices []console.DeviceRow `json:"devices"`
	}
	lastReport := t0.Add(2 * time.Minute)
	waitFor(t, 30*time.Second, "vigil console lists the whole fleet as its owners have it", func() bool {
		var f fleet
		get("/api/v1/devices?limit=100&sort=device", &f)
		if f.Total != 24 || len(f.Devices) != 24 {
			last = fmt.Sprintf("%d devices", f.Total)
			return false
		}
		for _, d := range f.Devices {
			want := "normal"
			if d.Device == "plc-07" {
				want = "recommended"
			}
			if d.Status != want || !d.LastSeen.Equal(lastReport) {
				last = fmt.Sprintf("%s %s, last seen %s", d.Device, d.Status, d.LastSeen)
				return false
			}
		}
		return true
	})

	var f fleet
	get("/api/v1/devices?limit=1", &f)
	waitFor(t, 10*time.Second, "vigil console shows the devices' group with all of them", func() bool {
		var g struct {
			Groups []console.GroupSummary `json:"groups"`
		}
		get("/api/v1/groups", &g)
		last = fmt.Sprintf("%+v", g.Groups)
		return len(g.Groups) == 1 && g.Groups[0].Name == f.Devices[0].Group && g.Groups[0].Devices == 24 && g.Groups[0].Rows > 0
	})

	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var metricsText strings.Builder
	io.Copy(&metricsText, resp.Body)
	resp.Body.Close()
	if !strings.Contains(metricsText.String(), `vigil_console_status_records_total{result="rejected"} 0`) {
		t.Errorf("vigil console's /metrics has no count of rejected status records:\n%s", metricsText.String())
	}

	// The owner is the instance that sent the recommendation.
	owner := -1
	for i, s := range sinks {
		if len(s.find("plc-07", detect.ActionRecommend)) > 0 {
			owner = i
		}
	}
	if owner < 0 {
		t.Fatal("no instance sent the recommendation for plc-07")
	}
	var q struct {
		Queue []console.QuarantineItem `json:"queue"`
	}
	get("/api/v1/quarantine", &q)
	if len(q.Queue) != 1 || q.Queue[0].Device != "plc-07" || q.Queue[0].State != console.StatusRecommended {
		t.Fatalf("queue %+v, want plc-07's recommendation", q.Queue)
	}
	resp, err = http.Post("http://"+addr+"/api/v1/quarantine/"+q.Queue[0].EventID+"/approve", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("approve: %d", resp.StatusCode)
	}
	waitFor(t, 30*time.Second, "the owning instance sends the approved quarantine", func() bool {
		sent := sinks[owner].find("plc-07", detect.ActionQuarantine)
		if len(sent) == 0 {
			last = "nothing sent"
			return false
		}
		e := sent[0]
		if e.Mode != detect.ModeApprovalRequired || !strings.Contains(e.Message, "approved by local") || e.Reasons[0] != q.Queue[0].EventID {
			t.Fatalf("sent %+v", e)
		}
		return true
	})
	waitFor(t, 10*time.Second, "vigil console shows plc-07 quarantined", func() bool {
		var f fleet
		get("/api/v1/devices?q=device:plc-07", &f)
		if len(f.Devices) != 1 {
			last = fmt.Sprint(f.Devices)
			return false
		}
		last = f.Devices[0].Status
		return last == console.StatusQuarantined
	})
	for i, s := range sinks {
		if i != owner && len(s.find("plc-07", detect.ActionQuarantine)) > 0 {
			t.Errorf("%s, which does not own plc-07, sent its quarantine too", names[i])
		}
	}
	if n := len(sinks[owner].find("plc-07", detect.ActionQuarantine)); n != 1 {
		t.Errorf("the owner sent the approved quarantine %d times", n)
	}
}
