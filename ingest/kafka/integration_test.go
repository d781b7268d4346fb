package kafka_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow/array"
	kafkago "github.com/segmentio/kafka-go"
	"go.uber.org/goleak"

	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/kafka"
)

func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs a Kafka-protocol broker in the test process")
	}
}

func checkLeaks(t *testing.T) {
	// kafka-go keeps idle connection pools of its transport for a while,
	// and kfake's goroutines end with Cleanup, after this check.
	goleak.VerifyNone(t,
		goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*connPool).discover"),
		goleak.IgnoreTopFunction("github.com/segmentio/kafka-go/protocol.(*Conn).Read"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreAnyFunction("github.com/twmb/franz-go/pkg/kfake.(*Cluster).run"),
		goleak.IgnoreAnyFunction("github.com/twmb/franz-go/pkg/kfake.(*Cluster).listen"),
		goleak.IgnoreAnyFunction("github.com/twmb/franz-go/pkg/kfake.(*brokerCxn).read"),
		goleak.IgnoreAnyFunction("github.com/twmb/franz-go/pkg/kfake.(*brokerCxn).write"),
		goleak.IgnoreAnyFunction("github.com/twmb/franz-go/pkg/kfake.(*groups).manage"),
		goleak.IgnoreAnyFunction("github.com/twmb/franz-go/pkg/kfake.(*group).manage"),
		goleak.IgnoreAnyFunction("github.com/segmentio/kafka-go.(*conn).run"),
	)
}

func requireSpike(t *testing.T, want map[alertKey]int) {
	t.Helper()
	for k := range want {
		if k.Device == "dev-007" && k.State == detect.StateAlarm {
			return
		}
	}
	t.Fatalf("the reference run raised no alarm for the injected spike of dev-007; the test data no longer exercises detection:%s", describe(sortedKeys(want)))
}

// 1. The same data through Kafka and through replay gives the same alerts,
// on one engine and on two engine shards (vigil run --shards 2, without
// the changelog and group state topics, which need one engine).
func TestKafkaMatchesReplayIntegration(t *testing.T) {
	skipShort(t)
	t.Cleanup(func() { checkLeaks(t) })
	msgs := fleet(20, 240, 180)
	want, _, _ := replay(t, msgs)
	wantKeys := want.keys()
	requireSpike(t, wantKeys)

	for _, shards := range []int{1, 2} {
		t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) {
			k := newCluster(t, 1)
			k.produce(msgs)
			sink := &collectSink{}
			cfg := k.kafkaConfig("g1", "i1")
			var p *pipeline
			if shards == 1 {
				p = startPipeline(t, cfg, sink)
			} else {
				cfg.ChangelogTopic, cfg.GroupStateTopic = "", ""
				p = startShards(t, cfg, sink, shards)
			}
			k.waitCommitted("g1", 20*time.Second)
			p.stop(t)

			got := sink.keys()
			if m := missing(wantKeys, got); len(m) > 0 {
				t.Errorf("%d alert(s) of replay did not come through Kafka:%s", len(m), describe(m))
			}
			if m := missing(got, wantKeys); len(m) > 0 {
				t.Errorf("%d alert(s) came through Kafka that replay does not raise:%s", len(m), describe(m))
			}
			if rows := p.judge.Stats().Rows; rows != int64(len(msgs)) {
				t.Errorf("judged %d rows, want %d", rows, len(msgs))
			}
		})
	}
}

