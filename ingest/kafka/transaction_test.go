package kafka

import (
	"encoding/binary"
	"hash/crc32"
	"io"
	"log/slog"
	"slices"
	"testing"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// withProducer sets the producer id of a batch appendBatch made and
// signs it again.
func withProducer(batch []byte, pid int64) []byte {
	binary.BigEndian.PutUint64(batch[43:], uint64(pid))
	binary.BigEndian.PutUint32(batch[17:], crc32.Checksum(batch[21:], crc32.MakeTable(crc32.Castagnoli)))
	return batch
}

// txnLog is a partition written by transactional producers, as a broker
// stores it, with what read_committed must return.
type txnLog struct {
	set       []byte
	aborted   []abortedTxn // every aborted transaction, with its marker's offset in ends
	ends      []int64
	committed []int64 // offsets a read_committed consumer reads
	next      int64
}

// newTxnLog plays script: each byte picks one of three producers and
// either a transactional batch of one to three records (opening a
// transaction if the producer has none open), a COMMIT or an ABORT marker
// ending the producer's transaction, or, without one open, a plain batch.
// Open transactions are committed at the end.
func newTxnLog(script []byte) *txnLog {
	l := &txnLog{}
	type open struct {
		first int64
		offs  []int64
	}
	txns := map[int64]*open{}
	marker := func(pid int64, commit bool) {
		typ := uint16(0)
		if commit {
			typ = 1
		}
		key := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 0), typ)
		b := appendBatch(nil, l.next, 0x10|0x20, 0, l.next, []testRecord{{key: key, value: make([]byte, 6)}}, 0)
		l.set = append(l.set, withProducer(b, pid)...)
		tx := txns[pid]
		if commit {
			l.committed = append(l.committed, tx.offs...)
		} else {
			l.aborted = append(l.aborted, abortedTxn{producerID: pid, firstOffset: tx.first})
			l.ends = append(l.ends, l.next)
		}
		delete(txns, pid)
		l.next++
	}
	for _, op := range script {
		pid := int64(100 + op%3)
		tx := txns[pid]
		switch kind := op / 3 % 4; {
		case kind < 2:
			n := int64(1 + op>>5%3)
			var recs []testRecord
			for i := int64(0); i < n; i++ {
				recs = append(recs, testRecord{offsetDelta: i, value: []byte("v")})
			}
			b := appendBatch(nil, l.next, 0x10, int32(n-1), l.next, recs, 0)
			l.set = append(l.set, withProducer(b, pid)...)
			if tx == nil {
				tx = &open{first: l.next}
				txns[pid] = tx
			}
			for i := int64(0); i < n; i++ {
				tx.offs = append(tx.offs, l.next+i)
			}
			l.next += n
		case tx != nil:
			marker(pid, kind == 2)
		default:
			l.set = appendBatch(l.set, l.next, 0, 0, l.next, []testRecord{{value: []byte("plain")}}, 0)
			l.committed = append(l.committed, l.next)
			l.next++
		}
	}
	for _, pid := range []int64{100, 101, 102} {
		if txns[pid] != nil {
			marker(pid, true)
		}
	}
	slices.Sort(l.committed)
	return l
}

// response is the Fetch v4 response body a broker sends for a fetch from
// offset from: the aborted transactions that end at or after it, newest
// first (a broker need not sort them).
func (l *txnLog) response(from int64) []byte {
	var resp []byte
	resp = binary.BigEndian.AppendUint32(resp, 0)
	resp = binary.BigEndian.AppendUint32(resp, 1)
	resp = appendString(resp, "t")
	resp = binary.BigEndian.AppendUint32(resp, 1)
	resp = binary.BigEndian.AppendUint32(resp, 0)
	resp = binary.BigEndian.AppendUint16(resp, 0)
	resp = binary.BigEndian.AppendUint64(resp, uint64(l.next))
	resp = binary.BigEndian.AppendUint64(resp, uint64(l.next))
	listed := l.listed(from)
	resp = binary.BigEndian.AppendUint32(resp, uint32(len(listed)))
	for _, a := range listed {
		resp = binary.BigEndian.AppendUint64(resp, uint64(a.producerID))
		resp = binary.BigEndian.AppendUint64(resp, uint64(a.firstOffset))
	}
	return appendBytes(resp, l.set)
}

func (l *txnLog) listed(from int64) []abortedTxn {
	var out []abortedTxn
	for i := len(l.aborted) - 1; i >= 0; i-- {
		if l.ends[i] >= from {
			out = append(out, l.aborted[i])
		}
	}
	return out
}

// readCommittedSet reads resp from offset from as a read_committed
// fetcher does, and returns the offsets read and the next one to fetch.
func readCommittedSet(t *testing.T, resp []byte, from int64) ([]int64, int64) {
	t.Helper()
	res, err := parseFetchResponse(resp, "t", 0)
	if err != nil {
		t.Fatal(err)
	}
	f := newPartitionFetcher(kafkago.ReaderConfig{Topic: "t", IsolationLevel: kafkago.ReadCommitted}, from, slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.load(res)
	var got []int64
	for {
		var m kafkago.Message
		ok, err := f.nextInResponse(&m)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return got, f.offset
		}
		got = append(got, m.Offset)
	}
}

// FuzzAbortedTransactions: under read_committed the fetcher reads exactly
// the records of committed transactions and plain batches, as franz-go's
// kgo.ProcessFetchPartition does with the same response, and moves past
// every marker.
func FuzzAbortedTransactions(f *testing.F) {
	f.Add([]byte{0, 1, 9, 0, 10, 4, 7, 2}, int64(0)) // interleaved: 100 aborts, 101 commits, 100 again
	f.Add([]byte{0, 9, 0, 6, 9}, int64(1))           // one producer: aborted, committed, plain
	f.Add([]byte{0, 9, 0, 9, 3, 0, 6}, int64(0))     // one producer: two aborted, listed newest first
	f.Add([]byte{9, 0, 0x20, 9, 3, 1, 10}, int64(3))
	f.Fuzz(func(t *testing.T, script []byte, from int64) {
		if len(script) > 64 {
			return
		}
		l := newTxnLog(script)
		if l.next == 0 {
			return
		}
		from = min(max(from, 0), l.next)
		want := []int64{}
		for _, o := range l.committed {
			if o >= from {
				want = append(want, o)
			}
		}
		resp := l.response(from)
		got, next := readCommittedSet(t, resp, from)
		if !slices.Equal(got, want) {
			t.Fatalf("script %v from %d: read %v, want %v", script, from, got, want)
		}
		if next != l.next {
			t.Fatalf("script %v from %d: next offset %d, want %d (past the last marker)", script, from, next, l.next)
		}

		rp := &kmsg.FetchResponseTopicPartition{HighWatermark: l.next, LastStableOffset: l.next, RecordBatches: l.set}
		for _, a := range l.listed(from) {
			rp.AbortedTransactions = append(rp.AbortedTransactions, kmsg.FetchResponseTopicPartitionAbortedTransaction{ProducerID: a.producerID, FirstOffset: a.firstOffset})
		}
		fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Offset: from, IsolationLevel: kgo.ReadCommitted(), Topic: "t"}, rp, kgo.DefaultDecompressor(), nil)
		kgoGot := []int64{}
		for _, r := range fp.Records {
			kgoGot = append(kgoGot, r.Offset)
		}
		if !slices.Equal(kgoGot, want) {
			t.Fatalf("script %v from %d: kgo reads %v, the model %v", script, from, kgoGot, want)
		}
	})
}
