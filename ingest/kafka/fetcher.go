package kafka

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// partitionFetcher reads one partition with kafka-go's Conn and Batch
// directly, in the partition worker's goroutine. kafka-go's Reader does
// the same fetches, but hands every message to the worker through a
// channel from a goroutine of its own and sets a socket deadline per
// message: kafkabench measures that at about half of what a bare Reader
// costs per record (0.6 of 1.3 µs of CPU), all of it on the path of every
// record Vigil reads. The fetch settings are ReaderConfig's, and the error
// handling follows the Reader's: retry timeouts, skip to the first
// offset when the asked one was deleted, redial after leader moves and
// broken connections with backoff.
type partitionFetcher struct {
	rc     kafkago.ReaderConfig
	log    *slog.Logger
	conn   *kafkago.Conn
	batch  *kafkago.Batch
	offset int64 // next offset to read; FirstOffset or LastOffset until resolved
	fails  int   // consecutive failed fetches, for the backoff
	// unwatch stops cutting the current fetch short when the context ends.
	unwatch func() bool
}

// readTimeout bounds a wait on the broker's socket beyond the fetch's own
// MaxWait.
const readTimeout = 10 * time.Second

// errLingerOver is next's answer when the wait it was given ran out with
// no record.
var errLingerOver = errors.New("no record within the linger")

func newPartitionFetcher(rc kafkago.ReaderConfig, offset int64, log *slog.Logger) *partitionFetcher {
	return &partitionFetcher{rc: rc, offset: offset, log: log}
}

// next reads the partition's next record into m. When the current fetch
// response is used up it fetches again, waiting for new records at most
// until deadline (zero: the configured fetch_max_wait, again and again);
// it returns errLingerOver when deadline passed without a record. Broker
// and network errors are retried; the only other error is ctx's. Key and
// Value of the record are the caller's. m is zeroed when next fails.
func (f *partitionFetcher) next(ctx context.Context, deadline time.Time, m *kafkago.Message) error {
	for {
		if f.batch != nil {
			// Read in place: a Message is some 150 bytes, copied at each
			// hand-over otherwise.
			var err error
			if *m, err = f.batch.ReadMessage(); err == nil {
				f.offset, f.fails = m.Offset+1, 0
				return nil
			}
			*m = kafkago.Message{}
			f.endBatch()
			if err := f.handle(ctx, err); err != nil {
				return err
			}
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

// touch moves the socket deadline of the fetch response being read: the
// worker calls it after waiting for the engine, which may take longer
// than any deadline set before.
func (f *partitionFetcher) touch() {
	if f.conn != nil {
		f.conn.SetReadDeadline(time.Now().Add(readTimeout))
	}
}

// fetch sends one fetch request for the records from f.offset, connecting
// first if need be. It returns only ctx's error; a failure to connect is
// backed off and left for the next call.
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
	if _, err := f.conn.Seek(f.offset, kafkago.SeekAbsolute|kafkago.SeekDontCheck); err != nil {
		f.drop()
		return f.backoff(ctx)
	}
	conn := f.conn
	conn.SetReadDeadline(time.Now().Add(wait + readTimeout))
	// A stop or rebalance must not wait for the broker: it moves the
	// deadline to now, which ends the fetch with an error.
	f.unwatch = context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	f.batch = conn.ReadBatchWith(kafkago.ReadBatchConfig{MinBytes: f.rc.MinBytes, MaxBytes: f.rc.MaxBytes, MaxWait: wait})
	return nil
}

func (f *partitionFetcher) endBatch() {
	if f.batch != nil {
		f.batch.Close()
		f.batch = nil
	}
	if f.unwatch != nil {
		f.unwatch()
		f.unwatch = nil
	}
}

// connect dials the partition's leader through the first broker that
// answers and resolves FirstOffset, LastOffset and offsets below the
// first one still kept.
func (f *partitionFetcher) connect(ctx context.Context) error {
	var err error
	for _, broker := range f.rc.Brokers {
		var conn *kafkago.Conn
		if conn, err = f.rc.Dialer.DialLeader(ctx, "tcp", broker, f.rc.Topic, f.rc.Partition); err != nil {
			continue
		}
		conn.SetDeadline(time.Now().Add(readTimeout))
		first, last, oerr := conn.ReadOffsets()
		conn.SetDeadline(time.Time{})
		if oerr != nil {
			conn.Close()
			err = oerr
			continue
		}
		switch {
		case f.offset == kafkago.FirstOffset:
			f.offset = first
		case f.offset == kafkago.LastOffset:
			f.offset = last
		case f.offset < first:
			f.log.Warn("committed offset no longer in the partition; skipping to the first one kept", "offset", f.offset, "first", first)
			f.offset = first
		}
		f.conn = conn
		return nil
	}
	return fmt.Errorf("cannot dial the leader of %s/%d: %w", f.rc.Topic, f.rc.Partition, err)
}

// handle deals with the error that ended a fetch response. It returns
// only ctx's error.
func (f *partitionFetcher) handle(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, kafkago.RequestTimedOut):
		// The response is used up, or nothing arrived within MaxWait. A
		// record batch may end in records compaction removed: the Batch
		// then moved the connection's offset past them, and asking for
		// the offset after the last record read would return the same
		// batch for ever.
		if off, whence := f.conn.Offset(); whence == kafkago.SeekAbsolute && off > f.offset {
			f.offset = off
		}
		f.fails = 0
		return nil
	case errors.Is(err, kafkago.OffsetOutOfRange):
		f.conn.SetDeadline(time.Now().Add(readTimeout))
		first, last, oerr := f.conn.ReadOffsets()
		f.conn.SetDeadline(time.Time{})
		switch {
		case oerr != nil:
			f.drop()
		case f.offset < first:
			f.log.Warn("records deleted before they were read; skipping to the first one kept", "offset", f.offset, "first", first)
			f.offset = first
			return nil
		case f.offset < last:
			return nil
		}
		return f.backoff(ctx)
	case ctx.Err() != nil:
		return ctx.Err()
	}
	// Leader moved, topic recreated, connection broken: dial again.
	f.log.Warn("cannot fetch; reconnecting", "offset", f.offset, "err", err)
	f.drop()
	return f.backoff(ctx)
}

