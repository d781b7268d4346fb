package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// consumerTopics returns the topics the consumer reads or writes, each
// with the setting that names it. The alert sinks' topics are the sinks'.
func (c *Consumer) consumerTopics() (names []string, settings map[string]string) {
	settings = map[string]string{}
	add := func(topic, setting string) {
		if topic == "" {
			return
		}
		if _, ok := settings[topic]; !ok {
			names = append(names, topic)
			settings[topic] = setting
		}
	}
	for _, t := range c.cfg.TelemetryTopics {
		add(t, "kafka.telemetry_topics")
	}
	for _, t := range c.cfg.PacketTopics {
		add(t, "kafka.packet_topics")
	}
	if c.byGroup != nil {
		add(c.cfg.ByGroupTopic(), "kafka.repartition_by_group")
	}
	add(c.cfg.DeadLetterTopic, "kafka.dead_letter_topic")
	if c.state != nil {
		add(c.cfg.ChangelogTopic, "kafka.changelog_topic")
	}
	if c.groups != nil {
		add(c.cfg.GroupStateTopic, "kafka.group_state_topic")
	}
	return names, settings
}

// checkTopics asks the brokers, once before joining the group, whether
// every topic of consumerTopics exists, and says which do not. Without
// it a missing input topic is silently never assigned, and a missing
// dead-letter or changelog topic fails a partition worker at its first
// write, which ends the generation: the group rejoins about once a second
// and re-reads (and counts again) every record since the last commit. The
// brokers are asked again, with backoff, while they cannot be reached;
// it returns ctx's error when ctx ends first.
func (c *Consumer) checkTopics(ctx context.Context) error {
	names, settings := c.consumerTopics()
	cl := &kafkago.Client{Addr: kafkago.TCP(c.cfg.Brokers...), Transport: c.transport, Timeout: 10 * time.Second}
	wait := c.cfg.NackBackoff
	for {
		// kafka-go's metadata request never asks the broker to create a
		// topic (AllowAutoTopicCreation false), whatever the broker allows.
		resp, err := cl.Metadata(ctx, &kafkago.MetadataRequest{Topics: names})
		if err == nil {
			if err := missingTopics(resp, names, settings, c.cfg.Brokers); err != nil {
				return err
			}
			c.notePartitions(resp)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log.Warn("cannot read topic metadata before joining the group; retrying", "brokers", strings.Join(c.cfg.Brokers, ","), "in", wait, "err", err)
		if err := sleep(ctx, wait); err != nil {
			return err
		}
		wait = min(2*wait, 10*time.Second)
	}
}

// missingTopics explains the topics of names that resp lacks or reports
// an error for, one line each.
func missingTopics(resp *kafkago.MetadataResponse, names []string, settings map[string]string, brokers []string) error {
	found := map[string]error{}
	for _, t := range resp.Topics {
		found[t.Name] = t.Error
	}
	var errs []error
	for _, name := range names {
		err, ok := found[name]
		switch {
		case !ok || errors.Is(err, kafkago.UnknownTopicOrPartition):
			errs = append(errs, fmt.Errorf("topic %s (%s) does not exist on %s, or Vigil may not describe it; create it (deploy/topics.sh lists every topic with its settings) or change %s",
				name, settings[name], strings.Join(brokers, ","), settings[name]))
		case err != nil:
			errs = append(errs, fmt.Errorf("cannot use topic %s (%s): %w", name, settings[name], err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("cannot consume: %w", errors.Join(errs...))
	}
	return nil
}

// notePartitions keeps, for repartition_by_group, the partitions of the
// telemetry topics (every by-group partition merges all of them) and how
// many partitions the by-group topic has. A partition added later is
// merged from the first record or marker it sends.
func (c *Consumer) notePartitions(resp *kafkago.MetadataResponse) {
	if c.byGroup == nil {
		return
	}
	telemetry := map[string]bool{}
	for _, t := range c.cfg.TelemetryTopics {
		telemetry[t] = true
	}
	c.sources = c.sources[:0]
	for _, t := range resp.Topics {
		switch {
		case t.Name == c.cfg.ByGroupTopic():
			c.byGroupParts = len(t.Partitions)
		case telemetry[t.Name]:
			for _, p := range t.Partitions {
				c.sources = append(c.sources, partKey{t.Name, int32(p.ID)})
			}
		}
	}
	slices.SortFunc(c.sources, func(a, b partKey) int {
		return cmp.Or(strings.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
	})
}
