package detect

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/ingest"
)

// partMark is the event-time progress of one source partition (the
// batch's Source and the observation's partition column; -1 for files):
// partition 0 of one topic and partition 0 of another are apart.
//
// One engine judges the devices of several partitions, and partitions
// advance independently: a backlog, a rebalance or a restored partition
// puts one minutes behind another. Judging a device's absence against the
// newest event time of any partition would declare the devices of the
// slower partitions silent though their reports are simply not read yet.
// So absence is judged against the watermark: the newest event time of the
// slowest active partition. A partition is active while devices report
// through it and it has a backlog at its source (records not handed over
// yet: SetPartitionBacklog), or its newest event time is within
// silence.partition_idle of the newest of all partitions, or it delivered
// rows recently. Only a caught-up partition can be idle: one behind,
// however far, holds the watermark. A partition
// with a backlog delivers its share of batches even when one batch spans
// more than partition_idle; one that delivered nothing while the others
// delivered idleRuns runs each is caught up or dark, and holding the
// watermark at its last event time would blind the detector to every
// device of the instance, its own dead devices included.
//
// "Recently" is counted in runs: sequences of rows from one partition, in
// the order the engine judges them. A Kafka batch never spans partitions,
// so a partition with a backlog makes a run per batch it delivers, as it
// made a batch; but runs depend only on the order of the rows, not on
// where batches begin and end, so cutting the same rows into other
// batches leaves the watermark as it was. When one partition delivers
// alone (the others caught up or dark), its run would never end and the
// others would never age: a run counts once more for every runChunk rows
// it holds, runChunk being the longest of the partitions' last runs (a
// backlogged batch, or a live stream's few rows), so idleness moves at the
// pace the partitions have been delivering at.
type partMark struct {
	src     int32 // index of the batch's Source in Engine.sources
	part    int32
	high    int64 // newest event time read from the partition
	devices int32 // devices whose latest report came through it
	seq     int64 // Engine.runs when the partition last delivered a row
	lastRun int64 // rows in its last finished run
	// fastFrom: rows from it on (up to high) take samePartition's fast
	// path: high - clock.max_lateness, or math.MaxInt64 while ahead holds
	// rows, so the partition's next row ends or extends them.
	fastFrom int64
	ahead    aheadRun
}

// aheadRun is a partition's latest rows that were ahead of the clock by
// more than clock.max_skew, in a row: see admitAhead.
type aheadRun struct {
	from      int64 // event time of the first
	unclocked bool  // the clock was not set when it began
	n         int32 // distinct devices in devs
	devs      [maxConfirmRows]int32
	held      []heldRow // the rows, each a batch of its own, judged if the run is confirmed
}

// heldRow is a row kept until the rows after it confirm or drop it.
type heldRow struct {
	b     *ingest.Batch // one row, its set members, its Source
	src   int32         // index in Engine.sources
	part  int32         // its position in the source, for Batch.Rejected
	off   int64
	dev   int32
	t     int64 // its event time
	clock int64 // the clock when it came
}

// idleRuns is how many runs per active partition the engine judges
// without a row of a partition before that partition may count as idle.
const idleRuns = 16

// samePartition notes the current row of a device, read from partition p
// at event time t, when it is like most rows: the partition of the row
// before, the device's already, and not past its newest time, so nothing
// moves but the partition's run mark. It is small enough to inline, and
// reports false, having done nothing, for the others: the caller then
// calls advancePartition.
// dp is the device's partition mark (deviceState.part).
func (e *Engine) samePartition(dp *int32, p int32, t int64) bool {
	if idx := e.lastPart; idx < len(e.parts) {
		if pm := &e.parts[idx]; pm.part == p && pm.src == e.src && int(*dp) == idx+1 && t <= pm.high && t >= pm.fastFrom && e.runLen < e.runTick {
			pm.seq = e.runs
			e.runLen++
			return true
		}
	}
	return false
}

