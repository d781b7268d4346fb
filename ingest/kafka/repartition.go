package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"time"

	"github.com/VictoriaMetrics/metrics"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/vigil-ot/vigil/ingest"
)

// Repartitioning by group (kafka.repartition_by_group) makes every group
// whole on one instance, so that group-level detectors (fleet KPIs, the
// quarantine rail's share of a group, peers-now, joint models) count all
// of a group's members whatever the partition assignment, as a replay
// does. Each instance runs two consumer groups:
//
//   - the repartition stage (group RepartitionGroupID) reads its share of
//     the telemetry topics, decodes each record only to learn its group
//     and event time, and produces it unchanged (key, value, timestamp,
//     headers) to the by-group topic, in the partition its group hashes
//     to, with a HeaderSource naming where it came from. After each batch,
//     and every commit interval while its source is quiet, it sends every
//     by-group partition a marker: how far its source has come, in offsets
//     and event time, and whether it is caught up. Source offsets are
//     committed once the records and markers are written.
//   - the consumer group proper reads the by-group topic as it would the
//     telemetry topics: changelog, checkpoints and alignment follow the
//     by-group partitions. A merger per by-group partition hands the
//     records of its sources back in event-time order (see merger). So
//     the order within a group does not depend on how the repartition
//     stage's instances raced each other, and records a rebalance of the
//     repartition stage wrote twice are dropped by their source offset
//     (within one read of the partition).
//     The merge hands rows on past the partition's committable offset, so
//     each device's checkpoint says the offset after its own last row
//     (partState.devNext), which a read from an earlier offset skips.
const HeaderSource = "vigil-src"

// sourceMark is the HeaderSource of one record or marker of the by-group
// topic: the record's source partition and offset and its event time, or
// for a marker the source's next offset and the event time of its last
// record; to is the by-group partition it was written to.
type sourceMark struct {
	marker       bool
	caughtUp     bool // the source had nothing more to read when the marker was sent
	to           int32
	src          partKey
	offset, time int64
}

const (
	markFlagMarker = 1 << iota
	markFlagCaughtUp

	markFixedLen = 1 + 4 + 4 + 8 + 8
)

// appendSourceMark appends m's wire form to dst: flags, to, source
// partition, offset and event time (big-endian), then the source topic.
func appendSourceMark(dst []byte, m *sourceMark) []byte {
	var flags byte
	if m.marker {
		flags |= markFlagMarker
	}
	if m.caughtUp {
		flags |= markFlagCaughtUp
	}
	dst = append(dst, flags)
	dst = binary.BigEndian.AppendUint32(dst, uint32(m.to))
	dst = binary.BigEndian.AppendUint32(dst, uint32(m.src.partition))
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.offset))
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.time))
	return append(dst, m.src.topic...)
}

var errBadSourceMark = errors.New("malformed " + HeaderSource + " header")

// parseSourceMark parses what appendSourceMark wrote.
func parseSourceMark(v []byte, m *sourceMark) error {
	if len(v) <= markFixedLen || v[0]&^(markFlagMarker|markFlagCaughtUp) != 0 {
		return errBadSourceMark
	}
	m.marker, m.caughtUp = v[0]&markFlagMarker != 0, v[0]&markFlagCaughtUp != 0
	m.to = int32(binary.BigEndian.Uint32(v[1:]))
	m.src.partition = int32(binary.BigEndian.Uint32(v[5:]))
	m.offset = int64(binary.BigEndian.Uint64(v[9:]))
	m.time = int64(binary.BigEndian.Uint64(v[17:]))
	m.src.topic = string(v[markFixedLen:])
	if m.to < 0 || m.src.partition < 0 || m.offset < 0 {
		return errBadSourceMark
	}
	return nil
}

// sourceHeader returns the value of the record's HeaderSource, if any.
func sourceHeader(hs []kafkago.Header) ([]byte, bool) {
	for _, h := range hs {
		if h.Key == HeaderSource {
			return h.Value, true
		}
	}
	return nil, false
}

// byGroupBalancer writes each message to the by-group partition its
// HeaderSource names (the repartition stage chose it).
type byGroupBalancer struct{}

func (byGroupBalancer) Balance(msg kafkago.Message, partitions ...int) int {
	if v, ok := sourceHeader(msg.Headers); ok && len(v) >= 5 {
		to := int(binary.BigEndian.Uint32(v[1:]))
		for _, p := range partitions {
			if p == to {
				return p
			}
		}
	}
	return partitions[0]
}

// groupPartition is the by-group partition of group: FNV-1a, stable
// across instances and versions.
func groupPartition(group string, partitions int) int32 {
	h := fnv.New32a()
	h.Write([]byte(group))
	return int32(h.Sum32() % uint32(partitions))
}

