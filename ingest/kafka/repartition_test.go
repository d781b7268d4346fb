package kafka

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/vigil-ot/vigil/ingest"
)

// byGroupLog is a by-group partition as the repartition stage writes it:
// records and markers of several sources in the order they arrived.
type byGroupLog struct{ msgs []kafkago.Message }

func (l *byGroupLog) record(src int32, srcOffset int64, sec int64) {
	m := sourceMark{src: partKey{"telemetry", src}, offset: srcOffset, time: sec * int64(time.Second)}
	l.msgs = append(l.msgs, kafkago.Message{Offset: int64(len(l.msgs)), Value: []byte{byte(sec)},
		Headers: []kafkago.Header{{Key: HeaderSource, Value: appendSourceMark(nil, &m)}}})
}

func (l *byGroupLog) marker(src int32, next, sec int64, caughtUp bool) {
	m := sourceMark{marker: true, caughtUp: caughtUp, src: partKey{"telemetry", src}, offset: next, time: sec * int64(time.Second)}
	l.msgs = append(l.msgs, kafkago.Message{Offset: int64(len(l.msgs)),
		Headers: []kafkago.Header{{Key: HeaderSource, Value: appendSourceMark(nil, &m)}}})
}

// testMerger returns the merger of sources telemetry/0 and telemetry/1 over
// a prefetcher that hands out msgs one chunk each, then nothing (more
// false) or stops.
func testMerger(msgs []kafkago.Message, more bool) *merger {
	p := &prefetcher{out: make(chan *chunk, len(msgs)+1), free: make(chan *chunk, len(msgs)+1), next: -1, hwm: -1}
	for _, m := range msgs {
		p.out <- &chunk{msgs: []kafkago.Message{m}, end: m.Offset + 1, hwm: int64(len(msgs))}
	}
	if !more {
		close(p.out)
	}
	c := &Consumer{cfg: ingest.DefaultKafkaConfig(), metrics: NewMetrics(), sources: []partKey{{"telemetry", 0}, {"telemetry", 1}}}
	return c.newMerger(p) // max_event_time_skew 1m
}

// merged reads m until it has nothing more within a short wait, and
// returns the values (event seconds) of what it handed on.
func merged(t *testing.T, m *merger) []byte {
	t.Helper()
	var out []byte
	for {
		rec, err := m.get(time.Now().Add(20 * time.Millisecond))
		switch {
		case errors.Is(err, errPassed):
			continue
		case err != nil:
			return out
		}
		out = append(out, rec.Value...)
	}
}

// TestMergerEventTimeOrder: the records of two sources, written to a
// by-group partition a whole batch of one source after the other's, come
// out in event-time order, none before every source was heard of, and
// records written twice (a rebalance of the repartition stage) come out
// once.
func TestMergerEventTimeOrder(t *testing.T) {
	var l byGroupLog
	l.record(0, 10, 1)
	l.record(0, 11, 3)
	l.record(0, 12, 5)
	l.marker(0, 13, 5, false)
	l.record(1, 20, 2)
	l.record(1, 21, 4)
	l.record(0, 11, 3) // written again
	l.record(1, 22, 6)
	l.marker(1, 23, 6, true)
	l.marker(0, 13, 5, true)
	m := testMerger(l.msgs[:4], true)
	if rec, err := m.get(time.Now().Add(20 * time.Millisecond)); err == nil {
		t.Fatalf("a record (t=%d) went before the other source was heard of", rec.Value[0])
	}
	if next, _ := m.position(); next != 0 {
		t.Errorf("position %d with every record waiting; want 0", next)
	}

	m = testMerger(l.msgs, false)
	if got := merged(t, m); !bytes.Equal(got, []byte{1, 2, 3, 4, 5, 6}) {
		t.Errorf("merged event times %v; want 1..6", got)
	}
	if n := m.dups.Get(); n != 1 {
		t.Errorf("%d duplicates dropped; want 1", n)
	}
}

// TestMergerWaitsForBusySource: a source that marked an earlier event
// time and was not caught up holds later records back for as long as it
// takes; one that was caught up holds them back only when they are more
// than the skew past its mark, and then for maxWait at most.
func TestMergerWaitsForBusySource(t *testing.T) {
	for _, c := range []struct {
		name      string
		caughtUp  bool
		sec       int64 // of the waiting record; source 1 marked 0
		maxWait   time.Duration
		wantValue bool
	}{
		{"busy", false, 1, time.Millisecond, false},
		{"caught up, within the skew", true, 30, time.Hour, true},
		{"caught up, past the skew", true, 120, time.Hour, false},
		{"caught up, past the skew, waited out", true, 120, time.Millisecond, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var l byGroupLog
			l.marker(1, 5, 0, c.caughtUp)
			l.record(0, 1, c.sec)
			m := testMerger(l.msgs, true)
			m.maxWait = c.maxWait
			got := merged(t, m)
			if (len(got) > 0) != c.wantValue {
				t.Errorf("handed on %v; want a record: %v", got, c.wantValue)
			}
		})
	}
}

