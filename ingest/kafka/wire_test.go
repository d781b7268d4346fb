package kafka

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
	"github.com/twmb/franz-go/pkg/kfake"
)

// testRecord is one record of a batch built by appendBatch.
type testRecord struct {
	offsetDelta int64
	key, value  []byte
	headers     []kafkago.Header
}

// appendBatch appends a v2 record batch as a broker stores it, written
// from the protocol's description independently of wire.go.
func appendBatch(dst []byte, base int64, attrs int16, lastDelta int32, baseTime int64, recs []testRecord, codec compress.Compression) []byte {
	var body []byte
	for _, r := range recs {
		var rec []byte
		rec = append(rec, 0) // attributes
		rec = binary.AppendVarint(rec, r.offsetDelta*10)
		rec = binary.AppendVarint(rec, r.offsetDelta)
		rec = appendVarbytes(rec, r.key)
		rec = appendVarbytes(rec, r.value)
		rec = binary.AppendVarint(rec, int64(len(r.headers)))
		for _, h := range r.headers {
			rec = appendVarbytes(rec, []byte(h.Key))
			rec = appendVarbytes(rec, h.Value)
		}
		body = binary.AppendVarint(body, int64(len(rec)))
		body = append(body, rec...)
	}
	if codec != 0 {
		var buf bytes.Buffer
		w := codec.Codec().NewWriter(&buf)
		w.Write(body)
		w.Close()
		body = buf.Bytes()
		attrs |= int16(codec)
	}
	var tail []byte // from attributes to the end: what the CRC covers
	tail = binary.BigEndian.AppendUint16(tail, uint16(attrs))
	tail = binary.BigEndian.AppendUint32(tail, uint32(lastDelta))
	tail = binary.BigEndian.AppendUint64(tail, uint64(baseTime))
	tail = binary.BigEndian.AppendUint64(tail, uint64(baseTime+int64(lastDelta)*10))
	tail = binary.BigEndian.AppendUint64(tail, ^uint64(0)) // producer id -1
	tail = binary.BigEndian.AppendUint16(tail, ^uint16(0))
	tail = binary.BigEndian.AppendUint32(tail, ^uint32(0))
	tail = binary.BigEndian.AppendUint32(tail, uint32(len(recs)))
	tail = append(tail, body...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(base))
	dst = binary.BigEndian.AppendUint32(dst, uint32(4+1+4+len(tail))) // from the leader epoch on
	dst = binary.BigEndian.AppendUint32(dst, 0)
	dst = append(dst, 2)
	dst = binary.BigEndian.AppendUint32(dst, crc32.Checksum(tail, crc32.MakeTable(crc32.Castagnoli)))
	return append(dst, tail...)
}

func appendVarbytes(b, v []byte) []byte {
	if v == nil {
		return binary.AppendVarint(b, -1)
	}
	return append(binary.AppendVarint(b, int64(len(v))), v...)
}

