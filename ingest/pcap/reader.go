package pcap

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"sync/atomic"
)

// Link types the packet decoder understands; the reader passes any other
// value through untouched so the decoder can count and skip it.
const (
	LinkTypeNull     = 0   // BSD loopback, host byte order family
	LinkTypeEthernet = 1   // Ethernet II / 802.3
	LinkTypeRaw      = 101 // raw IPv4 or IPv6
	LinkTypeLoop     = 108 // OpenBSD loopback, network byte order family
	LinkTypeLinuxSLL = 113 // Linux cooked capture v1
	LinkTypeIPv4     = 228 // raw IPv4
	LinkTypeIPv6     = 229 // raw IPv6
	LinkTypeSLL2     = 276 // Linux cooked capture v2
)

// Format is the container format of a capture.
type Format uint8

// Formats, detected from the first bytes of the (decompressed) stream.
const (
	FormatUnknown Format = iota
	FormatPcap
	FormatPcapNG
	// FormatNetXRay is a NetXRay or Windows Sniffer capture: recognised so
	// that it is reported by name, but not read.
	FormatNetXRay
)

func (f Format) String() string {
	switch f {
	case FormatPcap:
		return "pcap"
	case FormatPcapNG:
		return "pcapng"
	case FormatNetXRay:
		return "NetXRay/Sniffer"
	}
	return "unknown"
}

// Sniff tells a capture's container format from the first four bytes of
// its (decompressed) stream. ok is true for the formats Reader reads: pcap
// in either byte order and timestamp precision, and pcapng. A capture
// format it knows but does not read comes with ok false (FormatNetXRay),
// and so does FormatUnknown for anything else, including fewer than four
// bytes. This is the one list of capture magic numbers: the replay's input
// sorting and the Kafka packet decoder ask it too.
func Sniff(head []byte) (f Format, ok bool) {
	if len(head) < 4 {
		return FormatUnknown, false
	}
	switch binary.BigEndian.Uint32(head) {
	case 0x0a0d0d0a:
		return FormatPcapNG, true
	case 0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1, 0xa1b2cd34, 0x34cdb2a1:
		return FormatPcap, true
	case 0x58435000: // "XCP\0"
		return FormatNetXRay, false
	}
	return FormatUnknown, false
}

// Packet is one captured frame. Data aliases the reader's buffer: it is
// valid until the next call to Next on the reader (or Replay) that returned
// it; copy it to keep it.
type Packet struct {
	Data      []byte
	TimeNanos int64  // capture time, nanoseconds since the Unix epoch
	LinkType  uint16 // link type of the interface the frame was captured on
	OrigLen   int    // length on the wire; len(Data) may be shorter (snaplen)
	Interface int    // pcapng interface id within its section; 0 for pcap
	Offset    int64  // byte offset of the record in the decompressed file
	Index     int64  // 0-based packet number within its file
	File      int    // index of the file within a Replay; 0 for a lone Reader
}

// Warning reports damage found in a capture: what is wrong and where. The
// packets before Offset were delivered.
type Warning struct {
	File   string
	Offset int64
	Reason string
}

func (w Warning) String() string {
	return fmt.Sprintf("%s: at byte %d: %s", w.File, w.Offset, w.Reason)
}

// ErrNotCapture is returned (wrapped) by NewReader when the input starts
// with neither a pcap nor a pcapng magic number.
var ErrNotCapture = errors.New("not a pcap or pcapng capture")

const (
	bufSize = 64 << 10 // per-reader read buffer; records that fit are never copied
	// maxRecord bounds one record or block so a corrupt length cannot make
	// the reader allocate gigabytes; real frames are at most 256 KiB.
	maxRecord = 16 << 20
)

