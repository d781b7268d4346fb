package detect

import (
	"cmp"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/vigil-ot/vigil/ingest"
)

// Shards are the engines of one process that judge one stream together,
// each on its own goroutine: every engine sees every row, and judges the
// rows of its own groups (group id modulo the number of shards) with its
// own baseline store. Everything about a group (its members, peers and
// peers now, fleet KPIs, quarantine rail, rollout guard, rate limit) and
// about the devices of its groups lives in one engine, so its judgements
// are those of one engine judging everything. What crosses groups is
// handled on its own:
//
//   - the event-time clock, the rows held ahead of it, the partitions and
//     the watermark depend on the input only: every shard keeps them over
//     every row (a few nanoseconds a row), so every shard has the same;
//   - the table of devices per certificate (identity) too;
//   - the automatic quarantines a minute (quarantine.max_per_minute) count
//     every shard's: a shard deciding one waits until the others have
//     judged every row before it, then counts theirs (Shards.recent);
//   - the baseline version an alert carries counts the rows every shard
//     learned before it: the pipeline adds the other shards' (ShardOutput);
//   - rejected rows and counters of the input are shard 0's.
//
// Each output item is keyed by the row that made it (OutputKey), the same
// in every shard, so merging the shards' outputs by key gives one engine's
// output. A device that moves to a group of another shard starts afresh
// there (Stats.ShardMoves): it is exact only while devices stay within
// their shard's groups. The network detectors run on shard 0, which is
// exact only for input without packets.
type Shards struct {
	progress []shardProgress
	mu       sync.Mutex
	// quarantines are the automatic quarantines of every shard still
	// needed by rail, in key order.
	quarantines []shardQuarantine
}

// shardProgress is the key of the row a shard judges next: it has made
// every output item keyed before it. Padded to a cache line of its own.
type shardProgress struct {
	next atomic.Int64
	_    [56]byte
}

type shardQuarantine struct{ seq, ns int64 }

// NewShards returns the shared state of n engine shards.
func NewShards(n int) *Shards {
	return &Shards{progress: make([]shardProgress, n)}
}

// Len returns the number of shards.
func (s *Shards) Len() int { return len(s.progress) }

// OutputKey orders the items of every shard's output: Seq counts the rows
// judged (the same in every shard), Group orders the items made at the end
// of the input (Flush) by group.
type OutputKey struct {
	Seq   int64
	Group int32
}

// Less reports whether k orders before o.
func (k OutputKey) Less(o OutputKey) bool {
	return k.Seq < o.Seq || k.Seq == o.Seq && k.Group < o.Group
}

// shardRole is an engine's place among Shards; zero for an engine that
// judges every group.
type shardRole struct {
	set   *Shards
	index int32
	seq   int64 // rows judged, and batch ends: see OutputKey
	sub   int32 // OutputKey.Group of the items made now
	// alertKeys and quarantineKeys key the items of Engine.box.
	alertKeys, quarantineKeys []OutputKey
	learned                   []int64 // seqs of the rows learned this batch
	// foreignPart is, by registry id of a device of another shard's
	// groups, what deviceState.part is for the shard's own; in pages, so
	// that a fleet arriving device by device is never copied.
	foreignPart ingest.DeviceTable[int32]
	out         *ShardOutput // of the job being run
}

// JoinShards makes e shard index of s. Call it before the first batch,
// then judge with JudgeShard and FlushShard instead of Process and Flush.
func (e *Engine) JoinShards(s *Shards, index int) {
	e.sh.set, e.sh.index = s, int32(index)
}

// ShardOf returns the shard of n that judges the rows of group g (a
// registry id; -1, rows without a group: shard 0).
func ShardOf(g int32, n int) int {
	if g < 0 {
		return 0
	}
	return int(g) % n
}

// owns reports whether the engine judges the rows of group g.
func (e *Engine) owns(g int32) bool {
	return e.sh.set == nil || ShardOf(g, len(e.sh.set.progress)) == int(e.sh.index)
}