// 4. Garbage records land in the dead-letter topic with their reason; good
// records around them are processed.
func TestKafkaDeadLetterIntegration(t *testing.T) {
	skipShort(t)
	// Registered first, so it runs after the cluster's own cleanup.
	t.Cleanup(func() { checkLeaks(t) })
	good := fleet(4, 30, 1000)
	garbage := []struct {
		key, value, reason string
	}{
		{"dev-000", `{"device":"dev-000","ts":`, "json_syntax"},
		{"dev-001", `[1,2,3]`, "unknown_format"},
		{"", `{"ts":1762041600000,"metrics":{"bytes_out":1}}`, "missing_device"},
		{"dev-002", "\x00\xff not json at all", "json_syntax"},
	}
	var msgs []kafkago.Message
	for i, m := range good {
		msgs = append(msgs, m)
		if i%30 == 7 && len(garbage) > 0 {
			g := garbage[0]
			garbage = garbage[1:]
			var key []byte
			if g.key != "" {
				key = []byte(g.key)
			}
			msgs = append(msgs, kafkago.Message{Key: key, Value: []byte(g.value), Headers: []kafkago.Header{{Key: "want", Value: []byte(g.reason)}}})
		}
	}
	if len(garbage) > 0 {
		t.Fatal("BUG: test data too short for its garbage")
	}
	k := newCluster(t, 1)
	k.produce(msgs)
	p := startPipeline(t, k.kafkaConfig("g4", "i4"), &collectSink{})
	k.waitCommitted("g4", 20*time.Second)
	p.stop(t)

	if rows := p.engine.Stats().Rows; rows != int64(len(good)) {
		t.Errorf("engine judged %d rows, want every one of the %d good records", rows, len(good))
	}
	dead := k.readAll(topicDLQ)
	var wantDead []kafkago.Message
	for _, m := range msgs {
		if len(m.Headers) > 0 {
			wantDead = append(wantDead, m)
		}
	}
	if len(dead) != len(wantDead) {
		t.Fatalf("dead-letter topic has %d records, want %d", len(dead), len(wantDead))
	}
	for i, d := range dead {
		w := wantDead[i]
		if !bytes.Equal(d.Key, w.Key) || !bytes.Equal(d.Value, w.Value) {
			t.Errorf("dead letter %d: key %q value %q, want the original %q %q", i, d.Key, d.Value, w.Key, w.Value)
		}
		h := map[string]string{}
		for _, x := range d.Headers {
			h[x.Key] = string(x.Value)
		}
		if h[kafka.HeaderReason] != string(w.Headers[0].Value) {
			t.Errorf("dead letter %d (%q): reason %q, want %q", i, w.Value, h[kafka.HeaderReason], w.Headers[0].Value)
		}
		if h[kafka.HeaderTopic] != topicIn || h[kafka.HeaderOffset] == "" || h[kafka.HeaderError] == "" {
			t.Errorf("dead letter %d lacks its origin or explanation: %v", i, h)
		}
	}
}

// 3. A sink that fails for a while: consumption pauses, nothing is
// committed past undelivered alerts, every alert is delivered after
// recovery.
func TestKafkaSinkOutageIntegration(t *testing.T) {
	skipShort(t)
	msgs := fleet(20, 240, 180)
	want, wantStore, _ := replay(t, msgs)
	wantKeys := want.keys()
	requireSpike(t, wantKeys)

	k := newCluster(t, 1)
	k.produce(msgs)

	var mu sync.Mutex
	var downUntil time.Time
	refused := map[string]int64{} // alert id -> offset, refused and not yet accepted
	sink := &collectSink{}
	sink.fail = func(out *detect.Output) error {
		mu.Lock()
		defer mu.Unlock()
		if len(out.Alerts) > 0 && downUntil.IsZero() {
			downUntil = time.Now().Add(1500 * time.Millisecond)
		}
		if time.Now().Before(downUntil) && len(out.Alerts) > 0 {
			for _, a := range out.Alerts {
				if _, ok := refused[a.ID+a.State]; !ok {
					refused[a.ID+a.State] = a.Offset
				}
			}
			return &detect.DeliveryError{Sink: "test", Err: errSinkDown}
		}
		for _, a := range out.Alerts {
			delete(refused, a.ID+a.State)
		}
		return nil
	}
	stopPoll := make(chan struct{})
	var pollErr error
	var pollWG sync.WaitGroup
	pollWG.Add(1)
	go func() {
		defer pollWG.Done()
		for {
			select {
			case <-stopPoll:
				return
			case <-time.After(10 * time.Millisecond):
			}
			mu.Lock()
			lowest := int64(-1)
			for _, off := range refused {
				if lowest < 0 || off < lowest {
					lowest = off
				}
			}
			mu.Unlock()
			c, err := k.committed("g3", topicIn)
			if err != nil || lowest < 0 {
				continue
			}
			if c[0] > lowest && pollErr == nil {
				mu.Lock()
				still := false
				for _, off := range refused {
					if off == lowest {
						still = true
					}
				}
				mu.Unlock()
				if still {
					pollErr = fmt.Errorf("committed offset %d is past offset %d, whose alert the sink has not accepted (refused: %v)", c[0], lowest, refused)
				}
			}
		}
	}()
	p := startPipeline(t, k.kafkaConfig("g3", "i3"), sink)
	k.waitCommitted("g3", 30*time.Second)
	close(stopPoll)
	pollWG.Wait()
	p.stop(t)
	if pollErr != nil {
		t.Error(pollErr)
	}
	mu.Lock()
	if downUntil.IsZero() {
		t.Error("the sink never failed: the test did not exercise an outage")
	}
	if len(refused) > 0 {
		t.Errorf("%d refused alert(s) were never delivered after the outage", len(refused))
	}
	mu.Unlock()
	if m := missing(wantKeys, sink.keys()); len(m) > 0 {
		t.Errorf("%d alert(s) lost in the outage:%s", len(m), describe(m))
	}
	// Redelivery restored device state from the changelog, so nothing was
	// learned twice.
	for _, dev := range []string{"dev-000", "dev-007", "dev-019"} {
		got, _ := p.store.MarshalDevice(nil, dev)
		exp, _ := wantStore.MarshalDevice(nil, dev)
		if !bytes.Equal(got, exp) {
			t.Errorf("state of %s after the outage differs from a single pass: rows were learned twice or lost", dev)
		}
	}
}

