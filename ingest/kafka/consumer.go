package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/vigil-ot/vigil/ingest"
)

// Processor judges batches; detect.Engine implements it. The consumer calls
// Process from one goroutine only. Process owns the batch: it releases the
// record and Acks the batch exactly once, with nil only after every alert
// derived from it was accepted by every required sink. A non-nil error from
// Process means the batch could not be judged; the consumer then nacks it
// (if Process did not) and it is delivered again.
type Processor interface {
	Process(ctx context.Context, b *ingest.Batch) error
}

// Flusher is a Processor that keeps the output of a failed delivery and
// sends it again: Flush delivers what earlier failed deliveries left over
// and returns nil once all of it was accepted. With a Flusher, a failed
// delivery pauses consumption and retries in place, so nothing is learned
// twice; without one, the partition rewinds to its last committed offset.
type Flusher interface {
	Flush(ctx context.Context) error
}

// Drainer is a Processor whose Process may return before the batch is
// judged (engine shards judging ahead: pipeline.Sharded): Drain judges
// and delivers every batch handed to it, acknowledging each, and returns
// the first delivery error. The consumer calls it from the engine
// goroutine whenever its queue is empty (a quiet input waits for nothing)
// and before every other call between batches.
type Drainer interface {
	Drain(ctx context.Context) error
}

// DeviceForgetter is a Processor with per-device state of its own (alarm
// lifecycle, silence and identity tracking) that it can drop: the consumer
// calls ForgetDevice, from the engine goroutine, for the devices of a
// partition that moved to another instance, so this instance neither
// judges them silent nor holds a stale alarm for them.
type DeviceForgetter interface {
	ForgetDevice(device string)
}

// StatusPublisher is a Processor that publishes its devices' status at
// most once per interval, between batches (detect.Engine with the
// operator console): the consumer calls PublishPending, from the engine
// goroutine, every commit interval, so that the status of a quiet input's
// last batches is published without waiting for the next batch.
type StatusPublisher interface {
	PublishPending()
}

// DeviceAlarms is a Processor whose per-device alarm state (open alarms,
// their confirmation counters, quarantine episodes; detect.Engine
// implements it) follows partitions through the changelog with the
// DeviceState, so that an alarm open when its partition moves stays open
// on the new owner, under its id, and is cleared once. The consumer calls
// it only from the engine goroutine, between Process calls.
//
// MarshalDeviceAlarms appends the device's alarm state to dst;
// UnmarshalDeviceAlarms replaces it with data (after the DeviceState's own
// UnmarshalDevice). AlarmsChanged appends the registry ids of the devices
// whose alarm state changed since its last call without a row of their
// own (a device declared silent by its peers' reports), so that the next
// checkpoint writes them too.
type DeviceAlarms interface {
	MarshalDeviceAlarms(dst []byte, device string) ([]byte, error)
	UnmarshalDeviceAlarms(device string, data []byte) error
	AlarmsChanged(dst []int32) []int32
}

// DeviceEvicter is a Processor that evicts idle devices to make room for
// new ones (detect.Engine with detect.when_full evict_idle). Evicted
// appends the devices evicted since its last call; the consumer drops them
// from its partitions and writes their changelog tombstones with the
// partition's next checkpoint, so that a restore does not bring them
// back. The consumer calls it only from the engine goroutine, after
// Process.
type DeviceEvicter interface {
	Evicted(dst []ingest.EvictedDevice) []ingest.EvictedDevice
}

// BacklogReader is a Processor that judges a device's absence against its
// partition's progress (detect.Engine): the consumer gives it, with
// SetPartitionBacklog, a function reporting whether the partition
// (topic, partition) of this instance has records not judged yet, so that
// the devices of a partition that is merely behind are never taken for
// silent however far behind it is in event time. The function is called
// from the engine goroutine, during Process. PartitionIdle is how far
// behind in event time a caught-up partition may be before its devices
// can look silent: below it, the consumer does not wait to learn whether
// a caught-up partition is still caught up (aligner).
type BacklogReader interface {
	SetPartitionBacklog(behind func(topic string, partition int32) bool)
	PartitionIdle() time.Duration
}

// DeviceState is the per-device state that follows partitions through the
// changelog (baseline.Store implements it). The consumer calls it only from
// the engine goroutine, between Process calls.
//
// MarshalDevice appends the device's whole state to dst; UnmarshalDevice
// replaces the device's state with data; ForgetDevice drops it (the device's
// partition moved away, or is being restored from the changelog).
type DeviceState interface {
	MarshalDevice(dst []byte, device string) ([]byte, error)
	UnmarshalDevice(device string, data []byte) error
	ForgetDevice(device string)
}

// GroupState is the group state (baseline.Store) as the group state topic
// sees it. The consumer calls it only from the engine goroutine.
//
// Groups appends the groups this instance learned something of itself.
// MarshalGroup appends this instance's own partial summary of group,
// without what peers sent. MergeGroup replaces peer's previous summary of
// group with data (never adding it twice), so judging uses the local
// summary combined with the latest one of every peer. AbsorbGroup folds a
// summary into the local state for good: the consumer uses it once per
// group at start-up, for the summaries this instance published before it
// restarted.
type GroupState interface {
	Groups(dst []string) []string
	MarshalGroup(dst []byte, group string) ([]byte, error)
	MergeGroup(peer, group string, data []byte) error
	AbsorbGroup(group string, data []byte) error
}

// Options are what a Consumer needs.
type Options struct {
	Config   ingest.KafkaConfig
	Decoders DecoderFactory
	Engine   Processor
	State    DeviceState // nil disables the changelog
	Groups   GroupState  // nil disables sharing group summaries
	Registry *ingest.Registry
	Grouper  ingest.Grouper
	Logger   *slog.Logger
	Metrics  *Metrics
}

