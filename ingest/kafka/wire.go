package kafka

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"slices"
	"strconv"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
	"github.com/segmentio/kafka-go/sasl"
)

// This file speaks the part of the Kafka protocol a partition worker
// fetches with: Fetch v4 and ListOffsets v2 (both still served by Kafka
// 4), SaslHandshake v1 and SaslAuthenticate v0, and record batches of
// format v2 (Kafka 0.11 and later; Kafka 4 reads no other).
//
// kafka-go's Conn.ReadBatch reads the same responses, but record by
// record from its connection buffer, allocating a key and a value for
// each: kafkabench measured that at 0.36 µs of CPU per 160-byte record,
// a fifth of what Vigil spent per record in all. Here a whole fetch
// response is read with one allocation and records are sliced out of it.
// Consumer groups, commits, metadata and every producer stay kafka-go's.

// Kafka API keys and versions used here.
const (
	apiFetch            = 1
	apiListOffsets      = 2
	apiSaslHandshake    = 17
	apiSaslAuthenticate = 36

	fetchVersion       = 4
	listOffsetsVersion = 2 // the first with an isolation level
)

// maxResponse bounds one response's size: a length beyond it means the
// stream is not Kafka's (or is corrupt), not that a buffer should grow.
const maxResponse = 1 << 30

// readTimeout bounds a wait on the broker beyond a fetch's own wait, and
// the reading of each MiB of a response.
const readTimeout = 10 * time.Second

// errCorrupt is wrapped by every error about bytes that do not parse.
var errCorrupt = errors.New("corrupt kafka response")

// brokerConn is one connection to a broker, used by one goroutine.
type brokerConn struct {
	conn     net.Conn
	clientID string
	corr     int32
	req      []byte // request buffer, reused
}

// dialBroker connects to addr as d would (its DialFunc or net.Dialer
// settings, TLS, SASL), within d.Timeout.
func dialBroker(ctx context.Context, d *kafkago.Dialer, addr string) (*brokerConn, error) {
	if d.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.Timeout)
		defer cancel()
	}
	dial := d.DialFunc
	if dial == nil {
		dial = (&net.Dialer{LocalAddr: d.LocalAddr, FallbackDelay: d.FallbackDelay, KeepAlive: d.KeepAlive}).DialContext
	}
	conn, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to %s: %w", addr, err)
	}
	if d.TLS != nil {
		cfg := d.TLS
		if cfg.ServerName == "" {
			host, _, _ := net.SplitHostPort(addr)
			cfg = cfg.Clone()
			cfg.ServerName = host
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("cannot connect to %s: TLS handshake: %w", addr, err)
		}
		conn = tc
	}
	c := &brokerConn{conn: conn, clientID: d.ClientID}
	if d.SASLMechanism != nil {
		if err := c.authenticate(ctx, d.SASLMechanism, addr); err != nil {
			conn.Close()
			return nil, fmt.Errorf("cannot authenticate to %s with SASL %s: %w", addr, d.SASLMechanism.Name(), err)
		}
	}
	return c, nil
}

// authenticate runs SaslHandshake v1 and then SaslAuthenticate rounds
// until the mechanism is done, as kafka-go's Dialer does.
func (c *brokerConn) authenticate(ctx context.Context, mech sasl.Mechanism, addr string) error {
	resp, err := c.roundTrip(ctx, 0, apiSaslHandshake, 1, func(b []byte) []byte { return appendString(b, mech.Name()) })
	if err != nil {
		return err
	}
	r := wireReader{b: resp}
	if code := r.int16(); r.err == nil && code != 0 {
		return fmt.Errorf("handshake: %w", kafkago.Error(code))
	}
	host, port, _ := net.SplitHostPort(addr)
	portNum, _ := strconv.Atoi(port)
	ctx = sasl.WithMetadata(ctx, &sasl.Metadata{Host: host, Port: portNum})
	sess, state, err := mech.Start(ctx)
	if err != nil {
		return err
	}
	for done := false; !done; {
		resp, err := c.roundTrip(ctx, 0, apiSaslAuthenticate, 0, func(b []byte) []byte { return appendBytes(b, state) })
		if errors.Is(err, io.EOF) {
			// A broker may answer a failed exchange by hanging up.
			return kafkago.SASLAuthenticationFailed
		}
		if err != nil {
			return err
		}
		r := wireReader{b: resp}
		code, msg, challenge := r.int16(), r.string(), r.bytes()
		if r.err != nil {
			return r.err
		}
		if code != 0 {
			return fmt.Errorf("%w: %s", kafkago.Error(code), msg)
		}
		if done, state, err = sess.Next(ctx, challenge); err != nil {
			return err
		}
	}
	return nil
}

