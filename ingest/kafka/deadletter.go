package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/vigil-ot/vigil/ingest"
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
			c.metrics.deadLettered(topic, msgs)
			return nil
		}
		log.Warn("partition waits for the dead-letter topic; retrying", "in", wait, "err", err)
		if err := sleep(ctx, wait); err != nil {
			return err
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

// deadLetterRejected returns the resolution of a batch the engine
// acknowledged with rejected rows (ingest.Batch.Rejected: dated too far
// ahead by the clock, or of a device past detect.max_devices): called
// with nil, it writes their records to the dead-letter topic in a
// goroutine of its own and then calls resolve, so the batch's offsets are
// committed only once they are there. Until work ends it retries as
// sendDeadLetters does; then the batch fails and is delivered again.
// Called with an error, it resolves at once: the batch is delivered
// again, and its rows rejected again.
//
// The batch no longer holds the records, so they are read again from
// their partition: rejects are rare, and keeping every record of every
// batch in flight for them would cost the common path. Only rows of
// telemetry topics are dead-lettered: a row from a packet topic is made of
// many records.
func (c *Consumer) deadLetterRejected(work context.Context, rows []ingest.RejectedRow, resolve func(error)) func(error) {
	rows = slices.DeleteFunc(rows, func(r ingest.RejectedRow) bool { return !slices.Contains(c.cfg.TelemetryTopics, r.Source) })
	if len(rows) == 0 {
		return resolve
	}
	return func(err error) {
		if err != nil {
			resolve(err)
			return
		}
		c.rejecting.Add(1)
		go func() {
			defer c.rejecting.Done()
			resolve(c.deadLetterRows(work, rows))
		}()
	}
}

// deadLetterRows reads the records of rows again and writes them to the
// dead-letter topic.
func (c *Consumer) deadLetterRows(ctx context.Context, rows []ingest.RejectedRow) error {
	slices.SortFunc(rows, func(a, b ingest.RejectedRow) int {
		if a.Source != b.Source {
			return strings.Compare(a.Source, b.Source)
		}
		if a.Partition != b.Partition {
			return cmp.Compare(a.Partition, b.Partition)
		}
		return cmp.Compare(a.Offset, b.Offset)
	})
	rows = slices.CompactFunc(rows, func(a, b ingest.RejectedRow) bool {
		return a.Source == b.Source && a.Partition == b.Partition && a.Offset == b.Offset
	})
	for len(rows) > 0 {
		n := 1
		for n < len(rows) && rows[n].Source == rows[0].Source && rows[n].Partition == rows[0].Partition {
			n++
		}
		topic, p := rows[0].Source, rows[0].Partition
		log := c.log.With("topic", topic, "partition", p)
		msgs, err := c.readRejected(ctx, log, rows[:n])
		if err != nil {
			return err
		}
		if err := c.sendDeadLetters(ctx, log, topic, msgs); err != nil {
			return err
		}
		if !c.rejectsExplained.Swap(true) {
			log.Warn("records the engine rejected go to the dead-letter topic; from now on they are only counted, in vigil_kafka_dead_letters_total",
				"records", len(msgs), "offset", rows[0].Offset, "reason", rows[0].Reason, "why", rows[0].Detail)
		}
		rows = rows[n:]
	}
	return nil
}

// rejectedRecordWait bounds the wait for a rejected record that is no
// longer in its partition (deleted by retention in between).
const rejectedRecordWait = 10 * time.Second

// readRejected reads the records of rows, all of one partition and in
// order of offset, and returns their dead letters. A record no longer in
// the partition gets one without its key and value.
func (c *Consumer) readRejected(ctx context.Context, log *slog.Logger, rows []ingest.RejectedRow) ([]kafkago.Message, error) {
	topic, p := rows[0].Source, rows[0].Partition
	rc := ReaderConfig(&c.cfg, topic, p)
	rc.Dialer = c.dialer
	f := newPartitionFetcher(rc, rows[0].Offset, log)
	defer f.Close()
	out := make([]kafkago.Message, 0, len(rows))
	gone := func(r *ingest.RejectedRow) {
		m := kafkago.Message{Topic: topic, Partition: int(p), Offset: r.Offset}
		out = append(out, deadLetterMessage(&m, r.Reason, errors.New(r.Detail+"; the record was gone from its partition when it was read again")))
	}
	deadline := time.Now().Add(rejectedRecordWait)
	var m kafkago.Message
	for i := 0; i < len(rows); {
		err := f.next(ctx, deadline, &m)
		switch {
		case errors.Is(err, errPassed):
			continue
		case errors.Is(err, errLingerOver):
			for ; i < len(rows); i++ {
				gone(&rows[i])
			}
			continue
		case err != nil:
			return nil, err
		}
		for ; i < len(rows) && rows[i].Offset < m.Offset; i++ {
			gone(&rows[i])
		}
		if i < len(rows) && rows[i].Offset == m.Offset {
			out = append(out, deadLetterMessage(&m, rows[i].Reason, errors.New(rows[i].Detail)))
			i++
		}
	}
	return out, nil
}