// Consumer runs Vigil as a member of a Kafka consumer group. Create it with
// New and call Run once.
type Consumer struct {
	cfg      ingest.KafkaConfig
	decoders DecoderFactory
	engine   Processor
	state    DeviceState
	groups   GroupState
	reg      *ingest.Registry
	grouper  ingest.Grouper
	log      *slog.Logger
	metrics  *Metrics
	conn     connSettings
	dialer   *kafkago.Dialer
	instance string

	deadLetter, changelog, groupOut *kafkago.Writer
	// byGroup writes the repartition stage's output (repartition_by_group;
	// nil without it): inputs is then the by-group topic, whose partitions
	// number byGroupParts, and sources are the partitions of the telemetry
	// topics (both from checkTopics).
	byGroup      *kafkago.Writer
	inputs       []string // the topics the consumer group reads
	byGroupParts int
	sources      []partKey
	transport    *kafkago.Transport // the writers' and the topic check's

	tasks       chan task
	changelogCh chan changelogWrite

	runCtx   context.Context // ends when a graceful stop begins
	forceCtx context.Context // ends when work still running is abandoned

	parts map[partKey]*partState // engine goroutine only

	balancer    *stickyBalancer
	align       *aligner // nil when max_event_time_skew is 0
	flusher     Flusher
	drainer     Drainer                // nil when Process judges its batch before it returns
	forgetter   DeviceForgetter        // nil when the engine keeps no device state of its own
	status      StatusPublisher        // nil when the engine publishes no status
	alarms      DeviceAlarms           // nil when the engine's alarm state does not follow partitions
	evicter     DeviceEvicter          // nil when the engine does not evict
	evicted     []ingest.EvictedDevice // scratch of Evicted; engine goroutine only
	changed     []int32                // scratch of AlarmsChanged; engine goroutine only
	undelivered []func(error)          // batches whose delivery failed, waiting for Flush; engine goroutine only

	consumed  atomic.Int64 // records fetched, redeliveries included
	ready     atomic.Bool
	stopping  atomic.Bool
	fatalOnce sync.Once
	fatalErr  error
	fatal     chan struct{}

	rejecting sync.WaitGroup // dead-lettering the rows the engine rejected: see deadLetterRejected
	// rejectsExplained: the first of them was explained in the log.
	rejectsExplained atomic.Bool

	joined   atomic.Bool // a generation was joined at least once
	stopMu   sync.Mutex
	stopErrs []error // what the hand-over while stopping did not do
}

// task is one unit of work for the engine goroutine: a batch to judge, or a
// function to run between batches (state restore, checkpoints).
type task struct {
	batch *ingest.Batch
	part  *partState
	end   int64
	fn    func()
}

// partState is what the engine goroutine knows of one input partition.
type partState struct {
	topic     string
	partition int32
	cp        *checkpointer
	owned     map[int32]struct{} // devices seen in this partition
	dirty     map[int32]struct{} // devices changed since the last checkpoint
	evicted   []string           // devices evicted since the last checkpoint: their tombstones
	// noted[id] says id is in dirty, and so in owned: noteDevices then
	// skips two map assignments per row. Cleared whenever dirty is.
	noted     []bool
	processed int64 // offset after the last batch judged
	lastSnap  time.Time
	// handedOver is the generation at whose end this instance handed the
	// partition over cleanly (every batch judged acknowledged, the restore
	// filter passed): the state in memory covers exactly the input below
	// processed. 0: not handed over cleanly. keep says the current
	// generation assigned the partition again right after that one: its
	// worker goes on from memory instead of the changelog.
	handedOver int32
	keep       bool
	// durable is the offset the partition's state in the changelog
	// covers, -1 when it has none: commits stop there (checkpointer).
	// Set by the changelog writer and the restore.
	durable atomic.Int64
	reading atomic.Bool // a worker reads the partition with cp
	// behind: the partition has records this instance has not judged yet
	// (see aligner); set by the aligner, read by the engine's
	// PartitionBacklog.
	behind   atomic.Bool
	needFull atomic.Bool // the last checkpoint failed: write every device next time
	// A by-group partition (repartition_by_group) hands its records on in
	// event-time order, not in offset order: devNext is the offset after
	// each device's last row judged, which its checkpoint covers and a
	// read from an earlier offset skips (engine goroutine only).
	devNext map[int32]int64
}

var errStopped = errors.New("consumer stopping")