// roundTrip sends one request whose body body appends and returns the
// response's body (after the correlation id), a slice of its own. The
// broker has wait plus readTimeout to start answering and readTimeout
// for each further MiB of the answer; the end of ctx ends the exchange
// at once with ctx's error.
func (c *brokerConn) roundTrip(ctx context.Context, wait time.Duration, api, version int16, body func([]byte) []byte) ([]byte, error) {
	conn := c.conn
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	// extend moves the deadline d ahead, unless ctx has ended: its
	// AfterFunc may have run just before and must not be undone.
	extend := func(d time.Duration) error {
		dl := time.Now().Add(d)
		if cd, ok := ctx.Deadline(); ok && cd.Before(dl) {
			dl = cd
		}
		conn.SetDeadline(dl)
		if err := ctx.Err(); err != nil {
			conn.SetDeadline(time.Unix(1, 0))
			return err
		}
		return nil
	}
	fail := func(err error) ([]byte, error) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// The socket's deadline may be ctx's, and pass a moment before
		// ctx's own timer marks it done.
		if cd, ok := ctx.Deadline(); ok && !time.Now().Before(cd) {
			return nil, context.DeadlineExceeded
		}
		return nil, err
	}
	if err := extend(wait + readTimeout); err != nil {
		return nil, err
	}
	c.corr++
	b := append(c.req[:0], 0, 0, 0, 0) // size, set below
	b = binary.BigEndian.AppendUint16(b, uint16(api))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(c.corr))
	b = appendString(b, c.clientID)
	b = body(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	c.req = b
	if _, err := conn.Write(b); err != nil {
		return fail(err)
	}
	var head [8]byte
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		return fail(err)
	}
	size := int32(binary.BigEndian.Uint32(head[:4]))
	if size < 4 || size > maxResponse {
		return nil, fmt.Errorf("%w: response of %d bytes", errCorrupt, size)
	}
	if corr := int32(binary.BigEndian.Uint32(head[4:])); corr != c.corr {
		return nil, fmt.Errorf("%w: correlation id %d, want %d", errCorrupt, corr, c.corr)
	}
	resp := make([]byte, size-4)
	for got := 0; got < len(resp); {
		if err := extend(readTimeout); err != nil {
			return nil, err
		}
		n, err := io.ReadFull(conn, resp[got:min(len(resp), got+1<<20)])
		if err != nil {
			return fail(err)
		}
		got += n
	}
	return resp, nil
}

func (c *brokerConn) Close() error { return c.conn.Close() }

// fetchResult is one partition's part of a fetch response.
type fetchResult struct {
	highWaterMark int64
	lastStable    int64 // last stable offset: below it every transaction is decided
	aborted       abortedTxns
	records       []byte // record batches, the last one possibly cut short
}

// abortedTxn is an entry of a fetch response's aborted transactions: the
// producer's transactional batches from firstOffset up to its next ABORT
// marker were aborted.
type abortedTxn struct {
	producerID, firstOffset int64
}

// abortedTxns are the aborted transactions a read_committed fetch response
// lists, sorted by first offset: the broker need not sort them (Redpanda
// does not), and the filtering below relies on each producer's earliest
// one coming first. franz-go's kgo (source.go, aborter) and the Java
// client filter the same way.
type abortedTxns []abortedTxn

// aborts reports whether b's records belong to an aborted transaction: b
// is transactional and starts at or after the first offset of its
// producer's earliest aborted transaction not yet ended by an ABORT marker.
func (a abortedTxns) aborts(b *recordBatch) bool {
	if !b.transactional {
		return false
	}
	for _, t := range a {
		if t.producerID == b.producerID {
			return b.baseOffset >= t.firstOffset
		}
	}
	return false
}

