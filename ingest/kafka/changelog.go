package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// The changelog is a compacted topic of the device state of every input
// partition. Keys:
//
//	<topic>/<partition>/d/<device>  the device's state (baseline.MarshalDevice)
//	<topic>/<partition>/m           the partition marker
//
// Values start with a version byte and the big-endian input offset the
// state covers: every record of the partition below it is in the state.
// A checkpoint writes the changed devices, then the marker, in one ordered
// produce; the marker therefore says "every device of this partition is
// valid up to here". Input partition p lives in changelog partition
// p mod (changelog partitions), so a restore reads one changelog partition.
//
// A device's value in version 2 is the header, the big-endian uint32
// length of the baseline state, the baseline state, then the engine's
// alarm state (DeviceAlarms; empty when the engine keeps none). Version 1
// (the header and the baseline state) still loads: its devices start
// without open alarms.
const changelogVersion = 2

// changelogEntry is one device's checkpointed state.
type changelogEntry struct {
	next   int64  // first input offset the state does not cover
	data   []byte // baseline state
	alarms []byte // the engine's alarm state; empty in version 1 records
}

type changelogWrite struct {
	part    *partState
	covered int64 // the marker's offset
	msgs    []kafkago.Message
	done    chan error // buffered; nil when nobody waits
}

func changelogPrefix(topic string, p int32) string {
	return topic + "/" + strconv.Itoa(int(p)) + "/"
}

func appendChangelogHeader(dst []byte, next int64) []byte {
	dst = append(dst, changelogVersion)
	return binary.BigEndian.AppendUint64(dst, uint64(next))
}

func parseChangelogValue(v []byte) (next int64, data []byte, err error) {
	if len(v) < 9 || v[0] != 1 && v[0] != changelogVersion {
		return 0, nil, fmt.Errorf("cannot parse changelog value of %d bytes: want version 1 or %d and an 8-byte offset", len(v), changelogVersion)
	}
	return int64(binary.BigEndian.Uint64(v[1:9])), v[9:], nil
}

// parseDeviceValue parses a device's changelog value, of version 1 or 2.
func parseDeviceValue(v []byte) (changelogEntry, error) {
	next, data, err := parseChangelogValue(v)
	if err != nil || v[0] == 1 {
		return changelogEntry{next: next, data: data}, err
	}
	if len(data) < 4 || uint64(binary.BigEndian.Uint32(data)) > uint64(len(data)-4) {
		return changelogEntry{}, fmt.Errorf("cannot parse changelog value of %d bytes: the baseline state's length is cut off or beyond the value", len(v))
	}
	n := 4 + int(binary.BigEndian.Uint32(data))
	return changelogEntry{next: next, data: data[4:n], alarms: data[n:]}, nil
}

// appendDeviceValue appends a device's changelog value: the header, its
// baseline state and its alarm state (see changelogVersion).
func (c *Consumer) appendDeviceValue(dst []byte, next int64, dev string) ([]byte, error) {
	dst = appendChangelogHeader(dst, next)
	at := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst, err := c.state.MarshalDevice(dst, dev)
	if err != nil {
		return nil, err
	}
	n := len(dst) - at - 4
	if n > math.MaxUint32 {
		return nil, fmt.Errorf("cannot checkpoint %d bytes of baseline state in one changelog record", n)
	}
	binary.BigEndian.PutUint32(dst[at:], uint32(n))
	if c.alarms == nil {
		return dst, nil
	}
	return c.alarms.MarshalDeviceAlarms(dst, dev)
}

// changelogBalancer puts the state of input partition p in changelog
// partition p mod n, read back by readChangelog.
type changelogBalancer struct{}

func (changelogBalancer) Balance(msg kafkago.Message, partitions ...int) int {
	return partitions[changelogPartition(msg.Key)%len(partitions)]
}