// nextRow keys the items made from here on by a new row.
func (s *shardRole) nextRow() {
	if s.set == nil {
		return
	}
	s.seq++
	s.set.progress[s.index].next.Store(s.seq)
}

func (s *shardRole) keyAlert() {
	if s.set != nil {
		s.alertKeys = append(s.alertKeys, OutputKey{s.seq, s.sub})
	}
}

func (s *shardRole) keyQuarantine() {
	if s.set != nil {
		s.quarantineKeys = append(s.quarantineKeys, OutputKey{s.seq, s.sub})
	}
}

func (s *shardRole) noteLearned() {
	if s.set != nil {
		s.learned = append(s.learned, s.seq)
	}
}

// ShardOutput is what one shard made of a batch, for the pipeline to
// merge with the other shards'. The shard fills one handed to it, reusing
// the room of its slices, and keeps nothing of it: the pipeline may merge
// it while the shard judges the next batches into others.
type ShardOutput struct {
	Alerts     []Alert
	Quarantine []QuarantineEvent
	// QuarantineAt[i] is len(Alerts) when Quarantine[i] was made.
	QuarantineAt              []int
	AlertKeys, QuarantineKeys []OutputKey
	// An alert's Baseline (when not 0) is the shard's store version at
	// the row that made it: Version, the version before the batch, plus
	// the rows learned before it. Learned are the keys of the rows the
	// shard learned, in order: the one engine's version is the sum of
	// every shard's.
	Version uint64
	Learned []int64
	// Rejected are the rows the clock refused (shard 0's: every shard
	// refuses the same).
	Rejected []ingest.RejectedRow
	// Status is the status publication the shard made during the job
	// (Engine.PublishStatus), nil for none: the pipeline hands it to the
	// status sink once it has delivered the job's output, before it hands
	// the ShardOutput back.
	Status *StatusUpdate
	status StatusUpdate // Status's room
}

// JudgeShard judges b as the engine's shard (see Shards) into so. It
// neither delivers nor acknowledges b nor releases its record.
func (e *Engine) JudgeShard(b *ingest.Batch, so *ShardOutput) {
	e.startShardOutput(so)
	if b.Record != nil && b.Record.NumRows() > 0 {
		e.judge(b)
	}
	e.sh.nextRow() // the batch detectors' alerts come after every row
	if e.sh.index == 0 {
		for _, d := range e.deps.Extra {
			e.runExtra(d, b)
		}
	}
	if e.status != nil {
		e.publishStatus(false)
	}
	e.endShardOutput(so)
}

// FlushShard is Flush for a shard: what the end of the input made goes
// into so.
func (e *Engine) FlushShard(so *ShardOutput) {
	e.startShardOutput(so)
	e.sh.nextRow()
	e.closeInput()
	e.sh.sub = 0
	if e.status != nil {
		e.publishStatus(true)
	}
	e.endShardOutput(so)
}

// PublishPendingShard is PublishPending for a shard: its publication, if
// any, goes into so.
func (e *Engine) PublishPendingShard(so *ShardOutput) {
	e.startShardOutput(so)
	e.sh.nextRow()
	e.PublishPending()
	e.endShardOutput(so)
}

// ForgetShardDevice is ForgetDevice for a shard: every shard forgets the
// device (the others its partition mark); what that made (a fleet KPI
// restarted, restartFleet) goes into so.
func (e *Engine) ForgetShardDevice(device string, so *ShardOutput) {
	e.startShardOutput(so)
	e.sh.nextRow()
	e.ForgetDevice(device)
	e.endShardOutput(so)
}

// startShardOutput has the engine make its output into so's slices.
func (e *Engine) startShardOutput(so *ShardOutput) {
	sh := &e.sh
	e.box.out.Alerts, e.box.out.Quarantine, e.box.qAt = so.Alerts[:0], so.Quarantine[:0], so.QuarantineAt[:0]
	sh.alertKeys, sh.quarantineKeys, sh.learned = so.AlertKeys[:0], so.QuarantineKeys[:0], so.Learned[:0]
	so.Version = e.deps.Baseline.Version()
	so.Status, e.sh.out = nil, so
}