// New checks opts and returns a consumer.
func New(opts Options) (*Consumer, error) {
	cfg := opts.Config
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot use kafka config: %w", err)
	}
	if len(cfg.TelemetryTopics)+len(cfg.PacketTopics) == 0 {
		return nil, fmt.Errorf("cannot consume: no input topics; set kafka.telemetry_topics or kafka.packet_topics")
	}
	if opts.Decoders == nil || opts.Engine == nil || opts.Registry == nil {
		return nil, fmt.Errorf("BUG: kafka consumer needs Decoders, Engine and Registry")
	}
	cs, err := newConnSettings(&cfg)
	if err != nil {
		return nil, err
	}
	c := &Consumer{
		cfg: cfg, decoders: opts.Decoders, engine: opts.Engine, state: opts.State, groups: opts.Groups,
		reg: opts.Registry, grouper: opts.Grouper, log: opts.Logger, metrics: opts.Metrics,
		conn: cs, dialer: cs.dialer(cfg.ClientID), instance: InstanceName(&cfg),
		tasks:       make(chan task, cfg.EngineQueue),
		changelogCh: make(chan changelogWrite, 4),
		parts:       make(map[partKey]*partState),
		fatal:       make(chan struct{}),
		balancer:    &stickyBalancer{},
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if cfg.MaxEventTimeSkew > 0 {
		c.align = newAligner(cfg.MaxEventTimeSkew, 5*time.Second)
	}
	c.flusher, _ = c.engine.(Flusher)
	c.drainer, _ = c.engine.(Drainer)
	c.forgetter, _ = c.engine.(DeviceForgetter)
	c.status, _ = c.engine.(StatusPublisher)
	c.alarms, _ = c.engine.(DeviceAlarms)
	c.evicter, _ = c.engine.(DeviceEvicter)
	if br, ok := c.engine.(BacklogReader); ok && c.align != nil {
		br.SetPartitionBacklog(c.behind)
		c.align.setStaleAfter(br.PartitionIdle())
	}
	if c.metrics == nil {
		c.metrics = NewMetrics()
	}
	if c.grouper == nil {
		c.grouper = deviceGrouper{}
	}
	if cfg.ChangelogTopic == "" {
		c.state = nil
	}
	if c.state == nil {
		c.alarms = nil
	}
	if c.alarms != nil {
		c.alarms.AlarmsChanged(nil) // from now on
	}
	if cfg.GroupStateTopic == "" {
		c.groups = nil
	}
	tr := cs.transport(cfg.ClientID)
	c.transport = tr
	newWriter := func(topic string, b kafkago.Balancer) *kafkago.Writer {
		return &kafkago.Writer{Addr: kafkago.TCP(cfg.Brokers...), Topic: topic, Balancer: b, Transport: tr,
			RequiredAcks: kafkago.RequireAll, BatchTimeout: 2 * time.Millisecond, WriteTimeout: 10 * time.Second}
	}
	if cfg.DeadLetterTopic != "" {
		c.deadLetter = newWriter(cfg.DeadLetterTopic, &kafkago.Hash{})
	}
	if c.state != nil {
		c.changelog = newWriter(cfg.ChangelogTopic, changelogBalancer{})
	}
	if c.groups != nil {
		c.groupOut = newWriter(cfg.GroupStateTopic, &kafkago.Hash{})
	}
	c.inputs = append(append([]string{}, cfg.TelemetryTopics...), cfg.PacketTopics...)
	if cfg.RepartitionByGroup {
		c.byGroup = newWriter(cfg.ByGroupTopic(), byGroupBalancer{})
		// A worker's batch and its markers in one produce request per
		// partition, not kafka-go's 100 messages.
		c.byGroup.BatchSize, c.byGroup.BatchBytes = cfg.BatchSize+1, int64(cfg.FetchMaxBytes)
		c.inputs = []string{cfg.ByGroupTopic()}
	}
	return c, nil
}

// deviceGrouper puts every device in one group when no inventory is given.
type deviceGrouper struct{}

func (deviceGrouper) Group(string, []ingest.Attr) string { return "default" }

// Ready reports whether the consumer is in a generation with every
// assigned partition restored and reading.
func (c *Consumer) Ready() bool { return c.ready.Load() }

// Consumed returns how many records the consumer has fetched so far,
// redeliveries included.
func (c *Consumer) Consumed() int64 { return c.consumed.Load() }

// Instance returns the name this instance publishes group summaries under.
func (c *Consumer) Instance() string { return c.instance }

// InstanceName is the name an instance of cfg goes by: kafka.instance_id,
// else the host name, stable across restarts so that a restarted instance
// finds the group summaries (and the console's device status) it
// published before.
func InstanceName(cfg *ingest.KafkaConfig) string {
	if cfg.InstanceID != "" {
		return cfg.InstanceID
	}
	host, _ := os.Hostname()
	return host
}

// Run consumes until ctx ends, then stops gracefully: it stops fetching,
// lets the engine finish the batches in flight, checkpoints state, commits,
// and leaves the group, within the configured shutdown timeout. Work still
// running at three quarters of the timeout is abandoned, uncommitted. Run
// returns nil after a clean stop only: an error when the group was never
// joined, when the last offsets or the state could not be committed or
// checkpointed while stopping, or when the consumer could not go on.
func (c *Consumer) Run(ctx context.Context) error {
	// A missing topic fails here, by name, not as a group that rejoins
	// every second.
	if err := c.checkTopics(ctx); err != nil {
		c.transport.CloseIdleConnections()
		if ctx.Err() != nil {
			// Stopped before the brokers answered: the group was never
			// joined, which is no clean stop.
			err = c.stopError(errors.New("stopped before the brokers answered"))
			c.log.Error("consumer stopped before it began", "err", err)
		}
		return err
	}
	runCtx, stopFetching := context.WithCancel(context.Background())
	forceCtx, force := context.WithCancel(context.Background())
	defer force()
	c.runCtx, c.forceCtx = runCtx, forceCtx

	var bg sync.WaitGroup
	engineDone := make(chan struct{})
	go func() {
		defer close(engineDone)
		c.engineLoop(forceCtx)
	}()
	if c.changelog != nil {
		bg.Add(1)
		go func() {
			defer bg.Done()
			c.changelogLoop(forceCtx)
		}()
	}
	if c.groups != nil {
		c.restoreGroups(ctx)
		bg.Add(1)
		go func() {
			defer bg.Done()
			c.shareGroups(runCtx)
		}()
	}

	if c.byGroup != nil {
		bg.Add(1)
		go func() {
			defer bg.Done()
			c.repartition(runCtx, c.byGroupParts)
		}()
	}
	cg, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID: c.cfg.GroupID, Brokers: c.cfg.Brokers, Dialer: c.dialer, Topics: c.inputs,
		HeartbeatInterval: c.cfg.HeartbeatInterval, SessionTimeout: c.cfg.SessionTimeout,
		RebalanceTimeout: c.cfg.RebalanceTimeout, JoinGroupBackoff: time.Second,
		StartOffset: c.startOffset(), WatchPartitionChanges: true, PartitionWatchInterval: 10 * time.Second,
		// Sticky first; range while members of an older version remain.
		GroupBalancers: []kafkago.GroupBalancer{c.balancer, kafkago.RangeGroupBalancer{}},
		Timeout:        10 * time.Second,
	})
	if err != nil {
		stopFetching()
		force()
		<-engineDone
		bg.Wait()
		return fmt.Errorf("cannot join consumer group %s: %w", c.cfg.GroupID, err)
	}
	go func() {
		select {
		case <-ctx.Done():
		case <-c.fatal:
		}
		c.stopping.Store(true)
		c.ready.Store(false)
		stopFetching()
		c.log.Info("stopping: draining batches in flight", "deadline", c.cfg.ShutdownTimeout)
		t := time.NewTimer(c.cfg.ShutdownTimeout * 3 / 4)
		defer t.Stop()
		select {
		case <-t.C:
			c.log.Warn("shutdown deadline: abandoning work still in flight; it stays uncommitted and is delivered again")
			c.stopFailed(errors.New("the shutdown deadline passed with work in flight; it was abandoned uncommitted"))
			force()
		case <-forceCtx.Done():
		}
	}()

	var joinErr error // why the last attempt to join failed
	for {
		gen, err := cg.Next(runCtx)
		if err != nil {
			if runCtx.Err() != nil || errors.Is(err, kafkago.ErrGroupClosed) {
				break
			}
			joinErr = err
			c.log.Warn("cannot join the next consumer group generation; retrying", "group", c.cfg.GroupID, "err", err)
			continue
		}
		c.joined.Store(true)
		c.metrics.rebalances.Inc()
		c.startGeneration(gen)
	}
	// Close waits for the generation's workers to drain and commit, then
	// leaves the group so that peers take over at once.
	cg.Close()
	c.ready.Store(false)
	if c.groups != nil {
		c.publishGroups(forceCtx)
	}
	c.do(forceCtx, func() {}) // every batch queued so far was judged
	force()
	<-engineDone
	c.rejecting.Wait() // no batch is acknowledged now, and the work contexts ended
	bg.Wait()
	for _, w := range []*kafkago.Writer{c.deadLetter, c.changelog, c.groupOut, c.byGroup} {
		if w != nil {
			w.Close()
		}
	}
	if err := c.stopError(joinErr); err != nil {
		c.log.Error("consumer stopped without a clean hand-over; what was not committed is delivered again", "err", err)
		return err
	}
	c.log.Info("consumer stopped: offsets committed, state checkpointed, group left")
	return nil
}