func changelogPartition(key []byte) int {
	i := 0
	for i < len(key) && key[i] != '/' {
		i++
	}
	p := 0
	for i++; i < len(key) && key[i] >= '0' && key[i] <= '9'; i++ {
		if p = p*10 + int(key[i]-'0'); p > 1<<31 {
			return 0 // not a key this package wrote; any partition will do
		}
	}
	return p
}

// readChangelog returns the partition marker (-1 when there is none) and
// the latest state of every device of input partition topic/p.
func (c *Consumer) readChangelog(ctx context.Context, topic string, p int32) (int64, map[string]changelogEntry, error) {
	entries := map[string]changelogEntry{}
	marker := int64(-1)
	var parts []kafkago.Partition
	var err error
	for _, b := range c.cfg.Brokers {
		if parts, err = c.dialer.LookupPartitions(ctx, "tcp", b, c.cfg.ChangelogTopic); err == nil {
			break
		}
	}
	if err != nil {
		return 0, nil, fmt.Errorf("cannot look up changelog topic %s: %w; create it (see deploy/topics.sh)", c.cfg.ChangelogTopic, err)
	}
	if len(parts) == 0 {
		return 0, nil, fmt.Errorf("cannot use changelog topic %s: it has no partitions; create it (see deploy/topics.sh)", c.cfg.ChangelogTopic)
	}
	q := int(p) % len(parts)
	conn, err := c.dialer.DialLeader(ctx, "tcp", c.cfg.Brokers[0], c.cfg.ChangelogTopic, q)
	if err != nil {
		return 0, nil, fmt.Errorf("cannot reach the leader of changelog partition %d: %w", q, err)
	}
	first, last, err := conn.ReadOffsets()
	conn.Close()
	if err != nil {
		return 0, nil, fmt.Errorf("cannot read offsets of changelog partition %d: %w", q, err)
	}
	if last <= first {
		return marker, entries, nil
	}
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers: c.cfg.Brokers, Topic: c.cfg.ChangelogTopic, Partition: q, Dialer: c.dialer,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 50 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(first); err != nil {
		return 0, nil, err
	}
	prefix := changelogPrefix(topic, p)
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return 0, nil, fmt.Errorf("cannot read changelog partition %d: %w", q, err)
		}
		if key := string(m.Key); strings.HasPrefix(key, prefix) {
			rest := key[len(prefix):]
			switch {
			case rest == "m":
				if next, _, err := parseChangelogValue(m.Value); err == nil {
					marker = next
				}
			case strings.HasPrefix(rest, "d/"):
				dev := rest[2:]
				if m.Value == nil {
					delete(entries, dev)
					break
				}
				e, err := parseDeviceValue(m.Value)
				if err != nil {
					c.log.Warn("skipping changelog record", "key", key, "offset", m.Offset, "err", err)
					break
				}
				entries[dev] = e
			}
		}
		if m.Offset >= last-1 {
			return marker, entries, nil
		}
	}
}

// restore replaces the engine's state of the devices of ps with the
// changelog's. Engine goroutine only.
func (c *Consumer) restore(ps *partState, entries map[string]changelogEntry) {
	c.forget(ps)
	for dev, e := range entries {
		if err := c.state.UnmarshalDevice(dev, e.data); err != nil {
			c.log.Warn("cannot restore device state from the changelog; the device learns again", "device", dev, "err", err)
			continue
		}
		if c.alarms != nil && len(e.alarms) > 0 {
			if err := c.alarms.UnmarshalDeviceAlarms(dev, e.alarms); err != nil {
				c.log.Warn("cannot restore the alarm state of a device from the changelog; its open alarms are forgotten", "device", dev, "err", err)
			}
		}
		id := c.reg.DeviceID(dev)
		ps.owned[id] = struct{}{}
		if ps.devNext != nil {
			ps.devNext[id] = e.next
		}
	}
	c.updateStateGauge()
}

func (c *Consumer) updateStateGauge() {
	n := 0
	for _, ps := range c.parts {
		n += len(ps.owned)
	}
	c.metrics.stateDevices.Set(float64(n))
}

