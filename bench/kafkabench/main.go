// Command kafkabench measures Vigil's Kafka path against bare consumers
// (kafka-go with and without its Reader, franz-go's kgo) on the same
// in-process broker, in one run:
//
//  1. throughput: N telemetry records are produced once; then, -runs
//     times, a bare kafka-go consumer (one Reader per partition with the
//     ReaderConfig Vigil's workers fetch with, counting messages) reads
//     them, kafka-go fetch batches are read without a Reader (what the
//     Reader itself costs), a franz-go kgo client reads them (a second
//     library: the figure is against the fastest bare side), and Vigil's
//     consumer group (a new group each
//     run) reads, decodes, judges and delivers them (alerts to a JSON sink
//     writing to io.Discard). Groups protect after -learn-for of event
//     time (2 minutes; the records are one per device per second), so most
//     rows are judged against their baselines, not only learned. Rates count from the first record fetched
//     to the last one done; CPU per record is the process's (the broker's
//     share included). The median ratio of the runs is the figure.
//
//  2. latency: records are produced at half of Vigil's measured rate with
//     the wall clock as event time; every 50 ms one device sends a probe
//     that a static rule turns into an alarm at once. The latency of an
//     alert is the time from producing its record to the sink accepting it.
//
//     go run ./bench/kafkabench                 # defaults: 1M records, 3 partitions, 3 runs
//     go run ./bench/kafkabench -records 1000000 -partitions 6 -runs 5
//     go run ./bench/kafkabench -cpuprofile vigil.prof -bareprofile bare.prof  # first run only
//
//  3. with -scaleout 1,2,3 instead: kafka.repartition_by_group with that
//     many instances in one process against one instance without it
//     (scaleOut).
//
//     go run ./bench/kafkabench -scaleout 1,2,3 -records 300000 -partitions 6 -sites 6
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/inventory"
	"github.com/vigil-ot/vigil/ingest/kafka"
	"github.com/vigil-ot/vigil/sinks"
)

const (
	topicIn  = "bench-telemetry"
	topicLat = "bench-latency"
)

