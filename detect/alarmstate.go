package detect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// The engine's per-device state travels with the device's baseline through
// the Kafka changelog (kafka.DeviceAlarms): the alarm lifecycle of every
// detector (self, peer, peers now, joint, rule, identity, silence), the
// confirmation counters inside it, the poisoning guard, the silence cadence
// and the quarantine episode. With it, the instance that loads a partition
// goes on where the previous owner stopped: an alarm open before the move
// stays open under its id (the id is a hash of its start) and is cleared
// once, by the new owner; a redelivered row finds the state its first
// delivery found, so an alarm it raises starts at the same time.
//
// Indices local to one engine are written as names (metric, rule) or left
// out: the certificate table is shared by devices and keyed by a hash
// seeded per process, so a device's certificate is looked up again at its
// next report; of its firmware history only the latest version travels
// (the console shows it from an unknown time). Group-level state (fleet windows and alarms, rate-limit
// incidents, the quarantine rail alarm, peer residual rings, joint models)
// is not per device and does not travel.
//
// Encoding, after the version byte: strings and counts as uvarint length
// or value, times as varint nanoseconds, floats as their IEEE bits.
const deviceAlarmsVersion = 1

// Metric alarm kinds in the encoding.
const (
	kindSelf uint8 = iota
	kindPeer
	kindPeerNow
)