// repartition runs the repartition stage until ctx ends; see HeaderSource.
func (c *Consumer) repartition(ctx context.Context, partitions int) {
	cg, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID: c.cfg.RepartitionGroupID(), Brokers: c.cfg.Brokers, Dialer: c.dialer, Topics: c.cfg.TelemetryTopics,
		HeartbeatInterval: c.cfg.HeartbeatInterval, SessionTimeout: c.cfg.SessionTimeout,
		RebalanceTimeout: c.cfg.RebalanceTimeout, JoinGroupBackoff: time.Second,
		StartOffset: c.startOffset(), WatchPartitionChanges: true, PartitionWatchInterval: 10 * time.Second,
		GroupBalancers: []kafkago.GroupBalancer{kafkago.RoundRobinGroupBalancer{}},
		Timeout:        10 * time.Second,
	})
	if err != nil {
		c.fail(fmt.Errorf("cannot join the repartition stage's consumer group %s: %w", c.cfg.RepartitionGroupID(), err))
		return
	}
	defer cg.Close()
	for {
		gen, err := cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafkago.ErrGroupClosed) {
				return
			}
			c.log.Warn("cannot join the next generation of the repartition stage; retrying", "group", c.cfg.RepartitionGroupID(), "err", err)
			continue
		}
		for topic, pas := range gen.Assignments {
			for _, pa := range pas {
				topic, p, offset := topic, int32(pa.ID), pa.Offset
				gen.Start(func(genCtx context.Context) {
					c.repartitionPartition(genCtx, gen, topic, p, offset, partitions)
				})
			}
		}
	}
}

// repartitionPartition copies one telemetry partition to the by-group
// topic from offset until ctx ends, committing what was written.
func (c *Consumer) repartitionPartition(ctx context.Context, gen *kafkago.Generation, topic string, p int32, offset int64, partitions int) {
	log := c.log.With("stage", "repartition", "topic", topic, "partition", p)
	dec, err := c.decoders(KindTelemetry, topic, p)
	if err != nil {
		c.fail(fmt.Errorf("cannot create decoder for topic %s: %w", topic, err))
		return
	}
	rc := ReaderConfig(&c.cfg, topic, p)
	rc.Dialer = c.dialer
	f := newPartitionFetcher(rc, offset, log)
	f.hwm = -1 // until the first fetch response says
	defer f.Close()

	// The decoder's rows only say the record's group and event time.
	var group, device string
	var rowTime int64
	bb := &BatchBuilder{rowHook: func(row *ingest.Row) {
		if group == "" {
			group, device = row.Group, row.Device
			if group == "" {
				group = c.grouper.Group(row.Device, row.Attrs)
			}
		}
		rowTime = max(rowTime, row.TimeNanos)
	}}
	src := partKey{topic, p}
	// A device that reports a new group-by attribute moves to its new
	// group's partition: counted, see docs/scaling.md.
	groupOf := map[string]string{}
	wm := int64(math.MinInt64) // event time of the last record written
	var msgs []kafkago.Message
	var m kafkago.Message
	rec := Record{Topic: topic, Partition: p}
	// The next batch is read and decoded while the writer waits for the
	// broker to take the ones before, in order.
	out := make(chan stageBatch, 2)
	written := make(chan struct{})
	go func() {
		defer close(written)
		c.writeStage(ctx, gen, log, src, out, partitions)
	}()
	defer func() {
		close(out)
		<-written
	}()
	for {
		msgs = make([]kafkago.Message, 0, c.cfg.BatchSize+partitions)
		// Quiet, the source still marks every commit interval, so that
		// a by-group partition read from a later offset hears of it.
		deadline := time.Now().Add(c.cfg.CommitInterval)
		for len(msgs) < c.cfg.BatchSize {
			err := f.next(ctx, deadline, &m)
			if errors.Is(err, errPassed) {
				continue
			}
			if errors.Is(err, errLingerOver) {
				break
			}
			if err != nil {
				return // ctx ended
			}
			if len(msgs) == 0 {
				deadline = time.Now().Add(c.cfg.BatchLinger)
			}
			group, rowTime = "", math.MinInt64
			rec.Offset, rec.Time, rec.Key, rec.Value, rec.Headers = m.Offset, m.Time, m.Key, m.Value, m.Headers
			var to int32
			if dec.Decode(&rec, bb) == nil && group != "" {
				to = groupPartition(group, partitions)
				if was, ok := groupOf[device]; was != group {
					if ok {
						c.metrics.repartitionMoves.Inc()
					}
					groupOf[device] = group
				}
			} else {
				// Undecodable here is undecodable there: the consumer
				// dead-letters it; any partition will do.
				to = groupPartition(string(m.Key), partitions)
			}
			if rowTime == math.MinInt64 {
				rowTime = wm
			}
			wm = max(wm, rowTime)
			mark := sourceMark{to: to, src: src, offset: m.Offset, time: rowTime}
			msgs = append(msgs, kafkago.Message{Key: m.Key, Value: m.Value, Time: m.Time,
				Headers: append(append(make([]kafkago.Header, 0, len(m.Headers)+1), m.Headers...),
					kafkago.Header{Key: HeaderSource, Value: appendSourceMark(nil, &mark)})})
		}
		if f.offset < 0 || f.hwm < 0 {
			continue // the position is not known yet: nothing to say
		}
		next := f.offset
		caughtUp := next >= f.hwm
		if skew := int64(c.cfg.MaxEventTimeSkew); caughtUp && wm != math.MinInt64 && wm >= time.Now().UnixNano()-skew {
			// A live producer that went quiet: what it sends next is
			// at most the skew behind the clock.
			wm = max(wm, time.Now().UnixNano()-skew)
		}
		for to := 0; to < partitions; to++ {
			mark := sourceMark{marker: true, caughtUp: caughtUp, to: int32(to), src: src, offset: next, time: wm}
			msgs = append(msgs, kafkago.Message{Key: []byte(topic), Headers: []kafkago.Header{{Key: HeaderSource, Value: appendSourceMark(nil, &mark)}}})
		}
		select {
		case out <- stageBatch{msgs: msgs, next: next}:
		case <-ctx.Done():
			return
		}
	}
}

