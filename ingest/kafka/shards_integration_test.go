package kafka_test

import (
	"context"
	"testing"
	"time"

	vpipeline "github.com/vigil-ot/vigil/detect/pipeline"
	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/kafka"
)

// TestKafkaShardsMatchReplayIntegration: the consumer feeding two engine
// shards (vigil run --shards 2, without changelog and group state topics)
// raises the alerts of a replay on one engine.
func TestKafkaShardsMatchReplayIntegration(t *testing.T) {
	skipShort(t)
	t.Cleanup(func() { checkLeaks(t) })
	msgs := fleet(20, 240, 180)
	want, _, _ := replay(t, msgs)
	wantKeys := want.keys()
	requireSpike(t, wantKeys)

	k := newCluster(t, 1)
	k.produce(msgs)
	cfg := k.kafkaConfig("g1", "i1")
	cfg.ChangelogTopic, cfg.GroupStateTopic = "", ""
	sink := &collectSink{}
	vp, err := vpipeline.New(pipelineConfig(), vpipeline.Deps{Sink: sink, NoNetwork: true, Logger: testLogger(t), Clock: time.Now, Shards: 2})
	if err != nil {
		t.Fatal(err)
	}
	if vp.Sharded == nil {
		t.Fatal("two shards asked, one engine built")
	}
	tcfg := ingest.DefaultTelemetryConfig()
	c, err := kafka.New(kafka.Options{
		Config: cfg,
		Decoders: func(kind, topic string, p int32) (kafka.Decoder, error) {
			return kafka.NewTelemetryDecoder(tcfg, kafka.DrillCheck{})
		},
		Engine: vp.Judge, Registry: vp.Registry, Grouper: vp.Inventory, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	k.waitCommitted("g1", 20*time.Second)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("consumer stopped with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("consumer did not stop within 15s")
	}

	got := sink.keys()
	if m := missing(wantKeys, got); len(m) > 0 {
		t.Errorf("%d alert(s) of replay did not come through Kafka and two shards:%s", len(m), describe(m))
	}
	if m := missing(got, wantKeys); len(m) > 0 {
		t.Errorf("%d alert(s) came through Kafka and two shards that replay does not raise:%s", len(m), describe(m))
	}
	if st := vp.Judge.Stats(); st.Rows != int64(len(msgs)) {
		t.Errorf("two shards judged %d rows, want %d", st.Rows, len(msgs))
	}
}

// The consumer finds what the engine offers it by these interfaces.
var (
	_ kafka.BacklogReader   = (*vpipeline.Sharded)(nil)
	_ kafka.DeviceForgetter = (*vpipeline.Sharded)(nil)
	_ kafka.Flusher         = (*vpipeline.Sharded)(nil)
)
