package packet

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/ot"
)

// maxEdges bounds the summary's edge table.
const maxEdges = 1 << 16

// Edge is one (client, server, transport, port, protocol) seen in the
// whole replay, with the OT functions the client used on it.
type Edge struct {
	Client, Server netip.Addr
	ClientDevice   string
	ServerDevice   string
	Transport      uint8
	Port           uint16
	Protocol       string
	Functions      []string
	Packets, Bytes int64
}

// advance closes the windows that end at or before ts.
func (x *Extractor) advance(ts int64) {
	if x.curSet && ts >= x.curStart && ts < x.curEnd {
		return // the common case, without a division
	}
	id := floorDiv(ts, x.win[0])
	if !x.curSet {
		x.setCurrent(id)
		x.curSet = true
		return
	}
	if id < x.cur {
		x.stats.Late++
		return
	}
	if id > x.cur {
		x.closeWindows(id)
	}
}

// Flush closes the current windows at the end of the input.
func (x *Extractor) Flush() {
	if x.curSet {
		// Pretend the next window of every length has begun.
		last := x.win[len(x.win)-1] / x.win[0]
		x.scan.final = true // and the long window of scan.go
		x.closeWindows((floorDiv(x.cur, last) + 1) * last)
		x.curSet = false
	}
}

// closeWindows closes the current shortest window, the longer windows that
// end with it, and finishes a batch; next is the id of the new window.
func (x *Extractor) closeWindows(next int64) {
	w0 := x.win[0]
	end := (x.cur + 1) * w0
	nextStart := next * w0
	closing := [maxWindows]bool{0: true}
	for w := 1; w < len(x.win); w++ {
		closing[w] = floorDiv(x.cur*w0, x.win[w]) != floorDiv(nextStart, x.win[w])
	}
	for _, i := range x.active[0] {
		h := x.hosts.at(i)
		if !h.used || !h.acc[0].active || h.acc[0].merged {
			continue // evicted, or listed twice
		}
		h.acc[0].merged = true
		x.findings(h, end)
		for w := 1; w < len(x.win); w++ {
			if !h.acc[w].active {
				x.active[w] = append(x.active[w], i)
			}
			h.acc[w].merge(&h.acc[0])
		}
	}
	x.scanWindowClosed(end, nextStart)
	for w := range x.win {
		if !closing[w] {
			continue
		}
		wEnd := (floorDiv(x.cur*w0, x.win[w]) + 1) * x.win[w]
		x.emitRows(w, wEnd)
		for _, i := range x.active[w] {
			x.hosts.at(i).acc[w] = acc{}
		}
		x.active[w] = x.active[w][:0]
		if w == 0 {
			x.setLog = x.setLog[:0]
		}
		x.distinct[w].reset()
	}
	// Sweeping the flow table is O(flows): do it a few times per idle
	// timeout, not at every window.
	if end-x.lastExpire >= int64(x.cfg.FlowIdleTimeout)/4 {
		x.flows.expire(end - int64(x.cfg.FlowIdleTimeout))
		x.lastExpire = end
	}
	x.finishBatch()
	x.publishMetrics()
	x.setCurrent(next)
}

func (x *Extractor) setCurrent(id int64) {
	x.cur = id
	x.curStart, x.curEnd = id*x.win[0], (id+1)*x.win[0]
	for w := range x.win {
		x.curID[w] = floorDiv(id*x.win[0], x.win[w])
	}
}