// stageBatch is what a repartition worker read and decoded: records and
// markers for the by-group topic, and the source offset after them.
type stageBatch struct {
	msgs []kafkago.Message
	next int64
}

// writeStage writes the batches of one source partition to the by-group
// topic in order, and commits the source offsets written every commit
// interval and when in ends (the generation may be over then: the next
// owner writes them again, and the merge drops them).
func (c *Consumer) writeStage(ctx context.Context, gen *kafkago.Generation, log *slog.Logger, src partKey, in <-chan stageBatch, partitions int) {
	committed, written := time.Now(), int64(-1)
	commit := func() {
		committed = time.Now()
		if err := gen.CommitOffsets(map[string]map[int]int64{src.topic: {int(src.partition): written}}); err != nil {
			log.Warn("cannot commit the repartition stage's offset; a later commit covers it, or its records are written again and dropped as duplicates", "err", err)
		}
	}
	defer func() {
		if written >= 0 {
			commit()
		}
	}()
	for b := range in {
		if err := c.writeByGroup(ctx, log, b.msgs); err != nil {
			for range in { // ctx ended: what is left stays uncommitted
			}
			return
		}
		c.metrics.repartitioned.Add(len(b.msgs) - partitions)
		written = b.next
		if time.Since(committed) >= c.cfg.CommitInterval {
			commit()
		}
	}
}

// writeByGroup writes msgs to the by-group topic, retrying until it
// succeeds or ctx ends.
func (c *Consumer) writeByGroup(ctx context.Context, log *slog.Logger, msgs []kafkago.Message) error {
	wait := c.cfg.NackBackoff
	for {
		err := c.byGroup.WriteMessages(ctx, msgs...)
		if err == nil || ctx.Err() != nil {
			return err
		}
		c.metrics.repartitionErrors.Inc()
		log.Warn("cannot write to the by-group topic; retrying", "topic", c.cfg.ByGroupTopic(), "in", wait, "err", err)
		if err := sleep(ctx, wait); err != nil {
			return err
		}
		wait = min(2*wait, 10*time.Second)
	}
}

// merger hands the records of one by-group partition to its worker in
// event-time order across their sources (see HeaderSource): the record
// with the lowest event time goes first (ties by the order of sources),
// once no other source may still send an earlier one. A source with a
// record waiting is past it; a source whose last marker was not caught up
// holds back records later than the event time it marked; a source never
// heard of holds back every record (each repartition worker marks every
// commit interval). A caught-up source holds back records more than skew
// (max_event_time_skew) past the event time it marked, at most maxWait
// each: a quiet partition must not stop the others, and a live producer's
// quiet partition marks the clock instead (repartitionPartition). At most
// maxQueued records wait: past that the first goes whatever holds it back
// (a source whose repartition worker died holds every record back until
// the stage's group gives its partition to another instance), counted
// with the waits given up.
// Worker goroutine only.
type merger struct {
	r      *prefetcher
	index  map[partKey]int
	srcs   []mergeSource
	queued int
	out    kafkago.Message

	skew      int64
	maxWait   time.Duration
	maxQueued int
	// blocked is when a caught-up source began to hold back the record
	// that waits first; zero when none does.
	blocked time.Time

	dups, timeouts *metrics.Counter // records dropped as written twice; waits for caught-up sources given up
}