// advancePartition notes the current row of a device (its partition mark
// dp), read from partition p at event time t, and keeps e.wm up to date.
// It reports whether the row is late: further behind the partition's
// newest event time than clock.max_lateness.
func (e *Engine) advancePartition(dp *int32, p int32, t int64) (late bool) {
	idx := e.lastPart
	changed := false
	if idx >= len(e.parts) || e.parts[idx].part != p || e.parts[idx].src != e.src {
		idx = e.partIndex(p)
		e.newRun(idx)
		changed = len(e.parts) > 1
	}
	if e.runLen++; e.runLen > e.runTick { // a long run counts again
		e.runs++
		e.runTick += e.runChunk
		changed = true
	}
	pm := &e.parts[idx]
	pm.seq = e.runs
	if len(pm.ahead.held) > 0 { // an accepted row ends the rows ahead: they were alone
		e.dropAhead(pm)
	}
	late = t < subSat(pm.high, int64(e.cfg.Clock.MaxLateness))
	if int(*dp) != idx+1 {
		if *dp > 0 {
			e.parts[*dp-1].devices--
		}
		*dp = int32(idx + 1)
		pm.devices++
		changed = true
	}
	if t > pm.high {
		pm.high = t
		changed = true
	}
	pm.fastFrom = subSat(pm.high, int64(e.cfg.Clock.MaxLateness))
	if changed {
		e.updateWatermark()
	}
	return late
}

// partIndex returns the index in e.parts of partition p of the current
// source, adding it.
func (e *Engine) partIndex(p int32) int {
	idx := slices.IndexFunc(e.parts, func(m partMark) bool { return m.part == p && m.src == e.src })
	if idx < 0 {
		idx = len(e.parts)
		e.parts = append(e.parts, partMark{src: e.src, part: p, high: math.MinInt64, fastFrom: math.MinInt64})
	}
	return idx
}

// admitAhead decides on row i of device d at event time t, which is
// further ahead of the clock than clock.max_skew (or came before any
// clock), and reports whether to judge it now. It judges the rows it held
// first when the row confirms them.
//
// The clock is the newest event time of the rows accepted so far, across
// partitions: one record dated in 2030 must not move it, or every later
// row would look years late, every device silent, every decay broken. So a
// row ahead is held back, neither judged nor learned, and moves nothing.
// But a stream may resume after a gap, and a stream's first row has no
// clock to be judged against. Both are the same case: the rows ahead of a
// partition, in a row (a row of the partition accepted in between ends
// them), agree on a new time when each lies within max_skew of the first;
// once clock.confirm_rows of them agree, from as many distinct devices as
// the partition carries (up to confirm_rows), the held ones are judged in
// their order and then the last. Otherwise they are dropped and counted: a
// lone future record is followed by rows of the present, which end its
// run, and a device whose clock is wrong reports between the others. With
// a wall clock (a live consumer), a row further ahead of it than max_skew
// is rejected at once, however many agree.
//
// A held row is judged when the row that confirms it arrives, perhaps in
// a later batch: its own batch is acknowledged before that, so a crash in
// between loses it (as if rejected), and its alerts go out with the later
// batch. A restored baseline sets the clock where it left off
// (NewEngine), so a restart holds nothing back.
func (e *Engine) admitAhead(f *baseline.Frame, b *ingest.Batch, i int, d int32, t int64) bool {
	if t > e.wallLimit {
		e.stats.FutureRows++
		e.reject(e.src, e.cols.part[i], e.cols.off[i], e.reg.DeviceName(d), ingest.RejectFutureTime,
			fmt.Sprintf("event time %s is %s ahead of the wall clock (clock.max_skew %s)",
				timeText(t), roughDuration(t-subSat(e.wallLimit, int64(e.cfg.Clock.MaxSkew))), e.cfg.Clock.MaxSkew))
		return false
	}
	pm := &e.parts[e.partIndex(e.cols.part[i])]
	r := &pm.ahead
	if len(r.held) == 0 || absDiff(t, r.from) > int64(e.cfg.Clock.MaxSkew) {
		e.dropAhead(pm)
		r.from, r.unclocked = t, e.clock == math.MinInt64
	}
	if !slices.Contains(r.devs[:r.n], d) && int(r.n) < e.cfg.Clock.ConfirmRows {
		r.devs[r.n] = d
		r.n++
	}
	confirm := int32(e.cfg.Clock.ConfirmRows)
	if int32(len(r.held))+1 < confirm || r.n < min(confirm, max(1, pm.devices)) {
		r.held = append(r.held, e.holdRow(f, b, i))
		pm.fastFrom = math.MaxInt64 // the partition's next row ends or extends the run
		return false
	}
	held, from := r.held, r.from
	r.held, r.n = nil, 0 // judging the held rows may append to e.parts: pm is not used after this
	e.setClock(max(e.clock, from))
	e.judgeHeld(held, f, b)
	e.sh.nextRow() // the row's own items come after the held rows'
	return true
}

