package kafka_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/vigil-ot/vigil/detect"
)

// waitCommittedOn waits until group committed, on every partition of
// topic, the end the partition had when the wait began.
func (k *cluster) waitCommittedOn(group, topic string, timeout time.Duration) {
	k.t.Helper()
	want := k.endOffsets(topic)
	var parts []int
	for p := range want {
		parts = append(parts, p)
	}
	cl := &kafkago.Client{Addr: kafkago.TCP(k.addrs...), Timeout: 5 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := cl.OffsetFetch(context.Background(), &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
		done := err == nil && resp.Error == nil
		for _, p := range resp.Topics[topic] {
			done = done && p.CommittedOffset >= want[p.Partition]
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("group %s did not commit the end of %s (%v) in %s", group, topic, want, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// With kafka.repartition_by_group, state follows the by-group topic's
// partitions: an instance stopped while identity alarms are open, then
// started again, restores them from the changelog of its by-group
// partition (no alarm raised again, each cleared once, by the new
// process) and the alert ids are replay's, the four telemetry partitions
// merged into one by-group partition in event-time order both times.
func TestKafkaRepartitionRestartIntegration(t *testing.T) {
	skipShort(t)
	msgs := identityFleet(8, 75)
	ref, _, _ := replay(t, msgs)
	want := alarmIDs(t, ref.alerts)
	const split = 8 * 40 // minute 40: the identity alarms are open

	k := newCluster(t, 4)
	cfg := k.kafkaConfig("g-repartition", "a")
	cfg.RepartitionByGroup = true
	k.createTopic(cfg.ByGroupTopic(), 2)
	run := func(msgs []kafkago.Message) []detect.Alert {
		// A backlog: the stage reads it whole (a record produced while it
		// is caught up may be merged as late data).
		k.produce(msgs)
		sink := &collectSink{}
		p := startPipeline(t, cfg, sink)
		k.waitCommittedOn(cfg.RepartitionGroupID(), topicIn, 30*time.Second)
		k.waitCommittedOn(cfg.GroupID, cfg.ByGroupTopic(), 30*time.Second)
		p.stop(t)
		return sink.snapshot()
	}
	first := run(msgs[:split])
	if n := countState(first, detect.DetectorIdentity, detect.StateAlarm); n != 4 {
		t.Fatalf("%d identity alarms open when the first process stopped, want 4:%s", n, describeAlerts(first))
	}
	second := run(msgs[split:])
	checkLedger(t, want, append(first, second...))
	if n := countState(second, detect.DetectorIdentity, detect.StateAlarm); n != 0 {
		t.Errorf("the restarted instance raised %d identity alarms that were open at its checkpoint:%s", n, describeAlerts(second))
	}
	if countState(second, detect.DetectorIdentity, detect.StateCleared) != 4 {
		t.Errorf("the restarted instance did not clear the four identity alarms:%s", describeAlerts(second))
	}
}

// createTopic creates topic with partitions partitions.
func (k *cluster) createTopic(topic string, partitions int) {
	k.t.Helper()
	cl := &kafkago.Client{Addr: kafkago.TCP(k.addrs...), Timeout: 5 * time.Second}
	resp, err := cl.CreateTopics(context.Background(), &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}}})
	if err == nil {
		err = resp.Errors[topic]
	}
	if err != nil {
		k.t.Fatalf("cannot create %s: %v", topic, err)
	}
}

// A device that reports a new group-by attribute moves to its new group's
// by-group partition, and the move is counted once.
func TestKafkaRepartitionGroupChangeIntegration(t *testing.T) {
	skipShort(t)
	start := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	var msgs []kafkago.Message
	for m := 0; m < 10; m++ {
		for d := 0; d < 4; d++ {
			dev, site := fmt.Sprintf("dev-%03d", d), "a"
			if d%2 == 1 || dev == "dev-000" && m >= 5 {
				site = "b"
			}
			ts := start.Add(time.Duration(m) * time.Minute)
			v := fmt.Sprintf(`{"device":%q,"ts":%d,"attrs":{"site":%q},"metrics":{"bytes_out":1000}}`, dev, ts.UnixMilli(), site)
			msgs = append(msgs, kafkago.Message{Key: []byte(dev), Value: []byte(v), Time: ts})
		}
	}
	k := newCluster(t, 2)
	cfg := k.kafkaConfig("g-moves", "a")
	cfg.RepartitionByGroup = true
	k.createTopic(cfg.ByGroupTopic(), 2)
	k.produce(msgs)
	p := startPipeline(t, cfg, &collectSink{})
	k.waitCommittedOn(cfg.RepartitionGroupID(), topicIn, 30*time.Second)
	k.waitCommittedOn(cfg.GroupID, cfg.ByGroupTopic(), 30*time.Second)
	p.stop(t)
	var b bytes.Buffer
	p.metrics.Set.WritePrometheus(&b)
	if !strings.Contains(b.String(), "vigil_kafka_repartition_group_changes_total 1\n") {
		t.Errorf("want one group change counted:\n%s", b.String())
	}
	if !strings.Contains(b.String(), fmt.Sprintf("vigil_kafka_repartitioned_records_total %d\n", len(msgs))) {
		t.Errorf("want %d records repartitioned:\n%s", len(msgs), b.String())
	}
}