// Reader reads one capture file. It is not safe for concurrent use, except
// BytesRead, which the progress reporter may call from another goroutine.
type Reader struct {
	name     string
	closer   io.Closer
	counter  *countingReader
	br       *bufio.Reader // raw or gzbr
	raw      *bufio.Reader // over the input
	gzbr     *bufio.Reader // over gz, for compressed captures
	gz       *gzip.Reader
	spareGz  *gzip.Reader // kept across Reset for the next compressed input
	format   Format
	off      int64 // offset of the next unread byte of the decompressed stream
	index    int64
	big      []byte // records larger than the bufio buffer are copied here
	done     bool
	warns    []Warning
	skipped  int64 // blocks or records skipped but not fatal
	lastTime int64

	// pcap
	order    binary.ByteOrder
	nanos    bool
	linkType uint16
	snaplen  uint32
	recHdr   int // 16, or 24 for the modified pcap format

	// pcapng: interfaces of the current section
	ifaces []iface
}

type iface struct {
	linkType uint16
	snaplen  uint32
	// timestamps are units of 10^-pow10 s (base 10) or 2^-pow2 s (base 2)
	base2   bool
	exp     uint8
	offsetS int64 // if_tsoffset, seconds
}

type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// Open opens the capture at path.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open capture: %w", err)
	}
	r, err := NewReader(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closer = f
	return r, nil
}

// NewReader reads a capture from in, which may be gzip-compressed; name is
// used in warnings. It reads the file header; the format is told by the
// magic number, never by name.
func NewReader(in io.Reader, name string) (*Reader, error) {
	r := &Reader{}
	if err := r.Reset(in, name); err != nil {
		return nil, err
	}
	return r, nil
}

// Reset makes r read a new capture from in (told by its magic bytes, like
// NewReader), reusing r's buffers: a Kafka partition decoding one capture
// chunk per record keeps one Reader instead of allocating 64 KiB per
// record. It does not close the previous input, and the previous
// capture's Warnings slice is reused.
func (r *Reader) Reset(in io.Reader, name string) error {
	gz := r.gz
	if gz == nil {
		gz = r.spareGz
	}
	counter, raw, gzbr, big, warns, ifaces := r.counter, r.raw, r.gzbr, r.big, r.warns[:0], r.ifaces[:0]
	*r = Reader{name: name, counter: counter, raw: raw, gzbr: gzbr, big: big[:0], warns: warns, ifaces: ifaces}
	if r.counter == nil {
		r.counter = &countingReader{}
	}
	r.counter.r = in
	r.counter.n.Store(0)
	if r.raw == nil {
		r.raw = bufio.NewReaderSize(r.counter, bufSize)
	} else {
		r.raw.Reset(r.counter)
	}
	r.br = r.raw
	magic, err := r.br.Peek(4)
	if err != nil {
		return fmt.Errorf("cannot read capture %s: %w: the file is shorter than a capture header", name, ErrNotCapture)
	}
	if magic[0] == 0x1f && magic[1] == 0x8b {
		if gz == nil {
			gz, err = gzip.NewReader(r.raw)
		} else {
			err = gz.Reset(r.raw)
		}
		if err != nil {
			return fmt.Errorf("cannot read gzip capture %s: %w", name, err)
		}
		gz.Multistream(true)
		r.gz = gz
		if r.gzbr == nil {
			r.gzbr = bufio.NewReaderSize(gz, bufSize)
		} else {
			r.gzbr.Reset(gz)
		}
		r.br = r.gzbr
		if magic, err = r.br.Peek(4); err != nil {
			return fmt.Errorf("cannot read capture %s: %w: the decompressed file is shorter than a capture header", name, ErrNotCapture)
		}
	} else {
		r.spareGz = gz
	}
	switch f, _ := Sniff(magic); f {
	case FormatPcapNG:
		r.format = f
		return nil // the section header is read as the first block
	case FormatPcap:
		r.format = f
		return r.readPcapHeader()
	case FormatUnknown:
		return fmt.Errorf("cannot read capture %s: %w (magic %x)", name, ErrNotCapture, magic)
	default:
		return fmt.Errorf("cannot read capture %s: %w: it is a %s capture, which Vigil does not read; convert it to pcapng with editcap -F pcapng", name, ErrNotCapture, f)
	}
}

// Name returns the name the reader was opened with.
func (r *Reader) Name() string { return r.name }

// Format returns the container format.
func (r *Reader) Format() Format { return r.format }

