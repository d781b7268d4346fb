package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/ingest"
)

// ShareOptions say where a console shares the fleet's status: the shared
// status topic (see sharedVersion for its records) and who this console
// is.
type ShareOptions struct {
	Brokers []string
	Topic   string
	Dialer  *kafkago.Dialer // TLS, SASL and client id; nil: plain TCP
	// Instance names the instance whose engine feeds this console
	// (kafka.instance_id): its devices' status records name it as their
	// owner, and it sends the decisions on them to its sinks. "" for a
	// console without an engine (vigil console), which only reads the
	// topic and writes its operators' decisions to it.
	Instance string
	Logger   *slog.Logger
}

// Shared is a console fed by the shared status topic instead of its own
// engine, so that every instance of a consumer group (and vigil console
// alone) shows the whole fleet. As the engine's pipeline.Console it
// publishes the status of the devices the engine reports (at most once per
// publish_interval, as the engine hands them over) and its groups (at most
// every groupPublishEvery) to the topic, and hands the rollouts to the
// console. It follows every partition of the topic into the console's
// fleet index and groups. The console's decisions are written to the
// topic, and the instance that owns a decided device sends the decision's
// quarantine event to its sinks.
//
// The console keeps no recent values in this mode (no plots on the device
// page). A device's open alarms travel in its status record, so every
// console shows them, and their alerts once each in its timeline; the
// other alerts (cleared ones, and those of alarms opened and closed
// between two records) travel to the SIEM, not on this topic.
type Shared struct {
	c    *Console
	opts ShareOptions
	log  *slog.Logger
	w    *kafkago.Writer

	mu      sync.Mutex
	pending map[pendingKey]pendingRecord // the newest record of each device and group, for the writer
	wake    chan struct{}
	// groupsAt is when each group was last published, by name (each
	// shard of the engine publishes its own groups); PublishStatus's
	// goroutine only.
	groupsAt map[string]time.Time

	fmu      sync.Mutex
	owners   map[string]string         // device -> instance of its latest status record
	unsent   map[string]unsentDecision // key -> a decision no instance has sent yet
	caughtUp map[int]bool              // partitions read up to their end once
	sendMu   sync.Mutex                // one sendOwned at a time
	stop     context.CancelFunc
	running  sync.WaitGroup
	stopOnce sync.Once
	badOnce  atomic.Bool
	// what encoding and applying records took so far, for StatusCost
	encodeCost, applyCost perRecord

	set                          *metrics.Set
	applied, rejected, published *metrics.Counter
	publishErrors, decisionsSent *metrics.Counter
}

// The engine spaces its publications by what the console says they cost.
var (
	_ detect.StatusCoster = (*Shared)(nil)
	_ detect.StatusCoster = (*Console)(nil)
)

// perRecord is a running total of the time a kind of work on records took,
// and of the records.
type perRecord struct{ ns, n atomic.Int64 }

func (p *perRecord) add(d time.Duration, records int) {
	p.ns.Add(int64(d))
	p.n.Add(int64(records))
}

// mean returns the time a record took, on average (0: none yet).
func (p *perRecord) mean() time.Duration {
	if n := p.n.Load(); n > 0 {
		return time.Duration(p.ns.Load() / n)
	}
	return 0
}

// StatusCost implements detect.StatusCoster: what a device's record costs
// beyond PublishStatus, on average: encoding it (the writer's goroutine;
// not the write, which mostly waits for the brokers) and decoding and
// applying it (every instance's console; this one's, for each record of
// the topic), so that the engine spaces its publications by what they
// cost in all.
func (s *Shared) StatusCost() time.Duration { return s.encodeCost.mean() + s.applyCost.mean() }

type unsentDecision struct {
	partition int
	rec       *decisionRecord
}