// stopFailed records something the hand-over while stopping did not do.
func (c *Consumer) stopFailed(err error) {
	c.stopMu.Lock()
	c.stopErrs = append(c.stopErrs, err)
	c.stopMu.Unlock()
}

// stopError says what went wrong in the run, nil for a clean stop: the
// error the consumer could not go on after, a group never joined (joinErr
// is the last reason given), and what the hand-over while stopping did not
// do.
func (c *Consumer) stopError(joinErr error) error {
	errs := []error{c.fatalErr}
	if !c.joined.Load() {
		if joinErr == nil {
			joinErr = errors.New("stopped before the group coordinator answered")
		}
		errs = append(errs, fmt.Errorf("never joined consumer group %s at %s: %w", c.cfg.GroupID, strings.Join(c.cfg.Brokers, ","), joinErr))
	}
	c.stopMu.Lock()
	errs = append(errs, c.stopErrs...)
	c.stopMu.Unlock()
	return errors.Join(errs...)
}

func (c *Consumer) fail(err error) {
	c.fatalOnce.Do(func() {
		c.fatalErr = err
		c.log.Error("consumer cannot go on", "err", err)
		close(c.fatal)
	})
}

func (c *Consumer) startOffset() int64 {
	if c.cfg.StartOffset == "latest" {
		return kafkago.LastOffset
	}
	return kafkago.FirstOffset
}

// generation is this member's share of one consumer group generation.
type generation struct {
	gen       *kafkago.Generation
	wg        sync.WaitGroup
	mu        sync.Mutex
	cps       map[string]map[int]*checkpointer
	committed map[string]map[int]int64
	started   atomic.Int32
	total     int32
}

func (c *Consumer) startGeneration(gen *kafkago.Generation) {
	g := &generation{gen: gen, cps: map[string]map[int]*checkpointer{}, committed: map[string]map[int]int64{}}
	kinds := map[string]string{}
	for _, t := range c.cfg.TelemetryTopics {
		kinds[t] = KindTelemetry
	}
	for _, t := range c.cfg.PacketTopics {
		kinds[t] = KindPackets
	}
	if c.byGroup != nil {
		kinds[c.cfg.ByGroupTopic()] = KindTelemetry
	}
	n := 0
	for topic, pas := range gen.Assignments {
		g.cps[topic] = map[int]*checkpointer{}
		g.committed[topic] = map[int]int64{}
		for _, pa := range pas {
			g.committed[topic][pa.ID] = pa.Offset
			n++
		}
	}
	g.total = int32(n)
	c.do(c.runCtx, func() { c.sweepPartitions(gen) })
	c.balancer.setOwned(gen.Assignments)
	c.metrics.assigned.Set(float64(n))
	c.log.Info("joined generation", "group", gen.GroupID, "generation", gen.ID, "member", gen.MemberID, "partitions", n)
	if n == 0 {
		c.ready.Store(!c.stopping.Load())
	}
	g.wg.Add(n)
	for topic, pas := range gen.Assignments {
		for _, pa := range pas {
			topic, pa := topic, pa
			gen.Start(func(genCtx context.Context) {
				defer g.wg.Done()
				c.runPartition(genCtx, g, kinds[topic], topic, int32(pa.ID), pa.Offset)
			})
		}
	}
	gen.Start(func(genCtx context.Context) { c.commitLoop(genCtx, g) })
}

// sweepPartitions runs when generation gen begins, before its workers:
// the state of partitions gen does not assign to this instance is
// dropped, and partitions this instance handed over cleanly at the end of
// the generation before keep their state in memory, alarms included (see
// partState.handedOver). Engine goroutine only.
func (c *Consumer) sweepPartitions(gen *kafkago.Generation) {
	assigned := map[*partState]bool{}
	var expect []*partState
	for topic, pas := range gen.Assignments {
		for _, pa := range pas {
			ps := c.partition(topic, int32(pa.ID))
			expect = append(expect, ps)
			// An offset committed beyond the state means another member
			// went on meanwhile.
			assigned[ps] = pa.Offset <= ps.processed
		}
	}
	if c.align != nil {
		c.align.expect(expect)
	}
	for _, ps := range c.parts {
		keep, ok := assigned[ps]
		ps.keep = ok && keep && ps.handedOver != 0 && ps.handedOver == gen.ID-1
		ps.handedOver = 0
		if !ps.keep {
			// Revoked, or not current: the owner restores these devices
			// from the changelog the hand-over wrote (this instance too,
			// when the partition comes back).
			c.forget(ps)
		}
	}
}