// 5. A restart restores baselines from the changelog: no new learning
// period, no double counting.
func TestKafkaRestartRestoresStateIntegration(t *testing.T) {
	skipShort(t)
	t.Cleanup(func() { checkLeaks(t) })
	msgs := fleet(20, 240, 180)
	want, wantStore, _ := replay(t, msgs)
	wantKeys := want.keys()
	requireSpike(t, wantKeys)
	cut := 150 * 20 // minute 150 of 240: after learning, before the spike

	k := newCluster(t, 1)
	k.produce(msgs[:cut])
	first := &collectSink{}
	p1 := startPipeline(t, k.kafkaConfig("g5", "i5"), first)
	k.waitCommitted("g5", 20*time.Second)
	p1.stop(t)

	k.produce(msgs[cut:])
	second := &collectSink{}
	p2 := startPipeline(t, k.kafkaConfig("g5", "i5"), second)
	k.waitCommitted("g5", 20*time.Second)
	p2.stop(t)

	got := first.keys()
	for k, n := range second.keys() {
		got[k] += n
	}
	if m := missing(wantKeys, got); len(m) > 0 {
		t.Errorf("%d alert(s) of a single pass missing across the restart (a new learning period hides them):%s", len(m), describe(m))
	}
	if m := missing(got, wantKeys); len(m) > 0 {
		t.Errorf("%d alert(s) across the restart that a single pass does not raise:%s", len(m), describe(m))
	}
	for i := 0; i < 20; i++ {
		dev := fmt.Sprintf("dev-%03d", i)
		gotState, _ := p2.store.MarshalDevice(nil, dev)
		exp, _ := wantStore.MarshalDevice(nil, dev)
		if !bytes.Equal(gotState, exp) {
			t.Errorf("state of %s after the restart differs from a single pass: rows were learned twice or lost", dev)
		}
	}
	for _, g := range p2.store.Groups(nil) {
		if learning, _, _ := p2.store.GroupMode(p2.reg.GroupID(g)); learning {
			t.Errorf("group %s is learning again after the restart", g)
		}
	}
}

// A backlog in several partitions (a restart after downtime): with or
// without the alignment of partitions in event time, no device looks
// silent, because the engine judges silence against the slowest partition.
// The skew meter shows the partitions the engine was handed were hours
// apart without alignment (so the test exercises the watermark). It
// measures the newest event time handed per partition, so a partition that
// finished early counts as ahead in the aligned run too.
func TestKafkaBacklogAlignmentIntegration(t *testing.T) {
	skipShort(t)
	msgs := fleet(20, 240, 180)
	run := func(skew time.Duration) (silences, total int, maxSkew time.Duration) {
		k := newCluster(t, 3)
		k.produce(msgs)
		sink := &collectSink{}
		cfg := k.kafkaConfig("ga", "ia")
		cfg.MaxEventTimeSkew = skew
		m := &skewMeter{high: map[int32]int64{}}
		p := startPipelineWith(t, cfg, sink, func(e *detect.Engine) kafka.Processor { m.Engine = e; return m })
		k.waitCommitted("ga", 20*time.Second)
		p.stop(t)
		keys := sink.keys()
		for k := range keys {
			if k.Detector == detect.DetectorSilence {
				silences++
			}
		}
		return silences, len(keys), time.Duration(m.maxSkew)
	}
	n, total, aligned := run(time.Minute)
	if n != 0 {
		t.Errorf("aligned partitions: %d silence alerts of %d, want none", n, total)
	}
	n, total, unaligned := run(0)
	if n != 0 {
		t.Errorf("unaligned partitions (skew up to %s): %d silence alerts of %d, want none", unaligned, n, total)
	}
	if unaligned < 10*time.Minute {
		t.Errorf("without alignment the partitions were at most %s apart: the test data no longer shows the skew", unaligned)
	}
	t.Logf("largest skew between partitions: %s aligned, %s unaligned", aligned, unaligned)
}

// skewMeter is the engine, measuring how far apart in event time the
// partitions it is handed are.
type skewMeter struct {
	*detect.Engine
	high    map[int32]int64
	maxSkew int64
}

func (m *skewMeter) Process(ctx context.Context, b *ingest.Batch) error {
	if b.Record != nil && b.Record.NumRows() > 0 {
		ts := b.Record.Column(0).(*array.Timestamp).TimestampValues()
		part := b.Record.Column(5).(*array.Int32).Int32Values()
		for i := range ts {
			m.high[part[i]] = max(m.high[part[i]], int64(ts[i]))
		}
		lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
		for _, h := range m.high {
			lo, hi = min(lo, h), max(hi, h)
		}
		m.maxSkew = max(m.maxSkew, hi-lo)
	}
	return m.Engine.Process(ctx, b)
}