// Share connects c to the status topic of opts. Start does the work; c's
// decisions go to the topic from now on.
func Share(c *Console, opts ShareOptions) *Shared {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	tr := &kafkago.Transport{DialTimeout: 10 * time.Second}
	if d := opts.Dialer; d != nil {
		tr = &kafkago.Transport{ClientID: d.ClientID, TLS: d.TLS, SASL: d.SASLMechanism, DialTimeout: d.Timeout}
	}
	set := metrics.NewSet()
	s := &Shared{c: c, opts: opts, log: log, pending: map[pendingKey]pendingRecord{}, wake: make(chan struct{}, 1), groupsAt: map[string]time.Time{},
		owners: map[string]string{}, unsent: map[string]unsentDecision{}, caughtUp: map[int]bool{},
		w: &kafkago.Writer{Addr: kafkago.TCP(opts.Brokers...), Topic: opts.Topic, Balancer: deviceBalancer{}, Transport: tr,
			RequiredAcks: kafkago.RequireAll, BatchTimeout: 2 * time.Millisecond, WriteTimeout: 10 * time.Second},
		set:           set,
		applied:       set.NewCounter(`vigil_console_status_records_total{result="applied"}`),
		rejected:      set.NewCounter(`vigil_console_status_records_total{result="rejected"}`),
		published:     set.NewCounter("vigil_console_status_published_total"),
		publishErrors: set.NewCounter("vigil_console_status_publish_errors_total"),
		decisionsSent: set.NewCounter("vigil_console_decisions_sent_total"),
	}
	c.forward = s.forwardDecision
	return s
}

// Metrics returns the set of the shared status metrics: records applied
// and rejected (bad records, skipped), status records published and
// failed writes, decisions sent to the sinks. The command registers it.
func (s *Shared) Metrics() *metrics.Set { return s.set }

// PublishStatus implements detect.StatusSink: the devices and groups go to
// the topic (the console learns them from there, as every other console
// does), the rollouts to the console. It copies them for the writer, which
// encodes them on its own goroutine.
func (s *Shared) PublishStatus(u *detect.StatusUpdate) {
	if len(u.Evicted) > 0 { // a tombstone each: every console takes them out of the fleet
		s.mu.Lock()
		for _, name := range u.Evicted {
			s.pending[pendingKey{name: name}] = pendingRecord{evicted: true}
		}
		s.mu.Unlock()
		s.wakeWriter()
	}
	if len(u.Devices) > 0 {
		s.c.mu.RLock()
		s.mu.Lock()
		for i := range u.Devices {
			p := pendingRecord{status: u.Devices[i]}
			st := &p.status
			st.SourceIPs, st.ClientIDs, st.EarlierFirmware = slices.Clone(st.SourceIPs), slices.Clone(st.ClientIDs), slices.Clone(st.EarlierFirmware)
			if e := s.c.events[st.QuarantineID]; st.QuarantineID != "" && e != nil {
				ev := e.QuarantineEvent
				p.event = &ev
			}
			p.open = s.c.openAlarms(st.Device, sharedOpenAlarms)
			s.pending[pendingKey{name: st.Device}] = p
		}
		s.mu.Unlock()
		s.c.mu.RUnlock()
		s.wakeWriter()
	}
	if now, due := time.Now(), false; len(u.Groups) > 0 {
		s.mu.Lock()
		for i := range u.Groups {
			g := u.Groups[i]
			if now.Sub(s.groupsAt[g.Name]) < groupPublishEvery {
				continue
			}
			s.groupsAt[g.Name], due = now, true
			g.Metrics = slices.Clone(g.Metrics)
			s.pending[pendingKey{group: true, name: g.Name}] = pendingRecord{group: &g}
		}
		s.mu.Unlock()
		if due {
			s.wakeWriter()
		}
	}
	if len(u.Rollouts) > 0 {
		s.c.PublishStatus(&detect.StatusUpdate{Rollouts: u.Rollouts})
	}
}

// groupPublishEvery is how often at most an instance publishes a group:
// their figures move slowly.
const groupPublishEvery = 10 * time.Second

// pendingKey names a record waiting for the writer: a device's status or
// a group's.
type pendingKey struct {
	group bool
	name  string
}

// pendingRecord is a record waiting for the writer, which encodes it.
type pendingRecord struct {
	status detect.DeviceStatus
	event  *detect.QuarantineEvent // the event of the device's episode, if known
	open   []detect.Alert          // the alerts of the device's open alarms
	group  *detect.GroupStatus     // set for a group's record
	// evicted: the device was evicted (detect.when_full evict_idle); its
	// record is a tombstone
	evicted bool
}