// findings reports scans, floods and exception storms of one host over
// the shortest window; the rules over longer spans are in scan.go.
func (x *Extractor) findings(h *host, end int64) {
	a := &h.acc[0]
	if a.dstPorts < float64(x.cfg.ScanPorts) && a.dstHosts < float64(x.cfg.ScanHosts) &&
		a.synIn*1e9 < x.cfg.FloodSYNPerSecond*float64(x.win[0]) && a.pktsIn*1e9 < x.cfg.FloodPacketsPerSecond*float64(x.win[0]) &&
		a.otErrors < float64(x.cfg.ExceptionStorm) && (a.srcsIn < float64(x.cfg.FloodSources) || a.synIn < float64(x.cfg.FloodSources)) {
		return // the common case, decided without naming the host
	}
	x.nameHost(h)
	x.exceptionStorm(h, end)
	secs := float64(x.win[0]) / 1e9
	ev := func(kind string, value, threshold float64, t *tuple, detail string) {
		e := ingest.NetEvent{
			TimeNanos: end, Kind: kind, Device: h.device, Group: h.group,
			Detail: detail, Value: value, Threshold: threshold,
			Partition: x.partition, Offset: x.windowPos,
		}
		if t.valid {
			e.SrcIP = netip.AddrFrom16(t.src).Unmap()
			e.DstIP = netip.AddrFrom16(t.dst).Unmap()
			e.Transport, e.SrcPort, e.DstPort = t.transport, t.sport, t.dport
			if t.proto != ot.None {
				e.Protocol = t.proto.String()
			}
		}
		x.addEvent(e)
	}
	if a.dstPorts >= float64(x.cfg.ScanPorts) {
		x.scanReported(h, bitScanPorts)
		ev("scan_ports", a.dstPorts, float64(x.cfg.ScanPorts), &a.lastOut,
			fmt.Sprintf("%s opened flows to %.0f distinct destination ports in %s (%.0f failed)", h.ipText, a.dstPorts, x.winName[0], a.failed))
	}
	if a.dstHosts >= float64(x.cfg.ScanHosts) {
		x.scanReported(h, bitScanHosts)
		ev("scan_hosts", a.dstHosts, float64(x.cfg.ScanHosts), &a.lastOut,
			fmt.Sprintf("%s opened flows to %.0f distinct hosts in %s (%.0f failed)", h.ipText, a.dstHosts, x.winName[0], a.failed))
	}
	if r := a.synIn / secs; r >= x.cfg.FloodSYNPerSecond {
		ev("flood", r, x.cfg.FloodSYNPerSecond, &a.lastSYN,
			fmt.Sprintf("%s received %.0f TCP SYN/s from %.0f distinct sources (counted up to max_distinct) over %s", h.ipText, r, a.srcsIn, x.winName[0]))
	} else if r := a.pktsIn / secs; r >= x.cfg.FloodPacketsPerSecond {
		ev("flood", r, x.cfg.FloodPacketsPerSecond, &a.lastIn,
			fmt.Sprintf("%s received %.0f packets/s from %.0f distinct sources over %s", h.ipText, r, a.srcsIn, x.winName[0]))
	} else if n := float64(x.cfg.FloodSources); a.srcsIn >= n && a.synIn >= n {
		ev("flood", a.srcsIn, n, &a.lastSYN,
			fmt.Sprintf("%s received TCP SYNs from %.0f distinct sources in %s (%.0f SYN/s, under the rate threshold: each source sent few, as forged sources do)",
				h.ipText, a.srcsIn, x.winName[0], a.synIn/secs))
	}
}

// emitRows appends one row per active host (and per group) for window w.
func (x *Extractor) emitRows(w int, end int64) {
	for g := range x.groupAcc {
		x.groupAcc[g][w] = acc{}
	}
	if w == 0 {
		x.indexSetLog()
	}
	for _, i := range x.active[w] {
		h := x.hosts.at(i)
		a := &h.acc[w]
		// Rows only for discovered assets: addresses that were only
		// targeted (scanned, flooded, spoofed) are not devices.
		if !h.used || !a.active || !h.asset || a.emitted {
			continue
		}
		a.emitted = true
		var sets []setEntry
		if w == 0 {
			sets = x.setLog[h.setLo:h.setHi]
		}
		x.appendRow(w, end, h.device, h.group, h.ipText, a, h.clientProtos|h.serverProtos, sets)
		if x.cfg.GroupRows && h.groupIdx >= 0 {
			ga := &x.groupAcc[h.groupIdx][w]
			ga.merge(a)
			ga.peers += a.peers
			ga.dstPorts += a.dstPorts
			ga.dstHosts += a.dstHosts
		}
	}
	if !x.cfg.GroupRows {
		return
	}
	for g, name := range x.groupNam {
		a := &x.groupAcc[g][w]
		if a.active {
			x.appendRow(w, end, name+"/*", name, "", a, 0xffff, nil)
		}
	}
}

// indexSetLog sorts the shortest window's set members by host and points
// each active host at its own (setLo:setHi); members of a reused host slot
// are left out.
func (x *Extractor) indexSetLog() {
	for _, i := range x.active[0] {
		h := x.hosts.at(i)
		h.setLo, h.setHi = 0, 0
	}
	slices.SortStableFunc(x.setLog, func(a, b setEntry) int { return cmp.Compare(a.host, b.host) })
	for lo := 0; lo < len(x.setLog); {
		e := &x.setLog[lo]
		hi := lo + 1
		for hi < len(x.setLog) && x.setLog[hi].host == e.host {
			hi++
		}
		if h := x.hosts.at(e.host); h.used && h.gen == e.gen {
			h.setLo, h.setHi = int32(lo), int32(hi)
		}
		lo = hi
	}
}

