package telemetry

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/inventory"
)

// nativeMessages returns n realistic native messages with 5 metrics each
// from 1000 devices over 6 groups.
func nativeMessages(n int) [][]byte {
	msgs := make([][]byte, n)
	for i := range msgs {
		dev := i % 1000
		msgs[i] = fmt.Appendf(nil, `{"device":"plc-%04d","ts":"2026-11-21T10:%02d:%02d.%03dZ","attrs":{"site":"plant-%c","hw":"s7-%d","fw":"2.9.4"},"metrics":{"bytes_out":%d,"bytes_in":%d,"msgs_sent":%d,"auth_failures":%d,"cpu_pct":%d.5},"conn":{"src_ip":"10.1.%d.%d","client_id":"plc-%04d","cert":"sha256:ab12cd34ef56"}}`,
			dev, (i/60)%60, i%60, i%1000, 'a'+dev%3, 1200+300*(dev%2), 1000+i%977, 800+i%313, 10+i%7, i%2, i%90, dev/250, dev%250, dev)
	}
	return msgs
}

// kafkaMessages returns n messages of the shape bench/kafkabench sends
// (epoch-millisecond ts, two attrs, five fractional metrics, no conn),
// from 200 devices as its default fleet.
func kafkaMessages(n int) [][]byte {
	rnd := rand.New(rand.NewPCG(1, 2))
	msgs := make([][]byte, n)
	for i := range msgs {
		d := i % 200
		msgs[i] = fmt.Appendf(nil, `{"device":%q,"ts":%d,"attrs":{"site":"s%d","hw":"h%d"},"metrics":{"bytes_out":%.1f,"bytes_in":%.1f,"msgs_sent":%.1f,"cpu_pct":%.2f,"probe":%g}}`,
			fmt.Sprintf("dev-%d", d), 1793577600000+int64(i/200)*1000, d%3, d%2,
			1000+100*rnd.NormFloat64(), 2000+100*rnd.NormFloat64(), 10+rnd.NormFloat64(), 30+3*rnd.NormFloat64(), 0.0)
	}
	return msgs
}

// BenchmarkNativeDecode measures JSON bytes → Row.
func BenchmarkNativeDecode(b *testing.B) { benchDecode(b, nativeMessages(4096)) }

// BenchmarkKafkaShapeDecode is BenchmarkNativeDecode on kafkabench's
// messages.
func BenchmarkKafkaShapeDecode(b *testing.B) { benchDecode(b, kafkaMessages(4096)) }

func benchDecode(b *testing.B, msgs [][]byte) {
	d := newDecoder(b, nil)
	var bytes int64
	for _, m := range msgs {
		bytes += int64(len(m))
	}
	b.SetBytes(bytes / int64(len(msgs)))
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := d.Decode(nil, msgs[i%len(msgs)], 0); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, cpu0)
}

// BenchmarkNativeToBuilder measures the telemetry ingest hot path: native
// JSON bytes with 5 metrics → Decode → ObservationBuilder.Append, with a
// record cut every 4096 rows as the JSONL source and Kafka workers do.
func BenchmarkNativeToBuilder(b *testing.B) { benchToBuilder(b, nativeMessages(4096)) }

// BenchmarkKafkaShapeToBuilder is BenchmarkNativeToBuilder on kafkabench's
// messages.
func BenchmarkKafkaShapeToBuilder(b *testing.B) { benchToBuilder(b, kafkaMessages(4096)) }

func benchToBuilder(b *testing.B, msgs [][]byte) {
	d := newDecoder(b, nil)
	// Groups come from the inventory package as in replay; with no file it
	// groups by the site and hw attributes the messages carry.
	inv, err := inventory.Open(ingest.DefaultInventoryConfig(), nil)
	if err != nil {
		b.Fatal(err)
	}
	bld := ingest.NewObservationBuilder(nil, ingest.NewRegistry(), inv)
	b.SetBytes(int64(len(msgs[0])))
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rows, err := d.Decode(nil, msgs[i%len(msgs)], 0)
		if err != nil {
			b.Fatal(err)
		}
		for j := range rows {
			rows[j].Partition, rows[j].Offset = 0, int64(i)
			bld.Append(&rows[j])
		}
		if bld.Len() == 4096 {
			rec, _ := bld.NewRecord()
			rec.Release()
		}
	}
	reportRate(b, cpu0)
}

func benchFile(b *testing.B, name string, key []byte) {
	data, err := os.ReadFile(filepath.Join(formatsDir, "good", name))
	if err != nil {
		b.Fatal(err)
	}
	d := newDecoder(b, nil)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := d.Decode(key, data, 0); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, cpu0)
}

func BenchmarkDefenderShort(b *testing.B) { benchFile(b, "defender-short.json", []byte("meter-1")) }

func BenchmarkTelegrafLine(b *testing.B) {
	msg := []byte(`{"fields":{"bytes_recv":91823712,"bytes_sent":12873123,"drop_in":0,"err_in":0,"packets_recv":71231,"packets_sent":50211},"name":"net","tags":{"host":"gw-a-01","hw":"rpi4","interface":"eth0","site":"plant-a"},"timestamp":1795687200}`)
	d := newDecoder(b, nil)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if _, err := d.Decode(nil, msg, 0); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, cpu0)
}

// cpuTime returns the process's user+system CPU time. The benchmark
// machine is shared, so wall-clock ns/op overstates the cost; msgs/cpu-s
// is the rate one fully available core would sustain.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportRate(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "msgs/cpu-s")
	}
}