func (f *partitionFetcher) drop() {
	f.endBatch()
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
}

type chunk struct{ msgs []kafkago.Message }

// prefetchChunks is how many chunks exist: two waiting for the worker,
// one being filled, one being decoded.
const prefetchChunks = 4

// startPrefetch starts fetching with f until ctx ends; the goroutine
// closes f and then out. Chunks hold at most size records.
func startPrefetch(ctx context.Context, f *partitionFetcher, size int) *prefetcher {
	p := &prefetcher{out: make(chan *chunk, prefetchChunks-2), free: make(chan *chunk, prefetchChunks)}
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
		if err := f.next(ctx, time.Time{}, &buf[0]); err != nil {
			return // ctx ended: next retries everything else
		}
		n := 1
		for n < len(buf) && f.next(ctx, past, &buf[n]) == nil {
			n++
		}
		c.msgs = buf[:n]
		select {
		case p.out <- c:
		case <-ctx.Done():
			return
		}
		// The worker may have kept us waiting past the socket deadline of
		// the response being read.
		f.touch()
	}
}

// get returns the next record, waiting for it at most until deadline
// (zero: without limit). It returns errLingerOver when deadline passed,
// and errStopped once the prefetcher stopped (its ctx ended). The record
// is valid until the next call of get (its Key and Value stay valid).
// Worker goroutine only.
func (p *prefetcher) get(deadline time.Time) (*kafkago.Message, error) {
	if p.cur != nil {
		if p.pos < len(p.cur.msgs) {
			p.pos++
			return &p.cur.msgs[p.pos-1], nil
		}
		clear(p.cur.msgs) // let go of the records' keys and values
		p.free <- p.cur   // never blocks: free holds every chunk
		p.cur = nil
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
	p.cur, p.pos = c, 1
	return &c.msgs[0], nil
}

// drain waits for the prefetcher to stop after its ctx ended.
func (p *prefetcher) drain() {
	for range p.out {
	}
}

// fetchReadBuffer is how much of a fetch connection is read per system
// call. kafka-go reads a connection through a 4 KiB bufio.Reader, so a
// fetch response of megabytes costs a read per 4 KiB, one per about 25
// records of 160 bytes (kafkabench: 4% of Vigil's CPU, as much as the
// worker's decoding of the attrs).
const fetchReadBuffer = 64 << 10

// bufferedDialer returns a copy of d whose connections are read through
// a fetchReadBuffer buffer, beneath TLS when d has it. Deadlines and
// errors are the connection's: a read deadline that passed still ends
// the next read that needs the socket, only after what was already
// received.
func bufferedDialer(d *kafkago.Dialer) *kafkago.Dialer {
	bd := *d
	dial := d.DialFunc
	if dial == nil {
		// What kafka-go dials with when DialFunc is nil.
		dial = (&net.Dialer{LocalAddr: d.LocalAddr, DualStack: d.DualStack, FallbackDelay: d.FallbackDelay, KeepAlive: d.KeepAlive}).DialContext
	}
	bd.DialFunc = func(ctx context.Context, network, address string) (net.Conn, error) {
		conn, err := dial(ctx, network, address)
		if err != nil {
			return nil, err
		}
		return &bufferedConn{Conn: conn, r: bufio.NewReaderSize(conn, fetchReadBuffer)}, nil
	}
	return &bd
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