// readSet reads every record of a fetched record set from offset with a
// fetcher's response reader.
func readSet(t *testing.T, set []byte, offset int64) ([]kafkago.Message, int64, error) {
	t.Helper()
	f := newPartitionFetcher(kafkago.ReaderConfig{Topic: "t", Partition: 3}, offset, slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.set, f.hwm = set, 99
	f.batch = recordBatch{baseOffset: offset, lastOffset: offset - 1}
	var out []kafkago.Message
	for {
		var m kafkago.Message
		ok, err := f.nextInResponse(&m)
		if !ok {
			return out, f.offset, err
		}
		out = append(out, m)
	}
}

func offsetsOf(msgs []kafkago.Message) []int64 {
	var out []int64
	for _, m := range msgs {
		out = append(out, m.Offset)
	}
	return out
}

// TestRecordSet: records come out in order with their keys, values,
// headers and times, in every compression codec; records before the
// offset asked for are skipped; compaction gaps, control batches and a
// batch cut off at the end of the response move the next offset as far
// as what was whole.
func TestRecordSet(t *testing.T) {
	recs := func(base int64, deltas ...int64) []testRecord {
		var out []testRecord
		for _, d := range deltas {
			out = append(out, testRecord{offsetDelta: d, key: []byte("k" + strconv.FormatInt(base+d, 10)), value: []byte("v" + strconv.FormatInt(base+d, 10))})
		}
		return out
	}
	for _, codec := range []compress.Compression{0, compress.Gzip, compress.Snappy, compress.Lz4, compress.Zstd} {
		t.Run(codec.String(), func(t *testing.T) {
			var set []byte
			set = appendBatch(set, 10, 0, 2, 1000, recs(10, 0, 1, 2), codec)
			// Compacted: offsets 14 and 16 are gone, the batch still
			// ends at 17.
			set = appendBatch(set, 13, 0, 4, 2000, recs(13, 0, 2), codec)
			// A transaction's commit marker.
			set = appendBatch(set, 18, 0x20, 0, 3000, recs(18, 0), codec)
			withHeader := recs(19, 0)
			withHeader[0].headers = []kafkago.Header{{Key: "h", Value: []byte("x")}}
			withHeader[0].key = nil
			set = appendBatch(set, 19, 0, 0, 4000, withHeader, codec)
			whole := len(set)
			set = appendBatch(set, 20, 0, 0, 5000, recs(20, 0), codec)
			set = set[:len(set)-3] // cut off by the fetch's byte limit

			got, next, err := readSet(t, set, 11)
			if err != nil {
				t.Fatal(err)
			}
			if want := []int64{11, 12, 13, 15, 19}; !equalInts(offsetsOf(got), want) {
				t.Fatalf("offsets %v, want %v", offsetsOf(got), want)
			}
			if next != 20 {
				t.Fatalf("next offset %d, want 20 (after the last whole batch)", next)
			}
			m := got[3]
			if string(m.Key) != "k15" || string(m.Value) != "v15" || m.Topic != "t" || m.Partition != 3 || m.HighWaterMark != 99 {
				t.Fatalf("record 15: %+v", m)
			}
			if want := time.UnixMilli(2000 + 20); !m.Time.Equal(want) {
				t.Fatalf("record 15 time %v, want %v", m.Time, want)
			}
			if m := got[4]; m.Key != nil || len(m.Headers) != 1 || m.Headers[0].Key != "h" || string(m.Headers[0].Value) != "x" {
				t.Fatalf("record 19: key %q headers %+v", m.Key, m.Headers)
			}
			// Only whole batches count: nothing is read from the cut one.
			if got, _, err := readSet(t, set[whole:], 20); err != nil || len(got) != 0 {
				t.Fatalf("cut batch alone: %d records, %v", len(got), err)
			}
		})
	}
}

// TestRecordSetCorrupt: a flipped byte fails the CRC, an old message
// format and a negative length are refused, each with errCorrupt.
func TestRecordSetCorrupt(t *testing.T) {
	good := appendBatch(nil, 0, 0, 1, 0, []testRecord{{value: []byte("a")}, {offsetDelta: 1, value: []byte("b")}}, 0)
	flip := bytes.Clone(good)
	flip[len(flip)-1] ^= 1
	old := bytes.Clone(good)
	old[16] = 1
	negative := bytes.Clone(good)
	binary.BigEndian.PutUint32(negative[8:], 0xfffffff0)
	for name, set := range map[string][]byte{"crc": flip, "magic": old, "length": negative} {
		if _, _, err := readSet(t, set, 0); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: %v, want errCorrupt", name, err)
		}
	}
	if got, _, err := readSet(t, good, 0); err != nil || len(got) != 2 {
		t.Fatalf("good batch: %d records, %v", len(got), err)
	}
}

// FuzzRecordSet: any bytes as a record set give records inside them or
// an error, never a panic, and the next offset never goes back.
func FuzzRecordSet(f *testing.F) {
	f.Add(appendBatch(nil, 5, 0, 1, 0, []testRecord{{value: []byte("a")}, {offsetDelta: 1, key: []byte("k"), value: []byte("b")}}, 0))
	f.Add(appendBatch(nil, 0, 0, 0, 0, []testRecord{{value: []byte("z"), headers: []kafkago.Header{{Key: "a"}}}}, compress.Snappy))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, set []byte) {
		for _, from := range []int64{0, 6} {
			msgs, next, _ := readSet(t, set, from)
			if next < from {
				t.Fatalf("next offset %d before %d", next, from)
			}
			for _, m := range msgs {
				if m.Offset < from || m.Offset >= next {
					t.Fatalf("record at %d outside [%d, %d)", m.Offset, from, next)
				}
			}
		}
	})
}

// FuzzFetchResponse: parseFetchResponse never panics and finds only the
// partition asked for.
func FuzzFetchResponse(f *testing.F) {
	f.Add(fetchResponse(appendBatch(nil, 0, 0, 0, 0, []testRecord{{value: []byte("a")}}, 0)))
	f.Fuzz(func(t *testing.T, resp []byte) {
		res, err := parseFetchResponse(resp, "t", 0)
		if err == nil && len(res.records) > len(resp) {
			t.Fatal("records longer than the response")
		}
	})
}

