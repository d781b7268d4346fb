package kafka_test

import (
	"strings"
	"testing"
	"time"

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
