package kafka_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/detect"
	vpipeline "github.com/vigil-ot/vigil/detect/pipeline"
	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/kafka"
)

// Topic names of the test cluster.
const (
	topicIn        = "telemetry"
	topicChangelog = "vigil-changelog"
	topicGroups    = "vigil-groups"
	topicDLQ       = "vigil-dlq"
)

// cluster is an in-process Kafka-protocol broker (kfake) on a loopback port.
type cluster struct {
	t     testing.TB
	c     *kfake.Cluster
	addrs []string
}

func newCluster(t testing.TB, partitions int32) *cluster {
	t.Helper()
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.SeedTopics(partitions, topicIn, topicChangelog),
		kfake.SeedTopics(1, topicGroups, topicDLQ),
		kfake.GroupMinSessionTimeout(100*time.Millisecond),
	)
	if err != nil {
		t.Fatalf("cannot start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return &cluster{t: t, c: c, addrs: c.ListenAddrs()}
}

func (k *cluster) produce(msgs []kafkago.Message) {
	k.t.Helper()
	w := &kafkago.Writer{Addr: kafkago.TCP(k.addrs...), Topic: topicIn, Balancer: &kafkago.Hash{},
		BatchTimeout: time.Millisecond, BatchSize: 1000, RequiredAcks: kafkago.RequireAll}
	defer w.Close()
	for len(msgs) > 0 {
		n := min(len(msgs), 1000)
		if err := w.WriteMessages(context.Background(), msgs[:n]...); err != nil {
			k.t.Fatalf("cannot produce: %v", err)
		}
		msgs = msgs[n:]
	}
}

// endOffsets returns the high-water mark of every partition of topic.
func (k *cluster) endOffsets(topic string) map[int]int64 {
	k.t.Helper()
	conn, err := kafkago.Dial("tcp", k.addrs[0])
	if err != nil {
		k.t.Fatal(err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		k.t.Fatal(err)
	}
	out := map[int]int64{}
	for _, p := range parts {
		c, err := kafkago.DialLeader(context.Background(), "tcp", k.addrs[0], topic, p.ID)
		if err != nil {
			k.t.Fatal(err)
		}
		out[p.ID], err = c.ReadLastOffset()
		c.Close()
		if err != nil {
			k.t.Fatal(err)
		}
	}
	return out
}

// committed returns the group's committed offset per partition of topic
// (-1 where nothing is committed).
func (k *cluster) committed(group, topic string) (map[int]int64, error) {
	var parts []int
	for p := range k.endOffsets(topic) {
		parts = append(parts, p)
	}
	cl := &kafkago.Client{Addr: kafkago.TCP(k.addrs...), Timeout: 5 * time.Second}
	resp, err := cl.OffsetFetch(context.Background(), &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		return nil, err
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	out := map[int]int64{}
	for _, p := range resp.Topics[topic] {
		out[p.Partition] = p.CommittedOffset
	}
	return out, nil
}

// waitCommitted waits until the group committed the end of every partition.
func (k *cluster) waitCommitted(group string, timeout time.Duration) {
	k.t.Helper()
	want := k.endOffsets(topicIn)
	deadline := time.Now().Add(timeout)
	var got map[int]int64
	for time.Now().Before(deadline) {
		got, _ = k.committed(group, topicIn)
		done := true
		for p, end := range want {
			if got[p] != end {
				done = false
			}
		}
		if done {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	k.t.Fatalf("group %s did not commit the end of %s in %s: committed %v, end %v", group, topicIn, timeout, got, want)
}

// readAll returns every record of topic.
func (k *cluster) readAll(topic string) []kafkago.Message {
	k.t.Helper()
	var out []kafkago.Message
	for p, end := range k.endOffsets(topic) {
		if end == 0 {
			continue
		}
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: k.addrs, Topic: topic, Partition: p, MaxWait: 50 * time.Millisecond})
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			m, err := r.ReadMessage(ctx)
			cancel()
			if err != nil {
				k.t.Fatalf("cannot read %s/%d: %v", topic, p, err)
			}
			out = append(out, m)
			if m.Offset >= end-1 {
				break
			}
		}
		r.Close()
	}
	return out
}

// kafkaConfig returns a consumer config with the short timeouts tests need.
func (k *cluster) kafkaConfig(group, instance string) ingest.KafkaConfig {
	cfg := ingest.DefaultKafkaConfig()
	cfg.Brokers = k.addrs
	cfg.GroupID = group
	cfg.InstanceID = instance
	cfg.TelemetryTopics = []string{topicIn}
	cfg.DeadLetterTopic = topicDLQ
	cfg.ChangelogTopic = topicChangelog
	cfg.GroupStateTopic = topicGroups
	cfg.BatchSize = 256
	cfg.BatchLinger = 5 * time.Millisecond
	cfg.FetchMaxWait = 20 * time.Millisecond
	cfg.CommitInterval = 50 * time.Millisecond
	cfg.CheckpointInterval = 100 * time.Millisecond
	cfg.GroupShareInterval = 200 * time.Millisecond
	cfg.NackBackoff = 100 * time.Millisecond
	cfg.SessionTimeout = 1500 * time.Millisecond
	cfg.HeartbeatInterval = 100 * time.Millisecond
	cfg.RebalanceTimeout = 2 * time.Second
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.HTTPListen = ""
	return cfg
}

// fleet makes native JSON telemetry: devices report every minute for
// minutes; device "dev-007" sends 40 times its bytes_out for five minutes
// from spikeAt. Keys are device names, so each device stays in one
// partition and in order.
func fleet(devices, minutes, spikeAt int) []kafkago.Message {
	rnd := rand.New(rand.NewSource(1))
	start := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	var out []kafkago.Message
	for m := 0; m < minutes; m++ {
		ts := start.Add(time.Duration(m) * time.Minute)
		for d := 0; d < devices; d++ {
			dev := fmt.Sprintf("dev-%03d", d)
			site := "a"
			if d%2 == 1 {
				site = "b"
			}
			bytes := 1000 + 100*rnd.NormFloat64()
			if dev == "dev-007" && m >= spikeAt && m < spikeAt+5 {
				bytes *= 40
			}
			v := fmt.Sprintf(`{"device":%q,"ts":%d,"attrs":{"site":%q},"metrics":{"bytes_out":%.3f,"msgs_sent":%.3f}}`,
				dev, ts.UnixMilli(), site, bytes, 10+rnd.NormFloat64())
			out = append(out, kafkago.Message{Key: []byte(dev), Value: []byte(v), Time: ts})
		}
	}
	return out
}

type siteGrouper struct{}

func (siteGrouper) Group(device string, attrs []ingest.Attr) string {
	for _, a := range attrs {
		if a.Key == "site" {
			return "site-" + a.Value
		}
	}
	return "unknown"
}

func baselineConfig() baseline.Config {
	c := baseline.DefaultConfig()
	c.MinSamples = 300
	c.MinDuration = time.Hour
	c.DeviceMinSamples = 20
	return c
}

// alertKey is what must be equal between two deliveries of one alert.
type alertKey struct {
	ID, State, Device, Detector, Behavior string
	EventNanos                            int64
}

func keyOf(a *detect.Alert) alertKey {
	return alertKey{a.ID, a.State, a.Device, a.Detector, a.Behavior, a.EventTime.UnixNano()}
}

// collectSink is a detect.Sink that keeps what it accepts; fail, when set,
// decides per Write whether to refuse it.
type collectSink struct {
	mu     sync.Mutex
	alerts []detect.Alert
	writes int
	fail   func(out *detect.Output) error
}

func (s *collectSink) Write(ctx context.Context, out *detect.Output) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	if s.fail != nil {
		if err := s.fail(out); err != nil {
			return err
		}
	}
	s.alerts = append(s.alerts, out.Alerts...)
	return nil
}

func (s *collectSink) Close() error { return nil }

func (s *collectSink) keys() map[alertKey]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[alertKey]int{}
	for i := range s.alerts {
		m[keyOf(&s.alerts[i])]++
	}
	return m
}