// Warnings returns the damage found so far.
func (r *Reader) Warnings() []Warning { return r.warns }

// BytesRead returns how many bytes of the underlying (possibly compressed)
// file have been consumed. Safe to call concurrently with Next.
func (r *Reader) BytesRead() int64 { return r.counter.n.Load() }

// Close closes the underlying file when the reader opened it.
func (r *Reader) Close() error {
	if r.gz != nil {
		r.gz.Close()
	}
	if r.closer != nil {
		return r.closer.Close()
	}
	return nil
}

func (r *Reader) readPcapHeader() error {
	hdr, err := r.br.Peek(24)
	if err != nil {
		return fmt.Errorf("cannot read pcap header of %s: %w: the file is truncated", r.name, ErrNotCapture)
	}
	magicBE := binary.BigEndian.Uint32(hdr)
	switch magicBE {
	case 0xa1b2c3d4, 0xa1b23c4d, 0xa1b2cd34:
		r.order = binary.BigEndian
	default:
		r.order = binary.LittleEndian
	}
	m := r.order.Uint32(hdr)
	r.nanos = m == 0xa1b23c4d
	r.recHdr = 16
	if m == 0xa1b2cd34 {
		r.recHdr = 24
	}
	r.snaplen = r.order.Uint32(hdr[16:])
	// The upper bits of the link type field carry FCS information.
	r.linkType = uint16(r.order.Uint32(hdr[20:]))
	r.br.Discard(24)
	r.off = 24
	return nil
}

// Next reads the next packet into p. It returns io.EOF at the end of the
// capture, including after damage that ends it early (see Warnings); any
// other error is one of the underlying file.
func (r *Reader) Next(p *Packet) error {
	if r.done {
		return io.EOF
	}
	var err error
	if r.format == FormatPcap {
		err = r.nextPcap(p)
	} else {
		err = r.nextPcapNG(p)
	}
	if err != nil {
		r.done = true
		return err
	}
	p.Index = r.index
	r.index++
	r.lastTime = p.TimeNanos
	return nil
}

// stop records a warning and ends the file.
func (r *Reader) stop(off int64, format string, args ...any) error {
	r.warns = append(r.warns, Warning{File: r.name, Offset: off, Reason: fmt.Sprintf(format, args...)})
	return io.EOF
}

// readErr turns an error of the decompressed stream into the end of the
// file: a clean EOF at a record boundary is the normal end, anything else
// is damage.
func (r *Reader) readErr(err error, off int64, what string, have int) error {
	if errors.Is(err, io.EOF) && have == 0 {
		return io.EOF
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return r.stop(off, "truncated %s (%d bytes present)", what, have)
	}
	if r.gz != nil {
		return r.stop(off, "cannot decompress: %v", err)
	}
	return fmt.Errorf("cannot read capture %s at byte %d: %w", r.name, off, err)
}

// take returns the next n bytes of the stream and consumes them. The slice
// aliases the bufio buffer when n fits, else r.big, which grows only as
// bytes actually arrive: a corrupt length in a short file costs no more
// memory than the file.
func (r *Reader) take(n int) ([]byte, error) {
	if n <= bufSize {
		b, err := r.br.Peek(n)
		if err != nil {
			return b, err
		}
		r.br.Discard(n)
		r.off += int64(n)
		return b, nil
	}
	b := r.big[:0]
	for len(b) < n {
		chunk := min(n-len(b), max(bufSize, len(b)))
		if cap(b)-len(b) < chunk {
			b = append(b[:cap(b)], make([]byte, max(chunk, cap(b)))...)[:len(b)]
		}
		m, err := io.ReadFull(r.br, b[len(b):len(b)+chunk])
		b = b[:len(b)+m]
		r.off += int64(m)
		if err != nil {
			r.big = b[:0]
			return b, err
		}
	}
	r.big = b[:0]
	return b, nil
}

