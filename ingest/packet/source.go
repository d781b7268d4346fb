package packet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"sync/atomic"
	"time"

	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/ot"
	"github.com/vigil-ot/vigil/ingest/pcap"
)

// ReplayOptions configure a ReplaySource.
type ReplayOptions struct {
	Options
	// Speed paces the replay at Speed× the capture's own pace; 0 replays as
	// fast as possible.
	Speed float64
	// Logger receives the warnings found while replaying (a packet whose
	// timestamp is far from its neighbours', a step of the capture clock),
	// once per kind; nil logs nothing. The summary carries them too.
	Logger *slog.Logger
}

// ReplaySource is the ingest.Source of `vigil replay` for captures: it
// reads pcap/pcapng files merged in time order, decodes them and emits one
// batch per closed window of the shortest configured length (event time).
// Batches carry no source positions: their Ack does nothing.
type ReplaySource struct {
	rp    *pcap.Replay
	x     *Extractor
	speed float64
	pkt   pcap.Packet
	eof   bool

	paceSet   bool
	paceTS    int64
	paceStart time.Time

	logger                    *slog.Logger
	warnedOutlier, warnedJump bool
	timeWarnings              []pcap.Warning
	// Where the last suspect step of the clock began, by file.
	stepPos             int64
	stepFile            int
	stepOffset, stepIdx int64

	packets atomic.Int64
}

var _ ingest.Source = (*ReplaySource)(nil)

// OpenReplay opens the captures named by args (files, directories, globs;
// see pcap.OpenReplay) as a source.
func OpenReplay(cfg ingest.PacketConfig, opts ReplayOptions, args ...string) (*ReplaySource, error) {
	rp, err := pcap.OpenReplay(args...)
	if err != nil {
		return nil, err
	}
	s, err := NewReplaySource(cfg, opts, rp)
	if err != nil {
		rp.Close()
		return nil, err
	}
	return s, nil
}

// NewReplaySource makes a source of an opened replay; it takes ownership
// of rp.
func NewReplaySource(cfg ingest.PacketConfig, opts ReplayOptions, rp *pcap.Replay) (*ReplaySource, error) {
	if opts.Speed < 0 {
		return nil, fmt.Errorf("cannot replay at speed %v: use 0 (as fast as possible) or a positive factor", opts.Speed)
	}
	x, err := NewExtractor(cfg, opts.Options)
	if err != nil {
		return nil, err
	}
	return &ReplaySource{rp: rp, x: x, speed: opts.Speed, logger: opts.Logger, stepPos: -1}, nil
}

// ReadBatch implements ingest.Source.
func (s *ReplaySource) ReadBatch(ctx context.Context) (*ingest.Batch, error) {
	for n := 0; ; n++ {
		if b := s.x.TakeBatch(); b != nil {
			return b, nil
		}
		if s.eof {
			return nil, io.EOF
		}
		if n&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			s.packets.Store(s.x.stats.Packets)
		}
		err := s.rp.Next(&s.pkt)
		if errors.Is(err, io.EOF) {
			s.eof = true
			s.x.SettleTime()
			s.warnTime()
			s.x.Flush()
			s.packets.Store(s.x.stats.Packets)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("cannot read capture: %w", err)
		}
		if s.speed > 0 {
			if err := s.pace(ctx, s.pkt.TimeNanos); err != nil {
				return nil, err
			}
		}
		s.x.Add(&s.pkt)
		if tr := &s.x.trust; tr.held && tr.heldPos != s.stepPos {
			s.stepPos, s.stepFile, s.stepOffset, s.stepIdx = tr.heldPos, s.pkt.File, s.pkt.Offset, s.pkt.Index
		}
		if st := &s.x.stats; st.TimeOutliers > 0 && !s.warnedOutlier || st.TimeJumps > 0 && !s.warnedJump {
			s.warnTime()
		}
	}
}