// commitLoop commits what the checkpointers allow every commit interval
// and once more after the workers drained at the end of the generation.
func (c *Consumer) commitLoop(genCtx context.Context, g *generation) {
	t := time.NewTicker(c.cfg.CommitInterval)
	defer t.Stop()
loop:
	for {
		select {
		case <-t.C:
			if c.state != nil {
				// Never blocks: a busy engine checkpoints after its batches.
				select {
				case c.tasks <- task{fn: c.checkpointIdle}:
				default:
				}
			}
			if c.status != nil {
				select {
				case c.tasks <- task{fn: c.status.PublishPending}:
				default:
				}
			}
			c.commit(g)
		case <-genCtx.Done():
			break loop
		case <-c.runCtx.Done():
			break loop
		}
	}
	c.ready.Store(false)
	g.wg.Wait()
	if err := c.commit(g); err != nil && c.runCtx.Err() != nil {
		c.stopFailed(fmt.Errorf("cannot commit offsets while stopping: %w", err))
	}
}

// checkpointIdle checkpoints the partitions being read whose acknowledged
// input went past their state in the changelog a checkpoint interval ago:
// commits stop at the changelog's offset, so a partition gone quiet must
// be checkpointed to be committed to its end. Engine goroutine only.
func (c *Consumer) checkpointIdle() {
	for _, ps := range c.parts {
		if !ps.reading.Load() || time.Since(ps.lastSnap) < c.cfg.CheckpointInterval {
			continue
		}
		if covered, _, failed := ps.cp.Highest(); failed == nil && covered > ps.durable.Load() {
			c.snapshot(c.forceCtx, ps, nil)
		}
	}
}

// commit commits what the checkpointers allow and returns the commit's
// error; the offsets it could not commit are tried again next time.
func (c *Consumer) commit(g *generation) error {
	offsets := map[string]map[int]int64{}
	g.mu.Lock()
	for topic, cps := range g.cps {
		for p, cp := range cps {
			h := cp.Committable()
			if h >= 0 && h > g.committed[topic][p] {
				if offsets[topic] == nil {
					offsets[topic] = map[int]int64{}
				}
				offsets[topic][p] = h
			}
		}
	}
	g.mu.Unlock()
	if len(offsets) == 0 {
		return nil
	}
	if err := g.gen.CommitOffsets(offsets); err != nil {
		c.metrics.commitErrors.Inc()
		c.log.Warn("cannot commit offsets; they are committed with the next success or delivered again", "generation", g.gen.ID, "err", err)
		return err
	}
	c.metrics.commits.Inc()
	g.mu.Lock()
	for topic, ps := range offsets {
		for p, off := range ps {
			g.committed[topic][p] = off
		}
	}
	g.mu.Unlock()
	return nil
}

// do runs fn on the engine goroutine between batches and waits for it.
func (c *Consumer) do(ctx context.Context, fn func()) bool {
	done := make(chan struct{})
	select {
	case c.tasks <- task{fn: func() { fn(); close(done) }}:
	case <-ctx.Done():
		return false
	}
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// engineLoop is the one goroutine that touches the engine and its state.
func (c *Consumer) engineLoop(ctx context.Context) {
	for {
		c.metrics.sample(len(c.tasks) == 0)
		var t task
		select {
		case t = <-c.tasks:
		default:
			c.drain(ctx) // quiet: what is judging goes out now
			select {
			case t = <-c.tasks:
			case <-ctx.Done():
				c.drainTasks()
				return
			}
		}
		c.metrics.engineQueue.Set(float64(len(c.tasks)))
		if t.fn != nil {
			c.drain(ctx)
			t.fn()
			continue
		}
		ps := t.part
		// The batch's devices are noted after Process, which may give a
		// row the id of a device it admits (detect.when_full evict_idle):
		// the record is kept for that.
		rec := t.batch.Record
		if c.state == nil && c.forgetter == nil || rec == nil {
			rec = nil
		} else {
			rec.Retain()
		}
		// Process acknowledges the batch, with the delivery error if any:
		// its output then waits in the engine and in c.undelivered.
		c.engine.Process(ctx, t.batch)
		if c.evicter != nil {
			c.dropEvicted() // first: an id the batch reused is its new device's
		}
		if rec != nil {
			noteDevices(ps, rec)
			if ps.devNext != nil {
				noteDeviceOffsets(ps, rec)
			}
			rec.Release()
		}
		if c.alarms != nil {
			c.noteAlarmChanges()
		}
		if len(c.undelivered) > 0 {
			c.retryDelivery(ctx)
		}
		ps.processed = t.end
		if c.state != nil && time.Since(ps.lastSnap) >= c.cfg.CheckpointInterval {
			c.snapshot(ctx, ps, nil)
		}
	}
}

// retryDelivery holds the engine until the output of the batches whose
// delivery failed is accepted: the queue fills, the checkpointers reach
// their cap and the partitions stop fetching, and no offset is committed
// past those batches. It gives up only when the stop is forced.
func (c *Consumer) retryDelivery(ctx context.Context) {
	wait := c.cfg.NackBackoff
	c.log.Warn("sink refused alerts; consumption paused until they are delivered", "batches", len(c.undelivered))
	var err error
	for {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			err = fmt.Errorf("cannot deliver alerts before the forced stop: %w", ctx.Err())
		}
		if err == nil {
			if err = c.flusher.Flush(ctx); err == nil {
				break
			}
			c.log.Warn("sink still refuses alerts; retrying", "in", wait, "err", err)
			err = nil
			wait = min(2*wait, 10*time.Second)
			continue
		}
		break
	}
	if err == nil {
		c.log.Info("sink accepts alerts again; consumption resumes", "batches", len(c.undelivered))
	}
	for _, resolve := range c.undelivered {
		resolve(err)
	}
	c.undelivered = c.undelivered[:0]
}