// dropAhead drops the rows pm held, counting them and reporting them
// rejected.
func (e *Engine) dropAhead(pm *partMark) {
	r := &pm.ahead
	for k := range r.held {
		h := &r.held[k]
		if r.unclocked {
			e.stats.UnclockedRows++
			e.reject(h.src, h.part, h.off, e.reg.DeviceName(h.dev), ingest.RejectUnclockedTime,
				fmt.Sprintf("event time %s came before the stream had a clock, and fewer than clock.confirm_rows %d rows within clock.max_skew %s of it followed",
					timeText(h.t), e.cfg.Clock.ConfirmRows, e.cfg.Clock.MaxSkew))
		} else {
			e.stats.FutureRows++
			e.reject(h.src, h.part, h.off, e.reg.DeviceName(h.dev), ingest.RejectFutureTime,
				fmt.Sprintf("event time %s is %s ahead of the stream (clock.max_skew %s), and fewer than clock.confirm_rows %d rows agreed with it",
					timeText(h.t), roughDuration(h.t-h.clock), e.cfg.Clock.MaxSkew, e.cfg.Clock.ConfirmRows))
		}
		h.b.Release()
		*h = heldRow{}
	}
	r.held, r.n = r.held[:0], 0
}

// reject notes a row judging refused: for Batch.Rejected when it has a
// position to dead-letter (Kafka; files have none), and for Deps.Rejected.
func (e *Engine) reject(src, part int32, off int64, device, reason, detail string) {
	r := ingest.RejectedRow{Source: e.sources[src], Partition: part, Offset: off,
		Reason: reason, Detail: detail, Device: device, StreamTime: max(e.clock, 0)}
	if e.deps.Rejected != nil {
		e.deps.Rejected(r)
	}
	if off >= 0 {
		e.rejected = append(e.rejected, r)
	}
}

func timeText(t int64) string { return time.Unix(0, t).UTC().Format(time.RFC3339Nano) }

// roughDuration writes d in its two largest units from years down to
// days, then as time.Duration does, to the second.
func roughDuration(d int64) string {
	const day, year = 24 * time.Hour, 365 * 24 * time.Hour
	switch dd := time.Duration(d); {
	case dd >= year:
		return fmt.Sprintf("%dy%dd", dd/year, dd%year/day)
	case dd >= day:
		return fmt.Sprintf("%dd%dh", dd/day, dd%day/time.Hour)
	default:
		return dd.Round(time.Second).String()
	}
}

