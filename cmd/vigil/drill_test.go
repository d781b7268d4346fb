package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/detect/drill"
	"github.com/vigil-ot/vigil/ingest/kafka"
	"github.com/vigil-ot/vigil/sinks"
)

const testDrillKey = "drill-test-key"

// drillCluster is an in-process broker with the topics of a drilled run,
// and that run's config: a Kafka sink of JSON alerts, and a quarantine
// policy that would quarantine on any self or silence alarm.
func drillCluster(t *testing.T) (*kfake.Cluster, Config) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "telemetry", "dead-letter"),
		kfake.SeedTopics(3, "vigil-alerts", "vigil-quarantine"), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	addr := c.ListenAddrs()[0]
	cfg := runTestConfig(t, addr)
	cfg.Sinks = sinks.Config{{Kind: sinks.KindKafka, Format: sinks.FormatJSON, Kafka: sinks.KafkaConfig{Brokers: []string{addr}}}}
	q := &cfg.Detect.Quarantine
	q.Enabled, q.Detectors, q.MinSeverity, q.RecommendMinSeverity = true, []string{detect.DetectorSelf, detect.DetectorSilence}, 1, 1
	q.MaxGroupFraction, q.MaxPerMinute = 1, 1000
	cfg.Drill.Deadline = 90 * time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	t.Setenv(cfg.Drill.KeyEnv, testDrillKey)
	return c, cfg
}