type mergeSource struct {
	queue    []kafkago.Message // in source order
	times    []int64
	heard    bool
	caughtUp bool
	wm       int64 // event time marked or of the last record queued
	nextSeen int64 // the source offset after the last record queued
}

// newMerger returns a merger of r's records whose sources are every
// partition of the telemetry topics. It knows the records it read itself:
// records read again from an earlier offset are skipped by the devices'
// offsets instead (restoreFilter).
func (c *Consumer) newMerger(r *prefetcher) *merger {
	m := &merger{r: r, index: map[partKey]int{}, skew: int64(c.cfg.MaxEventTimeSkew), maxWait: 5 * time.Second, maxQueued: mergeMaxQueued,
		dups: c.metrics.repartitionDups, timeouts: c.metrics.alignTimeouts}
	for _, s := range c.sources {
		m.source(s)
	}
	return m
}

func (m *merger) source(k partKey) *mergeSource {
	i, ok := m.index[k]
	if !ok {
		i = len(m.srcs)
		m.index[k] = i
		m.srcs = append(m.srcs, mergeSource{wm: math.MinInt64})
	}
	return &m.srcs[i]
}

// get is prefetcher.get for merged records: it returns the next record in
// merged order, errPassed when only markers came and nothing waits (the
// position moved), or the prefetcher's errors.
func (m *merger) get(deadline time.Time) (*kafkago.Message, error) {
	for {
		if m.pop() {
			return &m.out, nil
		}
		wait := deadline
		if !m.blocked.IsZero() {
			if until := m.blocked.Add(m.maxWait); wait.IsZero() || until.Before(wait) {
				wait = until
			}
		}
		rec, err := m.r.get(wait)
		switch {
		case errors.Is(err, errPassed) && m.queued > 0:
			continue
		case errors.Is(err, errLingerOver) && !wait.Equal(deadline):
			continue // the wait for a caught-up source is over
		case err != nil:
			return nil, err
		}
		v, ok := sourceHeader(rec.Headers)
		var mark sourceMark
		if !ok || parseSourceMark(v, &mark) != nil {
			// Not the repartition stage's: it goes as it came, and the
			// decoder says what it is.
			m.out = *rec
			return &m.out, nil
		}
		s := m.source(mark.src)
		s.heard = true
		s.wm = max(s.wm, mark.time)
		if mark.marker {
			s.caughtUp = mark.caughtUp
			if m.queued == 0 {
				return nil, errPassed
			}
			continue
		}
		if mark.offset < s.nextSeen {
			m.dups.Inc()
			continue
		}
		s.nextSeen = mark.offset + 1
		s.caughtUp = false
		s.queue = append(s.queue, *rec)
		s.times = append(s.times, mark.time)
		m.queued++
	}
}

// pop moves the next record in merged order to m.out, if one may go.
func (m *merger) pop() bool {
	if m.queued == 0 {
		return false
	}
	h := -1
	for i := range m.srcs {
		s := &m.srcs[i]
		if len(s.queue) > 0 && (h < 0 || s.times[0] < m.srcs[h].times[0]) {
			h = i
		}
	}
	t := m.srcs[h].times[0]
	waitedOut := !m.blocked.IsZero() && time.Since(m.blocked) >= m.maxWait
	full := m.queued >= m.maxQueued
	for i := range m.srcs {
		if full {
			break
		}
		s := &m.srcs[i]
		if len(s.queue) > 0 || i == h {
			continue
		}
		wm := s.wm
		if s.caughtUp {
			if waitedOut {
				continue
			}
			wm = satAdd(wm, m.skew)
		}
		if !s.heard || wm < t || wm == t && i < h {
			switch {
			case !s.heard || !s.caughtUp:
				m.blocked = time.Time{} // waits for as long as it takes
			case m.blocked.IsZero():
				m.blocked = time.Now()
			}
			return false
		}
	}
	if waitedOut || full {
		m.timeouts.Inc()
	}
	m.blocked = time.Time{}
	s := &m.srcs[h]
	m.out = s.queue[0]
	s.queue[0] = kafkago.Message{}
	s.queue, s.times = s.queue[1:], s.times[1:]
	m.queued--
	return true
}

// mergeMaxQueued bounds the records a merger holds: about 30 MB of
// telemetry records of 300 bytes.
const mergeMaxQueued = 100_000

// satAdd is a + b, at most math.MaxInt64 and at least math.MinInt64 + b.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// position is prefetcher.position: next is the lowest offset of a record
// still waiting, which a restart must read again.
func (m *merger) position() (next, hwm int64) {
	next, hwm = m.r.position()
	for i := range m.srcs {
		if q := m.srcs[i].queue; len(q) > 0 && q[0].Offset < next {
			next = q[0].Offset
		}
	}
	return next, hwm
}

func (m *merger) fetched() int64 { return m.r.received }