// ended drops the producer's earliest aborted transaction: its ABORT
// marker was read.
func (a *abortedTxns) ended(producerID int64) {
	for i, t := range *a {
		if t.producerID == producerID {
			*a = append((*a)[:i], (*a)[i+1:]...)
			return
		}
	}
}

// Isolation levels of a fetch (Kafka's values).
const (
	readUncommitted = 0
	readCommitted   = 1
)

// fetch asks for topic/partition's records from offset, the broker
// waiting up to wait for minBytes of them; isolation is readCommitted or
// readUncommitted. A partition error comes back as a kafkago.Error.
func (c *brokerConn) fetch(ctx context.Context, topic string, partition int32, offset int64, minBytes, maxBytes int, wait time.Duration, isolation int8) (fetchResult, error) {
	resp, err := c.roundTrip(ctx, wait, apiFetch, fetchVersion, func(b []byte) []byte {
		b = binary.BigEndian.AppendUint32(b, ^uint32(0)) // replica id -1: a consumer
		b = binary.BigEndian.AppendUint32(b, uint32(wait.Milliseconds()))
		b = binary.BigEndian.AppendUint32(b, uint32(minBytes))
		b = binary.BigEndian.AppendUint32(b, uint32(maxBytes))
		b = append(b, byte(isolation))
		b = binary.BigEndian.AppendUint32(b, 1) // one topic
		b = appendString(b, topic)              //
		b = binary.BigEndian.AppendUint32(b, 1) // one partition
		b = binary.BigEndian.AppendUint32(b, uint32(partition))
		b = binary.BigEndian.AppendUint64(b, uint64(offset))
		return binary.BigEndian.AppendUint32(b, uint32(maxBytes))
	})
	if err != nil {
		return fetchResult{}, err
	}
	return parseFetchResponse(resp, topic, partition)
}

// parseFetchResponse finds topic/partition in a Fetch v4 response body.
func parseFetchResponse(resp []byte, topic string, partition int32) (fetchResult, error) {
	r := wireReader{b: resp}
	r.int32() // throttle time
	for topics := r.int32(); topics > 0 && r.err == nil; topics-- {
		name := r.string()
		for parts := r.int32(); parts > 0 && r.err == nil; parts-- {
			p, code, hwm, lso := r.int32(), r.int16(), r.int64(), r.int64()
			var aborted abortedTxns
			if n := r.int32(); n > 0 {
				if int64(n)*16 > int64(len(r.b)) {
					return fetchResult{}, fmt.Errorf("%w: %d aborted transactions in %d bytes", errCorrupt, n, len(r.b))
				}
				aborted = make(abortedTxns, n)
				for i := range aborted {
					aborted[i] = abortedTxn{producerID: r.int64(), firstOffset: r.int64()}
				}
				slices.SortFunc(aborted, func(a, b abortedTxn) int { return cmp.Compare(a.firstOffset, b.firstOffset) })
			}
			records := r.bytes()
			if r.err == nil && name == topic && p == partition {
				if code != 0 {
					return fetchResult{}, kafkago.Error(code)
				}
				return fetchResult{highWaterMark: hwm, lastStable: lso, aborted: aborted, records: records}, nil
			}
		}
	}
	if r.err != nil {
		return fetchResult{}, r.err
	}
	return fetchResult{}, fmt.Errorf("%w: fetch response without %s/%d", errCorrupt, topic, partition)
}

