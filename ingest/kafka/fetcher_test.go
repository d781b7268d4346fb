package kafka

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/vigil-ot/vigil/ingest"
)

func fetcherCluster(t *testing.T) (addr string, produce func(from, n int)) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "fetch"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	addr = c.ListenAddrs()[0]
	w := &kafkago.Writer{Addr: kafkago.TCP(addr), Topic: "fetch", BatchSize: 50, BatchTimeout: time.Millisecond, RequiredAcks: kafkago.RequireOne}
	t.Cleanup(func() { w.Close() })
	return addr, func(from, n int) {
		t.Helper()
		msgs := make([]kafkago.Message, n)
		for i := range msgs {
			msgs[i] = kafkago.Message{Key: []byte("k"), Value: []byte(strconv.Itoa(from + i))}
		}
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
	}
}

func testPrefetcher(t testing.TB, ctx context.Context, addr string, start int64, maxWait time.Duration, chunk int) *prefetcher {
	cfg := ingest.DefaultKafkaConfig()
	cfg.Brokers, cfg.FetchMaxWait = []string{addr}, maxWait
	if _, ok := t.(*testing.T); ok {
		cfg.FetchMaxBytes = 4096 // small: many fetch responses
	}
	rc := ReaderConfig(&cfg, "fetch", 0)
	rc.Dialer = kafkago.DefaultDialer
	return startPrefetch(ctx, newPartitionFetcher(rc, start, slog.New(slog.NewTextHandler(io.Discard, nil))), chunk)
}

// TestPrefetcherReadsInOrder: every record once, in offset order, across
// many fetch responses and chunks, from the first offset; from the last
// offset only what comes after; the linger ends a wait.
func TestPrefetcherReadsInOrder(t *testing.T) {
	addr, produce := fetcherCluster(t)
	produce(0, 700)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := testPrefetcher(t, ctx, addr, kafkago.FirstOffset, 50*time.Millisecond, 64)
	for i := 0; i < 700; i++ {
		m, err := p.get(time.Now().Add(5 * time.Second))
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if m.Offset != int64(i) || string(m.Value) != strconv.Itoa(i) {
			t.Fatalf("record %d: got offset %d value %q", i, m.Offset, m.Value)
		}
		if m.HighWaterMark < m.Offset+1 {
			t.Fatalf("record %d: high-water mark %d", i, m.HighWaterMark)
		}
	}
	t0 := time.Now()
	if _, err := p.get(time.Now().Add(100 * time.Millisecond)); !errors.Is(err, errLingerOver) {
		t.Fatalf("get past the end: %v, want errLingerOver", err)
	}
	if d := time.Since(t0); d < 90*time.Millisecond || d > 2*time.Second {
		t.Fatalf("linger of 100ms took %s", d)
	}
	produce(700, 3)
	for i := 700; i < 703; i++ {
		if m, err := p.get(time.Now().Add(5 * time.Second)); err != nil || m.Offset != int64(i) {
			t.Fatalf("record %d after a pause: %v, %v", i, m, err)
		}
	}

	late := testPrefetcher(t, ctx, addr, kafkago.LastOffset, 50*time.Millisecond, 64)
	time.Sleep(200 * time.Millisecond) // let it resolve the last offset first
	produce(703, 2)
	if m, err := late.get(time.Now().Add(5 * time.Second)); err != nil || m.Offset != 703 {
		t.Fatalf("from LastOffset: got %v, %v; want offset 703", m, err)
	}
}

// TestPrefetcherStopsPromptly: a stop does not wait for a fetch the broker
// holds open (fetch_max_wait here 10 s).
func TestPrefetcherStopsPromptly(t *testing.T) {
	addr, produce := fetcherCluster(t)
	produce(0, 1)
	ctx, cancel := context.WithCancel(context.Background())
	p := testPrefetcher(t, ctx, addr, kafkago.FirstOffset, 10*time.Second, 64)
	if _, err := p.get(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // now waiting in a fetch for more
	t0 := time.Now()
	cancel()
	if _, err := p.get(time.Time{}); !errors.Is(err, errStopped) {
		t.Fatalf("get after the stop: %v, want errStopped", err)
	}
	p.drain()
	if d := time.Since(t0); d > time.Second {
		t.Fatalf("stop took %s", d)
	}
}
