package kafka_test

import (
	"bufio"
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/ingest/kafka"
)

// metricValue returns the value of the series named exactly series (name
// and labels) in m, 0 when it is not there.
func metricValue(t *testing.T, m *kafka.Metrics, series string) float64 {
	t.Helper()
	var buf bytes.Buffer
	m.Set.WritePrometheus(&buf)
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return f
		}
	}
	return 0
}

// topicExists asks the broker at addr for topic's metadata, without asking
// it to create the topic.
func topicExists(t *testing.T, addrs []string, topic string) bool {
	t.Helper()
	cl := &kafkago.Client{Addr: kafkago.TCP(addrs...), Timeout: 5 * time.Second}
	resp, err := cl.Metadata(context.Background(), &kafkago.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	return len(resp.Topics) == 1 && resp.Topics[0].Error == nil
}

// A topic the consumer needs that does not exist fails Run at once, naming
// the topic and its setting, before the group is joined; the topic is not
// created on the way.
func TestKafkaMissingTopicIntegration(t *testing.T) {
	skipShort(t)
	t.Cleanup(func() { checkLeaks(t) })
	for _, tc := range []struct {
		name, missing, setting string
	}{
		{"dead letter", topicDLQ, "kafka.dead_letter_topic"},
		{"changelog", topicChangelog, "kafka.changelog_topic"},
		{"input", topicIn, "kafka.telemetry_topics"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var seed []string
			for _, topic := range []string{topicIn, topicChangelog, topicGroups, topicDLQ} {
				if topic != tc.missing {
					seed = append(seed, topic)
				}
			}
			kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, seed...), kfake.GroupMinSessionTimeout(100*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			defer kc.Close()
			k := &cluster{t: t, c: kc, addrs: kc.ListenAddrs()}
			p := startPipeline(t, k.kafkaConfig("g-missing", "i-missing"), &collectSink{})
			var runErr error
			select {
			case runErr = <-p.done:
			case <-time.After(10 * time.Second):
				p.cancel()
				<-p.done
				t.Fatalf("consumer without topic %s still runs after 10s; want it to fail at start-up", tc.missing)
			}
			if runErr == nil || !strings.Contains(runErr.Error(), "topic "+tc.missing+" ("+tc.setting+") does not exist") {
				t.Fatalf("Run: %v; want an error naming topic %s and %s", runErr, tc.missing, tc.setting)
			}
			if n := metricValue(t, p.metrics, "vigil_kafka_rebalances_total"); n != 0 {
				t.Errorf("joined %v generations; want none", n)
			}
			if topicExists(t, k.addrs, tc.missing) {
				t.Errorf("topic %s was created", tc.missing)
			}
		})
	}
}

// A dead-letter topic that goes away while Vigil runs stalls the partition
// with the reject, without leaving the group: one generation, the reject
// counted once, nothing committed past it; once the topic is back the
// reject lands there once and every good record is judged.
func TestKafkaDeadLetterTopicGoneIntegration(t *testing.T) {
	skipShort(t)
	t.Cleanup(func() { checkLeaks(t) })
	k := newCluster(t, 1)
	before, after := fleet(4, 20, 1000)[:40], fleet(4, 20, 1000)[40:]
	k.produce(before)
	counter := &rowCounter{}
	p := startPipelineWith(t, k.kafkaConfig("g-gone", "i-gone"), &collectSink{}, func(e *detect.Engine) kafka.Processor { counter.Engine = e; return counter })
	k.waitCommitted("g-gone", 20*time.Second)

	admin := &kafkago.Client{Addr: kafkago.TCP(k.addrs...), Timeout: 5 * time.Second}
	if resp, err := admin.DeleteTopics(context.Background(), &kafkago.DeleteTopicsRequest{Topics: []string{topicDLQ}}); err != nil || resp.Errors[topicDLQ] != nil {
		t.Fatalf("cannot delete %s: %v %v", topicDLQ, err, resp)
	}
	k.produce(append([]kafkago.Message{{Key: []byte("dev-000"), Value: []byte(`{"device":"dev-000","ts":`)}}, after...))
	time.Sleep(3 * time.Second)
	end := k.endOffsets(topicIn)[0]
	if got, _ := k.committed("g-gone", topicIn); got[0] >= end {
		t.Errorf("committed %d of %d records while the reject could not reach the dead-letter topic", got[0], end)
	}

	if resp, err := admin.CreateTopics(context.Background(), &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{{Topic: topicDLQ, NumPartitions: 1, ReplicationFactor: 1}}}); err != nil || resp.Errors[topicDLQ] != nil {
		t.Fatalf("cannot create %s: %v %v", topicDLQ, err, resp)
	}
	k.waitCommitted("g-gone", 30*time.Second)
	p.stop(t)

	if n := metricValue(t, p.metrics, "vigil_kafka_rebalances_total"); n != 1 {
		t.Errorf("%v generations; want the group joined once and kept", n)
	}
	if n := metricValue(t, p.metrics, `vigil_kafka_decode_errors_total{topic="telemetry",reason="json_syntax"}`); n != 1 {
		t.Errorf("the reject was counted %v times; want once", n)
	}
	if dead := k.readAll(topicDLQ); len(dead) != 1 {
		t.Errorf("dead-letter topic holds %d records; want the one reject", len(dead))
	}
	if rows := counter.rows.Load(); rows != int64(len(before)+len(after)) {
		t.Errorf("%d rows judged; want the %d good records", rows, len(before)+len(after))
	}
}