// TestMergerBounded: records held back by a source that stopped (its
// repartition worker died) wait at most maxQueued at a time: past that the
// first goes, counted.
func TestMergerBounded(t *testing.T) {
	var l byGroupLog
	l.marker(1, 5, 0, false)
	for i := int64(1); i <= 4; i++ {
		l.record(0, i, i)
	}
	m := testMerger(l.msgs, true)
	m.maxQueued = 3
	if got := merged(t, m); !bytes.Equal(got, []byte{1, 2}) {
		t.Errorf("handed on %v; want 1 and 2, so that no more than 3 wait", got)
	}
	if n := m.timeouts.Get(); n != 2 {
		t.Errorf("%d records counted as forced; want 2", n)
	}
}

// TestMergerPosition: the position after some records went is the first
// record still waiting, so that a restart reads it again (the devices'
// offsets skip what was judged: TestSnapshotCarriesDeviceOffsets).
func TestMergerPosition(t *testing.T) {
	var l byGroupLog
	l.record(0, 10, 5) // offset 0
	l.record(1, 20, 1) // offset 1
	l.marker(1, 21, 1, false)
	m := testMerger(l.msgs, true)
	rec, err := m.get(time.Now().Add(20 * time.Millisecond))
	if err != nil || rec.Value[0] != 1 {
		t.Fatalf("got %v, %v; want the record at t=1", rec, err)
	}
	if _, err := m.get(time.Now().Add(20 * time.Millisecond)); err == nil {
		t.Fatal("the record at t=5 went while source 1 may still send earlier ones")
	}
	if next, _ := m.position(); next != 0 {
		t.Errorf("position %d; want 0, the record still waiting", next)
	}
}

func FuzzSourceMark(f *testing.F) {
	for _, m := range []sourceMark{
		{to: 3, src: partKey{"telemetry", 2}, offset: 42, time: 1e18},
		{marker: true, caughtUp: true, to: 0, src: partKey{"t", 0}, offset: 0, time: -1},
	} {
		f.Add(appendSourceMark(nil, &m))
	}
	f.Add([]byte{4, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, v []byte) {
		var m sourceMark
		if parseSourceMark(v, &m) != nil {
			return
		}
		if again := appendSourceMark(nil, &m); !bytes.Equal(again, v) {
			t.Fatalf("%x does not round-trip: %x", v, again)
		}
		if p := (byGroupBalancer{}).Balance(kafkago.Message{Headers: []kafkago.Header{{Key: HeaderSource, Value: v}}}, 0, 1, 2); p < 0 || p > 2 {
			t.Fatalf("balanced to partition %d of 0..2", p)
		}
	})
}

// TestSnapshotCarriesDeviceOffsets: a by-group partition hands rows on
// past its committable offset (the first record still waiting in the
// merge), so a device's checkpoint says the offset after its own last
// row, and a restore from it skips exactly the rows already judged;
// devices without rows past it say the partition's offset.
func TestSnapshotCarriesDeviceOffsets(t *testing.T) {
	reg := ingest.NewRegistry()
	codec := deviceCodec{state: "s"}
	c := &Consumer{state: codec, reg: reg, metrics: NewMetrics(), changelogCh: make(chan changelogWrite, 1), log: slog.New(slog.DiscardHandler)}
	ahead, behind := reg.DeviceID("plc-ahead"), reg.DeviceID("plc-behind")
	ps := &partState{topic: "vigil-by-group", partition: 0, owned: map[int32]struct{}{}, dirty: map[int32]struct{}{},
		devNext: map[int32]int64{}}
	ps.cp = newCheckpointer(1, 100) // every batch below 100 acknowledged
	ps.processed = 100
	for _, id := range []int32{ahead, behind} {
		ps.owned[id], ps.dirty[id] = struct{}{}, struct{}{}
	}
	ps.devNext[ahead], ps.devNext[behind] = 131, 57
	c.snapshot(context.Background(), ps, nil)
	w := <-c.changelogCh
	entries := map[string]int64{}
	for _, m := range w.msgs {
		if dev, ok := strings.CutPrefix(string(m.Key), changelogPrefix(ps.topic, ps.partition)+"d/"); ok {
			e, err := parseDeviceValue(m.Value)
			if err != nil {
				t.Fatal(err)
			}
			entries[dev] = e.next
		}
	}
	if entries["plc-ahead"] != 131 || entries["plc-behind"] != 100 {
		t.Errorf("checkpointed offsets %v; want plc-ahead 131 (its last row), plc-behind 100 (the partition's)", entries)
	}

	// Kept in memory across a rebalance, the partition is read again
	// from 100: plc-ahead's rows up to 130 were judged.
	f := c.aheadFilter(ps)
	for _, r := range []struct {
		dev     string
		off     int64
		covered bool
	}{{"plc-ahead", 99, true}, {"plc-ahead", 130, true}, {"plc-ahead", 131, false}, {"plc-behind", 100, false}} {
		if got := f.covered(r.dev, r.off); got != r.covered {
			t.Errorf("read again from 100: %s at %d judged already: %v, want %v", r.dev, r.off, got, r.covered)
		}
	}
}
