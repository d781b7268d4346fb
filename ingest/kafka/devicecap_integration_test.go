package kafka_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/vigil-ot/vigil/detect"
	vpipeline "github.com/vigil-ot/vigil/detect/pipeline"
	"github.com/vigil-ot/vigil/ingest/kafka"
)

// Records of devices past detect.max_devices are dead-lettered with
// reason device_cap before the commit passes them, their names are not
// interned, the devices within the cap are judged, and partition
// checkpoints (which must not ask for the state of a refused row) go on.
func TestKafkaDeviceCapDeadLetteredIntegration(t *testing.T) {
	skipShort(t)
	t.Cleanup(func() { checkLeaks(t) })
	k := newCluster(t, 1)
	sink := &collectSink{}
	p := startPipeline(t, k.kafkaConfig("g-cap", "i-cap"), sink)
	p.reg.LimitDevices(2, false) // before any record exists: the first two devices read are kept
	msgs := fleet(4, 30, 1000)
	k.produce(msgs)
	k.waitCommitted("g-cap", 20*time.Second)
	dead := k.readAll(topicDLQ)
	p.stop(t)

	if n := p.reg.NumDevices(); n != 2 {
		t.Errorf("registry holds %d devices, want 2", n)
	}
	st := p.engine.Stats()
	if st.Rows != 60 || st.DeviceCapRows != 60 {
		t.Errorf("engine judged %d rows and refused %d; want 60 and 60", st.Rows, st.DeviceCapRows)
	}
	if len(dead) != 60 {
		t.Fatalf("dead-letter topic holds %d records, want the 60 of the refused devices", len(dead))
	}
	for _, d := range dead {
		h := map[string]string{}
		for _, x := range d.Headers {
			h[x.Key] = string(x.Value)
		}
		if h[kafka.HeaderReason] != "device_cap" || !strings.Contains(h[kafka.HeaderError], "is new and detect.max_devices") {
			t.Fatalf("dead letter %q: reason %q, explained as %q", d.Key, h[kafka.HeaderReason], h[kafka.HeaderError])
		}
	}
	if n := metricValue(t, p.metrics, `vigil_kafka_dead_letters_total{topic="telemetry",reason="device_cap"}`); n != 60 {
		t.Errorf("vigil_kafka_dead_letters_total{reason=device_cap} is %v, want 60", n)
	}
}

// With detect.when_full evict_idle, a device evicted to make room for a
// new one is tombstoned in its partition's changelog, and the new device,
// admitted by the engine from a row the sources could not admit, is
// checkpointed: an instance that restores the partition has the devices
// tracked at the hand-over, not the evicted one.
func TestKafkaEvictIdleChangelogIntegration(t *testing.T) {
	skipShort(t)
	t.Cleanup(func() { checkLeaks(t) })
	k := newCluster(t, 1)
	pcfg := pipelineConfig()
	pcfg.Detect.MaxDevices = 3
	pcfg.Detect.WhenFull = detect.WhenFullEvictIdle
	start := func(instance string) *pipeline {
		vp, err := vpipeline.New(pcfg, vpipeline.Deps{Sink: &collectSink{}, NoNetwork: true, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		return startPipelineOn(t, k.kafkaConfig("g-evict", instance), vp, nil)
	}
	t0 := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	report := func(dev string, minute int) kafkago.Message {
		ts := t0.Add(time.Duration(minute) * time.Minute)
		v := fmt.Sprintf(`{"device":%q,"ts":%d,"attrs":{"site":"a"},"metrics":{"bytes_out":%d}}`, dev, ts.UnixMilli(), 1000+minute%7)
		return kafkago.Message{Key: []byte(dev), Value: []byte(v), Time: ts}
	}
	var before, after []kafkago.Message
	for m := range 40 {
		for _, dev := range []string{"plc-a", "plc-b", "plc-c"} {
			switch {
			case m < 20:
				before = append(before, report(dev, m))
			case dev != "plc-a": // plc-a stops at minute 20
				after = append(after, report(dev, m))
			}
		}
	}
	// plc-d reports once, at minute 20, in plc-a's place: its only row is
	// one the sources could not admit.
	after = append([]kafkago.Message{report("plc-d", 20)}, after...)
	p := start("i-1")
	k.produce(before)
	k.waitCommitted("g-evict", 20*time.Second) // plc-a is in the changelog
	k.produce(after)
	k.waitCommitted("g-evict", 20*time.Second)
	p.stop(t)
	if st := p.engine.Stats(); st.DevicesEvicted != 1 || st.DeviceCapRows != 0 {
		t.Fatalf("%d devices evicted, %d rows refused; want 1 and 0", st.DevicesEvicted, st.DeviceCapRows)
	}

	latest := map[string][]byte{}
	for _, m := range k.readAll(topicChangelog) {
		if key := string(m.Key); strings.Contains(key, "/d/") {
			latest[key[strings.LastIndex(key, "/")+1:]] = m.Value
		}
	}
	if v, ok := latest["plc-a"]; !ok || v != nil {
		t.Errorf("the evicted plc-a's last changelog record is %d bytes (present: %v), want a tombstone", len(v), ok)
	}
	if latest["plc-d"] == nil {
		t.Error("the changelog has no state of plc-d, admitted in plc-a's place")
	}

	q := start("i-2")
	k.produce([]kafkago.Message{report("plc-b", 40), report("plc-c", 40), report("plc-d", 40)})
	k.waitCommitted("g-evict", 20*time.Second)
	q.stop(t)
	for _, dev := range []string{"plc-b", "plc-c", "plc-d"} {
		if _, ok := q.reg.LookupDevice(dev); !ok {
			t.Errorf("the restoring instance does not track %s", dev)
		}
	}
	if _, ok := q.reg.LookupDevice("plc-a"); ok || q.reg.NumDevices() != 3 {
		t.Errorf("the restoring instance tracks %d devices, plc-a among them: %v; want plc-b, plc-c and plc-d", q.reg.NumDevices(), ok)
	}
	if st := q.engine.Stats(); st.DevicesEvicted != 0 {
		t.Errorf("the restoring instance evicted %d devices, want 0", st.DevicesEvicted)
	}
}