// endShardOutput hands what the engine made to so, and keeps none of it.
func (e *Engine) endShardOutput(so *ShardOutput) {
	sh := &e.sh
	// every item up to this batch's last key is made
	sh.set.progress[sh.index].next.Store(sh.seq + 1)
	so.Alerts, so.Quarantine, so.QuarantineAt = e.box.out.Alerts, e.box.out.Quarantine, e.box.qAt
	so.AlertKeys, so.QuarantineKeys, so.Learned = sh.alertKeys, sh.quarantineKeys, sh.learned
	so.Rejected, e.rejected = e.rejected, nil
	e.box.out.Alerts, e.box.out.Quarantine, e.box.qAt = nil, nil, nil
	sh.alertKeys, sh.quarantineKeys, sh.learned = nil, nil, nil
	sh.out = nil
}

// judgeForeign is judgeRow for row i of device d, at event time t, whose
// group another shard judges: what every shard keeps of every row.
func (e *Engine) judgeForeign(d int32, i int, t int64) {
	sh := &e.sh
	if ds := e.knownState(d); ds != nil && ds.group >= 0 {
		e.moveOut(d)
	}
	dp := sh.foreignPart.At(d)
	if p := e.cols.part[i]; !e.samePartition(dp, p, t) {
		e.advancePartition(dp, p, t)
	}
	if e.cfg.Identity.Enabled {
		if cert, ok := e.cols.cert.value(i); ok {
			e.certOf(nil, cert).touch(d, t)
		}
	}
}

// moveOut notes that device d, of one of the shard's groups, now reports
// in a group of another shard: it leaves its group, and its partition
// mark goes with its rows. The rest of its state stays behind.
func (e *Engine) moveOut(d int32) {
	ds := e.devices.At(d)
	e.leave(d, ds)
	ds.group = -1
	*e.sh.foreignPart.At(d), ds.part = ds.part, 0
	e.stats.ShardMoves++
}

// moveIn gives device d, new to the shard's groups, the partition mark
// other shards' groups kept for it.
func (e *Engine) moveIn(d int32, ds *deviceState) {
	if fp := e.sh.foreignPart.Get(d); fp != nil && ds.part == 0 {
		ds.part, *fp = *fp, 0
	}
}

// recentQuarantines returns the event times of the last n automatic
// quarantines of every shard before the current row, in order, as qTimes
// holds them for one engine. It waits until every other shard has judged
// every row before this one: an automatic quarantine is rare, and the
// others are judging the same batch, or catching up on the batches
// before it (the pipeline lets shards judge a few batches apart).
func (e *Engine) recentQuarantines(n int, dst []int64) []int64 {
	s, cur := e.sh.set, e.sh.seq
	for i := range s.progress {
		for int32(i) != e.sh.index && s.progress[i].next.Load() < cur {
			runtime.Gosched()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	end, _ := slices.BinarySearchFunc(s.quarantines, cur, bySeq)
	for _, q := range s.quarantines[max(0, end-n):end] {
		dst = append(dst, q.ns)
	}
	return dst
}

// noteQuarantine adds an automatic quarantine at event time ns, made by
// the current row, for every shard's rail; it forgets those no rail needs
// any longer: all but the last n before the slowest shard's row.
func (e *Engine) noteQuarantine(ns int64, n int) {
	s := e.sh.set
	slowest := s.progress[0].next.Load()
	for i := range s.progress {
		slowest = min(slowest, s.progress[i].next.Load())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	at, _ := slices.BinarySearchFunc(s.quarantines, e.sh.seq+1, bySeq)
	s.quarantines = slices.Insert(s.quarantines, at, shardQuarantine{e.sh.seq, ns})
	done, _ := slices.BinarySearchFunc(s.quarantines, slowest, bySeq)
	if done > n {
		s.quarantines = slices.Delete(s.quarantines, 0, done-n)
	}
}

func bySeq(q shardQuarantine, seq int64) int { return cmp.Compare(q.seq, seq) }
