package kafka_test

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/ingest/kafka"
)

// A telemetry record dated in 2030 among records of 2026 is rejected by
// the engine's clock and dead-lettered like an undecodable one: its key
// and value as they were, its reason and an explanation in the headers,
// counted by reason. It is there by the time the offsets are committed
// past it, the records around it are judged, and the clock did not move:
// no device went silent. Without a wall clock the engine holds the record
// back until the next one drops it; with one (vigil run's) it rejects it
// at once.
func TestKafkaFutureRecordDeadLetteredIntegration(t *testing.T) {
	skipShort(t)
	t.Cleanup(func() { checkLeaks(t) })
	for _, c := range []struct {
		name, ahead string
		clock       func() time.Time
	}{
		{"event time only", "ahead of the stream (clock.max_skew 5m0s), and fewer than clock.confirm_rows", nil},
		{"wall clock", "ahead of the wall clock (clock.max_skew 5m0s)", time.Now},
	} {
		t.Run(c.name, func(t *testing.T) { futureRecordDeadLettered(t, c.clock, c.ahead) })
	}
}

func futureRecordDeadLettered(t *testing.T, clock func() time.Time, ahead string) {
	good := fleet(4, 60, 1000)
	future := kafkago.Message{Key: []byte("dev-002"),
		Value: []byte(`{"device":"dev-002","ts":1893456000000,"attrs":{"site":"a"},"metrics":{"bytes_out":1000,"msgs_sent":10}}`)}
	at := len(good) / 2
	msgs := append(append(append([]kafkago.Message{}, good[:at]...), future), good[at:]...)
	k := newCluster(t, 1)
	k.produce(msgs)
	sink := &collectSink{}
	p := startPipelineClock(t, k.kafkaConfig("g-future", "i-future"), sink, nil, clock)
	k.waitCommitted("g-future", 20*time.Second)

	// Read before the stop, right after the commit: the commit waits for it.
	dead := k.readAll(topicDLQ)
	p.stop(t)
	if len(dead) != 1 {
		t.Fatalf("dead-letter topic holds %d records, want the future-dated one", len(dead))
	}
	d := dead[0]
	if !bytes.Equal(d.Key, future.Key) || !bytes.Equal(d.Value, future.Value) {
		t.Errorf("dead letter: key %q value %q, want the original %q %q", d.Key, d.Value, future.Key, future.Value)
	}
	h := map[string]string{}
	for _, x := range d.Headers {
		h[x.Key] = string(x.Value)
	}
	if h[kafka.HeaderReason] != "future_time" {
		t.Errorf("dead letter reason %q, want future_time", h[kafka.HeaderReason])
	}
	if why := h[kafka.HeaderError]; !strings.HasPrefix(why, "event time 2030-01-01T00:00:00Z is 3y") || !strings.Contains(why, ahead) {
		t.Errorf("dead letter explained as %q, want the event time, how far it is %s", why, ahead)
	}
	if h[kafka.HeaderTopic] != topicIn || h[kafka.HeaderPartition] != "0" || h[kafka.HeaderOffset] != strconv.Itoa(at) {
		t.Errorf("dead letter from %s/%s@%s, want %s/0@%d", h[kafka.HeaderTopic], h[kafka.HeaderPartition], h[kafka.HeaderOffset], topicIn, at)
	}
	if n := metricValue(t, p.metrics, `vigil_kafka_dead_letters_total{topic="telemetry",reason="future_time"}`); n != 1 {
		t.Errorf("vigil_kafka_dead_letters_total{reason=future_time} is %v, want 1", n)
	}

	st := p.engine.Stats()
	if st.Rows != int64(len(good)) || st.FutureRows != 1 {
		t.Errorf("engine judged %d rows and rejected %d as future; want %d and 1", st.Rows, st.FutureRows, len(good))
	}
	if last := good[len(good)-1].Time; p.engine.Watermark() > last.UnixNano() {
		t.Errorf("watermark %v is past the newest good record (%v): the future record moved the clock",
			time.Unix(0, p.engine.Watermark()).UTC(), last)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, a := range sink.alerts {
		if a.Detector == detect.DetectorSilence {
			t.Errorf("silence alert %s on %s: the future record moved the clock", a.ID, a.Device)
		}
	}
}
