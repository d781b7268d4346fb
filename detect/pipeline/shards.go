package pipeline

import (
	"context"
	"slices"
	"time"

	"github.com/apache/arrow/go/v15/arrow/array"

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
// engine reads every row.
//
// Each call (a batch, the end of the input, a device to forget) is handed
// to every shard as a job; a shard judges its jobs in order, each on a
// goroutine that starts once the shard is done with the one before, so a
// shard runs ahead of the others as far as the jobs handed out allow,
// while the caller merges and delivers the oldest job every shard is done
// with. By default Process delivers its own batch before it returns; with
// JudgeAhead it leaves that many batches judging, so that a shard whose
// core is taken (by the reader, or another shard, or another process)
// catches up later instead of holding every other shard at every batch.
//
// Like an engine, it is fed from one goroutine.
type Sharded struct {
	engines []*detect.Engine
	stores  []*baseline.Store // by shard
	sink    detect.Sink
	status  detect.StatusSink // the shards' publications go there (nil: none)
	clock   func() time.Time
	// current[i] is the job shard i judges (set on its goroutine).
	current []*shardJob
	// behind is SetPartitionBacklog's; partitions are those of the rows
	// handed out so far.
	behind     func(source string, partition int32) bool
	partitions map[backlogKey]struct{}
	// ahead is how many batches Process leaves handed out and not
	// delivered (JudgeAhead).
	ahead int
	// jobs are handed out and not merged yet, oldest first.
	jobs []*shardJob
	// free are, by shard, merged outputs for the next jobs to fill.
	free [][]*detect.ShardOutput
	outs []*detect.ShardOutput // of the job being merged, by shard
	box  detect.Outbox
}

// shardJob is one call handed to every shard.
type shardJob struct {
	b       *ingest.Batch // the batch judged; nil for the other calls
	deliver bool          // what it made goes out once merged: Process's and Flush's
	outs    []*detect.ShardOutput
	done    []chan struct{} // by shard: closed once outs[i] is made
	// now is the wall clock as the job was handed out: every shard judges
	// it against the same (clock.max_skew).
	now time.Time
	// backlog is, by partition, whether it had a backlog as the job was
	// handed out (SetPartitionBacklog).
	backlog map[backlogKey]bool
}

// clockOf returns the clock shard i reads: the one read when its job was
// handed out.
func (s *Sharded) clockOf(i int) func() time.Time {
	if s.clock == nil {
		return nil
	}
	return func() time.Time { return s.current[i].now }
}

// JudgeAhead lets Process return with up to n batches handed to the
// shards and not delivered yet (0: none, the default); Drain and Flush
// deliver them.
func (s *Sharded) JudgeAhead(n int) { s.ahead = n }

// Drain delivers what every batch handed out made, acknowledging each
// (kafka.Drainer): the input is quiet, or the caller is about to read or
// change what the shards keep. It returns the first delivery error.
func (s *Sharded) Drain(ctx context.Context) error { return s.complete(ctx, 0) }

// Len returns the number of shards.
func (s *Sharded) Len() int { return len(s.engines) }

// groupInfos returns every group's summary (baseline.Store.GroupInfos),
// each from the store that learns it.
func (s *Sharded) groupInfos() []baseline.GroupInfo {
	s.wait()
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
	s.wait()
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

// Process hands b to every shard, then merges and delivers the oldest
// batches every shard is done with, and acknowledges each with its
// delivery's error, as detect.Engine.Process does, until at most
// JudgeAhead's batches are left judging. The error is the first delivery
// error.
func (s *Sharded) Process(ctx context.Context, b *ingest.Batch) error {
	s.handOut(b, true, func(e *detect.Engine, so *detect.ShardOutput) { e.JudgeShard(b, so) })
	return s.complete(ctx, s.ahead)
}

// Flush ends the input on every shard and delivers what every batch
// handed out made, what the end made and what earlier failed deliveries
// left over, as detect.Engine.Flush does.
func (s *Sharded) Flush(ctx context.Context) error {
	s.handOut(nil, true, (*detect.Engine).FlushShard)
	return s.complete(ctx, 0)
}

// Stats returns the shards' counters added up (detect.Stats.AddShard),
// once they are done with every job handed out.
func (s *Sharded) Stats() detect.Stats {
	s.wait()
	st := s.engines[0].Stats()
	for _, e := range s.engines[1:] {
		st.AddShard(e.Stats())
	}
	return st
}

// ForgetDevice makes every shard forget device (kafka.DeviceForgetter)
// and returns once they have: the caller goes on to forget the device's
// state elsewhere. What that made goes out with the next delivery. (The
// consumer drains the batches handed out before it calls ForgetDevice.)
func (s *Sharded) ForgetDevice(device string) {
	s.handOut(nil, false, func(e *detect.Engine, so *detect.ShardOutput) { e.ForgetShardDevice(device, so) })
	s.complete(context.Background(), 0)
}

// PublishPending has every shard publish what changed since its last
// publication, once the interval has passed (detect.Engine.PublishPending;
// kafka.StatusPublisher).
func (s *Sharded) PublishPending() {
	s.handOut(nil, false, (*detect.Engine).PublishPendingShard)
	s.complete(context.Background(), s.ahead)
}

// SetPartitionBacklog gives every shard behind (kafka.BacklogReader).
// Every shard must see a partition's backlog as every other shard does,
// or their watermarks would part, and behind may read its source's state
// only from the goroutine that feeds the shards: so it is asked there, as
// each job is handed out, about every partition of the rows handed out
// so far, and each shard reads those answers while it judges the job.
func (s *Sharded) SetPartitionBacklog(behind func(source string, partition int32) bool) {
	s.behind, s.partitions = behind, map[backlogKey]struct{}{}
	for i, e := range s.engines {
		e.SetPartitionBacklog(func(source string, partition int32) bool {
			return s.current[i].backlog[backlogKey{source, partition}]
		})
	}
}

// PartitionIdle is detect.Engine.PartitionIdle.
func (s *Sharded) PartitionIdle() time.Duration { return s.engines[0].PartitionIdle() }

type backlogKey struct {
	source    string
	partition int32
}

// backlogOf notes the partitions of b's rows and returns what behind
// answers now about every partition noted so far.
func (s *Sharded) backlogOf(b *ingest.Batch) map[backlogKey]bool {
	if b != nil && b.Record != nil {
		for _, at := range b.Record.Schema().FieldIndices(ingest.ColPartition) {
			col, ok := b.Record.Column(at).(*array.Int32)
			if !ok {
				continue // a bad batch: not judged
			}
			for i, p := range col.Int32Values() {
				if i == 0 || p != col.Value(i-1) {
					s.partitions[backlogKey{b.Source, p}] = struct{}{}
				}
			}
		}
	}
	m := make(map[backlogKey]bool, len(s.partitions))
	for k := range s.partitions {
		m[k] = s.behind(k.source, k.partition)
	}
	return m
}

// handOut hands a job to every shard: run on the shard's engine, once
// the shard is done with the jobs before; deliver: what it made goes out
// once merged.
func (s *Sharded) handOut(b *ingest.Batch, deliver bool, run func(*detect.Engine, *detect.ShardOutput)) {
	n := len(s.engines)
	j := &shardJob{b: b, deliver: deliver, outs: make([]*detect.ShardOutput, n), done: make([]chan struct{}, n)}
	if s.clock != nil {
		j.now = s.clock()
	}
	if s.behind != nil {
		j.backlog = s.backlogOf(b)
	}
	var prev *shardJob
	if len(s.jobs) > 0 {
		prev = s.jobs[len(s.jobs)-1]
	}
	for i, e := range s.engines {
		if k := len(s.free[i]); k > 0 {
			j.outs[i], s.free[i] = s.free[i][k-1], s.free[i][:k-1]
		} else {
			j.outs[i] = &detect.ShardOutput{}
		}
		j.done[i] = make(chan struct{})
		go func() {
			if prev != nil {
				<-prev.done[i]
			}
			s.current[i] = j
			run(e, j.outs[i])
			close(j.done[i])
		}()
	}
	s.jobs = append(s.jobs, j)
}

// complete merges the oldest jobs, once every shard is done with them,
// until keep are left; it delivers what each batch and Flush made and
// acknowledges each batch with its delivery's error. It returns the first
// delivery error.
func (s *Sharded) complete(ctx context.Context, keep int) error {
	var first error
	for len(s.jobs) > keep {
		j := s.jobs[0]
		for _, d := range j.done {
			<-d
		}
		s.jobs[0], s.jobs = nil, s.jobs[1:]
		s.outs = j.outs
		s.merge()
		var err error
		if j.deliver { // ForgetDevice's and PublishPending's go out with the next delivery
			err = s.box.Deliver(ctx, s.sink)
			if j.b != nil {
				if rej := j.outs[0].Rejected; len(rej) > 0 {
					j.b.Rejected = rej
				}
				j.b.Ack(ctx, err)
				j.b.Release()
			}
		}
		for i, o := range j.outs {
			if o.Status != nil {
				s.status.PublishStatus(o.Status)
			}
			s.free[i] = append(s.free[i], o)
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// drop waits until the shards are done with every job handed out and
// acknowledges its batches with err, without delivering what they made.
func (s *Sharded) drop(err error) {
	s.wait()
	for _, j := range s.jobs {
		if j.b != nil {
			j.b.Ack(context.Background(), err)
			j.b.Release()
		}
		for i, o := range j.outs {
			s.free[i] = append(s.free[i], o)
		}
	}
	clear(s.jobs)
	s.jobs = s.jobs[:0]
}

// wait returns once every shard is done with every job handed out.
func (s *Sharded) wait() {
	if len(s.jobs) == 0 {
		return
	}
	for _, d := range s.jobs[len(s.jobs)-1].done {
		<-d
	}
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