func (x *Extractor) appendRow(w int, end int64, device, group, ip string, a *acc, protos uint16, sets []setEntry) {
	r := &x.row
	r.Reset()
	r.TimeNanos, r.Device, r.Group, r.Partition, r.Offset, r.SrcIP = end, device, group, x.partition, x.windowPos, ip
	n := &x.names[w]
	m := r.Metrics
	m = append(m,
		ingest.Metric{Name: n.bytesIn, Value: a.bytesIn}, ingest.Metric{Name: n.bytesOut, Value: a.bytesOut},
		ingest.Metric{Name: n.pktsIn, Value: a.pktsIn}, ingest.Metric{Name: n.pktsOut, Value: a.pktsOut},
		ingest.Metric{Name: n.flows, Value: a.flows}, ingest.Metric{Name: n.peers, Value: a.peers},
		ingest.Metric{Name: n.dstPorts, Value: a.dstPorts}, ingest.Metric{Name: n.dstHosts, Value: a.dstHosts},
		ingest.Metric{Name: n.failed, Value: a.failed}, ingest.Metric{Name: n.synIn, Value: a.synIn},
		ingest.Metric{Name: n.reads, Value: a.reads}, ingest.Metric{Name: n.writes, Value: a.writes},
		ingest.Metric{Name: n.control, Value: a.control}, ingest.Metric{Name: n.diag, Value: a.diag},
		ingest.Metric{Name: n.exception, Value: a.exceptions}, ingest.Metric{Name: n.malformed, Value: a.malformed},
	)
	if a.iatN >= minJitterGaps {
		m = append(m, ingest.Metric{Name: n.jitter, Value: a.jitter()})
	}
	// Protocol mix: only protocols the host ever spoke, so a Modbus PLC
	// does not grow a column of zeros for every other protocol.
	for s := range a.protoPkts {
		bit := s
		if s == slotOther {
			bit = protoOther
		}
		if protos&(1<<uint(bit)) != 0 || a.protoPkts[s] != 0 {
			m = append(m, ingest.Metric{Name: n.proto[s], Value: a.protoPkts[s]})
		}
	}
	r.Metrics = m
	for i := range sets {
		e := &sets[i]
		var v string
		if e.set == setRemoteAddrs {
			v = netip.AddrFrom16(e.addr).Unmap().String()
		} else {
			v = strconv.Itoa(int(e.port))
		}
		r.Sets = append(r.Sets, ingest.SetMember{Set: e.set, Value: v})
	}
	x.builder.Append(r)
}

// finishBatch queues the rows, communications and findings of the closed
// window as a batch and starts the next.
func (x *Extractor) finishBatch() {
	for i := range x.comms {
		x.addEdge(&x.comms[i])
	}
	if x.builder.Len() == 0 && len(x.comms) == 0 && len(x.events) == 0 {
		x.batchSeq++
		return
	}
	rec, sets := x.builder.NewRecord()
	b := ingest.NewBatch(rec, nil)
	b.Sets = sets
	b.Comms = x.comms
	b.Events = x.events
	b.Recycle(x.recycleComms)
	x.ready = append(x.ready, b)
	x.comms = x.freeComms.take(len(x.comms))
	x.events = nil
	clear(x.commIdx)
	x.batchSeq++
}

// TakeBatch returns the oldest finished batch, or nil. The caller owns it.
func (x *Extractor) TakeBatch() *ingest.Batch {
	if len(x.ready) == 0 {
		return nil
	}
	b := x.ready[0]
	x.ready[0] = nil
	x.ready = x.ready[1:]
	return b
}

func (x *Extractor) addEdge(c *ingest.Communication) {
	k := edgeKey{client: c.SrcIP.As16(), server: c.DstIP.As16(), port: c.DstPort, transport: c.Transport}
	for p := ot.Protocol(1); p < ot.S7commPlus+1; p++ {
		if p.String() == c.Protocol {
			k.proto = p
			break
		}
	}
	i, ok := x.edges[k]
	if !ok {
		if len(x.edgeList) >= maxEdges {
			x.stats.EdgesDropped++
			return
		}
		i = int32(len(x.edgeList))
		x.edges[k] = i
		e := Edge{Client: c.SrcIP, Server: c.DstIP, ClientDevice: c.Device, Transport: c.Transport, Port: c.DstPort, Protocol: c.Protocol}
		if si, ok := x.hosts.idx[k.server]; ok {
			e.ServerDevice = x.nameHost(x.hosts.at(si)).device
		}
		x.edgeList = append(x.edgeList, e)
	}
	e := &x.edgeList[i]
	if c.Function == "" {
		e.Packets += c.Packets
		e.Bytes += c.Bytes
		return
	}
	for _, f := range e.Functions {
		if f == c.Function {
			return
		}
	}
	if len(e.Functions) < 64 {
		e.Functions = append(e.Functions, c.Function)
	}
}

// commsPool keeps the communication slices of released batches for the
// next windows' (Batch.Recycle): up to commsKept of them, taken back on
// the goroutine that releases the batches.
type commsPool chan []ingest.Communication

// commsKept is how many released batches' communication slices an
// extractor keeps: about as many as batches are in flight between it and
// the engine.
const commsKept = 16

// take returns an empty slice for a window's communications: a released
// batch's, or a new one of capacity n.
func (p commsPool) take(n int) []ingest.Communication {
	select {
	case c := <-p:
		return c
	default:
		return make([]ingest.Communication, 0, n)
	}
}

// put keeps the communications of released batch b, when there is room.
func (p commsPool) put(b *ingest.Batch) {
	c := b.Comms[:0]
	b.Comms = nil
	if cap(c) == 0 {
		return
	}
	select {
	case p <- c:
	default:
	}
}