// MarshalDeviceAlarms appends the engine's state of device to dst (a
// device the engine does not know encodes as an empty state).
func (e *Engine) MarshalDeviceAlarms(dst []byte, device string) ([]byte, error) {
	dst = append(dst, deviceAlarmsVersion)
	d := e.knownDevice(device)
	if d < 0 {
		return append(dst, 0), nil
	}
	ds := e.devices.At(d)
	dst = append(dst, 1)
	group := ""
	if ds.group >= 0 {
		group = e.reg.GroupName(ds.group)
	}
	dst = appendString(dst, group)
	dst = appendBool(dst, ds.guarded)
	dst = binary.AppendVarint(dst, ds.guardedSince)
	dst = binary.AppendVarint(dst, ds.last)
	dst = binary.AppendVarint(dst, ds.fleetWin)
	dst = appendBool(dst, ds.part > 0)
	if ds.part > 0 {
		pm := &e.parts[ds.part-1]
		dst = appendString(dst, e.sources[pm.src])
		dst = binary.AppendVarint(dst, int64(pm.part))
	}

	s := &ds.sil
	dst = appendFloat(dst, s.interval)
	dst = appendFloat(dst, s.spread2)
	dst = binary.AppendUvarint(dst, uint64(max(s.n, 0)))
	dst = binary.AppendVarint(dst, s.deadline)
	dst = appendAlarm(dst, &s.alarm)

	// metric alarms: self and peer (deviceAlarms.metric), peers now
	type metricAlarm struct {
		slot int
		kind uint8
		st   *alarmState
	}
	var ms []metricAlarm
	if ds.more != nil {
		for k := range ds.more.metric {
			if st := &ds.more.metric[k]; *st != (alarmState{}) {
				ms = append(ms, metricAlarm{k / 2, uint8(k % 2), st})
			}
		}
	}
	if e.peersNow.hasState(d) {
		for slot := range e.peersNow.alarms[d] {
			if st := &e.peersNow.alarms[d][slot]; *st != (alarmState{}) {
				ms = append(ms, metricAlarm{slot, kindPeerNow, st})
			}
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(ms)))
	for _, m := range ms {
		dst = appendString(dst, e.metrics[m.slot].name)
		dst = append(dst, m.kind)
		dst = appendAlarm(dst, m.st)
	}

	// level-shift charts: the alarmShift alarms are judged by them
	n := 0
	for slot := range e.shift {
		if c := e.knownShift(slot, d); c != nil && *c != (shiftState{}) {
			n++
		}
	}
	dst = binary.AppendUvarint(dst, uint64(n))
	for slot := range e.shift {
		if c := e.knownShift(slot, d); c != nil && *c != (shiftState{}) {
			dst = appendString(dst, e.metrics[slot].name)
			dst = binary.BigEndian.AppendUint32(dst, math.Float32bits(c.ewma))
			dst = binary.BigEndian.AppendUint32(dst, math.Float32bits(c.mean))
			dst = binary.BigEndian.AppendUint32(dst, math.Float32bits(c.m2))
			dst = binary.AppendUvarint(dst, uint64(c.n))
			dst = appendBool(dst, c.seasonal)
		}
	}

	n = 0
	if ds.more != nil {
		for r := range ds.more.rules {
			if ds.more.rules[r] != (ruleState{}) {
				n++
			}
		}
	}
	dst = binary.AppendUvarint(dst, uint64(n))
	if n > 0 {
		for r := range ds.more.rules {
			rs := &ds.more.rules[r]
			if *rs == (ruleState{}) {
				continue
			}
			dst = appendString(dst, e.rules[r].cfg.Name)
			dst = appendAlarm(dst, &rs.alarm)
			dst = binary.AppendVarint(dst, rs.winStart)
			dst = appendFloat(dst, rs.agg)
			dst = binary.AppendUvarint(dst, uint64(max(rs.n, 0)))
			dst = appendBool(dst, rs.counted)
			dst = appendBool(dst, rs.seenSet)
		}
	}

	ja := e.joint.alarms[d]
	dst = appendBool(dst, ja != nil)
	if ja != nil {
		// the two metrics that contributed most, by name: dimensions are
		// the group model's of this engine
		dst = appendAlarm(dst, &ja.alarmState)
		dst = appendString(dst, e.jointMetric(ds.group, ja.first))
		dst = appendString(dst, e.jointMetric(ds.group, ja.second))
	}

	id := ds.ident
	dst = appendBool(dst, id != nil)
	if id != nil {
		dst = appendTrack(dst, &id.src)
		dst = appendTrack(dst, &id.client)
		dst = appendString(dst, id.fw)
		dst = appendBool(dst, id.alarms != nil)
		if id.alarms != nil {
			for _, st := range []*alarmState{&id.alarms.src, &id.alarms.client, &id.alarms.cert, &id.alarms.fw} {
				dst = appendAlarm(dst, st)
			}
		}
	}

	q := ds.q
	dst = appendBool(dst, q != nil)
	if q != nil {
		dst = append(dst, q.action)
		dst = binary.AppendVarint(dst, q.at)
		dst = binary.AppendVarint(dst, q.start.UnixNano())
		dst = binary.AppendUvarint(dst, uint64(max(q.clean, 0)))
		dst = binary.AppendUvarint(dst, uint64(len(q.reasons)))
		for _, r := range q.reasons {
			dst = appendString(dst, r)
		}
		dst = binary.AppendUvarint(dst, uint64(max(q.sev, 0)))
	}
	return dst, nil
}

// UnmarshalDeviceAlarms replaces the engine's state of device with data,
// written by MarshalDeviceAlarms. On an error the device is left as new.
// The device rejoins its group: a device with a cadence is judged silent
// from its deadline on, even before it reports again.
func (e *Engine) UnmarshalDeviceAlarms(device string, data []byte) error {
	e.ForgetDevice(device)
	if err := e.unmarshalDeviceAlarms(device, data); err != nil {
		e.ForgetDevice(device)
		return fmt.Errorf("cannot decode the alarm state of %q: %w; the record is corrupt or from another version", device, err)
	}
	return nil
}

var errShortAlarms = errors.New("truncated")