// listOffset returns the first offset of topic/partition (at -2) or the
// end of what isolation may read (at -1): the next offset to be written,
// or under read_committed the last stable offset, so that a consumer
// starting at the end does not skip an open transaction's records.
func (c *brokerConn) listOffset(ctx context.Context, topic string, partition int32, at int64, isolation int8) (int64, error) {
	resp, err := c.roundTrip(ctx, 0, apiListOffsets, listOffsetsVersion, func(b []byte) []byte {
		b = binary.BigEndian.AppendUint32(b, ^uint32(0))
		b = append(b, byte(isolation))
		b = binary.BigEndian.AppendUint32(b, 1)
		b = appendString(b, topic)
		b = binary.BigEndian.AppendUint32(b, 1)
		b = binary.BigEndian.AppendUint32(b, uint32(partition))
		return binary.BigEndian.AppendUint64(b, uint64(at))
	})
	if err != nil {
		return 0, err
	}
	r := wireReader{b: resp}
	r.int32() // throttle time
	for topics := r.int32(); topics > 0 && r.err == nil; topics-- {
		name := r.string()
		for parts := r.int32(); parts > 0 && r.err == nil; parts-- {
			p, code := r.int32(), r.int16()
			r.int64() // timestamp
			offset := r.int64()
			if r.err == nil && name == topic && p == partition {
				if code != 0 {
					return 0, kafkago.Error(code)
				}
				return offset, nil
			}
		}
	}
	if r.err != nil {
		return 0, r.err
	}
	return 0, fmt.Errorf("%w: list offsets response without %s/%d", errCorrupt, topic, partition)
}

// recordBatchHeader is the size of a v2 record batch's header, from its
// base offset to its record count.
const recordBatchHeader = 61

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recordBatch is one v2 record batch, records decompressed.
type recordBatch struct {
	baseOffset, lastOffset int64
	baseTime, maxTime      int64 // ms since the epoch
	logAppendTime          bool
	control                bool // transaction markers, not data
	transactional          bool
	producerID             int64
	count                  int
	records                []byte
}

// batchSize returns the size its header gives the record batch set
// starts with (negative when corrupt), or -1 when set is too short to
// hold that header.
func batchSize(set []byte) int64 {
	if len(set) < 12 {
		return -1
	}
	return int64(int32(binary.BigEndian.Uint32(set[8:12]))) + 12
}

// nextBatch cuts the first record batch off set. It returns ok false when
// set holds no whole batch: a fetch response may end in part of one.
func nextBatch(set []byte) (b recordBatch, rest []byte, ok bool, err error) {
	if len(set) < 12 {
		return b, nil, false, nil
	}
	size := batchSize(set)
	if size < recordBatchHeader {
		return b, nil, false, fmt.Errorf("%w: record batch of %d bytes", errCorrupt, size)
	}
	if size > int64(len(set)) {
		return b, nil, false, nil
	}
	raw, rest := set[:size], set[size:]
	if magic := raw[16]; magic != 2 {
		return b, nil, false, fmt.Errorf("%w: record batch format v%d (written before Kafka 0.11); only v2 is read", errCorrupt, magic)
	}
	if crc := binary.BigEndian.Uint32(raw[17:21]); crc != crc32.Checksum(raw[21:], castagnoli) {
		return b, nil, false, fmt.Errorf("%w: record batch at offset %d fails its CRC", errCorrupt, int64(binary.BigEndian.Uint64(raw)))
	}
	attrs := binary.BigEndian.Uint16(raw[21:23])
	b = recordBatch{
		baseOffset:    int64(binary.BigEndian.Uint64(raw)),
		baseTime:      int64(binary.BigEndian.Uint64(raw[27:35])),
		maxTime:       int64(binary.BigEndian.Uint64(raw[35:43])),
		logAppendTime: attrs&0x8 != 0,
		transactional: attrs&0x10 != 0,
		control:       attrs&0x20 != 0,
		producerID:    int64(binary.BigEndian.Uint64(raw[43:51])),
		count:         int(int32(binary.BigEndian.Uint32(raw[57:61]))),
		records:       raw[recordBatchHeader:],
	}
	b.lastOffset = b.baseOffset + int64(int32(binary.BigEndian.Uint32(raw[23:27])))
	if b.count < 0 || b.lastOffset < b.baseOffset {
		return b, nil, false, fmt.Errorf("%w: record batch at offset %d with %d records up to offset %d", errCorrupt, b.baseOffset, b.count, b.lastOffset)
	}
	if codec := attrs & 0x7; codec != 0 {
		if b.records, err = decompress(compress.Compression(codec), b.records); err != nil {
			return b, nil, false, fmt.Errorf("%w: record batch at offset %d: %w", errCorrupt, b.baseOffset, err)
		}
	}
	return b, rest, true, nil
}

