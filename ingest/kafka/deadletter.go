package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// Headers of a dead-letter record; key and value are the original ones.
const (
	HeaderReason    = "vigil-reason"    // stable label, e.g. "bad_json"
	HeaderError     = "vigil-error"     // the decoder's explanation
	HeaderTopic     = "vigil-topic"     // where the record came from
	HeaderPartition = "vigil-partition" // decimal
	HeaderOffset    = "vigil-offset"    // decimal
)

func deadLetterMessage(m *kafkago.Message, reason string, err error) kafkago.Message {
	msg := err.Error()
	var re *RejectError
	if errors.As(err, &re) {
		msg = re.Err.Error() // the reason has its own header
	}
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	return kafkago.Message{
		Key: m.Key, Value: m.Value,
		Headers: []kafkago.Header{
			{Key: HeaderReason, Value: []byte(reason)},
			{Key: HeaderError, Value: []byte(msg)},
			{Key: HeaderTopic, Value: []byte(m.Topic)},
			{Key: HeaderPartition, Value: strconv.AppendInt(nil, int64(m.Partition), 10)},
			{Key: HeaderOffset, Value: strconv.AppendInt(nil, m.Offset, 10)},
		},
	}
}

// sendDeadLetters writes the rejected records of one batch before the
// batch is handed on, so an offset is never committed past a reject that is
// not in the dead-letter topic. Without a dead-letter topic rejects are
// only counted.
//
// A write that fails is retried in place, with backoff, until it succeeds
// or ctx ends (a stop or a rebalance), when it returns ctx's error: the
// partition waits, its offsets stay behind the rejects, and the group
// stays as it is. Giving up on the partition instead would end the
// generation for every member, and the group would rejoin and read (and
// count) the same records again and again.
func (c *Consumer) sendDeadLetters(ctx context.Context, log *slog.Logger, topic string, msgs []kafkago.Message) error {
	if c.deadLetter == nil {
		return nil
	}
	wait := c.cfg.NackBackoff
	for {
		err := c.writeDeadLetters(msgs)
		if err == nil {
			c.metrics.deadLettered(topic, len(msgs))
			return nil
		}
		log.Warn("partition waits for the dead-letter topic; retrying", "in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		wait = min(2*wait, 10*time.Second)
	}
}

func (c *Consumer) writeDeadLetters(msgs []kafkago.Message) error {
	ctx, cancel := context.WithTimeout(c.forceCtx, 30*time.Second)
	defer cancel()
	if err := c.deadLetter.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("cannot write %d record(s) to dead-letter topic %s: %w; check that it exists and Vigil may write to it", len(msgs), c.cfg.DeadLetterTopic, err)
	}
	return nil
}