func (e *Engine) unmarshalDeviceAlarms(device string, data []byte) error {
	r := alarmReader{b: data}
	if v := r.byte(); v != deviceAlarmsVersion {
		if r.err != nil {
			return r.err
		}
		return fmt.Errorf("version %d, want %d", v, deviceAlarmsVersion)
	}
	if !r.bool() {
		return r.done()
	}
	d := e.reg.DeviceID(device)
	if d < 0 {
		return fmt.Errorf("the registry refused device %q", device)
	}
	group := r.string()
	var ds deviceState
	ds.init, ds.group, ds.sil.heapIdx = true, -1, -1
	ds.guarded = r.bool()
	ds.guardedSince = r.varint()
	ds.last = r.varint()
	ds.fleetWin = r.varint()
	source, part := "", int64(-1)
	hasPart := r.bool()
	if hasPart {
		source, part = r.string(), r.varint()
		if part < math.MinInt32 || part > math.MaxInt32 {
			r.fail(fmt.Errorf("partition %d", part))
		}
	}
	ds.sil.interval = r.float()
	ds.sil.spread2 = r.float()
	ds.sil.n = int32(r.uvarint(math.MaxInt32))
	ds.sil.deadline = r.varint()
	ds.sil.alarm = r.alarm()
	if len(e.rules) > 0 {
		ds.more = &deviceAlarms{rules: make([]ruleState, len(e.rules))}
	}

	type peerNowAlarm struct {
		slot int
		st   alarmState
	}
	var pn []peerNowAlarm
	for range r.count() {
		slot := e.slotOf(r.string())
		kind, st := r.byte(), r.alarm()
		switch kind {
		case kindSelf, kindPeer:
			if ds.more == nil {
				ds.more = &deviceAlarms{}
			}
			if need := 2 * len(e.metrics); len(ds.more.metric) < need {
				ds.more.metric = append(ds.more.metric, make([]alarmState, need-len(ds.more.metric))...)
			}
			ds.more.metric[2*slot+int(kind)] = st
		case kindPeerNow:
			pn = append(pn, peerNowAlarm{slot, st})
		default:
			if r.err == nil {
				r.err = fmt.Errorf("metric alarm kind %d", kind)
			}
		}
	}
	type chart struct {
		slot int
		c    shiftState
	}
	var charts []chart
	for range r.count() {
		slot := e.slotOf(r.string())
		var c shiftState
		c.ewma, c.mean, c.m2 = r.float32(), r.float32(), r.float32()
		c.n = uint32(r.uvarint(math.MaxUint32))
		c.seasonal = r.bool()
		charts = append(charts, chart{slot, c})
	}
	for range r.count() {
		name := r.string()
		var rs ruleState
		rs.alarm = r.alarm()
		rs.winStart = r.varint()
		rs.agg = r.float()
		rs.n = int32(r.uvarint(math.MaxInt32))
		rs.counted, rs.seenSet = r.bool(), r.bool()
		// A rule no longer configured has no alarm to carry.
		for i := range e.rules {
			if e.rules[i].cfg.Name == name {
				ds.more.rules[i] = rs
				break
			}
		}
	}
	var ja *jointAlarm
	var jointFirst, jointSecond string
	if r.bool() {
		ja = &jointAlarm{alarmState: r.alarm()}
		jointFirst, jointSecond = r.string(), r.string()
	}
	if r.bool() {
		id := &identityState{certIdx: -1}
		id.src, id.client = r.track(), r.track()
		id.fw = r.string()
		if r.bool() {
			id.alarms = &identityAlarms{src: r.alarm(), client: r.alarm(), cert: r.alarm(), fw: r.alarm()}
		}
		ds.ident = id
	}
	if r.bool() {
		q := &quarantineState{action: r.byte(), at: r.varint()}
		q.start = time.Unix(0, r.varint()).UTC()
		q.clean = int32(r.uvarint(math.MaxInt32))
		for range r.count() {
			q.reasons = append(q.reasons, r.string())
		}
		q.sev = int(r.uvarint(10))
		if q.action != qQuarantined && q.action != qRecommended && r.err == nil {
			r.err = fmt.Errorf("quarantine action %d", q.action)
		}
		ds.q = q
	}
	if err := r.done(); err != nil {
		return err
	}

	// All read: install it.
	*e.device(d) = ds
	for _, p := range pn {
		*e.peersNow.state(d, p.slot, len(e.metrics)) = p.st
	}
	for _, c := range charts {
		*e.shiftOf(c.slot, d) = c.c
	}
	if hasPart {
		e.restorePartition(d, source, int32(part))
	}
	e.devices.At(d).alarms = e.activeAlarms(d)
	g := int32(-1)
	if group != "" {
		g = e.reg.GroupID(group)
	}
	if ja != nil {
		ja.first, ja.second = e.jointDim(g, jointFirst, 0), e.jointDim(g, jointSecond, 1)
		if e.joint.alarms == nil {
			e.joint.alarms = make(map[int32]*jointAlarm)
		}
		e.joint.alarms[d] = ja
	}
	if g < 0 {
		return nil
	}
	gs := e.group(g)
	dsp := e.devices.At(d)
	e.join(d, dsp, g)
	e.restartFleet(g) // a device moved in: see restartFleet
	if dsp.q != nil && dsp.q.action == qQuarantined {
		gs.quarantined++
	}
	if !dsp.sil.alarm.active() && e.cfg.Silence.Enabled && dsp.sil.judged(&e.cfg.Silence) && dsp.sil.deadline != 0 {
		e.heapPush(gs, d)
	}
	return nil
}