func (r *Reader) nextPcap(p *Packet) error {
	off := r.off
	hdr, err := r.br.Peek(r.recHdr)
	if err != nil {
		return r.readErr(err, off, "record header", len(hdr))
	}
	sec := r.order.Uint32(hdr[0:])
	frac := r.order.Uint32(hdr[4:])
	capLen := r.order.Uint32(hdr[8:])
	origLen := r.order.Uint32(hdr[12:])
	limit := uint32(maxRecord)
	if capLen > limit {
		return r.stop(off, "corrupt record: captured length %d exceeds %d bytes (snaplen %d)", capLen, limit, r.snaplen)
	}
	rec, err := r.take(r.recHdr + int(capLen))
	if err != nil {
		return r.readErr(err, off, "record", len(rec))
	}
	p.Data = rec[r.recHdr:]
	if r.nanos {
		p.TimeNanos = int64(sec)*1e9 + int64(frac)
	} else {
		p.TimeNanos = int64(sec)*1e9 + int64(frac)*1e3
	}
	p.LinkType = r.linkType
	p.OrigLen = int(origLen)
	p.Interface = 0
	p.Offset = off
	return nil
}

func (r *Reader) nextPcapNG(p *Packet) error {
	for {
		off := r.off
		hdr, err := r.br.Peek(8)
		if err != nil {
			return r.readErr(err, off, "block header", len(hdr))
		}
		typ := binary.BigEndian.Uint32(hdr)
		if typ == 0x0a0d0d0a {
			if err := r.readSectionHeader(off); err != nil {
				return err
			}
			continue
		}
		if r.order == nil {
			return r.stop(off, "corrupt pcapng: block type %#x before any section header", typ)
		}
		typ = r.order.Uint32(hdr)
		total := r.order.Uint32(hdr[4:])
		if total < 12 || total > maxRecord {
			return r.stop(off, "corrupt pcapng block (type %#x): total length %d", typ, total)
		}
		blk, err := r.take(int(total))
		if err != nil {
			return r.readErr(err, off, fmt.Sprintf("block (type %#x, length %d)", typ, total), len(blk))
		}
		if trailer := r.order.Uint32(blk[total-4:]); trailer != total {
			return r.stop(off, "corrupt pcapng block (type %#x): leading length %d, trailing length %d", typ, total, trailer)
		}
		body := blk[8 : total-4]
		switch typ {
		case 1: // interface description
			if err := r.readInterface(off, body); err != nil {
				return err
			}
		case 6, 2: // enhanced packet, obsolete packet
			ok, err := r.readEPB(off, typ, body, p)
			if err != nil {
				return err
			}
			if ok {
				return nil
			}
		case 3: // simple packet
			if len(r.ifaces) == 0 || len(body) < 4 {
				r.skip(off, "simple packet block without interface or too short")
				continue
			}
			orig := r.order.Uint32(body)
			data := body[4:]
			capLen := min(uint32(len(data)), orig)
			if s := r.ifaces[0].snaplen; s != 0 && capLen > s {
				capLen = s
			}
			p.Data = data[:capLen]
			p.TimeNanos = r.lastTime // simple packet blocks carry no timestamp
			p.LinkType = r.ifaces[0].linkType
			p.OrigLen = int(orig)
			p.Interface = 0
			p.Offset = off
			return nil
		default:
			// name resolution, statistics, decryption secrets, custom
			// blocks: nothing to decode.
		}
	}
}

func (r *Reader) skip(off int64, reason string) {
	r.skipped++
	if r.skipped <= 10 { // explain the first few, count the rest
		r.warns = append(r.warns, Warning{File: r.name, Offset: off, Reason: reason + " (skipped)"})
	}
}

// Skipped returns how many damaged but non-fatal records were skipped.
func (r *Reader) Skipped() int64 { return r.skipped }