func main() {
	// A million records take about a second: the last batch of each
	// partition waits batch_linger (20 ms) for records that never come,
	// which a continuous stream does not, and a run of 300k records (a
	// third of a second) would count that wait three times as much.
	records := flag.Int("records", 1_000_000, "records for the throughput run")
	partitions := flag.Int("partitions", 3, "partitions of the input topics")
	devices := flag.Int("devices", 200, "devices in the simulated fleet")
	latencyFor := flag.Duration("latency-for", 10*time.Second, "length of the latency run")
	flag.IntVar(&runs, "runs", 3, "throughput runs (bare, then vigil, each time); the median ratio is reported")
	flag.DurationVar(&learnFor, "learn-for", 2*time.Minute, "event time the groups learn before they protect in the throughput run (one report per device per second)")
	flag.IntVar(&batchSize, "batch-size", 0, "kafka.batch_size of the throughput run (0: the default)")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of Vigil's throughput run to this file")
	flag.StringVar(&bareProfile, "bareprofile", "", "write a CPU profile of the bare consumer's run to this file")
	scale := flag.String("scaleout", "", "instead: measure kafka.repartition_by_group with these instance counts (e.g. 1,2,3) against one instance without it")
	flag.IntVar(&sites, "sites", 3, "sites of the fleet: its groups are sites × 2 hardware versions")
	flag.Parse()
	if *scale != "" {
		var counts []int
		for _, f := range strings.Split(*scale, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				fmt.Fprintf(os.Stderr, "kafkabench: cannot parse -scaleout %q: list instance counts, e.g. 1,2,3\n", *scale)
				os.Exit(2)
			}
			counts = append(counts, n)
		}
		if err := scaleOut(*records, int32(*partitions), *devices, counts); err != nil {
			fmt.Fprintln(os.Stderr, "kafkabench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*records, int32(*partitions), *devices, *latencyFor); err != nil {
		fmt.Fprintln(os.Stderr, "kafkabench:", err)
		os.Exit(1)
	}
}

var (
	cpuProfile, bareProfile string
	runs, batchSize, sites  int
	learnFor                time.Duration
)

// profile profiles one phase of the run, so that the throughput runs'
// profiles are not diluted by producing and the latency run.
func profile(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kafkabench: cannot write profile:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "kafkabench: cannot profile:", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

func run(records int, partitions int32, devices int, latencyFor time.Duration) error {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.SeedTopics(partitions, topicIn, topicLat, "bench-changelog"),
		kfake.SeedTopics(1, "bench-groups", "bench-dlq"),
		kfake.SeedTopics(partitions, seq("bench-changelog-", runs)...),
		kfake.SeedTopics(1, seq("bench-groups-", runs)...),
		kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		return err
	}
	defer cluster.Close()
	addr := cluster.ListenAddrs()[0]
	fmt.Printf("kafkabench: kfake broker %s, %d partitions, %d devices, GOMAXPROCS %d, %s\n",
		addr, partitions, devices, runtime.GOMAXPROCS(0), runtime.Version())

	msgs := fleet(records, devices, time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), time.Second)
	t0 := time.Now()
	if err := produce(addr, topicIn, msgs); err != nil {
		return err
	}
	fmt.Printf("produced %d records (%d bytes each on average) in %s\n", records, avgSize(msgs), time.Since(t0).Round(time.Millisecond))

	// CPU seconds (user+system, the broker's included) tell the cost apart
	// from how busy the machine happens to be. Both sides read with the
	// same kafka-go ReaderConfig (kafka.ReaderConfig of the same config).
	var ratios, fastestRatios, vigRates []float64
	for i := 0; i < runs; i++ {
		cfg := benchConfig([]string{addr}, fmt.Sprintf("bench-throughput-%d", i), topicIn)
		cfg.ChangelogTopic, cfg.GroupStateTopic = fmt.Sprintf("bench-changelog-%d", i), fmt.Sprintf("bench-groups-%d", i)
		if batchSize > 0 {
			cfg.BatchSize = batchSize
		}
		stop := profile(bareProfile)
		c0 := cpuSeconds()
		bare, err := bareConsumer(&cfg, int(partitions), records)
		stop()
		if err != nil {
			return err
		}
		bareCPU := cpuSeconds() - c0
		c0 = cpuSeconds()
		batches, err := bareBatches(&cfg, int(partitions), records)
		if err != nil {
			return err
		}
		batchesCPU := cpuSeconds() - c0
		c0 = cpuSeconds()
		franz, err := bareFranz(&cfg, records)
		if err != nil {
			return err
		}
		franzCPU := cpuSeconds() - c0
		fastest := max(bare, batches, franz)
		stop = profile(cpuProfile)
		c0 = cpuSeconds()
		vig, out, err := vigilThroughput(cfg, records)
		stop()
		if err != nil {
			return err
		}
		vigCPU := cpuSeconds() - c0
		// Profile the first run only; later ones would overwrite it.
		cpuProfile, bareProfile = "", ""
		fmt.Printf("run %d  bare kafka-go: %8.0f records/s %5.2f µs CPU/record | vigil: %8.0f records/s %5.2f µs CPU/record | %3.0f%% of bare's rate, %3.0f%% of its records/CPU-second\n",
			i+1, bare, 1e6*bareCPU/float64(records), vig, 1e6*vigCPU/float64(records), 100*vig/bare, 100*bareCPU/vigCPU)
		fmt.Printf("       kafka-go batches without a Reader: %8.0f records/s %5.2f µs CPU/record (the Reader's own share: %.2f µs)\n",
			batches, 1e6*batchesCPU/float64(records), 1e6*(bareCPU-batchesCPU)/float64(records))
		fmt.Printf("       franz-go kgo consumer:             %8.0f records/s %5.2f µs CPU/record | vigil %3.0f%% of the fastest bare consumer's rate\n",
			franz, 1e6*franzCPU/float64(records), 100*vig/fastest)
		fmt.Printf("       vigil judged %d rows, %d alarm alerts; %d of %d groups protecting (after %s of event time, %.0f%% of the rows)\n",
			out.stats.Rows, sum(out.stats.Alerts), out.protecting, out.groups, learnFor, 100*max(0, 1-float64(devices)*learnFor.Seconds()/float64(records)))
		ratios = append(ratios, vig/bare)
		fastestRatios = append(fastestRatios, vig/fastest)
		vigRates = append(vigRates, vig)
	}
	sort.Float64s(ratios)
	sort.Float64s(fastestRatios)
	sort.Float64s(vigRates)
	vig := vigRates[len(vigRates)/2]
	fmt.Printf("median over %d runs: vigil %.0f records/s, %.0f%% of the bare kafka-go consumer's rate, %.0f%% of the fastest bare consumer's (kafka-go Reader, kafka-go batches or franz-go)\n",
		runs, vig, 100*ratios[len(ratios)/2], 100*fastestRatios[len(fastestRatios)/2])

	rate := vig / 2
	lat, n, err := latency(addr, devices, rate, latencyFor)
	if err != nil {
		return err
	}
	fmt.Printf("latency at %.0f records/s (half of vigil's max), %d alerts: p50 %s  p99 %s  max %s\n",
		rate, n, lat[0].Round(10*time.Microsecond), lat[1].Round(10*time.Microsecond), lat[2].Round(10*time.Microsecond))
	return nil
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// fleet makes n native JSON reports of devices, round robin, step apart
// per round, keyed by device.
func fleet(n, devices int, start time.Time, step time.Duration) []kafkago.Message {
	rnd := rand.New(rand.NewPCG(1, 2))
	out := make([]kafkago.Message, 0, n)
	for i := 0; i < n; i++ {
		d := i % devices
		ts := start.Add(time.Duration(i/devices) * step)
		dev := "dev-" + strconv.Itoa(d)
		out = append(out, kafkago.Message{Key: []byte(dev), Value: report(dev, d, ts.UnixMilli(), rnd, 0)})
	}
	return out
}

func report(dev string, d int, tsMillis int64, rnd *rand.Rand, probe float64) []byte {
	return fmt.Appendf(nil, `{"device":%q,"ts":%d,"attrs":{"site":"s%d","hw":"h%d"},"metrics":{"bytes_out":%.1f,"bytes_in":%.1f,"msgs_sent":%.1f,"cpu_pct":%.2f,"probe":%g}}`,
		dev, tsMillis, d%sites, d%2, 1000+100*rnd.NormFloat64(), 2000+100*rnd.NormFloat64(), 10+rnd.NormFloat64(), 30+3*rnd.NormFloat64(), probe)
}

func avgSize(msgs []kafkago.Message) int {
	total := 0
	for _, m := range msgs {
		total += len(m.Value)
	}
	return total / max(len(msgs), 1)
}

func produce(addr, topic string, msgs []kafkago.Message) error {
	w := &kafkago.Writer{Addr: kafkago.TCP(addr), Topic: topic, Balancer: &kafkago.Hash{},
		BatchSize: 5000, BatchBytes: 8 << 20, BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafkago.RequireOne}
	defer w.Close()
	for len(msgs) > 0 {
		n := min(len(msgs), 20000)
		if err := w.WriteMessages(context.Background(), msgs[:n]...); err != nil {
			return fmt.Errorf("cannot produce: %w", err)
		}
		msgs = msgs[n:]
	}
	return nil
}

// bareBatches reads every partition of cfg's topic with kafka-go's
// Conn.ReadBatchWith directly, no Reader (no goroutine, channel hand-off
// or read deadline per message), with the same fetch settings, and only
// counts. It shows what the Reader itself costs.
func bareBatches(cfg *ingest.KafkaConfig, partitions, want int) (float64, error) {
	var got, first, last atomic.Int64
	errs := make(chan error, partitions)
	var wg sync.WaitGroup
	for p := 0; p < partitions; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			rc := kafka.ReaderConfig(cfg, cfg.TelemetryTopics[0], int32(p))
			conn, err := kafkago.DialLeader(context.Background(), "tcp", cfg.Brokers[0], rc.Topic, p)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			off := int64(0)
			for got.Load() < int64(want) {
				conn.SetReadDeadline(time.Now().Add(rc.MaxWait + 10*time.Second))
				if _, err := conn.Seek(off, kafkago.SeekAbsolute); err != nil {
					errs <- err
					return
				}
				b := conn.ReadBatchWith(kafkago.ReadBatchConfig{MinBytes: rc.MinBytes, MaxBytes: rc.MaxBytes, MaxWait: rc.MaxWait})
				for {
					m, err := b.ReadMessage()
					if err != nil {
						break
					}
					first.CompareAndSwap(0, time.Now().UnixNano())
					off = m.Offset + 1
					if got.Add(1) == int64(want) {
						last.Store(time.Now().UnixNano())
					}
				}
				// RequestTimedOut: nothing arrived within MaxWait.
				if err := b.Close(); err != nil && !errors.Is(err, kafkago.RequestTimedOut) {
					errs <- err
					return
				}
			}
		}(p)
	}
	wg.Wait()
	select {
	case err := <-errs:
		return 0, fmt.Errorf("bare batch consumer: %w", err)
	default:
	}
	return float64(want) / time.Duration(last.Load()-first.Load()).Seconds(), nil
}