func (s *Shared) wakeWriter() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// encode returns the record of k as a message of the topic.
func (s *Shared) encode(k pendingKey, p *pendingRecord) (kafkago.Message, error) {
	if p.group != nil {
		v, err := json.Marshal(newGroupRecord(s.opts.Instance, p.group))
		return kafkago.Message{Key: groupKey(k.name), Value: v}, err
	}
	if p.evicted {
		return kafkago.Message{Key: statusKey(k.name)}, nil
	}
	v, err := json.Marshal(newStatusRecord(s.opts.Instance, &p.status, p.event, p.open))
	return kafkago.Message{Key: statusKey(k.name), Value: v}, err
}

// Attach is Console.Attach: the engine's alerts and quarantine events go
// through the console to sink.
func (s *Shared) Attach(sink detect.Sink, assets ingest.AssetLookup) detect.Sink {
	return s.c.Attach(sink, assets)
}

// PublishInterval is the console's publish_interval: how often at most a
// device's status is written to the topic.
func (s *Shared) PublishInterval() time.Duration { return s.c.PublishInterval() }

// RecentValues is 0: recent values do not travel on the topic, so the
// engine keeps none for plots.
func (s *Shared) RecentValues() int { return 0 }

// RecentStep is 0, as there are no recent values (RecentValues).
func (s *Shared) RecentStep() time.Duration { return 0 }

// Start looks the topic up, then writes the status records the engine
// publishes and follows every partition of the topic from its start, in
// the background, until Stop. ctx bounds the look-up only.
func (s *Shared) Start(ctx context.Context) error {
	var parts []kafkago.Partition
	var err error
	d := s.opts.Dialer
	if d == nil {
		d = &kafkago.Dialer{Timeout: 10 * time.Second}
	}
	for _, b := range s.opts.Brokers {
		if parts, err = d.LookupPartitions(ctx, "tcp", b, s.opts.Topic); err == nil && len(parts) > 0 {
			break
		}
	}
	if err == nil && len(parts) == 0 {
		err = errors.New("it has no partitions")
	}
	if err != nil {
		return fmt.Errorf("cannot look up status topic %s (console.status_topic): %w; create it compacted (see deploy/topics.sh)", s.opts.Topic, err)
	}
	run, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = cancel
	for _, p := range parts {
		s.running.Add(1)
		go func() {
			defer s.running.Done()
			s.follow(run, d, p.ID)
		}()
	}
	s.running.Add(1)
	go func() {
		defer s.running.Done()
		s.writeLoop(run)
	}()
	return nil
}

// Stop writes what the engine published last (for up to five seconds),
// stops following the topic and closes the writer. Call it after the
// engine's last publication, after a successful Start; calling it again
// does nothing.
func (s *Shared) Stop() {
	s.stopOnce.Do(func() {
		s.stop()
		s.running.Wait()
		s.w.Close()
	})
}

// writeLoop writes pending status records as they come and retries the
// decisions this instance has to send, once a second.
func (s *Shared) writeLoop(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-s.wake:
			s.flush(ctx)
		case <-tick.C:
			s.flush(ctx)
			s.sendOwned(ctx)
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			s.flush(final)
			cancel()
			return
		}
	}
}

// flush writes the pending records; those a failed write leaves go again
// with the next flush, unless a newer record replaced them.
func (s *Shared) flush(ctx context.Context) {
	s.mu.Lock()
	batch := s.pending
	s.pending = make(map[pendingKey]pendingRecord, len(batch))
	s.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	start := time.Now()
	msgs := make([]kafkago.Message, 0, len(batch))
	for k, p := range batch {
		m, err := s.encode(k, &p)
		if err != nil {
			s.log.Error("BUG: cannot encode a record of the status topic", "name", k.name, "err", err)
			continue
		}
		msgs = append(msgs, m)
	}
	s.encodeCost.add(time.Since(start), len(batch)) // the CPU's: not the write, mostly waiting for the brokers
	if err := s.w.WriteMessages(ctx, msgs...); err != nil {
		s.publishErrors.Inc()
		s.log.Warn("cannot publish device status; retrying", "topic", s.opts.Topic, "records", len(msgs), "err", err)
		s.mu.Lock()
		for k, p := range batch {
			if _, newer := s.pending[k]; !newer {
				s.pending[k] = p
			}
		}
		s.mu.Unlock()
		return
	}
	s.published.Add(len(msgs))
}