// restorePartition makes the source partition of device d's latest
// report its partition again, read at least up to that report: until the
// partition is read further, the watermark holds there and the device's
// peers in other partitions do not make it silent (see partMark).
func (e *Engine) restorePartition(d int32, source string, p int32) {
	src := slices.Index(e.sources, source)
	if src < 0 {
		src = len(e.sources)
		e.sources = append(e.sources, source)
	}
	idx := slices.IndexFunc(e.parts, func(m partMark) bool { return m.part == p && m.src == int32(src) })
	if idx < 0 {
		idx = len(e.parts)
		e.parts = append(e.parts, partMark{src: int32(src), part: p, high: math.MinInt64, fastFrom: math.MinInt64, seq: e.runs})
	}
	pm := &e.parts[idx]
	ds := e.devices.At(d)
	ds.part = int32(idx + 1)
	pm.devices++
	if ds.last > pm.high {
		pm.high = ds.last
		pm.fastFrom = subSat(pm.high, int64(e.cfg.Clock.MaxLateness))
	}
	e.updateWatermark()
}

// activeAlarms counts device d's active alarms (deviceState.alarms), so
// that a record cannot leave the poisoning guard holding a device whose
// alarms are all closed.
func (e *Engine) activeAlarms(d int32) int32 {
	ds := e.devices.At(d)
	n := int32(0)
	count := func(sts []alarmState) {
		for i := range sts {
			if sts[i].active() {
				n++
			}
		}
	}
	if ds.more != nil {
		count(ds.more.metric)
		for i := range ds.more.rules {
			if ds.more.rules[i].alarm.active() {
				n++
			}
		}
	}
	if e.peersNow.hasState(d) {
		count(e.peersNow.alarms[d])
	}
	if ja := e.joint.alarms[d]; ja != nil && ja.active() {
		n++
	}
	if id := ds.ident; id != nil && id.alarms != nil {
		count([]alarmState{id.alarms.src, id.alarms.client, id.alarms.cert, id.alarms.fw})
	}
	if ds.sil.alarm.active() {
		n++
	}
	return n
}

// jointMetric names dimension dim of group g's joint model ("" when
// there is none).
func (e *Engine) jointMetric(g int32, dim int) string {
	if g < 0 || int(g) >= len(e.joint.groups) || e.joint.groups[g] == nil {
		return ""
	}
	jg := e.joint.groups[g]
	if dim < 0 || dim >= len(jg.slots) {
		return ""
	}
	return e.metrics[jg.slots[dim]].name
}

// jointDim returns the dimension of metric name in group g's joint model,
// or def (0 or 1: a model has at least two dimensions) when the model or
// the metric is not known yet.
func (e *Engine) jointDim(g int32, name string, def int) int {
	if g < 0 || int(g) >= len(e.joint.groups) || e.joint.groups[g] == nil {
		return def
	}
	for dim, slot := range e.joint.groups[g].slots {
		if e.metrics[slot].name == name {
			return dim
		}
	}
	return def
}