func decompress(c compress.Compression, data []byte) ([]byte, error) {
	codec := c.Codec()
	if codec == nil {
		return nil, fmt.Errorf("unknown compression codec %d", c)
	}
	r := codec.NewReader(bytes.NewReader(data))
	defer r.Close()
	out, err := io.ReadAll(io.LimitReader(r, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("cannot decompress %s: %w", codec.Name(), err)
	}
	return out, nil
}

// isAbortMarker reports whether control batch b ends a transaction with
// an ABORT marker: its record's key is an int16 version and an int16
// type, 0 for ABORT and 1 for COMMIT.
func (b *recordBatch) isAbortMarker() bool {
	var m kafkago.Message
	if _, err := b.nextRecord(b.records, &m); err != nil {
		return false
	}
	return len(m.Key) >= 4 && m.Key[2] == 0 && m.Key[3] == 0
}

// nextRecord reads the first record of recs (a batch's records) into m,
// whose Key and Value then alias recs, and returns the rest.
func (b *recordBatch) nextRecord(recs []byte, m *kafkago.Message) ([]byte, error) {
	r := wireReader{b: recs}
	size := r.varint()
	if r.err != nil || size < 0 || size > int64(len(r.b)) {
		return nil, fmt.Errorf("%w: record of %d bytes in the batch at offset %d", errCorrupt, size, b.baseOffset)
	}
	rest := r.b[size:]
	r.b = r.b[:size]
	r.skip(1) // attributes, unused
	tsDelta, offDelta := r.varint(), r.varint()
	m.Key, m.Value = r.varbytes(), r.varbytes()
	m.Headers = nil
	if n := r.varint(); n > 0 && n <= int64(len(r.b)) {
		m.Headers = make([]kafkago.Header, n)
		for i := range m.Headers {
			m.Headers[i] = kafkago.Header{Key: string(r.varbytes()), Value: r.varbytes()}
		}
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: record in the batch at offset %d: %w", errCorrupt, b.baseOffset, r.err)
	}
	m.Offset = b.baseOffset + offDelta
	if b.logAppendTime {
		m.Time = time.UnixMilli(b.maxTime)
	} else {
		m.Time = time.UnixMilli(b.baseTime + tsDelta)
	}
	return rest, nil
}

// wireReader reads big-endian protocol fields; after the first short read
// every field is zero and err says why.
type wireReader struct {
	b   []byte
	err error
}

func (r *wireReader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = fmt.Errorf("%w: a field of %d bytes where %d are left", errCorrupt, n, len(r.b))
		r.b = nil
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *wireReader) skip(n int) { r.take(n) }

func (r *wireReader) int16() int16 {
	if v := r.take(2); v != nil {
		return int16(binary.BigEndian.Uint16(v))
	}
	return 0
}

func (r *wireReader) int32() int32 {
	if v := r.take(4); v != nil {
		return int32(binary.BigEndian.Uint32(v))
	}
	return 0
}

func (r *wireReader) int64() int64 {
	if v := r.take(8); v != nil {
		return int64(binary.BigEndian.Uint64(v))
	}
	return 0
}

// string reads a nullable string (int16 length; null reads as "").
func (r *wireReader) string() string {
	n := r.int16()
	if n < 0 {
		return ""
	}
	return string(r.take(int(n)))
}

// bytes reads nullable bytes (int32 length).
func (r *wireReader) bytes() []byte {
	n := r.int32()
	if n < 0 {
		return nil
	}
	return r.take(int(n))
}

// varint reads a zig-zag varint, as records encode their fields.
func (r *wireReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = fmt.Errorf("%w: bad varint", errCorrupt)
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

// varbytes reads bytes with a varint length (-1: null).
func (r *wireReader) varbytes() []byte {
	n := r.varint()
	if n < 0 || r.err != nil {
		return nil
	}
	if n > int64(len(r.b)) {
		r.err = fmt.Errorf("%w: a field of %d bytes where %d are left", errCorrupt, n, len(r.b))
		r.b = nil
		return nil
	}
	return r.take(int(n))
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendBytes(b, v []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}
