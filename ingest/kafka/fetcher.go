package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// partitionFetcher reads one partition in the partition worker's
// goroutine, with Fetch requests of its own on a connection to the
// partition's leader (wire.go): kafka-go's Reader does the same fetches,
// but hands every message to the worker through a channel from a goroutine
// of its own and allocates each key and value, which kafkabench measured
// at more than half of what a bare Reader costs per record, all of it on
// the path of every record Vigil reads. The fetch settings are
// ReaderConfig's, and the error handling follows the Reader's: skip to the
// first offset when the asked one was deleted, redial after leader moves
// and broken connections, with backoff.
//
// Under read_committed (rc.IsolationLevel) the broker serves records up to
// the last stable offset, and the fetcher drops those of aborted
// transactions: the response lists them (producer id and first offset)
// and each ends with the producer's ABORT marker. Transaction markers
// themselves are never records, at either level.
type partitionFetcher struct {
	rc        kafkago.ReaderConfig
	isolation int8
	log       *slog.Logger
	conn      *brokerConn
	offset    int64 // next offset to read; FirstOffset or LastOffset until resolved
	fails     int   // consecutive failed fetches, for the backoff

	// The fetch response being read: the record batches after the
	// current one, and what is left of the current one's records.
	set     []byte
	batch   recordBatch
	recs    []byte
	hwm     int64 // what may be read: the high-water mark, or the last stable offset
	aborted abortedTxns
	// passed says offset moved past records that are never handed out
	// (markers, aborted transactions, compacted ones) since the last
	// record that was: next reports it with errPassed.
	passed bool
	// align, when set, hears of every fetch response of partition ps
	// (aligner.fetched); received is the tick of the last response.
	align    *aligner
	ps       *partState
	received int64
}

// errLingerOver is next's answer when the wait it was given ran out with
// no record.
var errLingerOver = errors.New("no record within the linger")

// errPassed is next's answer when a fetch response held no record to hand
// out but moved the position past some (transaction markers, records of
// aborted transactions): the position is worth committing.
var errPassed = errors.New("position moved past records that are not read")

func newPartitionFetcher(rc kafkago.ReaderConfig, offset int64, log *slog.Logger) *partitionFetcher {
	f := &partitionFetcher{rc: rc, offset: offset, log: log, isolation: readUncommitted}
	if rc.IsolationLevel == kafkago.ReadCommitted {
		f.isolation = readCommitted
	}
	return f
}

