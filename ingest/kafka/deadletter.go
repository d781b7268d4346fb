package kafka

import (
	"context"
	"errors"
	"fmt"
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
func (c *Consumer) sendDeadLetters(topic string, msgs []kafkago.Message) error {
	if c.deadLetter == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(c.forceCtx, 30*time.Second)
	defer cancel()
	if err := c.deadLetter.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("cannot write %d record(s) to dead-letter topic %s: %w; check that it exists and Vigil may write to it", len(msgs), c.cfg.DeadLetterTopic, err)
	}
	c.metrics.deadLettered(topic, len(msgs))
	return nil
}