// pipeline is one Vigil instance: registry, baseline, engine, consumer.
type pipeline struct {
	metrics  *kafka.Metrics
	reg      *ingest.Registry
	store    *baseline.Store
	engine   *detect.Engine // nil with shards
	judge    vpipeline.Judge
	consumer *kafka.Consumer
	cancel   context.CancelFunc
	done     chan error
}

// pipelineConfig is the engine's config on both sides of the tests that
// compare Kafka with replay: groups by the site attribute.
func pipelineConfig() vpipeline.Config {
	inv := ingest.DefaultInventoryConfig()
	inv.GroupBy = []string{"site"}
	return vpipeline.Config{Inventory: inv, Telemetry: ingest.DefaultTelemetryConfig(), Packets: ingest.DefaultPacketConfig(),
		Baseline: baselineConfig(), Detect: detect.DefaultConfig()}
}

// newEngine builds the engine as vigil run does (detect/pipeline), but
// without its wall clock: see newEngineClock.
func newEngine(t testing.TB, sink detect.Sink) *vpipeline.Pipeline {
	t.Helper()
	return newEngineClock(t, sink, nil)
}

// newEngineClock is newEngine with clock as the engine's processing time
// (vigil run's is time.Now).
func newEngineClock(t testing.TB, sink detect.Sink, clock func() time.Time) *vpipeline.Pipeline {
	t.Helper()
	p, err := vpipeline.New(pipelineConfig(), vpipeline.Deps{Sink: sink, NoNetwork: true, Logger: testLogger(t), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func startPipeline(t testing.TB, cfg ingest.KafkaConfig, sink detect.Sink) *pipeline {
	t.Helper()
	return startPipelineWith(t, cfg, sink, nil)
}

// startPipelineWith is startPipeline with the engine wrapped by wrap (nil:
// the engine itself).
func startPipelineWith(t testing.TB, cfg ingest.KafkaConfig, sink detect.Sink, wrap func(*detect.Engine) kafka.Processor) *pipeline {
	t.Helper()
	return startPipelineClock(t, cfg, sink, wrap, nil)
}

// startPipelineClock is startPipelineWith with the engine's processing
// time from clock (see newEngineClock).
func startPipelineClock(t testing.TB, cfg ingest.KafkaConfig, sink detect.Sink, wrap func(*detect.Engine) kafka.Processor, clock func() time.Time) *pipeline {
	t.Helper()
	return startPipelineOn(t, cfg, newEngineClock(t, sink, clock), wrap)
}

// startPipelineOn runs a consumer over vp, the engine wrapped by wrap
// (nil: the engine itself).
func startPipelineOn(t testing.TB, cfg ingest.KafkaConfig, vp *vpipeline.Pipeline, wrap func(*detect.Engine) kafka.Processor) *pipeline {
	t.Helper()
	var proc kafka.Processor = vp.Engine
	if wrap != nil {
		proc = wrap(vp.Engine)
	}
	return startConsumer(t, cfg, vp, proc)
}

// startShards starts a consumer feeding shards engine shards, as vigil run
// --shards does (cfg without changelog and group state topics).
func startShards(t testing.TB, cfg ingest.KafkaConfig, sink detect.Sink, shards int) *pipeline {
	t.Helper()
	vp, err := vpipeline.New(pipelineConfig(), vpipeline.Deps{Sink: sink, NoNetwork: true, Logger: testLogger(t), Clock: time.Now, Shards: shards})
	if err != nil {
		t.Fatal(err)
	}
	if vp.Sharded == nil {
		t.Fatalf("%d shards asked, one engine built", shards)
	}
	vp.Sharded.JudgeAhead(cfg.EngineQueue) // as vigil run does
	return startConsumer(t, cfg, vp, vp.Sharded)
}

// The consumer finds what the engine offers it by these interfaces.
var (
	_ kafka.BacklogReader   = (*vpipeline.Sharded)(nil)
	_ kafka.DeviceForgetter = (*vpipeline.Sharded)(nil)
	_ kafka.Flusher         = (*vpipeline.Sharded)(nil)
	_ kafka.Drainer         = (*vpipeline.Sharded)(nil)
)

// startConsumer runs a consumer of cfg feeding proc, vp's engine or
// engine shards (wrapped or not).
func startConsumer(t testing.TB, cfg ingest.KafkaConfig, vp *vpipeline.Pipeline, proc kafka.Processor) *pipeline {
	t.Helper()
	reg, store := vp.Registry, vp.Store
	tcfg := ingest.DefaultTelemetryConfig()
	metrics := kafka.NewMetrics()
	c, err := kafka.New(kafka.Options{
		Config: cfg,
		Decoders: func(kind, topic string, p int32) (kafka.Decoder, error) {
			return kafka.NewTelemetryDecoder(tcfg, kafka.DrillCheck{})
		},
		Engine: proc, State: store, Groups: store,
		Registry: reg, Grouper: vp.Inventory, Metrics: metrics, Logger: testLogger(t).With("instance", cfg.InstanceID),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &pipeline{metrics: metrics, reg: reg, store: store, engine: vp.Engine, judge: vp.Judge, consumer: c, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- c.Run(ctx) }()
	return p
}

// stop stops the pipeline gracefully and returns Run's result.
func (p *pipeline) stop(t testing.TB) {
	t.Helper()
	p.cancel()
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("consumer stopped with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("consumer did not stop within 15s")
	}
}

// replay judges msgs in order without Kafka, the way `vigil replay` does:
// decode, build batches, Process.
// replay judges the values of msgs as vigil replay does: one JSONL file
// through the same pipeline constructor, read by the replay's file source.
func replay(t testing.TB, msgs []kafkago.Message) (*collectSink, *baseline.Store, *ingest.Registry) {
	t.Helper()
	sink := &collectSink{}
	p := newEngine(t, sink)
	var buf bytes.Buffer
	for _, m := range msgs {
		buf.Write(m.Value)
		buf.WriteByte('\n')
	}
	path := filepath.Join(t.TempDir(), "telemetry.jsonl")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	files, err := p.OpenFiles(pipelineConfig(), []string{path}, nil, vpipeline.FileOptions{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer files.Close()
	if err := p.Run(context.Background(), files.Merged); err != nil {
		t.Fatal(err)
	}
	return sink, p.Store, p.Registry
}

func sortedKeys(m map[alertKey]int) []alertKey {
	out := make([]alertKey, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].EventNanos != out[j].EventNanos {
			return out[i].EventNanos < out[j].EventNanos
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func describe(keys []alertKey) string {
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %s %s %s/%s %s at %s", k.ID, k.State, k.Detector, k.Behavior, k.Device, time.Unix(0, k.EventNanos).UTC().Format(time.RFC3339))
	}
	return b.String()
}

// missing returns the keys of want that got lacks.
func missing(want, got map[alertKey]int) []alertKey {
	var out []alertKey
	for _, k := range sortedKeys(want) {
		if got[k] == 0 {
			out = append(out, k)
		}
	}
	return out
}

var errSinkDown = errors.New("receiver unreachable")