func (r *Reader) readSectionHeader(off int64) error {
	hdr, err := r.br.Peek(12)
	if err != nil {
		return r.readErr(err, off, "section header", len(hdr))
	}
	switch binary.BigEndian.Uint32(hdr[8:]) {
	case 0x1a2b3c4d:
		r.order = binary.BigEndian
	case 0x4d3c2b1a:
		r.order = binary.LittleEndian
	default:
		return r.stop(off, "corrupt pcapng section header: byte-order magic %x", hdr[8:12])
	}
	total := r.order.Uint32(hdr[4:])
	if total < 28 || total > maxRecord || total%4 != 0 {
		return r.stop(off, "corrupt pcapng section header: total length %d", total)
	}
	blk, err := r.take(int(total))
	if err != nil {
		return r.readErr(err, off, "section header", len(blk))
	}
	if r.order.Uint32(blk[total-4:]) != total {
		return r.stop(off, "corrupt pcapng section header: trailing length differs from %d", total)
	}
	r.ifaces = r.ifaces[:0] // interface ids are per section
	return nil
}

func (r *Reader) readInterface(off int64, body []byte) error {
	if len(body) < 8 {
		return r.stop(off, "corrupt pcapng interface block: %d bytes", len(body))
	}
	ifc := iface{linkType: r.order.Uint16(body), snaplen: r.order.Uint32(body[4:]), exp: 6}
	opts := body[8:]
	for len(opts) >= 4 {
		code := r.order.Uint16(opts)
		n := int(r.order.Uint16(opts[2:]))
		if 4+n > len(opts) {
			break // a damaged option list loses only the options
		}
		v := opts[4 : 4+n]
		switch {
		case code == 0:
			opts = nil
			continue
		case code == 9 && n >= 1: // if_tsresol
			ifc.base2 = v[0]&0x80 != 0
			ifc.exp = v[0] & 0x7f
		case code == 14 && n >= 8: // if_tsoffset
			ifc.offsetS = int64(r.order.Uint64(v))
		}
		opts = opts[min(len(opts), 4+(n+3)&^3):]
	}
	if !ifc.base2 && ifc.exp > 19 || ifc.base2 && ifc.exp > 63 {
		return r.stop(off, "corrupt pcapng interface block: timestamp resolution %d", ifc.exp)
	}
	r.ifaces = append(r.ifaces, ifc)
	return nil
}

var pow10 = [...]uint64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

// nanos converts a timestamp in the interface's units to Unix nanoseconds.
func (ifc *iface) nanos(ts uint64) int64 {
	var ns uint64
	switch {
	case ifc.base2:
		sec := ts >> ifc.exp
		frac := ts & (1<<ifc.exp - 1)
		// frac*1e9 < 2^(exp+30): shift the 128-bit product down.
		hi, lo := bits.Mul64(frac, 1e9)
		ns = sec*1e9 + (lo>>ifc.exp | hi<<(64-ifc.exp))
	case ifc.exp <= 9:
		ns = ts * pow10[9-ifc.exp]
	default:
		ns = ts / pow10[ifc.exp-9]
	}
	return int64(ns) + ifc.offsetS*1e9
}

// readEPB fills p from an enhanced (type 6) or obsolete (type 2) packet
// block. ok is false when the block was skipped.
func (r *Reader) readEPB(off int64, typ uint32, body []byte, p *Packet) (ok bool, err error) {
	if len(body) < 20 {
		return false, r.stop(off, "corrupt pcapng packet block: %d bytes", len(body))
	}
	var id uint32
	if typ == 6 {
		id = r.order.Uint32(body)
	} else {
		id = uint32(r.order.Uint16(body))
	}
	capLen := r.order.Uint32(body[12:])
	origLen := r.order.Uint32(body[16:])
	data := body[20:]
	if uint64(capLen) > uint64(len(data)) {
		return false, r.stop(off, "corrupt pcapng packet block: captured length %d exceeds the block's %d bytes", capLen, len(data))
	}
	if int(id) >= len(r.ifaces) {
		r.skip(off, fmt.Sprintf("packet block for undeclared interface %d", id))
		return false, nil
	}
	ifc := &r.ifaces[id]
	ts := uint64(r.order.Uint32(body[4:]))<<32 | uint64(r.order.Uint32(body[8:]))
	p.Data = data[:capLen]
	p.TimeNanos = ifc.nanos(ts)
	p.LinkType = ifc.linkType
	p.OrigLen = int(origLen)
	p.Interface = int(id)
	p.Offset = off
	return true, nil
}
