package pipeline

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/ingest"
)

// Judge is what a source feeds: one engine, or its shards (Sharded).
// Process and Flush are detect.Engine's; Stats reads the counters between
// batches.
type Judge interface {
	Process(ctx context.Context, b *ingest.Batch) error
	Flush(ctx context.Context) error
	Stats() detect.Stats
}

// Sharded judges one stream with several engines, each with its own
// baseline store judging the rows of its own groups (detect.Shards), all
// at once on goroutines of their own, and delivers their output merged in
// input order: byte for byte what one engine would have delivered. Every
// engine reads every row; a batch ends when the slowest engine is done
// with it, so a batch's rows should spread over the groups of every shard
// (a fleet's batches do).
//
// Like an engine, it is fed from one goroutine.
type Sharded struct {
	engines []*detect.Engine
	stores  []*baseline.Store // by shard
	sink    detect.Sink
	clock   func() time.Time
	// now is the wall clock of the batch being judged: every shard
	// judges it against the same (clock.max_skew).
	now     time.Time
	backlog *backlogSnapshot // nil unless SetPartitionBacklog
	outs    []*detect.ShardOutput
	box     detect.Outbox
}

// clockOf returns the clock the shards read: the one read once for the
// batch.
func (s *Sharded) clockOf() func() time.Time {
	if s.clock == nil {
		return nil
	}
	return func() time.Time { return s.now }
}

// Len returns the number of shards.
func (s *Sharded) Len() int { return len(s.engines) }

// groupInfos returns every group's summary (baseline.Store.GroupInfos),
// each from the store that learns it.
func (s *Sharded) groupInfos() []baseline.GroupInfo {
	per := make([][]baseline.GroupInfo, len(s.stores))
	for i, st := range s.stores {
		per[i] = st.GroupInfos()
	}
	var out []baseline.GroupInfo
	for _, gi := range per[0] { // every store has every group, in the same order
		i := detect.ShardOf(gi.ID, len(s.stores))
		if k := slices.IndexFunc(per[i], func(o baseline.GroupInfo) bool { return o.ID == gi.ID }); k >= 0 {
			out = append(out, per[i][k])
		}
	}
	return out
}

// storeStats returns the stores' figures as one store's: groups and
// metrics as every store holds them, the learning state of each group
// from the store that learns it, the devices (each store holds those of
// its groups), the memory and the learned rows of all.
func (s *Sharded) storeStats() baseline.Stats {
	st := s.stores[0].Stats()
	for _, o := range s.stores[1:] {
		os := o.Stats()
		st.Devices += os.Devices
		st.DeviceBytes += os.DeviceBytes
		st.Unlearnable += os.Unlearnable
		st.Version += os.Version
	}
	st.LearningGroups = 0
	for _, gi := range s.groupInfos() {
		if gi.Learning {
			st.LearningGroups++
		}
	}
	return st
}

// Process judges b on every shard, delivers the merged output and
// acknowledges b, as detect.Engine.Process does.
func (s *Sharded) Process(ctx context.Context, b *ingest.Batch) error {
	defer b.Release()
	s.judge(func(e *detect.Engine) *detect.ShardOutput { return e.JudgeShard(b) })
	if rej := s.outs[0].Rejected; len(rej) > 0 {
		b.Rejected = rej
	}
	err := s.box.Deliver(ctx, s.sink)
	b.Ack(ctx, err)
	return err
}

// Flush ends the input on every shard and delivers what that made and
// what earlier failed deliveries left over, as detect.Engine.Flush does.
func (s *Sharded) Flush(ctx context.Context) error {
	s.judge((*detect.Engine).FlushShard)
	return s.box.Deliver(ctx, s.sink)
}

// Stats returns the shards' counters added up (detect.Stats.AddShard).
func (s *Sharded) Stats() detect.Stats {
	st := s.engines[0].Stats()
	for _, e := range s.engines[1:] {
		st.AddShard(e.Stats())
	}
	return st
}

// ForgetDevice makes every shard forget device (kafka.DeviceForgetter); what
// that made goes out with the next delivery.
func (s *Sharded) ForgetDevice(device string) {
	s.judge(func(e *detect.Engine) *detect.ShardOutput { return e.ForgetShardDevice(device) })
}

// SetPartitionBacklog gives every shard behind (kafka.BacklogReader), as
// of the start of each batch: a shard must see a partition's backlog as
// every other shard does, or their watermarks would part.
func (s *Sharded) SetPartitionBacklog(behind func(source string, partition int32) bool) {
	s.backlog = &backlogSnapshot{behind: behind, seen: map[backlogKey]bool{}}
	for _, e := range s.engines {
		e.SetPartitionBacklog(s.backlog.get)
	}
}

// PartitionIdle is detect.Engine.PartitionIdle.
func (s *Sharded) PartitionIdle() time.Duration { return s.engines[0].PartitionIdle() }

// backlogSnapshot answers, for one batch, what behind answered first.
type backlogSnapshot struct {
	behind func(source string, partition int32) bool
	mu     sync.Mutex
	seen   map[backlogKey]bool
}

type backlogKey struct {
	source    string
	partition int32
}

func (b *backlogSnapshot) get(source string, partition int32) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := backlogKey{source, partition}
	v, ok := b.seen[k]
	if !ok {
		v = b.behind(source, partition)
		b.seen[k] = v
	}
	return v
}

// judge runs judge on every shard at once (shard 0 on the calling
// goroutine) and adds their output, merged, to s.box.
func (s *Sharded) judge(judge func(*detect.Engine) *detect.ShardOutput) {
	if s.clock != nil {
		s.now = s.clock()
	}
	if s.backlog != nil {
		clear(s.backlog.seen)
	}
	var wg sync.WaitGroup
	for i := 1; i < len(s.engines); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.outs[i] = judge(s.engines[i])
		}()
	}
	s.outs[0] = judge(s.engines[0])
	wg.Wait()
	s.merge()
}

// merge adds the shards' output to s.box in key order. Within a shard,
// items are in the order it made them; two shards never make items of
// the same key. An alert's baseline version gets the rows the other
// shards learned before it.
func (s *Sharded) merge() {
	type cursor struct{ a, q int }
	cur := make([]cursor, len(s.outs))
	for {
		best, quarantine := -1, false
		var bestKey detect.OutputKey
		for i, o := range s.outs {
			c := &cur[i]
			var k detect.OutputKey
			q := false
			switch {
			case c.q < len(o.Quarantine) && o.QuarantineAt[c.q] == c.a:
				k, q = o.QuarantineKeys[c.q], true
			case c.a < len(o.Alerts):
				k = o.AlertKeys[c.a]
			default:
				continue
			}
			if best < 0 || k.Less(bestKey) {
				best, bestKey, quarantine = i, k, q
			}
		}
		if best < 0 {
			return
		}
		o, c := s.outs[best], &cur[best]
		if quarantine {
			s.box.AddQuarantine(&o.Quarantine[c.q])
			c.q++
			continue
		}
		a := &o.Alerts[c.a]
		c.a++
		if a.Baseline != 0 { // 0: no baseline judged it
			a.Baseline += s.learnedElsewhere(best, bestKey.Seq)
		}
		s.box.AddAlert(a)
	}
}

// learnedElsewhere returns the rows the shards other than shard learned
// before the row of key seq, since they started.
func (s *Sharded) learnedElsewhere(shard int, seq int64) uint64 {
	var n uint64
	for i, o := range s.outs {
		if i != shard {
			before, _ := slices.BinarySearch(o.Learned, seq)
			n += o.Version + uint64(before)
		}
	}
	return n
}