// fetchResponse is the body of a Fetch v4 response with records for
// partition 0 of topic t.
func fetchResponse(records []byte) []byte {
	var resp []byte
	resp = binary.BigEndian.AppendUint32(resp, 0) // throttle time
	resp = binary.BigEndian.AppendUint32(resp, 1)
	resp = appendString(resp, "t")
	resp = binary.BigEndian.AppendUint32(resp, 1)
	resp = binary.BigEndian.AppendUint32(resp, 0)
	resp = binary.BigEndian.AppendUint16(resp, 0)
	resp = binary.BigEndian.AppendUint64(resp, 7)
	resp = binary.BigEndian.AppendUint64(resp, 7)
	resp = binary.BigEndian.AppendUint32(resp, ^uint32(0)) // no aborted transactions
	return appendBytes(resp, records)
}

// TestFetchWithoutWholeBatch: a response cut inside its first batch is
// dropped and backed off, not read as an empty response and fetched again
// at once for ever.
func TestFetchWithoutWholeBatch(t *testing.T) {
	batch := appendBatch(nil, 0, 0, 0, 0, []testRecord{{value: []byte("a")}}, 0)
	body := fetchResponse(batch[:len(batch)-1])
	f := newPartitionFetcher(kafkago.ReaderConfig{Topic: "t", ReadBackoffMin: time.Millisecond, ReadBackoffMax: time.Millisecond},
		0, slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.conn = fakeBroker(t, func(corr uint32) []byte {
		return append(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, uint32(4+len(body))), corr), body...)
	})
	if err := f.fetch(context.Background(), time.Second); err != nil {
		t.Fatal(err)
	}
	if f.set != nil || f.fails != 1 {
		t.Fatalf("after a response without a whole batch: %d bytes left to read, %d failures; want none and one", len(f.set), f.fails)
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestFetchCompressedFromBroker: records a kafka-go Writer compresses
// with each codec come back whole through a broker.
func TestFetchCompressedFromBroker(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "fetch"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	codecs := []compress.Compression{compress.Gzip, compress.Snappy, compress.Lz4, compress.Zstd}
	for i, codec := range codecs {
		w := &kafkago.Writer{Addr: kafkago.TCP(addr), Topic: "fetch", BatchSize: 100, BatchTimeout: time.Millisecond,
			RequiredAcks: kafkago.RequireOne, Compression: codec}
		msgs := make([]kafkago.Message, 100)
		for j := range msgs {
			msgs[j] = kafkago.Message{Key: []byte(codec.String()), Value: []byte(strconv.Itoa(100*i + j))}
		}
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := testPrefetcher(t, ctx, addr, kafkago.FirstOffset, 50*time.Millisecond, 64)
	for i := 0; i < 100*len(codecs); i++ {
		m, err := p.get(time.Now().Add(5 * time.Second))
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if m.Offset != int64(i) || string(m.Value) != strconv.Itoa(i) || string(m.Key) != codecs[i/100].String() {
			t.Fatalf("record %d: offset %d key %q value %q", i, m.Offset, m.Key, m.Value)
		}
	}
}

// TestRoundTripEndsWithContext: a broker that stops in the middle of a
// response does not hold the exchange past the end of its context, and
// one that answers another request's correlation id is refused.
func TestRoundTripEndsWithContext(t *testing.T) {
	// 100 bytes announced, 10 sent, then nothing.
	c := fakeBroker(t, func(corr uint32) []byte {
		return append(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 104), corr), make([]byte, 10)...)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	_, err := c.fetch(ctx, "t", 0, 0, 1, 1<<20, time.Second, readUncommitted)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stalled response: %v, want the context's error", err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("stalled response held the fetch %s", d)
	}

	c = fakeBroker(t, func(corr uint32) []byte {
		return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 4), corr+7)
	})
	if _, err := c.listOffset(context.Background(), "t", 0, -1, readUncommitted); !errors.Is(err, errCorrupt) {
		t.Fatalf("answer to another request: %v, want errCorrupt", err)
	}
}

// fakeBroker returns a connection to a broker that reads one request and
// writes what answer makes of its correlation id.
func fakeBroker(t *testing.T, answer func(corr uint32) []byte) *brokerConn {
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	go func() {
		req := make([]byte, 4096)
		if n, err := server.Read(req); err == nil && n >= 12 {
			server.Write(answer(binary.BigEndian.Uint32(req[8:12])))
		}
	}()
	return &brokerConn{conn: client, clientID: "test"}
}