// drain has a Drainer deliver every batch it was handed, and holds the
// engine until that is accepted when it is not (retryDelivery).
func (c *Consumer) drain(ctx context.Context) {
	if c.drainer == nil {
		return
	}
	c.drainer.Drain(ctx) // a failed delivery acknowledges its batches with the error
	if len(c.undelivered) > 0 {
		c.retryDelivery(ctx)
	}
}

// drainTasks nacks what is left in the queue after a forced stop, so the
// workers waiting for those batches can finish.
func (c *Consumer) drainTasks() {
	for {
		select {
		case t := <-c.tasks:
			if t.batch != nil {
				t.batch.Release()
				t.batch.Ack(context.Background(), errStopped)
			}
		default:
			return
		}
	}
}

// noteAlarmChanges marks dirty, in the partition that owns it, each device
// whose alarm state the last batch changed without a row of its own.
func (c *Consumer) noteAlarmChanges() {
	c.changed = c.alarms.AlarmsChanged(c.changed[:0])
	for _, id := range c.changed {
		for _, ps := range c.parts {
			if _, ok := ps.owned[id]; ok {
				ps.dirty[id] = struct{}{}
				break
			}
		}
	}
}

// dropEvicted drops the devices the engine evicted from the partition
// that owned them, to be tombstoned in its changelog.
func (c *Consumer) dropEvicted() {
	c.evicted = c.evicter.Evicted(c.evicted[:0])
	for _, ev := range c.evicted {
		for _, ps := range c.parts {
			if _, ok := ps.owned[ev.ID]; ok {
				delete(ps.owned, ev.ID)
				delete(ps.dirty, ev.ID)
				delete(ps.devNext, ev.ID)
				if int(ev.ID) < len(ps.noted) {
					ps.noted[ev.ID] = false
				}
				ps.evicted = append(ps.evicted, ev.Name)
				break
			}
		}
	}
}

func noteDevices(ps *partState, rec arrow.Record) {
	col, ok := rec.Column(2).(*array.Int32) // device_id
	if !ok {
		return
	}
	last := int32(-1)
	for _, id := range col.Int32Values() {
		// -1 is a row of a device refused past detect.max_devices: it
		// has no state to checkpoint.
		if id < 0 || id == last {
			continue
		}
		last = id
		if int(id) < len(ps.noted) && ps.noted[id] {
			continue
		}
		if int(id) >= len(ps.noted) {
			ps.noted = append(ps.noted, make([]bool, int(id)+1-len(ps.noted))...)
		}
		ps.noted[id] = true
		ps.dirty[id] = struct{}{}
		ps.owned[id] = struct{}{}
	}
}

// noteDeviceOffsets keeps, for a by-group partition, the offset after
// each device's last row: its rows come in event-time order, so a
// checkpoint covers rows past the partition's committable offset, and the
// device's own offset tells a restore which (restoreFilter).
func noteDeviceOffsets(ps *partState, rec arrow.Record) {
	ids, ok1 := rec.Column(2).(*array.Int32)
	offs, ok2 := rec.Column(6).(*array.Int64)
	if !ok1 || !ok2 {
		return
	}
	for i, id := range ids.Int32Values() {
		if next := offs.Value(i) + 1; id >= 0 && next > ps.devNext[id] {
			ps.devNext[id] = next
		}
	}
}

// partition returns the engine's record of topic/p, creating it. Engine
// goroutine only.
func (c *Consumer) partition(topic string, p int32) *partState {
	key := partKey{topic, p}
	ps := c.parts[key]
	if ps == nil {
		ps = &partState{topic: topic, partition: p, owned: map[int32]struct{}{}, dirty: map[int32]struct{}{}, lastSnap: time.Now()}
		ps.durable.Store(-1)
		if c.byGroup != nil {
			ps.devNext = map[int32]int64{}
		}
		c.parts[key] = ps
	}
	return ps
}

// partKey names an input partition.
type partKey struct {
	topic     string
	partition int32
}

// behind reports whether partition p of topic has records the engine has
// not judged yet. Engine goroutine only.
func (c *Consumer) behind(topic string, p int32) bool {
	ps := c.parts[partKey{topic, p}]
	return ps != nil && ps.behind.Load()
}