// knownDevice returns the registry id of device when the engine has state
// of it, else -1.
func (e *Engine) knownDevice(device string) int32 {
	d := e.reg.DeviceID(device)
	if e.knownState(d) == nil {
		return -1
	}
	return d
}

// slotOf returns the slot of metric name, creating it.
func (e *Engine) slotOf(name string) int {
	slot, ok := e.metricSlot[name]
	if !ok {
		slot = len(e.metrics)
		e.metricSlot[name] = slot
		e.metrics = append(e.metrics, newMetricParams(&e.cfg, name))
	}
	return slot
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendBool(dst []byte, b bool) []byte {
	if b {
		return append(dst, 1)
	}
	return append(dst, 0)
}

func appendFloat(dst []byte, f float64) []byte {
	return binary.BigEndian.AppendUint64(dst, math.Float64bits(f))
}

func appendAlarm(dst []byte, s *alarmState) []byte {
	dst = binary.AppendVarint(dst, s.since)
	dst = binary.AppendUvarint(dst, uint64(s.breaches))
	dst = binary.AppendUvarint(dst, uint64(s.oks))
	return append(dst, s.flags, s.sev)
}

func appendTrack(dst []byte, v *valueTrack) []byte {
	for k := range v.vals {
		dst = appendString(dst, v.vals[k])
		dst = binary.AppendVarint(dst, v.seen[k])
	}
	dst = binary.AppendVarint(dst, v.switches[0])
	dst = binary.AppendVarint(dst, v.switches[1])
	return append(dst, byte(v.cur), v.sw)
}

// alarmReader reads the encoding of MarshalDeviceAlarms; the first error
// sticks and later reads return zeros.
type alarmReader struct {
	b   []byte
	err error
}

func (r *alarmReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

func (r *alarmReader) byte() uint8 {
	if len(r.b) < 1 {
		r.fail(errShortAlarms)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *alarmReader) bool() bool {
	switch v := r.byte(); v {
	case 0:
		return false
	case 1:
		return true
	default:
		r.fail(fmt.Errorf("flag byte %d", v))
		return false
	}
}

func (r *alarmReader) uvarint(limit uint64) uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(errShortAlarms)
		return 0
	}
	r.b = r.b[n:]
	if v > limit {
		r.fail(fmt.Errorf("value %d beyond %d", v, limit))
		return 0
	}
	return v
}

// count reads a count of items that take at least one byte each.
func (r *alarmReader) count() int {
	v := r.uvarint(math.MaxInt32)
	if v > uint64(len(r.b)) {
		r.fail(errShortAlarms)
		return 0
	}
	return int(v)
}

func (r *alarmReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(errShortAlarms)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *alarmReader) float() float64 {
	if len(r.b) < 8 {
		r.fail(errShortAlarms)
		return 0
	}
	v := math.Float64frombits(binary.BigEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

func (r *alarmReader) float32() float32 {
	if len(r.b) < 4 {
		r.fail(errShortAlarms)
		return 0
	}
	v := math.Float32frombits(binary.BigEndian.Uint32(r.b))
	r.b = r.b[4:]
	return v
}

func (r *alarmReader) string() string {
	n := r.count()
	if r.err != nil {
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *alarmReader) alarm() alarmState {
	var s alarmState
	s.since = r.varint()
	s.breaches = uint16(r.uvarint(math.MaxUint16))
	s.oks = uint16(r.uvarint(math.MaxUint16))
	s.flags, s.sev = r.byte(), r.byte()
	return s
}

func (r *alarmReader) track() valueTrack {
	var v valueTrack
	for k := range v.vals {
		v.vals[k] = r.string()
		v.seen[k] = r.varint()
	}
	v.switches[0], v.switches[1] = r.varint(), r.varint()
	v.cur = int8(r.byte())
	v.sw = r.byte()
	if v.cur < -1 || v.cur >= trackSlots {
		r.fail(fmt.Errorf("track slot %d", v.cur))
	}
	return v
}

func (r *alarmReader) done() error {
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%d bytes left over", len(r.b))
	}
	return nil
}