// follow applies every record of partition p to the console, from the
// partition's start, until ctx ends.
func (s *Shared) follow(ctx context.Context, d *kafkago.Dialer, p int) {
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: s.opts.Brokers, Topic: s.opts.Topic, Partition: p, Dialer: d,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(kafkago.FirstOffset); err != nil {
		s.log.Error("cannot read status topic", "topic", s.opts.Topic, "partition", p, "err", err)
		return
	}
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("cannot read status topic; this console stops following it", "topic", s.opts.Topic, "partition", p, "err", err)
			}
			return
		}
		start := time.Now()
		s.apply(&m)
		s.applyCost.add(time.Since(start), 1)
		if m.Offset+1 >= m.HighWaterMark {
			s.fmu.Lock()
			s.caughtUp[p] = true
			s.fmu.Unlock()
			s.sendOwned(ctx)
		}
	}
}

// apply applies one record of the topic to the console.
func (s *Shared) apply(m *kafkago.Message) {
	rec, err := decodeShared(m.Key, m.Value)
	if err != nil {
		s.rejected.Inc()
		if !s.badOnce.Swap(true) {
			s.log.Warn("skipping a bad record of the status topic (counted in vigil_console_status_records_total{result=\"rejected\"}; only the first is logged)",
				"topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "err", err)
		}
		return
	}
	s.applied.Inc()
	s.fmu.Lock()
	switch {
	case rec.Group != nil:
	case rec.Status != nil:
		s.owners[rec.Device] = rec.Status.Owner
	case rec.Decision != nil:
		// Decisions on one event share a key: the first stands (a second
		// is not sent), and its mark settles the key.
		key := string(m.Key)
		first, waiting := s.unsent[key]
		switch {
		case rec.Decision.SentBy != "":
			delete(s.unsent, key)
		case !waiting || first.rec.Decision.Sent == rec.Decision.Decision.Sent:
			s.unsent[key] = unsentDecision{partition: m.Partition, rec: rec.Decision}
		}
	default:
		delete(s.owners, rec.Device)
	}
	s.fmu.Unlock()
	switch {
	case rec.Group != nil:
		s.c.applyGroupRecord(rec.Group)
	case rec.Status != nil:
		// the engine's own devices' alarms reach the console through its sink, first
		var open []detect.Alert // nil: the console's own engine's device
		if rec.Status.Owner != s.opts.Instance || s.opts.Instance == "" {
			open = rec.open
			if open == nil {
				open = []detect.Alert{}
			}
		}
		s.c.applyStatusRecord(rec.Status, open)
	case rec.Decision != nil:
		d := rec.Decision.Decision
		s.c.mu.Lock()
		s.c.recordDecision(&d, rec.Decision.Event.event())
		s.c.mu.Unlock()
	default:
		s.c.removeDevice(rec.Device)
	}
}

// sendOwned sends the quarantine events of the decisions not sent yet on
// the devices this instance owns, in partitions read to their end at
// least once (before that, the record saying a decision was sent may be
// still to come), and marks each sent on the topic.
func (s *Shared) sendOwned(ctx context.Context) {
	if s.opts.Instance == "" {
		return
	}
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	var todo []string
	s.fmu.Lock()
	for key, u := range s.unsent {
		if s.caughtUp[u.partition] && s.owners[u.rec.Event.Device] == s.opts.Instance {
			todo = append(todo, key)
		}
	}
	s.fmu.Unlock()
	for _, key := range todo {
		s.fmu.Lock()
		u, ok := s.unsent[key]
		s.fmu.Unlock()
		if !ok {
			continue
		}
		rec := *u.rec
		out := rec.Event.event()
		if first := s.c.decisionOn(rec.Decision.Event); first != nil && first.Sent != rec.Decision.Sent {
			s.log.Warn("not sending a second decision on one quarantine event: the first stands", "device", out.Device, "event", rec.Decision.Event,
				"first", first.Action+" by "+first.By, "second", rec.Decision.Action+" by "+rec.Decision.By)
			s.fmu.Lock()
			delete(s.unsent, key)
			s.fmu.Unlock()
			continue
		}
		if err := s.c.deliver(ctx, out); err != nil {
			s.log.Warn("cannot send an operator's quarantine decision to the sinks; retrying", "device", out.Device, "event", out.ID, "err", err)
			return
		}
		rec.SentBy = s.opts.Instance
		v, err := json.Marshal(&rec)
		if err == nil {
			err = s.w.WriteMessages(ctx, kafkago.Message{Key: []byte(key), Value: v})
		}
		if err != nil {
			// Sent, not marked: a restart sends it again, with the same id.
			s.log.Warn("cannot mark a sent quarantine decision on the status topic", "event", out.ID, "err", err)
		}
		s.fmu.Lock()
		delete(s.unsent, key)
		s.fmu.Unlock()
		s.decisionsSent.Inc()
		s.log.Info("sent an operator's quarantine decision", "device", out.Device, "action", out.Action, "event", out.ID, "by", rec.Decision.By)
	}
}

// forwardDecision writes a console's decision to the topic, for the
// instance that owns the device to send.
func (s *Shared) forwardDecision(ctx context.Context, dec *Decision, out detect.QuarantineEvent) error {
	v, err := json.Marshal(&decisionRecord{V: sharedVersion, Decision: *dec, Event: toWireEvent(&out)})
	if err != nil {
		return err
	}
	if err := s.w.WriteMessages(ctx, kafkago.Message{Key: decisionKey(dec.Event, out.Device), Value: v}); err != nil {
		return fmt.Errorf("cannot write the decision to status topic %s: %w", s.opts.Topic, err)
	}
	return nil
}

// deviceBalancer puts every record of a device in one partition, chosen
// from the device alone, so its status and the decisions on it keep
// their order.
type deviceBalancer struct{}

func (deviceBalancer) Balance(msg kafkago.Message, partitions ...int) int {
	h := fnv.New32a()
	h.Write([]byte(keyDevice(msg.Key)))
	return partitions[int(h.Sum32()%uint32(len(partitions)))]
}

// applyStatusRecord puts a device's status from the topic in the index,
// under the row the console gave the device, and its open alarms unless
// nil (a device of the console's own engine: its sink brings them): they
// replace the device's, and the alerts of those new to it join the
// timeline.
func (c *Console) applyStatusRecord(r *statusRecord, alarms []detect.Alert) {
	st := r.status()
	c.mu.Lock()
	defer c.mu.Unlock()
	row, ok := c.byName[st.Device]
	if !ok {
		row = int32(len(c.devices))
	}
	st.ID = row
	if c.stale(&st) {
		return
	}
	if r.Event != nil {
		if _, ok := c.events[r.Event.ID]; !ok {
			c.events[r.Event.ID] = &event{QuarantineEvent: r.Event.event()}
		}
	}
	if alarms != nil {
		known := c.open[st.Device]
		var open []openAlarm
		for i := len(alarms) - 1; i >= 0; i-- { // oldest first, as they came
			a := alarms[i]
			if !slices.ContainsFunc(known, func(o openAlarm) bool { return o.alert.ID == a.ID }) {
				c.recordTimeline(&a)
			}
			open = append(open, openAlarm{alert: a})
		}
		if len(open) == 0 {
			delete(c.open, st.Device)
		} else {
			c.open[st.Device] = open
		}
	}
	c.updateDevice(&st, nil)
}

// openAlarms returns copies of the alerts of device's open alarms, newest
// first, at most n. The caller holds mu.
func (c *Console) openAlarms(device string, n int) []detect.Alert {
	open := c.open[device]
	if len(open) == 0 {
		return nil
	}
	out := make([]detect.Alert, 0, min(len(open), n))
	for _, o := range open {
		out = append(out, o.alert)
	}
	slices.SortStableFunc(out, func(a, b detect.Alert) int { return b.EventTime.Compare(a.EventTime) })
	return out[:min(len(out), n)]
}

// decisionOn returns the decision recorded on quarantine event id, nil
// when there is none.
func (c *Console) decisionOn(id string) *Decision {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if ev := c.events[id]; ev != nil {
		return ev.decision
	}
	return nil
}

// applyGroupRecord puts a group's state from the topic in the console's
// groups.
func (c *Console) applyGroupRecord(r *groupRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putGroup(r.status())
}

// removeDevice takes a device out of the fleet (a tombstone of its status
// record).
func (c *Console) removeDevice(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropDevice(name)
}

// dropDevice takes a device out of the fleet: a tombstone, or the engine
// evicted it (detect.when_full evict_idle) and may give its id, its row
// here, to another. The caller holds c.mu.
func (c *Console) dropDevice(name string) {
	r, ok := c.byName[name]
	if !ok {
		return
	}
	delete(c.byName, name)
	delete(c.open, name)
	c.devices[r] = nil
	c.idx.present[r>>6] &^= 1 << (r & 63)
}