// runPartition is the worker of one assigned partition for one generation.
func (c *Consumer) runPartition(genCtx context.Context, g *generation, kind, topic string, p int32, committed int64) {
	log := c.log.With("topic", topic, "partition", p)
	defer c.metrics.dropPartition(topic, p)
	fetchCtx, cancel := context.WithCancel(c.runCtx)
	defer cancel()
	stopWithGen := context.AfterFunc(genCtx, cancel)
	defer stopWithGen()

	var ps *partState
	keep := false
	if !c.do(fetchCtx, func() {
		ps = c.partition(topic, p)
		keep, ps.keep = ps.keep, false
	}) {
		return
	}
	if c.align != nil {
		defer c.align.leave(ps)
	}
	dec, err := c.decoders(kind, topic, p)
	if err != nil {
		c.fail(fmt.Errorf("cannot create decoder for topic %s: %w", topic, err))
		return
	}
	start := committed
	var filter *restoreFilter
	if keep {
		// Still this instance's since the last generation: what memory
		// holds is newer than the changelog, and holds the open alarms.
		if !c.do(fetchCtx, func() {
			start = ps.processed
			if ps.devNext != nil {
				filter = c.aheadFilter(ps)
			}
		}) {
			return
		}
		log.Info("kept partition state in memory", "start", start, "committed", committed)
	} else if c.state != nil {
		t0 := time.Now()
		marker, entries, err := c.readChangelog(fetchCtx, topic, p)
		if err != nil {
			if fetchCtx.Err() == nil {
				log.Warn("cannot restore partition state from the changelog; retrying after a rebalance", "err", err)
				c.backoff()
			}
			return
		}
		if !c.do(fetchCtx, func() { c.restore(ps, entries) }) {
			return
		}
		ps.durable.Store(marker)
		if marker >= 0 {
			start = marker
			filter = newRestoreFilter(marker, entries)
		}
		c.metrics.restoreSeconds.UpdateDuration(t0)
		log.Info("restored partition state", "devices", len(entries), "covers_offset", marker, "committed", committed, "start", start, "took", time.Since(t0))
	}
	cp := newCheckpointer(c.cfg.MaxInflightBatches, start)
	if c.state != nil {
		cp.durable = &ps.durable
	}
	if !c.do(fetchCtx, func() { ps.cp, ps.processed, ps.lastSnap = cp, start, time.Now() }) {
		return
	}
	ps.reading.Store(true)
	defer ps.reading.Store(false)
	g.mu.Lock()
	g.cps[topic][int(p)] = cp
	g.mu.Unlock()
	if g.started.Add(1) == g.total && !c.stopping.Load() {
		c.ready.Store(true)
	}

	// Dead-lettering the rows the engine rejects holds their batch
	// unresolved: it goes on while the batches in flight drain.
	workCtx, endWork := context.WithCancel(c.forceCtx)
	defer endWork()
	failed := c.fetch(fetchCtx, workCtx, log, dec, ps, cp, topic, p, start, filter)
	if c.align != nil {
		c.align.leave(ps)
	}

	drainCtx, cancelDrain := context.WithTimeout(c.forceCtx, c.cfg.RebalanceTimeout*3/4)
	defer cancelDrain()
	if err := cp.Wait(drainCtx); err != nil {
		_, n, _ := cp.Highest()
		log.Warn("gave up waiting for batches in flight; they stay uncommitted", "batches", n)
	}
	if failed == nil {
		_, _, failed = cp.Highest()
	}
	if failed != nil {
		h, _, _ := cp.Highest()
		log.Warn("batch failed; redelivering from the last acknowledged offset", "offset", h, "err", failed)
		c.backoff()
		return
	}
	if c.state != nil {
		done := make(chan error, 1)
		if c.do(drainCtx, func() { c.snapshot(drainCtx, ps, done) }) {
			select {
			case err := <-done:
				// A partition that acknowledged nothing here has nothing
				// to checkpoint: its changelog is as good as before.
				if covered, _, _ := cp.Highest(); err != nil && covered >= 0 {
					log.Warn("cannot checkpoint partition state at hand-over; the next owner replays from the previous checkpoint", "err", err)
					if c.runCtx.Err() != nil {
						c.stopFailed(fmt.Errorf("cannot checkpoint the state of %s/%d while stopping: %w", topic, p, err))
					}
				}
			case <-drainCtx.Done():
				if c.runCtx.Err() != nil {
					c.stopFailed(fmt.Errorf("the checkpoint of %s/%d did not finish before the shutdown deadline", topic, p))
				}
			}
		}
	}
	if c.runCtx.Err() == nil {
		// The generation ended: whether the partition stays with this
		// instance is known when the next one begins (sweepPartitions).
		c.do(drainCtx, func() {
			// Batches the engine never saw (every record covered by the
			// restored state, or a dead letter) may end past processed.
			covered, _, failed := cp.Highest()
			if failed == nil && covered >= ps.processed && (filter == nil || covered >= filter.max) {
				ps.processed = covered
				ps.handedOver = g.gen.ID
			}
		})
	}
}

// forget drops the state of the devices of ps, in the baseline and in the
// engine. Engine goroutine only.
func (c *Consumer) forget(ps *partState) {
	for id := range ps.owned {
		name := c.reg.DeviceName(id)
		if c.state != nil {
			c.state.ForgetDevice(name)
		}
		if c.forgetter != nil {
			c.forgetter.ForgetDevice(name)
		}
	}
	clear(ps.owned)
	clear(ps.dirty)
	clear(ps.noted)
	clear(ps.devNext)
	c.updateStateGauge()
}

func (c *Consumer) backoff() {
	t := time.NewTimer(c.cfg.NackBackoff)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.runCtx.Done():
	}
}

// ReaderConfig holds the fetch settings a partition worker reads topic/p
// with (MinBytes, MaxBytes from fetch_max_bytes, MaxWait from
// fetch_max_wait, IsolationLevel from isolation_level, the retry
// backoff). The worker fetches with Fetch requests of its own
// (partitionFetcher); kafkabench's bare consumer gives the same config to
// a kafka-go Reader (which also uses QueueCapacity), so that both sides of
// the comparison fetch alike. The caller sets Dialer for TLS and SASL.
func ReaderConfig(cfg *ingest.KafkaConfig, topic string, p int32) kafkago.ReaderConfig {
	rc := kafkago.ReaderConfig{
		Brokers: cfg.Brokers, Topic: topic, Partition: int(p),
		MinBytes: 1, MaxBytes: cfg.FetchMaxBytes, MaxWait: cfg.FetchMaxWait,
		QueueCapacity: 2 * cfg.BatchSize, ReadBackoffMin: 10 * time.Millisecond, ReadBackoffMax: 200 * time.Millisecond,
		IsolationLevel: kafkago.ReadUncommitted,
	}
	if cfg.IsolationLevel == "read_committed" {
		rc.IsolationLevel = kafkago.ReadCommitted
	}
	return rc
}

