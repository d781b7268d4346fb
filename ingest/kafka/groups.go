package kafka

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// Group summaries travel on a compacted topic keyed "<instance>/<group>".
// Every instance publishes its summary of each group it has seen, every
// group_share_interval and once more after its final checkpoint. At
// start-up an instance restores its own last summaries, so a restart does
// not send its groups back to learning, and it merges the latest summary of
// every peer, so each instance judges a device against its whole group.

func (c *Consumer) groupTopicPartitions(ctx context.Context) ([]kafkago.Partition, error) {
	var parts []kafkago.Partition
	var err error
	for _, b := range c.cfg.Brokers {
		if parts, err = c.dialer.LookupPartitions(ctx, "tcp", b, c.cfg.GroupStateTopic); err == nil {
			return parts, nil
		}
	}
	return nil, fmt.Errorf("cannot look up group state topic %s: %w; create it (see deploy/topics.sh)", c.cfg.GroupStateTopic, err)
}

// restoreGroups folds this instance's last published summaries into the
// state, before the first batch.
func (c *Consumer) restoreGroups(ctx context.Context) {
	parts, err := c.groupTopicPartitions(ctx)
	if err != nil {
		c.log.Warn("cannot restore group summaries; groups learn again", "err", err)
		return
	}
	own := c.instanceKey() + "/"
	latest := map[string][]byte{}
	for _, p := range parts {
		err := c.readCompacted(ctx, c.cfg.GroupStateTopic, p.ID, func(m *kafkago.Message) {
			if key := string(m.Key); strings.HasPrefix(key, own) {
				if m.Value == nil {
					delete(latest, key[len(own):])
				} else {
					latest[key[len(own):]] = m.Value
				}
			}
		})
		if err != nil {
			c.log.Warn("cannot restore group summaries; groups learn again", "err", err)
			return
		}
	}
	c.do(ctx, func() {
		for g, v := range latest {
			if err := c.groups.AbsorbGroup(g, v); err != nil {
				c.log.Warn("cannot restore group summary", "group", g, "err", err)
			}
		}
	})
	c.log.Info("restored group summaries", "instance", c.instance, "groups", len(latest))
}

// readCompacted calls fn for every record of topic/partition up to its
// current end.
func (c *Consumer) readCompacted(ctx context.Context, topic string, partition int, fn func(*kafkago.Message)) error {
	conn, err := c.dialer.DialLeader(ctx, "tcp", c.cfg.Brokers[0], topic, partition)
	if err != nil {
		return fmt.Errorf("cannot reach the leader of %s/%d: %w", topic, partition, err)
	}
	first, last, err := conn.ReadOffsets()
	conn.Close()
	if err != nil {
		return fmt.Errorf("cannot read offsets of %s/%d: %w", topic, partition, err)
	}
	if last <= first {
		return nil
	}
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers: c.cfg.Brokers, Topic: topic, Partition: partition, Dialer: c.dialer,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 50 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(first); err != nil {
		return err
	}
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return fmt.Errorf("cannot read %s/%d: %w", topic, partition, err)
		}
		fn(&m)
		if m.Offset >= last-1 {
			return nil
		}
	}
}

// shareGroups publishes this instance's summaries every interval and
// merges what peers publish, until ctx ends.
func (c *Consumer) shareGroups(ctx context.Context) {
	var wg sync.WaitGroup
	parts, err := c.groupTopicPartitions(ctx)
	if err != nil {
		c.log.Warn("cannot merge peers' group summaries; judging against local groups only", "err", err)
	}
	for _, p := range parts {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			c.mergePeers(ctx, p)
		}(p.ID)
	}
	t := time.NewTicker(c.cfg.GroupShareInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.publishGroups(ctx)
		case <-ctx.Done():
			wg.Wait()
			return
		}
	}
}

func (c *Consumer) instanceKey() string { return strings.ReplaceAll(c.instance, "/", "_") }

func (c *Consumer) publishGroups(ctx context.Context) {
	var msgs []kafkago.Message
	prefix := c.instanceKey() + "/"
	ok := c.do(ctx, func() {
		for _, g := range c.groups.Groups(nil) {
			v, err := c.groups.MarshalGroup(nil, g)
			if err != nil {
				c.log.Warn("cannot marshal group summary", "group", g, "err", err)
				continue
			}
			msgs = append(msgs, kafkago.Message{Key: []byte(prefix + g), Value: v})
		}
	})
	if !ok || len(msgs) == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(c.forceCtx, 10*time.Second)
	defer cancel()
	if err := c.groupOut.WriteMessages(wctx, msgs...); err != nil {
		c.log.Warn("cannot publish group summaries", "topic", c.cfg.GroupStateTopic, "err", err)
		return
	}
	c.metrics.groupPublished.Add(len(msgs))
}

func (c *Consumer) mergePeers(ctx context.Context, p int) {
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers: c.cfg.Brokers, Topic: c.cfg.GroupStateTopic, Partition: p, Dialer: c.dialer,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 200 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(kafkago.FirstOffset); err != nil {
		return
	}
	own := c.instanceKey() + "/"
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return
		}
		key := string(m.Key)
		i := strings.IndexByte(key, '/')
		if i <= 0 || strings.HasPrefix(key, own) || m.Value == nil {
			continue
		}
		peer, group := key[:i], key[i+1:]
		c.do(ctx, func() {
			if err := c.groups.MergeGroup(peer, group, m.Value); err != nil {
				c.log.Warn("cannot merge a peer's group summary", "peer", peer, "group", group, "err", err)
				return
			}
			c.metrics.groupMerged.Inc()
		})
	}
}