// next reads the partition's next record into m. When the current fetch
// response is used up it fetches again, waiting for new records at most
// until deadline (zero: the configured fetch_max_wait, again and again);
// it returns errLingerOver when deadline passed without a record, and
// errPassed when a response ended in records that are not read (see
// passed). Broker and network errors are retried; the only other error is
// ctx's. Key and Value of the record are the caller's: they alias the
// fetch response, which is not reused.
func (f *partitionFetcher) next(ctx context.Context, deadline time.Time, m *kafkago.Message) error {
	for {
		if f.set != nil || f.recs != nil {
			ok, err := f.nextInResponse(m)
			if ok {
				return nil
			}
			if err != nil {
				f.set, f.recs = nil, nil
				f.log.Warn("cannot read a fetch response; fetching again", "offset", f.offset, "err", err)
				f.drop()
				if err := f.backoff(ctx); err != nil {
					return err
				}
			}
		}
		if f.passed {
			f.passed = false
			return errPassed
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		wait := f.rc.MaxWait
		if !deadline.IsZero() {
			if wait = min(wait, time.Until(deadline)); wait < time.Millisecond {
				return errLingerOver
			}
		}
		if err := f.fetch(ctx, wait); err != nil {
			return err
		}
	}
}

// nextInResponse reads the next record at or past f.offset from the
// fetch response into m. It returns false and no error when the response
// is used up.
func (f *partitionFetcher) nextInResponse(m *kafkago.Message) (bool, error) {
	for {
		for len(f.recs) > 0 {
			rest, err := f.batch.nextRecord(f.recs, m)
			if err != nil {
				return false, err
			}
			f.recs = rest
			if m.Offset < f.offset {
				continue // a batch may begin before the offset asked for
			}
			m.Topic, m.Partition, m.HighWaterMark = f.rc.Topic, f.rc.Partition, f.hwm
			f.offset, f.fails, f.passed = m.Offset+1, 0, false
			return true, nil
		}
		// A batch may end in records compaction removed, and a control
		// batch (transactions) or an aborted one holds none to read: go
		// past them, or the next fetch would return them again and again.
		if end := f.batch.lastOffset + 1; end > f.offset {
			f.offset, f.passed = end, true
		}
		f.recs = nil
		b, rest, ok, err := nextBatch(f.set)
		if err != nil {
			return false, err
		}
		if !ok {
			f.set = nil
			return false, nil
		}
		f.set, f.batch = rest, b
		switch {
		case f.aborted.aborts(&b):
			// The ABORT marker is the transaction's last batch: the
			// producer's batches after it are not aborted (unless the
			// response lists a later transaction of the producer).
			if b.control && b.isAbortMarker() {
				f.aborted.ended(b.producerID)
			}
		case !b.control:
			f.recs = b.records
		}
	}
}

// fetch sends one fetch request for the records from f.offset, connecting
// first if need be, and reads the response. It returns only ctx's error;
// others are backed off and left for the next call.
func (f *partitionFetcher) fetch(ctx context.Context, wait time.Duration) error {
	if f.conn == nil {
		if err := f.connect(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			f.log.Warn("cannot connect to the partition leader; retrying", "err", err)
			return f.backoff(ctx)
		}
	}
	var asked int64
	from := f.offset
	if f.align != nil {
		asked = f.align.tick()
	}
	// A stop or rebalance does not wait for the broker: the end of ctx
	// ends the fetch.
	res, err := f.conn.fetch(ctx, f.rc.Topic, int32(f.rc.Partition), f.offset, f.rc.MinBytes, f.rc.MaxBytes, wait, f.isolation)
	if err != nil {
		return f.handle(ctx, err)
	}
	f.fails = 0
	f.load(res)
	if f.align != nil {
		f.received = f.align.tick()
		f.align.fetched(f.ps, asked, from, f.hwm, len(res.records) > 0)
	}
	if len(res.records) > 0 {
		// Kafka returns at least one whole batch however small MaxBytes
		// is (KIP-74); a response cut inside its first batch would be
		// fetched again for ever. Only the size is read here: the batch
		// itself (its CRC, its decompression) is read once, by
		// nextInResponse.
		if n := batchSize(res.records); n < 0 || n > int64(len(res.records)) {
			f.set = nil
			f.log.Warn("fetch response holds no whole record batch; fetching again", "offset", f.offset, "bytes", len(res.records))
			return f.backoff(ctx)
		}
	}
	return nil
}

// load makes res the fetch response next reads from.
func (f *partitionFetcher) load(res fetchResult) {
	f.set, f.recs, f.hwm, f.aborted = res.records, nil, res.highWaterMark, res.aborted
	if f.isolation == readCommitted {
		// Records past the last stable offset are not served yet: they
		// are no backlog.
		f.hwm = res.lastStable
	}
	f.batch = recordBatch{baseOffset: f.offset, lastOffset: f.offset - 1}
}

// connect dials the partition's leader through the first broker that
// answers and resolves FirstOffset, LastOffset and offsets below the
// first one still kept.
func (f *partitionFetcher) connect(ctx context.Context) error {
	var err error
	for _, broker := range f.rc.Brokers {
		var leader kafkago.Broker
		if leader, err = f.rc.Dialer.LookupLeader(ctx, "tcp", broker, f.rc.Topic, f.rc.Partition); err != nil {
			continue
		}
		var conn *brokerConn
		if conn, err = dialBroker(ctx, f.rc.Dialer, net.JoinHostPort(leader.Host, strconv.Itoa(leader.Port))); err != nil {
			continue
		}
		f.conn = conn
		if err = f.resolveOffset(ctx); err != nil {
			f.drop()
			continue
		}
		return nil
	}
	return fmt.Errorf("cannot dial the leader of %s/%d: %w", f.rc.Topic, f.rc.Partition, err)
}

// resolveOffset turns FirstOffset and LastOffset into offsets, and moves
// an offset whose records were deleted to the first one kept.
func (f *partitionFetcher) resolveOffset(ctx context.Context) error {
	topic, p := f.rc.Topic, int32(f.rc.Partition)
	first, err := f.conn.listOffset(ctx, topic, p, kafkago.FirstOffset, f.isolation)
	if err != nil {
		return err
	}
	last, err := f.conn.listOffset(ctx, topic, p, kafkago.LastOffset, f.isolation)
	if err != nil {
		return err
	}
	switch {
	case f.offset == kafkago.FirstOffset:
		f.offset = first
	case f.offset == kafkago.LastOffset:
		f.offset = last
	case f.offset < first:
		f.log.Warn("offset no longer in the partition; skipping to the first one kept", "offset", f.offset, "first", first)
		f.offset = first
	}
	return nil
}

// handle deals with a failed fetch. It returns only ctx's error.
func (f *partitionFetcher) handle(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, kafkago.OffsetOutOfRange) {
		before := f.offset
		if err = f.resolveOffset(ctx); err == nil {
			if f.offset != before {
				return nil
			}
			// Past the end (a topic recreated, say): wait for it to grow,
			// as kafka-go's Reader does.
			return f.backoff(ctx)
		}
	}
	// Leader moved, topic recreated, connection broken: dial again.
	f.log.Warn("cannot fetch; reconnecting", "offset", f.offset, "err", err)
	f.drop()
	return f.backoff(ctx)
}

func (f *partitionFetcher) drop() {
	if f.conn != nil {
		f.conn.Close()
		f.conn = nil
	}
}

// backoff waits before the next attempt, longer after each failure in a
// row, as the Reader does (ReadBackoffMin doubling up to ReadBackoffMax).
func (f *partitionFetcher) backoff(ctx context.Context) error {
	d := f.rc.ReadBackoffMin << min(f.fails, 16)
	d = min(d, f.rc.ReadBackoffMax)
	f.fails++
	return sleep(ctx, d)
}