// fetch reads the partition from start, cuts batches and hands them to the
// engine until ctx ends or a batch fails. It returns the failure, if any.
// work is the context of what a batch's acknowledgement starts (send).
func (c *Consumer) fetch(ctx, work context.Context, log *slog.Logger, dec Decoder, ps *partState, cp *checkpointer,
	topic string, p int32, start int64, filter *restoreFilter) error {
	rc := ReaderConfig(&c.cfg, topic, p)
	rc.Dialer = c.dialer
	pctx, stopPrefetch := context.WithCancel(ctx)
	pf := newPartitionFetcher(rc, start, log)
	if c.align != nil {
		// Expected from the start of the generation (aligner.expect): its
		// first fetch says whether it holds the others back.
		pf.align, pf.ps = c.align, ps
		c.align.sent(ps, math.MinInt64, start, false)
	}
	pr := startPrefetch(pctx, pf, min(c.cfg.BatchSize, 512))
	defer pr.drain()
	defer stopPrefetch()
	var r recordReader = pr
	if c.byGroup != nil {
		r = c.newMerger(pr)
	}
	bb := newBatchBuilder(c.reg, c.grouper)
	bb.filter = filter
	pm := c.metrics.partition(topic, p)
	rec := Record{Topic: topic, Partition: p}
	wd, windowed := dec.(WindowedDecoder)
	var rejects []kafkago.Message
	for {
		if _, _, failed := cp.Highest(); failed != nil {
			return failed
		}
		if err := cp.acquire(ctx); err != nil {
			return nil
		}
		// errPassed: no record, but the position moved past transaction
		// markers or aborted records, which the batch (maybe empty) covers.
		m, err := r.get(time.Time{})
		if err != nil && !errors.Is(err, errPassed) {
			// Only the end of ctx: the fetcher retries everything else.
			cp.release()
			return nil
		}
		batchStart := time.Now()
		linger := batchStart.Add(c.cfg.BatchLinger)
		n, size := 0, 0
		for m != nil {
			rec.Offset, rec.Time, rec.Key, rec.Value, rec.Headers = m.Offset, m.Time, m.Key, m.Value, m.Headers
			size += len(m.Value)
			if err := dec.Decode(&rec, bb); err != nil {
				reason := reasonOf(err)
				c.metrics.decodeError(topic, reason)
				rejects = append(rejects, deadLetterMessage(m, reason, err))
			}
			if n++; n >= c.cfg.BatchSize {
				break
			}
			// A batch is judged as one step of the engine: one that spans
			// more event time than the partitions may drift apart would
			// undo the alignment.
			if c.align != nil && bb.span() >= c.align.maxSkew {
				break
			}
			m, _ = r.get(linger)
		}
		end, hwm := r.position()
		// Counted per batch: shared counters touched per record would
		// bounce between the partition workers' cores.
		pm.records.Add(n)
		pm.bytes.Add(size)
		pm.lag.Set(float64(hwm - end))
		c.consumed.Add(int64(n))
		if bb.filter != nil {
			if bb.skipped > 0 {
				c.metrics.skipped.Add(bb.skipped)
				bb.skipped = 0
			}
			if end >= bb.filter.max {
				bb.filter = nil
			}
		}
		if len(rejects) > 0 {
			if err := c.sendDeadLetters(ctx, log, topic, rejects); err != nil {
				cp.release()
				return nil // ctx ended: the rejects stay uncommitted
			}
			rejects = rejects[:0]
		}
		var ready []*ingest.Batch
		if bb.Len() > 0 {
			ready = append(ready, bb.take())
		}
		limit := end
		if windowed {
			for b := wd.TakeBatch(); b != nil; b = wd.TakeBatch() {
				ready = append(ready, b)
			}
			if h := wd.Holding(); h >= 0 && h < limit {
				limit = h
			}
		}
		if len(ready) == 0 {
			cp.add(limit)(nil)
			if c.align != nil {
				c.align.sent(ps, math.MinInt64, end, false)
			}
			continue
		}
		for i, b := range ready {
			if i > 0 {
				if err := cp.acquire(c.forceCtx); err != nil {
					releaseAll(ready[i:])
					return nil
				}
			}
			lo, hi, timed := eventTimeRange(b)
			if c.align != nil && timed {
				if c.align.wait(ctx, ps, lo, r.fetched()) {
					c.metrics.alignTimeouts.Inc()
				}
			}
			if !c.send(work, ps, cp, b, limit, batchStart) {
				releaseAll(ready[i+1:])
				return nil
			}
			if c.align != nil {
				if !timed {
					hi = math.MinInt64
				}
				c.align.sent(ps, hi, end, i < len(ready)-1)
			}
		}
	}
}

// recordReader is what a partition worker reads records from: the
// prefetcher, or for a by-group partition its merger.
type recordReader interface {
	get(deadline time.Time) (*kafkago.Message, error)
	position() (next, hwm int64)
	fetched() int64 // the aligner's tick of the fetch response of the last record
}

func releaseAll(bs []*ingest.Batch) {
	for _, b := range bs {
		b.Release()
	}
}

// send hands batch b, ending the partition's input before end, to the
// engine with an ack that resolves it in cp; the caller holds a slot of cp.
// A batch acknowledged with rows the engine rejected is resolved once
// their records are in the dead-letter topic, or when work ends. It
// reports false when the stop was forced first.
func (c *Consumer) send(work context.Context, ps *partState, cp *checkpointer, b *ingest.Batch, end int64, started time.Time) bool {
	resolve := cp.add(end)
	var batch *ingest.Batch
	batch = ingest.NewBatch(b.Record, func(_ context.Context, err error) {
		if len(batch.Rejected) > 0 && c.deadLetter != nil {
			resolve = c.deadLetterRejected(work, batch.Rejected, resolve)
		}
		if err != nil {
			c.metrics.nacks.Inc()
			if c.flusher != nil && !errors.Is(err, errStopped) {
				// Called on the engine goroutine, from Process (or
				// Drain or Flush: Drainer).
				c.undelivered = append(c.undelivered, resolve)
				return
			}
		}
		c.metrics.batchLatency.UpdateDuration(started)
		resolve(err)
	})
	batch.Sets, batch.Comms, batch.Events, batch.Source = b.Sets, b.Comms, b.Events, ps.topic
	select {
	case c.tasks <- task{batch: batch, part: ps, end: end}:
		return true
	case <-c.forceCtx.Done():
		batch.Release()
		batch.Ack(context.Background(), errStopped)
		return false
	}
}
