package kafka

import (
	"context"
	"strings"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// Group summaries travel on a compacted topic keyed "<instance>/<group>":
// every instance publishes its own partial summary of each group it has
// seen and merges the latest partial of every peer, so each instance judges
// a device against its whole group, not just the devices of its partitions.

// shareGroups publishes this instance's summaries every interval and
// merges what peers publish, until ctx ends.
func (c *Consumer) shareGroups(ctx context.Context) {
	var parts []kafkago.Partition
	var err error
	for _, b := range c.cfg.Brokers {
		if parts, err = c.dialer.LookupPartitions(ctx, "tcp", b, c.cfg.GroupStateTopic); err == nil {
			break
		}
	}
	if err != nil {
		c.log.Warn("cannot share group summaries: group state topic not found; judging against local groups only", "topic", c.cfg.GroupStateTopic, "err", err)
		return
	}
	var wg sync.WaitGroup
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