// warnTime reports, once per kind, the first packet whose timestamp did
// not fit its neighbours and the first step of the clock accepted as a
// real gap.
func (s *ReplaySource) warnTime() {
	outlier, jump := s.x.TimeAnomalies()
	warn := func(a TimeAnomaly, gap bool, reason string) {
		// The packet's place in its file is known when the source saw the
		// step begin (always, unless the extractor is fed elsewhere too).
		w := pcap.Warning{Offset: -1}
		where := fmt.Sprintf("packet %d of the replay", a.Packet+1)
		if a.Packet == s.stepPos {
			if fs := s.rp.Files(); s.stepFile < len(fs) {
				w.File = fs[s.stepFile].Name()
			}
			w.Offset = s.stepOffset
			where = fmt.Sprintf("packet %d of the file", s.stepIdx+1)
		}
		step := time.Duration(a.TimeNanos - a.PrevNanos)
		w.Reason = fmt.Sprintf("%s: timestamp %s is %s away from the packets before; %s",
			where, time.Unix(0, a.TimeNanos).UTC().Format(time.RFC3339Nano), step.Round(time.Millisecond), reason)
		level := slog.LevelInfo // a gap in the capture is no damage
		if !gap {
			level = slog.LevelWarn
			s.timeWarnings = append(s.timeWarnings, w)
		}
		if s.logger != nil {
			s.logger.Log(context.Background(), level, "capture timestamp out of line", "file", w.File, "where", where,
				"time", time.Unix(0, a.TimeNanos).UTC(), "step", step, "detail", reason)
		}
	}
	if outlier.Set && !s.warnedOutlier {
		s.warnedOutlier = true
		warn(outlier, false, "the packets after it did not follow, so it was counted at the time of the packet before (the summary counts such time outliers; raise packets.max_time_jump if the traffic is that sparse)")
	}
	if jump.Set && !s.warnedJump {
		s.warnedJump = true
		warn(jump, true, "the packets after it followed, so the capture was taken as having a gap there")
	}
}

