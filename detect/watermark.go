package detect

import (
	"math"
	"slices"
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
// through it and its newest event time is within silence.partition_idle of
// the newest of all partitions or it delivered rows recently. A partition
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
}

// idleRuns is how many runs per active partition the engine judges
// without a row of a partition before that partition may count as idle.
const idleRuns = 16

// samePartition notes the current row of device ds, read from partition p
// at event time t, when it is like most rows: the partition of the row
// before, the device's already, and not past its newest time, so nothing
// moves but the partition's run mark. It is small enough to inline, and
// reports false, having done nothing, for the others: the caller then
// calls advancePartition.
func (e *Engine) samePartition(ds *deviceState, p int32, t int64) bool {
	if idx := e.lastPart; idx < len(e.parts) {
		if pm := &e.parts[idx]; pm.part == p && pm.src == e.src && int(ds.part) == idx+1 && t <= pm.high && e.runLen < e.runTick {
			pm.seq = e.runs
			e.runLen++
			return true
		}
	}
	return false
}

// advancePartition notes the current row of device ds, read from partition
// p at event time t, and keeps e.wm up to date.
func (e *Engine) advancePartition(ds *deviceState, p int32, t int64) {
	idx := e.lastPart
	changed := false
	if idx >= len(e.parts) || e.parts[idx].part != p || e.parts[idx].src != e.src {
		idx = slices.IndexFunc(e.parts, func(m partMark) bool { return m.part == p && m.src == e.src })
		if idx < 0 {
			idx = len(e.parts)
			e.parts = append(e.parts, partMark{src: e.src, part: p, high: math.MinInt64})
		}
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
	if int(ds.part) != idx+1 {
		if ds.part > 0 {
			e.parts[ds.part-1].devices--
		}
		ds.part = int32(idx + 1)
		pm.devices++
		changed = true
	}
	if t > pm.high {
		pm.high = t
		changed = true
	}
	if changed {
		e.updateWatermark()
	}
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
		if pm.devices > 0 && pm.high < wm && (pm.high >= idle || e.runs-pm.seq <= idleRuns*active) {
			wm = pm.high
		}
	}
	e.wm = wm
}

// Watermark returns the event time absence is judged against: the newest
// event time of the slowest active source partition (math.MinInt64 before
// the first row). For tests and diagnostics.
func (e *Engine) Watermark() int64 { return e.wm }

// ForgetDevice drops everything the engine keeps about device: its alarm
// states, silence deadline, identity history, rule windows, quarantine
// episode and group membership. The Kafka consumer calls it for the devices
// of a partition that moved to another instance (kafka.DeviceForgetter), so
// this instance neither judges them silent nor holds stale alarms for them;
// the new owner judges them from then on. An alarm still open is dropped
// without a clear: the new owner does not know it either.
func (e *Engine) ForgetDevice(device string) {
	d := e.reg.DeviceID(device)
	if d < 0 || int(d) >= len(e.devices) || !e.devices[d].init {
		return
	}
	ds := &e.devices[d]
	if ds.group >= 0 {
		gs := &e.groups[ds.group]
		e.silenceLeave(gs, d, ds)
		if i := slices.Index(gs.members, d); i >= 0 {
			gs.members = slices.Delete(gs.members, i, i+1)
		}
		if ds.q != nil && ds.q.action == qQuarantined && gs.quarantined > 0 {
			gs.quarantined--
		}
	}
	if ds.part > 0 {
		e.parts[ds.part-1].devices--
	}
	*ds = deviceState{}
	e.updateWatermark()
}