// startRun runs vigil run over cfg and returns the instance once it is
// ready, and stop, which stops the run (flushing its sinks and committing)
// and waits for it; the test's end stops it too.
func startRun(t *testing.T, cfg Config) (*instance, func()) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sink, err := sinks.Build(cfg.Sinks, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan *instance, 1)
	done := make(chan error, 1)
	go func() { done <- runInstance(ctx, cfg, sink, log, nil, func(inst *instance) { started <- inst }) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("vigil run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	var inst *instance
	select {
	case inst = <-started:
	case err := <-done:
		t.Fatalf("vigil run stopped: %v", err)
	}
	waitFor(t, 30*time.Second, "the consumer to be ready", inst.consumer.Ready)
	return inst, stop
}

// TestDrillDeliveredIntegration: a drill against a running vigil run gets
// both canaries' alerts back from the alerts topic, flagged as drills (the
// drill only counts an alert with "drill":true), and the quarantine policy,
// which would quarantine any self or silence alarm, makes no event.
func TestDrillDeliveredIntegration(t *testing.T) {
	_, cfg := drillCluster(t)
	inst, stop := startRun(t, cfg)
	dc, err := drillConfig(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := drill.Run(context.Background(), dc)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	rep.WriteText(&out)
	t.Logf("\n%s", out.String())
	if !rep.OK() {
		t.Fatalf("the drill failed:\n%s", out.String())
	}
	for _, r := range rep.Results {
		if r.Latency <= 0 || r.Latency > cfg.Drill.Deadline {
			t.Errorf("%s delivered in %s", r.Name, r.Latency)
		}
	}
	// Stopped, the run has judged what it read and flushed its sinks.
	stop()
	st := inst.engine.Stats()
	if st.Rows < int64(rep.Records) {
		t.Errorf("judged %d rows of the drill's %d", st.Rows, rep.Records)
	}
	if len(st.Quarantine) > 0 {
		t.Errorf("drill alarms made quarantine events: %v", st.Quarantine)
	}
	if q := readTopic(t, cfg.Kafka.Brokers[0], "vigil-quarantine"); len(q) > 0 {
		t.Errorf("drill alarms made %d quarantine events, e.g. %s", len(q), q[0].Value)
	}
}

// TestDrillForgedDeadLetteredIntegration: a record with a drill header
// that is not its tag under the key, and a record of a drill-named device
// without a tag, are dead-lettered as drill_forged and raise nothing; a
// real device's untagged record goes through.
func TestDrillForgedDeadLetteredIntegration(t *testing.T) {
	_, cfg := drillCluster(t)
	inst, stop := startRun(t, cfg)
	addr := cfg.Kafka.Brokers[0]
	value := func(dev string) []byte {
		return fmt.Appendf(nil, `{"device":%q,"ts":%q,"metrics":{"cpu_pct":40}}`, dev, time.Now().UTC().Format(time.RFC3339))
	}
	forged := value("vigil-drill-forged-0")
	wrongKey := value("vigil-drill-forged-1")
	msgs := []kafkago.Message{
		{Value: forged, Headers: []kafkago.Header{{Key: kafka.HeaderDrill, Value: []byte(strings.Repeat("0", 64))}}},
		{Value: wrongKey, Headers: []kafkago.Header{{Key: kafka.HeaderDrill, Value: kafka.DrillTag([]byte("another key"), wrongKey)}}},
		{Value: value("vigil-drill-untagged")},
		{Value: value("plc-1"), Headers: []kafkago.Header{{Key: kafka.HeaderDrill, Value: kafka.DrillTag([]byte(testDrillKey), value("plc-1"))}}},
		{Value: value("plc-2")},
	}
	// plc-1's tag is of another value (the time moved on, or not): make it
	// right, so the record is refused for naming a real device in a drill.
	msgs[3].Headers[0].Value = kafka.DrillTag([]byte(testDrillKey), msgs[3].Value)
	w := &kafkago.Writer{Addr: kafkago.TCP(addr), Topic: "telemetry", RequiredAcks: kafkago.RequireAll, BatchTimeout: time.Millisecond}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()
	waitFor(t, 30*time.Second, "every record to be read", func() bool { return inst.consumer.Consumed() >= int64(len(msgs)) })
	stop()
	if n := inst.reg.NumDevices(); n != 1 {
		t.Errorf("%d devices made it into batches; want only plc-2", n)
	}
	dead := readTopic(t, addr, "dead-letter")
	if len(dead) != 4 {
		t.Fatalf("%d dead letters, want 4", len(dead))
	}
	for _, m := range dead {
		var reason string
		for _, h := range m.Headers {
			if h.Key == kafka.HeaderReason {
				reason = string(h.Value)
			}
		}
		if reason != kafka.ReasonDrillForged {
			t.Errorf("dead letter %s has reason %q, want %s", m.Value, reason, kafka.ReasonDrillForged)
		}
	}
	if got := readTopic(t, addr, "vigil-alerts"); len(got) > 0 {
		t.Errorf("forged drill records raised %d alerts, e.g. %s", len(got), got[0].Value)
	}
}

// TestDrillScheduledIntegration: with drill.interval set, vigil run drills
// by itself once ready, checks on its own /metrics that every sink
// accepted the drill's alerts, and /metrics and /readyz show the result.
func TestDrillScheduledIntegration(t *testing.T) {
	_, cfg := drillCluster(t)
	cfg.Drill.Interval = time.Hour
	cfg.Kafka.HTTPListen = freeAddr(t)
	inst, _ := startRun(t, cfg)
	waitFor(t, cfg.Drill.Deadline+10*time.Second, "a drill result", func() bool {
		return strings.HasPrefix(inst.drills.detail(), "last drill: ") && !strings.Contains(inst.drills.detail(), "none yet")
	})
	if d := inst.drills.detail(); !strings.Contains(d, "passed") {
		t.Fatalf("scheduled drill: %s", d)
	}
	inst.drills.mu.Lock()
	sinksSeen := inst.drills.last.Sinks
	inst.drills.mu.Unlock()
	if len(sinksSeen) != 1 || sinksSeen[0].Sink != "kafka" || sinksSeen[0].Accepted < 2 {
		t.Errorf("the drill read the sinks' drill counters as %+v; want the kafka sink with both canaries' alerts", sinksSeen)
	}
	var metricsText strings.Builder
	inst.metrics.Set.WritePrometheus(&metricsText)
	for _, want := range []string{"vigil_drill_last_success 1", "vigil_drill_last_duration_seconds "} {
		if !strings.Contains(metricsText.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	resp, err := http.Get("http://" + cfg.Kafka.HTTPListen + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "last drill: ") || !strings.Contains(string(body), "passed") {
		t.Errorf("/readyz answered %d %q", resp.StatusCode, body)
	}
}

// freeAddr returns a loopback address no one listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// readTopic reads every record in topic's partitions up to their end
// offsets as they are now.
func readTopic(t *testing.T, addr, topic string) []kafkago.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := &kafkago.Dialer{Timeout: 5 * time.Second}
	parts, err := d.LookupPartitions(ctx, "tcp", addr, topic)
	if err != nil {
		t.Fatal(err)
	}
	var out []kafkago.Message
	for _, p := range parts {
		conn, err := d.DialLeader(ctx, "tcp", addr, topic, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		end, err := conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: p.ID, MaxWait: 50 * time.Millisecond})
		for n := int64(0); n < end; n++ {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("cannot read %s partition %d: %v", topic, p.ID, err)
			}
			out = append(out, m)
		}
		r.Close()
	}
	return out
}

// captureSink keeps what the engine delivers.
type captureSink struct{ out detect.Output }

func (s *captureSink) Write(_ context.Context, o *detect.Output) error {
	s.out.Alerts = append(s.out.Alerts, o.Alerts...)
	s.out.Quarantine = append(s.out.Quarantine, o.Quarantine...)
	return nil
}

func (s *captureSink) Close() error { return nil }

// TestDrillIsolatedFromRealGroups: drill devices reporting with a real
// group's attributes, wildly, leave that group's baseline exactly as it is
// without them (they learn in a drill group of their own); under a policy
// that quarantines every self alarm, a real device's spike is quarantined
// and the drill devices' spikes are not.
func TestDrillIsolatedFromRealGroups(t *testing.T) {
	cfg := DefaultConfig()
	q := &cfg.Detect.Quarantine
	q.Enabled, q.Detectors, q.MinSeverity, q.RecommendMinSeverity = true, []string{detect.DetectorSelf}, 1, 1
	q.MaxGroupFraction, q.MaxPerMinute = 1, 1000
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	lines := func(withDrill bool) string {
		var b strings.Builder
		for k := range 600 {
			ts := start.Add(time.Duration(k) * time.Second).Format(time.RFC3339)
			for i := range 6 {
				v := 50 + float64((i*7+k*13)%11-5)*0.5
				if i == 0 && k >= 597 {
					v = 5000 // the real spike
				}
				fmt.Fprintf(&b, `{"device":"plc-%d","ts":%q,"attrs":{"site":"plant-a","hw":"s7"},"metrics":{"level":%g}}`+"\n", i, ts, v)
				if withDrill {
					fmt.Fprintf(&b, `{"device":"vigil-drill-t-%d","ts":%q,"attrs":{"site":"plant-a","hw":"s7"},"metrics":{"level":%g}}`+"\n", i, ts, 10*v+float64(k%7)*100)
				}
			}
		}
		return b.String()
	}
	replayed := func(withDrill bool) (map[string]baseline.GroupInfo, *captureSink) {
		path := filepath.Join(t.TempDir(), "telemetry.jsonl")
		if err := os.WriteFile(path, []byte(lines(withDrill)), 0o600); err != nil {
			t.Fatal(err)
		}
		sink := &captureSink{}
		j, err := openReplay(cfg, []string{path}, sink, slog.New(slog.NewTextHandler(io.Discard, nil)), replaySetup{})
		if err != nil {
			t.Fatal(err)
		}
		defer j.close()
		if err := j.run(context.Background()); err != nil {
			t.Fatal(err)
		}
		groups := map[string]baseline.GroupInfo{}
		for _, g := range j.Store.GroupInfos() {
			g.ID = 0 // the order groups were first seen in
			groups[g.Name] = g
		}
		return groups, sink
	}
	alone, _ := replayed(false)
	mixed, sink := replayed(true)
	if !reflect.DeepEqual(alone["plant-a/s7"], mixed["plant-a/s7"]) {
		t.Errorf("drill devices changed the real group's baseline:\nwithout %+v\nwith    %+v", alone["plant-a/s7"], mixed["plant-a/s7"])
	}
	if g := mixed["drill/plant-a/s7"]; g.Devices != 6 || g.Rows == 0 {
		t.Errorf("the drill group has %d devices and %d rows; want the 6 drill devices' rows", g.Devices, g.Rows)
	}
	var drillAlarms int
	for _, a := range sink.out.Alerts {
		if a.IsDrill() && a.State == detect.StateAlarm {
			drillAlarms++
		}
	}
	quarantined := map[string]bool{}
	for _, ev := range sink.out.Quarantine {
		quarantined[ev.Device] = true
	}
	if !quarantined["plc-0"] || drillAlarms == 0 {
		t.Fatalf("the test proves nothing: plc-0 quarantined %v, %d drill alarms", quarantined["plc-0"], drillAlarms)
	}
	for dev := range quarantined {
		if strings.HasPrefix(dev, cfg.Drill.DevicePrefix) {
			t.Errorf("drill device %s has a quarantine event", dev)
		}
	}
}

// TestDrillCommandIntegration: vigil drill with the run's config exits 0
// when the alerts come back and the run's /metrics shows every sink
// accepted them, and 1 without the drill key.
func TestDrillCommandIntegration(t *testing.T) {
	_, cfg := drillCluster(t)
	cfg.Kafka.HTTPListen = freeAddr(t)
	startRun(t, cfg)
	addr := cfg.Kafka.Brokers[0]
	path := filepath.Join(t.TempDir(), "vigil.yaml")
	yaml := fmt.Sprintf("kafka:\n  brokers: [%q]\n  telemetry_topics: [telemetry]\nsinks:\n  - kind: kafka\n    format: json\n    kafka:\n      brokers: [%q]\n", addr, addr)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := runCommand([]string{"drill", "--config", path, "--deadline", "60s", "--metrics", "http://" + cfg.Kafka.HTTPListen + "/metrics"}); code != 0 {
		t.Errorf("vigil drill exited %d against a running vigil run", code)
	}
	t.Setenv(cfg.Drill.KeyEnv, "")
	if code := runCommand([]string{"drill", "--config", path}); code != 1 {
		t.Errorf("vigil drill without a key exited %d, want 1", code)
	}
}