// sleep waits for d, or until ctx ends (then its error).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close drops the connection.
func (f *partitionFetcher) Close() { f.drop() }

// prefetcher runs a partitionFetcher in a goroutine of its own, so that
// the next fetch overlaps decoding the last one (a partition on its own
// would otherwise leave a core idle while it waits for the broker). It
// hands records over in chunks of up to a few hundred, one channel
// operation each, not one per record as kafka-go's Reader does.
type prefetcher struct {
	out   chan *chunk
	free  chan *chunk
	cur   *chunk
	pos   int
	timer *time.Timer
	// After the last record get returned, or the last position it moved
	// to without one: see position.
	next, hwm int64
	received  int64 // the tick of the fetch response it came with
}

// chunk is a run of records of one fetch response, maybe none: end is the
// fetcher's position after them, which is past the records after the last
// one that are not read (transaction markers, aborted transactions), and
// hwm the end of what may be read as that response said.
type chunk struct {
	msgs     []kafkago.Message
	end, hwm int64
	received int64 // the fetcher's received when the chunk was filled
}

// prefetchChunks is how many chunks exist: two waiting for the worker,
// one being filled, one being decoded.
const prefetchChunks = 4

// startPrefetch starts fetching with f until ctx ends; the goroutine
// closes f and then out. Chunks hold at most size records.
func startPrefetch(ctx context.Context, f *partitionFetcher, size int) *prefetcher {
	p := &prefetcher{out: make(chan *chunk, prefetchChunks-2), free: make(chan *chunk, prefetchChunks), next: -1, hwm: -1}
	for i := 0; i < prefetchChunks; i++ {
		p.free <- &chunk{msgs: make([]kafkago.Message, 0, size)}
	}
	go p.run(ctx, f, size)
	return p
}

// past makes next read only what the current fetch response holds.
var past = time.Unix(1, 0)

func (p *prefetcher) run(ctx context.Context, f *partitionFetcher, size int) {
	defer close(p.out)
	defer f.Close()
	for {
		var c *chunk
		select {
		case c = <-p.free:
		case <-ctx.Done():
			return
		}
		// Records are read straight into the chunk.
		buf := c.msgs[:cap(c.msgs)]
		n := 0
		switch err := f.next(ctx, time.Time{}, &buf[0]); {
		case err == nil:
			n = 1
		case !errors.Is(err, errPassed):
			return // ctx ended: next retries everything else
		}
		for n > 0 && n < len(buf) && f.next(ctx, past, &buf[n]) == nil {
			n++
		}
		c.msgs, c.end, c.hwm, c.received = buf[:n], f.offset, f.hwm, f.received
		select {
		case p.out <- c:
		case <-ctx.Done():
			return
		}
	}
}

// get returns the next record, waiting for it at most until deadline
// (zero: without limit). It returns errLingerOver when deadline passed,
// errPassed when the partition's position moved past records that are not
// read and no record came (see position), and errStopped once the
// prefetcher stopped (its ctx ended). The record is valid until the next
// call of get (its Key and Value stay valid). Worker goroutine only.
func (p *prefetcher) get(deadline time.Time) (*kafkago.Message, error) {
	if p.cur != nil {
		if p.pos < len(p.cur.msgs) {
			return p.take(), nil
		}
		p.release()
	}
	var c *chunk
	var ok bool
	select {
	case c, ok = <-p.out:
	default:
		if deadline.IsZero() {
			c, ok = <-p.out
			break
		}
		d := time.Until(deadline)
		if d <= 0 {
			return nil, errLingerOver
		}
		if p.timer == nil {
			p.timer = time.NewTimer(d)
		} else {
			p.timer.Reset(d)
		}
		select {
		case c, ok = <-p.out:
			p.timer.Stop()
		case <-p.timer.C:
			return nil, errLingerOver
		}
	}
	if !ok {
		return nil, errStopped
	}
	p.cur, p.pos, p.received = c, 0, c.received
	if len(c.msgs) == 0 {
		p.next, p.hwm = c.end, c.hwm
		return nil, errPassed
	}
	return p.take(), nil
}

// take returns the current chunk's next record and moves the position.
func (p *prefetcher) take() *kafkago.Message {
	c := p.cur
	m := &c.msgs[p.pos]
	p.pos++
	p.next, p.hwm = m.Offset+1, c.hwm
	if p.pos == len(c.msgs) {
		p.next = c.end
	}
	return m
}

// release hands the current chunk back to the fetching goroutine.
func (p *prefetcher) release() {
	clear(p.cur.msgs) // let go of the records' keys and values
	p.free <- p.cur   // never blocks: free holds every chunk
	p.cur = nil
}

// position returns the offset after the last record get returned (past
// the records after it that are not read, when it ended a fetch response,
// and past those get reported with errPassed) and the end of what may be
// read as the broker last said. Both are -1 before the first record.
func (p *prefetcher) position() (next, hwm int64) { return p.next, p.hwm }

func (p *prefetcher) fetched() int64 { return p.received }

// drain waits for the prefetcher to stop after its ctx ended.
func (p *prefetcher) drain() {
	for range p.out {
	}
}