// holdRow copies row i of the bound batch b into a batch of its own.
func (e *Engine) holdRow(f *baseline.Frame, b *ingest.Batch, i int) heldRow {
	if e.holdBuilder == nil {
		e.holdBuilder = ingest.NewObservationBuilder(nil, e.reg, nil)
	}
	c := &e.cols
	r := ingest.Row{
		TimeNanos: int64(c.ts[i]), Device: e.reg.DeviceName(c.dev[i]), Group: e.reg.GroupName(c.grp[i]),
		Partition: c.part[i], Offset: c.off[i],
	}
	r.SrcIP, _ = c.srcIP.value(i)
	r.ClientID, _ = c.clientID.value(i)
	r.Cert, _ = c.cert.value(i)
	r.Firmware, _ = c.fw.value(i)
	for j := range f.NumMetrics() {
		if name := f.MetricName(j); name != "" {
			if v, ok := f.Value(i, j); ok {
				r.Metrics = append(r.Metrics, ingest.Metric{Name: name, Value: v})
			}
		}
	}
	for _, m := range b.Sets {
		if m.Row == int32(i) {
			r.Sets = append(r.Sets, ingest.SetMember{Set: strings.Clone(m.Set), Value: strings.Clone(m.Value)})
		}
	}
	e.holdBuilder.Append(&r)
	rec, sets := e.holdBuilder.NewRecord()
	hb := ingest.NewBatch(rec, nil)
	hb.Sets, hb.Source = sets, b.Source
	return heldRow{b: hb, src: e.src, part: c.part[i], off: c.off[i], dev: c.dev[i], t: r.TimeNanos, clock: e.clock}
}

// judgeHeld judges the held rows, then binds the batch b being judged
// (its frame f) again.
func (e *Engine) judgeHeld(held []heldRow, f *baseline.Frame, b *ingest.Batch) {
	src, setAt, row := e.src, e.setAt, e.row
	for _, h := range held {
		e.src, e.setAt = h.src, 0
		hf := e.deps.Baseline.Bind(h.b.Record)
		if hf.Err() != nil || !e.bindColumns(h.b.Record) {
			panic("BUG: a held row does not bind: " + fmt.Sprint(hf.Err()))
		}
		e.bindMetrics(hf)
		e.judgeRow(hf, h.b, 0)
		h.b.Release()
	}
	e.src, e.setAt, e.row = src, setAt, row
	if e.deps.Baseline.Bind(b.Record) != f || !e.bindColumns(b.Record) {
		panic("BUG: the batch being judged does not bind again")
	}
	e.bindMetrics(f)
}

// setClock sets the clock to t and the limits that follow from it.
func (e *Engine) setClock(t int64) {
	e.clock = t
	e.clockLimit = math.MinInt64
	if t != math.MinInt64 {
		e.clockLimit = min(addSat(t, int64(e.cfg.Clock.MaxSkew)), e.wallLimit)
	}
}

// addSat and subSat add and subtract a non-negative d, saturating.
func addSat(t, d int64) int64 {
	if t > math.MaxInt64-d {
		return math.MaxInt64
	}
	return t + d
}

func subSat(t, d int64) int64 {
	if t < math.MinInt64+d {
		return math.MinInt64
	}
	return t - d
}

// newRun starts a run of rows from partition idx.
func (e *Engine) newRun(idx int) {
	if e.lastPart < len(e.parts) {
		e.parts[e.lastPart].lastRun = e.runLen
	}
	e.lastPart = idx
	e.runs++
	e.runLen = 0
	e.runTick = math.MaxInt64 // one partition: idleness does not matter
	if len(e.parts) > 1 {
		e.runChunk = 1
		for i := range e.parts {
			e.runChunk = max(e.runChunk, e.parts[i].lastRun)
		}
		e.runTick = e.runChunk
	}
}

// setSource makes source the one the rows judged next were read from.
// Sources are few (the topics of one instance), so a scan per batch costs
// nothing next to its rows.
func (e *Engine) setSource(source string) {
	i := slices.Index(e.sources, source)
	if i < 0 {
		i = len(e.sources)
		e.sources = append(e.sources, source)
	}
	e.src = int32(i)
}