// bareFranz reads cfg's topic from its start with a franz-go kgo client
// (no group: every partition, fetch settings as Vigil's readers'), and
// only counts: a second client library as a bare side, so the figure is
// against the fastest consumer, not only kafka-go's.
func bareFranz(cfg *ingest.KafkaConfig, want int) (float64, error) {
	rc := kafka.ReaderConfig(cfg, cfg.TelemetryTopics[0], 0)
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ConsumeTopics(cfg.TelemetryTopics[0]),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMinBytes(int32(rc.MinBytes)), kgo.FetchMaxWait(rc.MaxWait), kgo.FetchMaxPartitionBytes(int32(rc.MaxBytes)))
	if err != nil {
		return 0, fmt.Errorf("franz-go consumer: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var first time.Time
	got := 0
	for got < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("franz-go consumer read %d of %d records in 5 minutes", got, want)
		}
		if errs := fs.Errors(); len(errs) > 0 {
			return 0, fmt.Errorf("franz-go consumer: %w", errs[0].Err)
		}
		if first.IsZero() && !fs.Empty() {
			first = time.Now()
		}
		got += fs.NumRecords()
	}
	return float64(want) / time.Since(first).Seconds(), nil
}

// bareConsumer reads every partition of cfg's topic with one kafka-go
// Reader each, configured as Vigil's workers configure theirs, and only
// counts.
func bareConsumer(cfg *ingest.KafkaConfig, partitions, want int) (float64, error) {
	var got atomic.Int64
	var first atomic.Int64
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for p := 0; p < partitions; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			r := kafkago.NewReader(kafka.ReaderConfig(cfg, cfg.TelemetryTopics[0], int32(p)))
			defer r.Close()
			for {
				if _, err := r.FetchMessage(ctx); err != nil {
					return
				}
				first.CompareAndSwap(0, time.Now().UnixNano())
				if got.Add(1) == int64(want) {
					close(done)
				}
			}
		}(p)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		return 0, fmt.Errorf("bare consumer read %d of %d records in 5 minutes", got.Load(), want)
	}
	elapsed := time.Since(time.Unix(0, first.Load()))
	cancel()
	wg.Wait()
	return float64(want) / elapsed.Seconds(), nil
}

