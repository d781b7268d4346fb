package ot

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// l4Packet is the part of a captured frame the OT decoders see. This is a
// deliberately small reader for tests, independent of ingest/pcap.
type l4Packet struct {
	frame            int // 1-based frame number, as tshark counts
	src, dst         string
	srcPort, dstPort uint16
	udp              bool
	seq              uint32 // TCP sequence number
	payload          []byte
}

type linkReader interface {
	ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
}

// readL4 calls fn for every TCP or UDP packet with a payload in the capture
// at path (pcap or pcapng, told apart by magic bytes).
func readL4(tb testing.TB, path string, fn func(l4Packet)) {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatalf("cannot open capture: %v", err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	magic, err := br.Peek(4)
	if err != nil {
		return // empty capture
	}
	var r linkReader
	var lt layers.LinkType
	if binary.BigEndian.Uint32(magic) == 0x0a0d0d0a {
		ng, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			tb.Logf("skip %s: cannot read pcapng header: %v", path, err)
			return
		}
		r, lt = ng, ng.LinkType()
	} else {
		pr, err := pcapgo.NewReader(br)
		if err != nil {
			tb.Logf("skip %s: cannot read pcap header: %v", path, err)
			return
		}
		r, lt = pr, pr.LinkType()
	}
	for frame := 1; ; frame++ {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return
		}
		if err != nil {
			tb.Logf("%s: stop at frame %d: %v", path, frame, err)
			return
		}
		pkt := gopacket.NewPacket(data, lt, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
		var p l4Packet
		p.frame = frame
		if nl := pkt.NetworkLayer(); nl != nil {
			p.src, p.dst = nl.NetworkFlow().Src().String(), nl.NetworkFlow().Dst().String()
		}
		switch t := pkt.TransportLayer().(type) {
		case *layers.TCP:
			p.srcPort, p.dstPort, p.payload, p.seq = uint16(t.SrcPort), uint16(t.DstPort), t.Payload, t.Seq
		case *layers.UDP:
			p.srcPort, p.dstPort, p.payload, p.udp = uint16(t.SrcPort), uint16(t.DstPort), t.Payload, true
		default:
			continue
		}
		if len(p.payload) > 0 {
			fn(p)
		}
	}
}

// streamDecoder decodes the PDUs of a capture the way a reassembler would:
// per flow direction, bytes left over by ErrShort wait for the next segment.
// Retransmitted bytes (by sequence number) are dropped; reordering is not
// handled, which the captures in testdata do not need.
type streamDecoder struct {
	flows   map[string]*flowState
	pdu     PDU
	maxKeep int
}

type flowState struct {
	proto      Protocol
	fromServer bool
	pending    []byte
	nextSeq    uint32
	seenSeq    bool
}

func newStreamDecoder() *streamDecoder {
	return &streamDecoder{flows: map[string]*flowState{}, maxKeep: 1 << 16}
}

func flowKey(p l4Packet) string {
	var b bytes.Buffer
	b.WriteString(p.src)
	b.WriteByte(0)
	b.WriteString(p.dst)
	binary.Write(&b, binary.BigEndian, p.srcPort)
	binary.Write(&b, binary.BigEndian, p.dstPort)
	if p.udp {
		b.WriteByte('u')
	}
	return b.String()
}

// feed decodes p's payload and calls fn for each complete PDU. It returns the
// protocol of the flow (None when Detect found nothing).
func (s *streamDecoder) feed(p l4Packet, fn func(*PDU)) Protocol {
	k := flowKey(p)
	fs := s.flows[k]
	if fs == nil {
		proto, fromServer := Detect(p.srcPort, p.dstPort, p.udp, p.payload)
		fs = &flowState{proto: proto, fromServer: fromServer}
		s.flows[k] = fs
	}
	if fs.proto == None {
		// A first payload that fits nothing (e.g. garbage on port 502)
		// must not blind the flow: try again on the next payload.
		fs.proto, fs.fromServer = Detect(p.srcPort, p.dstPort, p.udp, p.payload)
		if fs.proto == None {
			return None
		}
	}
	if !p.udp {
		end := p.seq + uint32(len(p.payload))
		// Only bytes shortly before the expected sequence number count as a
		// retransmission; fuzzed traces jump around arbitrarily.
		if fs.seenSeq && int32(p.seq-fs.nextSeq) < 0 && fs.nextSeq-p.seq < 1<<16 {
			dup := int(fs.nextSeq - p.seq)
			if dup >= len(p.payload) {
				return fs.proto // pure retransmission
			}
			p.payload = p.payload[dup:]
		}
		if fs.seenSeq && p.seq != fs.nextSeq {
			fs.pending = fs.pending[:0] // a gap: the buffered PDU start is lost
		}
		fs.nextSeq, fs.seenSeq = end, true
	}
	buf := p.payload
	if len(fs.pending) > 0 && !p.udp {
		fs.pending = append(fs.pending, p.payload...)
		buf = fs.pending
	}
	for len(buf) > 0 {
		n, err := Decode(fs.proto, buf, fs.fromServer, &s.pdu)
		if err == ErrShort {
			if p.udp || len(buf) > s.maxKeep {
				s.pdu.Malformed = "datagram ends inside the pdu"
				s.pdu.Len = len(buf)
				fn(&s.pdu)
				buf = nil
				break
			}
			break
		}
		if err != nil {
			panic(err)
		}
		if n <= 0 || n > len(buf) {
			panic("BUG: Decode returned an out-of-range length")
		}
		fn(&s.pdu)
		buf = buf[n:]
	}
	fs.pending = append(fs.pending[:0], buf...)
	return fs.proto
}