// updateWatermark sets e.wm to the newest event time of the slowest active
// partition. Partitions are few (those one instance owns), so a scan when
// one of them advances costs a few nanoseconds.
func (e *Engine) updateWatermark() {
	top := int64(math.MinInt64)
	active := int64(0)
	for i := range e.parts {
		if e.parts[i].devices > 0 {
			active++
			top = max(top, e.parts[i].high)
		}
	}
	if top == math.MinInt64 {
		e.wm = math.MinInt64
		return
	}
	wm := top
	idle := top - int64(e.cfg.Silence.PartitionIdle)
	for i := range e.parts {
		pm := &e.parts[i]
		if pm.devices > 0 && pm.high < wm && (pm.high >= idle || e.runs-pm.seq <= idleRuns*active || e.behind(pm)) {
			wm = pm.high
		}
	}
	e.wm = wm
}

// behind reports whether pm's source says it has records not handed over
// yet.
func (e *Engine) behind(pm *partMark) bool {
	return e.backlog != nil && e.backlog(e.sources[pm.src], pm.part)
}

// SetPartitionBacklog gives the engine its source's knowledge of backlog:
// behind(source, partition) reports whether the partition has records
// not handed to the engine yet (the Kafka consumer's lag). A partition
// with a backlog holds the watermark and its devices are not judged
// silent, however far behind the others it is in event time: its
// reports are unread, not missing. Without it (files) idleness is judged
// from event time and runs alone. Call it before the first batch; behind
// is called during Process.
func (e *Engine) SetPartitionBacklog(behind func(source string, partition int32) bool) {
	e.backlog = behind
}

// PartitionIdle returns silence.partition_idle: a caught-up partition
// further behind the newest than this in event time no longer holds the
// watermark (kafka.BacklogReader).
func (e *Engine) PartitionIdle() time.Duration { return e.cfg.Silence.PartitionIdle }

// Watermark returns the event time absence is judged against: the newest
// event time of the slowest active source partition (math.MinInt64 before
// the first row). For tests and diagnostics.
func (e *Engine) Watermark() int64 { return e.wm }

// ForgetDevice drops everything the engine keeps about device: its alarm
// states (self, peer, peers now, joint), silence deadline, identity history, rule windows, quarantine
// episode and group membership; its group's fleet KPIs start learning
// again (restartFleet). The Kafka consumer calls it for the devices
// of a partition that moved to another instance (kafka.DeviceForgetter), so
// this instance neither judges them silent nor holds stale alarms for them;
// the new owner judges them from then on. An alarm still open is dropped
// here without a clear: the new owner restores it with the device's
// changelog record (UnmarshalDeviceAlarms) and clears it.
func (e *Engine) ForgetDevice(device string) {
	d, ok := e.reg.LookupDevice(device)
	if fp := e.sh.foreignPart.Get(d); ok && fp != nil && *fp > 0 { // a device of another shard's groups
		e.parts[*fp-1].devices--
		*fp = 0
		e.updateWatermark()
	}
	ds := e.knownState(d)
	if !ok || ds == nil {
		return
	}
	if ds.group >= 0 {
		e.restartFleet(ds.group)
	}
	e.dropDevice(d, ds, false)
}

// dropDevice drops the engine's state of device d (ds): ForgetDevice,
// and an eviction (evicting: its group's members may change order).
func (e *Engine) dropDevice(d int32, ds *deviceState, evicting bool) {
	if ds.group >= 0 {
		gs := &e.groups[ds.group]
		e.silenceLeave(gs, d, ds)
		e.leaveMembers(gs, d, evicting)
		if ds.q != nil && ds.q.action == qQuarantined && gs.quarantined > 0 {
			gs.quarantined--
		}
	}
	if ds.part > 0 {
		e.parts[ds.part-1].devices--
	}
	*ds = deviceState{}
	e.peersNow.forget(d)
	delete(e.joint.alarms, d)
	e.updateWatermark()
}
