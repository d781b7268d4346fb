package kafka_test

import (
	"context"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/ingest/kafka"
)

// produceTransactions writes txns with a transactional producer, one
// transaction each, committing or aborting it as commit says.
func (k *cluster) produceTransactions(txns [][]kafkago.Message, commit []bool) {
	k.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.addrs...), kgo.TransactionalID("vigil-test-producer"), kgo.DefaultProduceTopic(topicIn))
	if err != nil {
		k.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, msgs := range txns {
		if err := cl.BeginTransaction(); err != nil {
			k.t.Fatal(err)
		}
		recs := make([]*kgo.Record, len(msgs))
		for j, m := range msgs {
			recs[j] = &kgo.Record{Key: m.Key, Value: m.Value, Timestamp: m.Time}
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			k.t.Fatalf("cannot produce transaction %d: %v", i, err)
		}
		end := kgo.TryAbort
		if commit[i] {
			end = kgo.TryCommit
		}
		if err := cl.EndTransaction(ctx, end); err != nil {
			k.t.Fatalf("cannot end transaction %d: %v", i, err)
		}
	}
}

// ghost renames the devices of msgs so that their rows are told apart.
func ghost(msgs []kafkago.Message) []kafkago.Message {
	out := make([]kafkago.Message, len(msgs))
	for i, m := range msgs {
		key := "ghost" + strings.TrimPrefix(string(m.Key), "dev")
		out[i] = kafkago.Message{Key: []byte(key), Time: m.Time,
			Value: []byte(strings.Replace(string(m.Value), string(m.Key), key, 1))}
	}
	return out
}

// Transactional producers: under read_committed (the default) the records
// of an aborted transaction are never judged, those of the transactions
// before and after it are, and the group commits the end of the partition,
// past the transaction markers; read_uncommitted judges them all.
func TestKafkaTransactionsIntegration(t *testing.T) {
	skipShort(t)
	t.Cleanup(func() { checkLeaks(t) })
	msgs := fleet(4, 60, 1000)
	first, aborted, last := msgs[:80], ghost(msgs[80:160]), msgs[160:]
	k := newCluster(t, 1)
	k.produceTransactions([][]kafkago.Message{first, aborted, last}, []bool{true, false, true})

	for _, tc := range []struct {
		isolation string
		rows      int
		ghosts    bool
	}{
		{"read_committed", len(first) + len(last), false},
		{"read_uncommitted", len(msgs), true},
	} {
		t.Run(tc.isolation, func(t *testing.T) {
			group := "g-" + tc.isolation
			cfg := k.kafkaConfig(group, "i-"+tc.isolation)
			cfg.IsolationLevel = tc.isolation
			cfg.ChangelogTopic, cfg.GroupStateTopic = "", ""
			counter := &rowCounter{}
			p := startPipelineWith(t, cfg, &collectSink{}, func(e *detect.Engine) kafka.Processor { counter.Engine = e; return counter })
			k.waitCommitted(group, 20*time.Second)
			p.stop(t)

			if rows := counter.rows.Load(); rows != int64(tc.rows) {
				t.Errorf("%d rows reached the engine, want %d", rows, tc.rows)
			}
			ghosts := 0
			for id := 0; id < p.reg.NumDevices(); id++ {
				if strings.HasPrefix(p.reg.DeviceName(int32(id)), "ghost") {
					ghosts++
				}
			}
			if (ghosts > 0) != tc.ghosts {
				t.Errorf("%d devices of the aborted transaction reached the engine; want them %s", ghosts,
					map[bool]string{true: "all judged", false: "never judged"}[tc.ghosts])
			}
		})
	}
}