// pace sleeps until the packet is due at the configured speed.
func (s *ReplaySource) pace(ctx context.Context, ts int64) error {
	if !s.paceSet {
		s.paceSet, s.paceTS, s.paceStart = true, ts, time.Now()
		return nil
	}
	due := s.paceStart.Add(time.Duration(float64(ts-s.paceTS) / s.speed))
	wait := time.Until(due)
	if wait < time.Millisecond {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Close closes the capture files.
func (s *ReplaySource) Close() error { return s.rp.Close() }

// Progress is how far a replay has got.
type Progress struct {
	BytesRead, TotalBytes int64 // of the capture files as stored (compressed size for gzip)
	Packets               int64
}

// Progress returns how far the replay has got. It is safe to call from
// another goroutine while ReadBatch runs (e.g. a ticker printing to
// stderr); Packets is updated every 1024 packets.
func (s *ReplaySource) Progress() Progress {
	return Progress{BytesRead: s.rp.BytesRead(), TotalBytes: s.rp.TotalBytes(), Packets: s.packets.Load()}
}

// Summary describes a whole replay: what was read, how it decoded, and the
// assets, edges and protocols seen.
type Summary struct {
	Files      []string
	Packets    int64
	Bytes      int64
	FirstNanos int64
	LastNanos  int64
	// Outcomes counts packets by decode outcome; every packet has one.
	Decoded, UnknownProtocol, Malformed, SkippedLinkType int64
	SkippedLinkTypes                                     map[uint16]int64
	Stats                                                Stats
	Protocols                                            []ProtocolStat
	Assets                                               []Asset
	Edges                                                []Edge
	Warnings                                             []pcap.Warning
}

// ProtocolStat counts the traffic of one application protocol ("other"
// for TCP/UDP of no decoded protocol).
type ProtocolStat struct {
	Name    string
	Packets int64
	PDUs    int64
}

// Asset is a host discovered from traffic.
type Asset struct {
	IP          netip.Addr
	MAC         string // "" when only seen behind a router or on a link without MACs
	Device      string // inventory device, or the address
	Group       string
	InInventory bool
	Protocols   []string // protocols spoken, as client or server
	Role        string   // "client", "server" or "client+server"
	OTRole      string   // "master", "outstation", "master+outstation" or ""
	Packets     int64
	Bytes       int64
	FirstNanos  int64
	LastNanos   int64

	clientProtos, serverProtos uint16
}

// Summary returns the replay's summary so far; call it after ReadBatch
// returned io.EOF for the whole replay, not concurrently with ReadBatch.
func (s *ReplaySource) Summary() Summary {
	sum := s.x.Summary()
	for _, r := range s.rp.Files() {
		sum.Files = append(sum.Files, r.Name())
	}
	sum.Warnings = append(append([]pcap.Warning(nil), s.rp.Warnings()...), s.timeWarnings...)
	return sum
}

// Extractor returns the source's extractor (for metrics and tests).
func (s *ReplaySource) Extractor() *Extractor { return s.x }

// Stats returns the extractor's counters.
func (x *Extractor) Stats() Stats {
	st := x.stats
	st.FlowsEvicted = x.flows.evicted
	st.HostsEvicted = x.hosts.evicted
	st.Reassembled = x.frags.reassembled
	st.FragmentsDropped = x.frags.evicted + x.frags.bad
	return st
}

// Summary returns the assets, edges, protocols and outcome counts so far.
func (x *Extractor) Summary() Summary {
	st := x.stats
	sum := Summary{
		Packets: st.Packets, Bytes: st.Bytes,
		Decoded: st.Outcomes[OutcomeDecoded], UnknownProtocol: st.Outcomes[OutcomeUnknownProtocol],
		Malformed: st.Outcomes[OutcomeMalformed], SkippedLinkType: st.Outcomes[OutcomeSkippedLinkType],
		SkippedLinkTypes: st.SkippedLinkTypes, Stats: st,
	}
	sum.Stats = x.Stats()
	for s := range x.protoPkt {
		if x.protoPkt[s] == 0 && x.protoPDU[s] == 0 {
			continue
		}
		name := "other"
		if s < slotOther {
			name = ot.Protocol(s).String()
		}
		sum.Protocols = append(sum.Protocols, ProtocolStat{Name: name, Packets: x.protoPkt[s], PDUs: x.protoPDU[s]})
	}
	assets := make(map[[16]byte]Asset, len(x.evictedAssets))
	for k, a := range x.evictedAssets {
		assets[k] = a
	}
	for i := range x.hosts.len() {
		h := x.hosts.at(i)
		if h.used && h.asset {
			assets[h.addr] = mergeAsset(assets[h.addr], assetOf(h))
		}
	}
	for _, a := range assets {
		sum.Assets = append(sum.Assets, a)
		if len(sum.Assets) == 1 || a.FirstNanos < sum.FirstNanos {
			sum.FirstNanos = a.FirstNanos
		}
		sum.LastNanos = max(sum.LastNanos, a.LastNanos)
	}
	sort.Slice(sum.Assets, func(i, j int) bool { return sum.Assets[i].IP.Less(sum.Assets[j].IP) })
	sum.Edges = append(sum.Edges, x.edgeList...)
	return sum
}

func assetOf(h *host) Asset {
	a := Asset{IP: h.ip, Device: h.device, Group: h.group, InInventory: h.inInventory,
		Packets: h.packets, Bytes: h.bytes, FirstNanos: h.first, LastNanos: h.last,
		clientProtos: h.clientProtos, serverProtos: h.serverProtos}
	if h.hasMAC {
		a.MAC = net.HardwareAddr(h.mac[:]).String()
	}
	a.Protocols, a.Role, a.OTRole = roles(h.clientProtos, h.serverProtos)
	return a
}

// mergeAsset folds the newer record b of one address into a (zero when
// the address was never evicted).
func mergeAsset(a, b Asset) Asset {
	if !a.IP.IsValid() {
		return b
	}
	b.Packets += a.Packets
	b.Bytes += a.Bytes
	b.FirstNanos = min(a.FirstNanos, b.FirstNanos)
	if b.MAC == "" {
		b.MAC = a.MAC
	}
	b.clientProtos |= a.clientProtos
	b.serverProtos |= a.serverProtos
	b.Protocols, b.Role, b.OTRole = roles(b.clientProtos, b.serverProtos)
	return b
}

// keepEvictedAsset remembers an evicted asset for the summary; the record
// is bounded like the host table, beyond which it is only counted.
func (x *Extractor) keepEvictedAsset(h *host) {
	if !h.asset {
		x.stats.NonAssetHostsEvicted++
		return
	}
	if _, ok := x.evictedAssets[h.addr]; !ok && len(x.evictedAssets) >= x.cfg.MaxHosts {
		x.stats.AssetsDropped++
		return
	}
	x.evictedAssets[h.addr] = mergeAsset(x.evictedAssets[h.addr], assetOf(h))
}

func roles(client, server uint16) (protos []string, role, otRole string) {
	for p := 1; p <= protoOther; p++ {
		if (client|server)&(1<<uint(p)) == 0 {
			continue
		}
		if p == protoOther {
			protos = append(protos, "other")
		} else {
			protos = append(protos, ot.Protocol(p).String())
		}
	}
	switch {
	case client != 0 && server != 0:
		role = "client+server"
	case client != 0:
		role = "client"
	case server != 0:
		role = "server"
	}
	// Master/outstation only for the OT protocols, not for "other" or MQTT
	// (whose server is a broker).
	const otMask = 1<<ot.Modbus | 1<<ot.DNP3 | 1<<ot.S7comm | 1<<ot.ENIP | 1<<ot.IEC104 | 1<<ot.BACnet | 1<<ot.OPCUA
	m, o := client&otMask != 0, server&otMask != 0
	switch {
	case m && o:
		otRole = "master+outstation"
	case m:
		otRole = "master"
	case o:
		otRole = "outstation"
	}
	return protos, role, otRole
}