// aheadFilter is the restoreFilter of a by-group partition kept in memory
// across a rebalance: its merge handed rows on past processed, which are
// skipped when read again. Engine goroutine only.
func (c *Consumer) aheadFilter(ps *partState) *restoreFilter {
	f := &restoreFilter{floor: ps.processed, max: ps.processed, devices: map[string]int64{}}
	for id, next := range ps.devNext {
		if next > ps.processed {
			f.devices[c.reg.DeviceName(id)] = next
			f.max = max(f.max, next)
		}
	}
	return f
}

func newRestoreFilter(marker int64, entries map[string]changelogEntry) *restoreFilter {
	f := &restoreFilter{floor: marker, max: marker, devices: map[string]int64{}}
	for dev, e := range entries {
		if e.next > marker {
			f.devices[dev] = e.next
			f.max = max(f.max, e.next)
		}
	}
	return f
}

var errStateAhead = errors.New("partition state includes batches not acknowledged yet")

// snapshot checkpoints the devices of ps changed since the last checkpoint,
// when the state covers exactly acknowledged input. Engine goroutine only.
func (c *Consumer) snapshot(ctx context.Context, ps *partState, done chan error) {
	reply := func(err error) {
		if done != nil {
			done <- err
		}
	}
	if ps.cp == nil {
		reply(nil)
		return
	}
	covered, _, failed := ps.cp.Highest()
	if failed != nil || covered < ps.processed || covered < 0 {
		reply(errStateAhead)
		return
	}
	set := ps.dirty
	if ps.needFull.Swap(false) {
		set = ps.owned
	}
	msgs := make([]kafkago.Message, 0, len(set)+len(ps.evicted)+1)
	prefix := changelogPrefix(ps.topic, ps.partition)
	size := 0
	for id := range set {
		dev := c.reg.DeviceName(id)
		next := covered
		if n := ps.devNext[id]; n > next {
			next = n
		}
		v, err := c.appendDeviceValue(nil, next, dev)
		if err != nil {
			c.log.Warn("cannot checkpoint device state", "device", dev, "err", err)
			continue
		}
		size += len(v)
		msgs = append(msgs, kafkago.Message{Key: []byte(prefix + "d/" + dev), Value: v})
	}
	for _, dev := range ps.evicted {
		msgs = append(msgs, kafkago.Message{Key: []byte(prefix + "d/" + dev)}) // a tombstone: restores skip it
	}
	ps.evicted = ps.evicted[:0]
	msgs = append(msgs, kafkago.Message{Key: []byte(prefix + "m"), Value: appendChangelogHeader(nil, covered)})
	clear(ps.dirty)
	clear(ps.noted)
	ps.lastSnap = time.Now()
	c.metrics.stateBytes.Set(float64(size))
	c.updateStateGauge()
	select {
	case c.changelogCh <- changelogWrite{part: ps, covered: covered, msgs: msgs, done: done}:
	case <-ctx.Done():
		ps.needFull.Store(true)
		reply(ctx.Err())
	}
}

func (c *Consumer) changelogLoop(ctx context.Context) {
	for {
		select {
		case w := <-c.changelogCh:
			err := c.changelog.WriteMessages(ctx, w.msgs...)
			if err != nil {
				c.metrics.changelogErrs.Inc()
				w.part.needFull.Store(true)
				c.log.Warn("cannot write the changelog; the next checkpoint writes every device", "topic", c.cfg.ChangelogTopic, "err", err)
				err = fmt.Errorf("cannot write changelog: %w", err)
			} else {
				c.metrics.changelogWrites.Add(len(w.msgs))
				if w.covered > w.part.durable.Load() {
					w.part.durable.Store(w.covered)
				}
			}
			if w.done != nil {
				w.done <- err
			}
		case <-ctx.Done():
			return
		}
	}
}