func benchConfig(brokers []string, group, topic string) ingest.KafkaConfig {
	c := ingest.DefaultKafkaConfig()
	c.Brokers = brokers
	c.GroupID = group
	c.InstanceID = group
	c.TelemetryTopics = []string{topic}
	c.DeadLetterTopic, c.ChangelogTopic, c.GroupStateTopic = "bench-dlq", "bench-changelog", "bench-groups"
	c.SessionTimeout, c.HeartbeatInterval, c.RebalanceTimeout = 2*time.Second, 200*time.Millisecond, 3*time.Second
	c.HTTPListen = ""
	return c
}

// vigilSink counts what it accepts and records produce-to-accept latency
// for probe alerts, whose event time is their produce time.
type vigilSink struct {
	inner detect.Sink
	mu    sync.Mutex
	lat   []time.Duration
	count atomic.Int64
}

func (s *vigilSink) Write(ctx context.Context, out *detect.Output) error {
	if err := s.inner.Write(ctx, out); err != nil {
		return err
	}
	now := time.Now()
	s.mu.Lock()
	for i := range out.Alerts {
		if out.Alerts[i].Behavior == "latency-probe" && out.Alerts[i].State == detect.StateAlarm {
			s.lat = append(s.lat, now.Sub(out.Alerts[i].EventTime))
		}
	}
	s.mu.Unlock()
	s.count.Add(int64(len(out.Alerts)))
	return nil
}

