package kafka

import (
	"context"
	"strconv"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// BenchmarkPrefetcherRecord is the cost of fetching one 160-byte record
// from kfake in the test process through the partition fetcher and
// prefetcher, the broker's share included; kafkabench puts it beside a
// kafka-go Reader's.
func BenchmarkPrefetcherRecord(b *testing.B) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "fetch"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	const n = 50_000
	w := &kafkago.Writer{Addr: kafkago.TCP(addr), Topic: "fetch", BatchSize: 5000, BatchBytes: 8 << 20, BatchTimeout: time.Millisecond, RequiredAcks: kafkago.RequireOne}
	msgs := make([]kafkago.Message, n)
	value := make([]byte, 160)
	for i := range msgs {
		msgs[i] = kafkago.Message{Key: []byte("dev-" + strconv.Itoa(i%200)), Value: value}
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		b.Fatal(err)
	}
	w.Close()
	b.ReportAllocs()
	b.ResetTimer()
	read := 0
	for read < b.N {
		ctx, cancel := context.WithCancel(context.Background())
		p := testPrefetcher(b, ctx, addr, kafkago.FirstOffset, 100*time.Millisecond, 512)
		for i := 0; i < n && read < b.N; i++ {
			if _, err := p.get(time.Time{}); err != nil {
				b.Fatal(err)
			}
			read++
		}
		cancel()
		p.drain()
	}
}
