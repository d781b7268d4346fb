package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/vigil-ot/vigil/detect"
)

func newKafkaCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(3, "vigil-alerts", "vigil-quarantine")}, opts...)...)
	if err != nil {
		t.Fatalf("cannot start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// readTopic reads every message of topic from all its partitions.
func readTopic(t *testing.T, addr, topic string, want int) []kafka.Message {
	t.Helper()
	return readTopicWith(t, kafka.DefaultDialer, addr, topic, want)
}

// readTopicWith reads as readTopic does, connecting through d (SASL).
func readTopicWith(t *testing.T, d *kafka.Dialer, addr, topic string, want int) []kafka.Message {
	t.Helper()
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	var out []kafka.Message
	for _, p := range parts {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: p.ID, MaxWait: 50 * time.Millisecond, Dialer: d})
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			m, err := r.ReadMessage(ctx)
			cancel()
			if err != nil {
				break
			}
			out = append(out, m)
		}
		r.Close()
	}
	if len(out) != want {
		t.Fatalf("topic %s holds %d messages, want %d", topic, len(out), want)
	}
	return out
}

func TestKafkaSinkTopicsKeysAndAcks(t *testing.T) {
	c := newKafkaCluster(t)
	addr := c.ListenAddrs()[0]
	s, err := NewKafkaSink("kafka-test", KafkaConfig{Brokers: []string{addr}}, Encoder{Format: FormatJSON}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	alerts := makeAlerts("kafka", 500)
	quarantine := fixtureQuarantine()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < len(alerts); i += 100 {
		out := detect.Output{Alerts: alerts[i : i+100]}
		if i == 0 {
			out.Quarantine = quarantine
		}
		if err := s.Write(ctx, &out); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got := readTopic(t, addr, "vigil-alerts", len(alerts))
	byID := make(map[string]kafka.Message)
	for _, m := range got {
		var v struct {
			ID, Device    string
			SchemaVersion int `json:"schema_version"`
		}
		if err := json.Unmarshal(m.Value, &v); err != nil {
			t.Fatalf("invalid JSON value %q: %v", m.Value, err)
		}
		if string(m.Key) != v.Device || v.SchemaVersion != detect.AlertSchemaVersion {
			t.Fatalf("key %q for device %q, schema %d", m.Key, v.Device, v.SchemaVersion)
		}
		byID[v.ID] = m
	}
	partitionOf := make(map[string]int)
	for i := range alerts {
		m, ok := byID[alerts[i].ID]
		if !ok {
			t.Fatalf("alert %s missing", alerts[i].ID)
		}
		if string(m.Value) != string(AppendAlertJSON(nil, &alerts[i])) {
			t.Fatalf("alert %s altered", alerts[i].ID)
		}
		// Keyed by device: one device's alerts share a partition.
		if p, seen := partitionOf[alerts[i].Device]; seen && p != m.Partition {
			t.Fatalf("device %q spread over partitions %d and %d", alerts[i].Device, p, m.Partition)
		}
		partitionOf[alerts[i].Device] = m.Partition
	}
	qs := readTopic(t, addr, "vigil-quarantine", len(quarantine))
	for _, m := range qs {
		if len(m.Headers) != 1 || string(m.Headers[0].Value) != "quarantine/1" {
			t.Fatalf("quarantine headers %v", m.Headers)
		}
	}
}

func TestKafkaSinkReportsFailuresPerAlert(t *testing.T) {
	c := newKafkaCluster(t)
	// Partition 1 of the alerts topic refuses every produce request.
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		failing := false
		for _, tp := range pr.Topics {
			for _, p := range tp.Partitions {
				failing = failing || (tp.Topic == "vigil-alerts" && p.Partition == 1)
			}
		}
		if !failing {
			return nil, nil, false
		}
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, tp := range pr.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic = tp.Topic
			for _, p := range tp.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition = p.Partition
				if tp.Topic == "vigil-alerts" && p.Partition == 1 {
					rp.ErrorCode = 29 // TOPIC_AUTHORIZATION_FAILED: not retriable
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})
	s, err := NewKafkaSink("kafka-failing", KafkaConfig{Brokers: c.ListenAddrs()}, Encoder{Format: FormatJSON}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	alerts := makeAlerts("kfail", 200)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = s.Write(ctx, &detect.Output{Alerts: alerts})
	var de *detect.DeliveryError
	if !errors.As(err, &de) {
		t.Fatalf("want *detect.DeliveryError, got %v", err)
	}
	if len(de.Failed) == 0 || len(de.Failed) == len(alerts) {
		t.Fatalf("want some but not all alerts failed, got %d of %d: %v", len(de.Failed), len(alerts), err)
	}
	// The failed ones are exactly those absent from the topic.
	stored := make(map[string]bool)
	for _, m := range readTopic(t, c.ListenAddrs()[0], "vigil-alerts", len(alerts)-len(de.Failed)) {
		var v struct{ ID string }
		json.Unmarshal(m.Value, &v)
		stored[v.ID] = true
	}
	for _, id := range de.Failed {
		if stored[id] {
			t.Fatalf("alert %s reported failed but stored", id)
		}
	}
}

func TestKafkaSinkMissingTopicFails(t *testing.T) {
	c := newKafkaCluster(t)
	s, err := NewKafkaSink("kafka-missing", KafkaConfig{Brokers: c.ListenAddrs(), AlertsTopic: "no-such-topic"}, Encoder{Format: FormatJSON}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	alerts := makeAlerts("missing", 3)
	err = s.Write(ctx, &detect.Output{Alerts: alerts})
	var de *detect.DeliveryError
	if !errors.As(err, &de) || len(de.Failed) != 3 {
		t.Fatalf("want all 3 failed, got %v", err)
	}
}

// TestKafkaSinkRolloutTopic: with rollout_topic set, the rollout guard's
// alerts go there and every other alert stays on the alerts topic.
func TestKafkaSinkRolloutTopic(t *testing.T) {
	c := newKafkaCluster(t, kfake.SeedTopics(1, "vigil-rollouts"))
	addr := c.ListenAddrs()[0]
	s, err := NewKafkaSink("kafka-test", KafkaConfig{Brokers: []string{addr}, RolloutTopic: "vigil-rollouts"}, Encoder{Format: FormatJSON}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	alerts := fixtureAlerts()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Write(ctx, &detect.Output{Alerts: alerts}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rollouts := readTopic(t, addr, "vigil-rollouts", 1)
	var v struct {
		Detector string
		Rollout  struct {
			From string `json:"from_version"`
		} `json:"rollout"`
	}
	if err := json.Unmarshal(rollouts[0].Value, &v); err != nil || v.Detector != detect.DetectorRollout || v.Rollout.From != "2.9.4" {
		t.Fatalf("rollout topic holds %s (%v)", rollouts[0].Value, err)
	}
	readTopic(t, addr, "vigil-alerts", len(alerts)-1)
}