func (s *vigilSink) Close() error { return s.inner.Close() }

// countingEngine counts the rows the engine judged, for the main goroutine
// to poll while the engine runs (Engine.Stats belongs to the engine's
// goroutine). Embedding keeps Flush and ForgetDevice for the consumer.
type countingEngine struct {
	*detect.Engine
	rows atomic.Int64
}

func (e *countingEngine) Process(ctx context.Context, b *ingest.Batch) error {
	var n int64
	if b.Record != nil {
		n = b.Record.NumRows() // before Process releases the record
	}
	err := e.Engine.Process(ctx, b)
	e.rows.Add(n)
	return err
}

type pipeline struct {
	store    *baseline.Store
	metrics  *kafka.Metrics
	engine   *countingEngine
	consumer *kafka.Consumer
	sink     *vigilSink
	cancel   context.CancelFunc
	done     chan error
}

func startVigil(cfg ingest.KafkaConfig, dcfg detect.Config, bcfg baseline.Config) (*pipeline, error) {
	reg := ingest.NewRegistry()
	store := baseline.NewStore(bcfg, reg)
	// Groups by site and hardware from the reported attributes, through the
	// inventory package as 'vigil run' does (no inventory file here).
	icfg := ingest.DefaultInventoryConfig()
	icfg.GroupBy = []string{"site", "hw"}
	grouper, err := inventory.Open(icfg, nil)
	if err != nil {
		return nil, err
	}
	sink := &vigilSink{inner: sinks.NewWriterSink("discard", io.Discard, sinks.FormatJSON)}
	de, err := detect.NewEngine(dcfg, detect.Deps{Registry: reg, Baseline: store, Sink: sink, Clock: time.Now})
	if err != nil {
		return nil, err
	}
	eng := &countingEngine{Engine: de}
	tcfg := ingest.DefaultTelemetryConfig()
	m := kafka.NewMetrics()
	c, err := kafka.New(kafka.Options{
		Metrics: m, Config: cfg, Engine: eng, State: store, Groups: store, Registry: reg, Grouper: grouper,
		Decoders: func(kind, topic string, p int32) (kafka.Decoder, error) {
			return kafka.NewTelemetryDecoder(tcfg, kafka.DrillCheck{})
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &pipeline{store: store, metrics: m, engine: eng, consumer: c, sink: sink, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- c.Run(ctx) }()
	return p, nil
}

func (p *pipeline) stop() error {
	p.cancel()
	return <-p.done
}

func vigilThroughput(cfg ingest.KafkaConfig, want int) (float64, outcome, error) {
	// Groups protect after learnFor of event time, so that most rows are
	// judged (expectations, every detector), not only learned: with the
	// default six hours a run of a million records (83 minutes of event time)
	// would never leave learning.
	bcfg := baseline.DefaultConfig()
	bcfg.MinDuration = learnFor
	p, err := startVigil(cfg, detect.DefaultConfig(), bcfg)
	if err != nil {
		return 0, outcome{}, err
	}
	var first time.Time
	deadline := time.Now().Add(5 * time.Minute)
	for p.engine.rows.Load() < int64(want) {
		if first.IsZero() && p.consumer.Consumed() > 0 {
			first = time.Now()
		}
		if time.Now().After(deadline) {
			p.stop()
			return 0, outcome{}, fmt.Errorf("vigil judged %d of %d records in 5 minutes", p.engine.rows.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(first)
	if err := p.stop(); err != nil {
		return 0, outcome{}, err
	}
	// The engine's goroutine has ended: its state may be read.
	o := outcome{stats: p.engine.Stats()}
	for _, g := range p.store.GroupInfos() {
		o.groups++
		if !g.Learning {
			o.protecting++
		}
	}
	return float64(want) / elapsed.Seconds(), o, nil
}

// outcome is what the engine did in a throughput run.
type outcome struct {
	stats              detect.Stats
	groups, protecting int
}

// latency produces at rate records/s with wall-clock event times for span
// and returns p50, p99 and max of the probes' produce-to-alert latency.
func latency(addr string, devices int, rate float64, span time.Duration) ([3]time.Duration, int, error) {
	dcfg := detect.DefaultConfig()
	one, zero := 1, 0.5
	dcfg.Rules = append(dcfg.Rules, detect.RuleConfig{Name: "latency-probe", Metric: "probe",
		ComparisonOperator: "greater-than", Value: &zero, ToAlarm: one, ToClear: one})
	dcfg.RateLimit.Enabled = false
	bcfg := baseline.DefaultConfig()
	bcfg.MinSamples, bcfg.MinDuration = 100, time.Second
	cfg := benchConfig([]string{addr}, "bench-latency", topicLat)
	cfg.BatchLinger = 2 * time.Millisecond
	cfg.FetchMaxWait = 10 * time.Millisecond
	p, err := startVigil(cfg, dcfg, bcfg)
	if err != nil {
		return [3]time.Duration{}, 0, err
	}
	for !p.consumer.Ready() {
		time.Sleep(10 * time.Millisecond)
	}
	w := &kafkago.Writer{Addr: kafkago.TCP(addr), Topic: topicLat, Balancer: &kafkago.Hash{},
		BatchSize: 1000, BatchTimeout: time.Millisecond, RequiredAcks: kafkago.RequireOne}
	defer w.Close()
	rnd := rand.New(rand.NewPCG(3, 4))
	const tick = 5 * time.Millisecond
	perTick := rate * tick.Seconds()
	t := time.NewTicker(tick)
	defer t.Stop()
	start := time.Now()
	var carry float64
	var batch []kafkago.Message
	i, probes := 0, 0
	lastProbe := start
	for time.Since(start) < span {
		<-t.C
		carry += perTick
		n := int(carry)
		carry -= float64(n)
		batch = batch[:0]
		probe := time.Since(lastProbe) >= 50*time.Millisecond && time.Since(start) > min(2*time.Second, span/3)
		for j := 0; j < n; j++ {
			d := i % devices
			i++
			dev := "dev-" + strconv.Itoa(d)
			v := 0.0
			if probe && j == 0 {
				v, probe, lastProbe = 1, false, time.Now()
				probes++
			}
			batch = append(batch, kafkago.Message{Key: []byte(dev), Value: report(dev, d, time.Now().UnixMilli(), rnd, v)})
		}
		if err := w.WriteMessages(context.Background(), batch...); err != nil {
			p.stop()
			return [3]time.Duration{}, 0, err
		}
	}
	time.Sleep(500 * time.Millisecond)
	if err := p.stop(); err != nil {
		return [3]time.Duration{}, 0, err
	}
	p.sink.mu.Lock()
	lat := append([]time.Duration(nil), p.sink.lat...)
	p.sink.mu.Unlock()
	if len(lat) == 0 {
		return [3]time.Duration{}, 0, fmt.Errorf("no probe alert arrived out of %d probes", probes)
	}
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	q := func(f float64) time.Duration { return lat[min(len(lat)-1, int(f*float64(len(lat))))] }
	return [3]time.Duration{q(0.5), q(0.99), lat[len(lat)-1]}, len(lat), nil
}

func sum(m map[string]int64) (n int64) {
	for _, v := range m {
		n += v
	}
	return n
}

// seq returns prefix0 … prefix<n-1>.
func seq(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

// scaleOut measures kafka.repartition_by_group against the number of
// instances: for each count in counts, that many Vigil instances (each
// its own registry, baseline and engine, as separate processes would
// have) join one consumer group, the records are committed in one
// transaction once both of its groups are stable (so that no rebalance
// falls inside the measurement), and the rate runs from that commit to
// the last row judged by any instance. The first row is one instance
// without repartitioning, today's path, for the cost of the second
// produce and consume. All instances share this process and its cores.
func scaleOut(records int, partitions int32, devices int, counts []int) error {
	const byGroupParts = 6
	var in, byGroup, changelogs, groupTopics []string
	for i := 0; i <= len(counts); i++ {
		in = append(in, fmt.Sprintf("bench-scale-in-%d", i))
		byGroup = append(byGroup, fmt.Sprintf("bench-scale-%d-by-group", i))
		changelogs = append(changelogs, fmt.Sprintf("bench-scale-changelog-%d", i))
		groupTopics = append(groupTopics, fmt.Sprintf("bench-scale-groups-%d", i))
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.SeedTopics(partitions, in...),
		kfake.SeedTopics(byGroupParts, append(byGroup, changelogs...)...),
		kfake.SeedTopics(1, append(groupTopics, "bench-dlq")...),
		kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		return err
	}
	defer cluster.Close()
	addr := cluster.ListenAddrs()[0]
	fmt.Printf("kafkabench -scaleout: kfake broker %s, %d input partitions, %d by-group partitions, %d devices in %d groups, %d records, GOMAXPROCS %d, %s\n",
		addr, partitions, byGroupParts, devices, 2*sites, records, runtime.GOMAXPROCS(0), runtime.Version())
	msgs := fleet(records, devices, time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), time.Second)
	var one float64
	for i, n := range append([]int{1}, counts...) {
		repartition := i > 0
		group := fmt.Sprintf("bench-scale-%d", i)
		commit, err := produceUncommitted(addr, in[i], msgs)
		if err != nil {
			return err
		}
		var ps []*pipeline
		for j := 0; j < n; j++ {
			cfg := benchConfig([]string{addr}, group, in[i])
			cfg.InstanceID = fmt.Sprintf("%s-%d", group, j)
			cfg.ChangelogTopic, cfg.GroupStateTopic, cfg.RepartitionByGroup = changelogs[i], groupTopics[i], repartition
			bcfg := baseline.DefaultConfig()
			bcfg.MinDuration = learnFor
			p, err := startVigil(cfg, detect.DefaultConfig(), bcfg)
			if err != nil {
				return err
			}
			ps = append(ps, p)
		}
		stable := func() bool {
			return groupStable(addr, group, n) && (!repartition || groupStable(addr, group+"-repartition", n))
		}
		for deadline := time.Now().Add(time.Minute); !stable(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				return fmt.Errorf("%d instances: the consumer groups did not settle in a minute", n)
			}
		}
		c0 := cpuSeconds()
		t0 := time.Now()
		if err := commit(); err != nil {
			return err
		}
		judged := func() (rows int64) {
			for _, p := range ps {
				rows += p.engine.rows.Load()
			}
			return rows
		}
		for deadline := time.Now().Add(5 * time.Minute); judged() < int64(records); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				return fmt.Errorf("%d instances judged %d of %d records in 5 minutes", n, judged(), records)
			}
		}
		rate := float64(records) / time.Since(t0).Seconds()
		cpu := cpuSeconds() - c0
		for _, p := range ps {
			if err := p.stop(); err != nil {
				return err
			}
		}
		what := "repartition_by_group"
		if !repartition {
			what, one = "without repartitioning", rate
		}
		fmt.Printf("%d instance(s) %-22s %9.0f records/s %6.2f µs CPU/record  %.2f× the rate of one instance without repartitioning\n",
			n, what, rate, 1e6*cpu/float64(records), rate/one)
	}
	return nil
}

// produceUncommitted writes msgs to topic in one transaction and returns
// the function that commits it: under read_committed nothing of it can be
// read before.
func produceUncommitted(addr, topic string, msgs []kafkago.Message) (commit func() error, err error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.TransactionalID("kafkabench-"+topic), kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchMaxBytes(8<<20), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		return nil, err
	}
	if err := cl.BeginTransaction(); err != nil {
		cl.Close()
		return nil, err
	}
	for rest := msgs; len(rest) > 0; {
		n := min(len(rest), 20_000)
		recs := make([]*kgo.Record, n)
		for i, m := range rest[:n] {
			recs[i] = &kgo.Record{Key: m.Key, Value: m.Value}
		}
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			cl.Close()
			return nil, fmt.Errorf("cannot produce: %w", err)
		}
		rest = rest[n:]
	}
	return func() error {
		defer cl.Close()
		return cl.EndTransaction(context.Background(), kgo.TryCommit)
	}, nil
}

// groupStable reports whether consumer group has n members and is stable.
func groupStable(addr, group string, n int) bool {
	cl := &kafkago.Client{Addr: kafkago.TCP(addr), Timeout: 5 * time.Second}
	resp, err := cl.DescribeGroups(context.Background(), &kafkago.DescribeGroupsRequest{GroupIDs: []string{group}})
	return err == nil && len(resp.Groups) == 1 && resp.Groups[0].GroupState == "Stable" && len(resp.Groups[0].Members) == n
}
