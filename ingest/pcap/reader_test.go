package pcap

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testdata = "../../testdata/pcap"

func readAll(t testing.TB, r *Reader) []Packet {
	t.Helper()
	var out []Packet
	var p Packet
	for {
		err := r.Next(&p)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		q := p
		q.Data = append([]byte(nil), p.Data...)
		out = append(out, q)
	}
}

func openTestdata(t testing.TB, name string) *Reader {
	t.Helper()
	r, err := Open(filepath.Join(testdata, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// The expectations below are what tshark 4.0 shows for the same files
// (frame.time_epoch, frame.interface_id, frame.cap_len, encapsulation).
func TestReaderMatchesTshark(t *testing.T) {
	cases := []struct {
		file      string
		format    Format
		packets   int
		firstNs   int64
		firstLen  int
		linkTypes []uint16 // per packet, prefix
	}{
		{"dnp3_null_loopback.pcap", FormatPcap, 15, 1586534017976000000, 56, []uint16{LinkTypeNull}},
		{"interfaces_be.pcapng", FormatPcapNG, 4, 1340954905298858000, 96, []uint16{1, 1, 1, LinkTypeNull}},
		{"sections_both_orders.pcapng", FormatPcapNG, 8, 1340954905298858000, 96, []uint16{1, 1, LinkTypeNull}},
		{"s7_pcapng_named_pcap.pcap", FormatPcapNG, 18, 1411974511002145000, 66, []uint16{1}},
		{"mms_big_endian.pcap", FormatPcap, 21, 0, 0, []uint16{1}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			r := openTestdata(t, c.file)
			if r.Format() != c.format {
				t.Errorf("format %v, want %v (told by magic, not by name)", r.Format(), c.format)
			}
			pkts := readAll(t, r)
			if len(pkts) != c.packets {
				t.Fatalf("%d packets, want %d", len(pkts), c.packets)
			}
			if c.firstLen != 0 && (pkts[0].TimeNanos != c.firstNs || len(pkts[0].Data) != c.firstLen) {
				t.Errorf("first packet at %d with %d bytes, want %d with %d", pkts[0].TimeNanos, len(pkts[0].Data), c.firstNs, c.firstLen)
			}
			for i, lt := range c.linkTypes {
				if pkts[i].LinkType != lt {
					t.Errorf("packet %d: link type %d, want %d", i, pkts[i].LinkType, lt)
				}
			}
			if len(r.Warnings()) != 0 {
				t.Errorf("warnings on a sound file: %v", r.Warnings())
			}
		})
	}
}

// pcapFile builds a classic pcap with the given magic, link type and
// records (timestamp seconds and fraction as stored).
func pcapFile(order binary.ByteOrder, magic uint32, link uint32, recs ...[]byte) []byte {
	var b bytes.Buffer
	h := make([]byte, 24)
	order.PutUint32(h, magic)
	order.PutUint16(h[4:], 2)
	order.PutUint16(h[6:], 4)
	order.PutUint32(h[16:], 65535)
	order.PutUint32(h[20:], link)
	b.Write(h)
	for i, r := range recs {
		rh := make([]byte, 16)
		order.PutUint32(rh, uint32(1700000000+i))
		order.PutUint32(rh[4:], 123456)
		order.PutUint32(rh[8:], uint32(len(r)))
		order.PutUint32(rh[12:], uint32(len(r)))
		b.Write(rh)
		b.Write(r)
	}
	return b.Bytes()
}

func TestPcapResolutionAndByteOrder(t *testing.T) {
	rec := []byte{1, 2, 3, 4}
	for _, c := range []struct {
		name  string
		order binary.ByteOrder
		magic uint32
		frac  int64
	}{
		{"le_micro", binary.LittleEndian, 0xa1b2c3d4, 123456000},
		{"be_micro", binary.BigEndian, 0xa1b2c3d4, 123456000},
		{"le_nano", binary.LittleEndian, 0xa1b23c4d, 123456},
		{"be_nano", binary.BigEndian, 0xa1b23c4d, 123456},
	} {
		r, err := NewReader(bytes.NewReader(pcapFile(c.order, c.magic, 228, rec, rec)), c.name)
		if err != nil {
			t.Fatal(err)
		}
		pkts := readAll(t, r)
		if len(pkts) != 2 || pkts[1].TimeNanos != 1700000001*1e9+c.frac || pkts[0].LinkType != 228 || !bytes.Equal(pkts[0].Data, rec) {
			t.Errorf("%s: %+v", c.name, pkts)
		}
	}
}

func TestGzipCapture(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(testdata, "dnp3_null_loopback.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(raw)
	zw.Close()
	r, err := NewReader(bytes.NewReader(z.Bytes()), "dump.pcap.gz")
	if err != nil {
		t.Fatal(err)
	}
	pkts := readAll(t, r)
	if len(pkts) != 15 || r.BytesRead() != int64(z.Len()) {
		t.Errorf("%d packets, %d of %d compressed bytes read", len(pkts), r.BytesRead(), z.Len())
	}
	// A gzip stream cut short keeps the packets before the cut.
	r, err = NewReader(bytes.NewReader(z.Bytes()[:z.Len()-40]), "cut.pcap.gz")
	if err != nil {
		t.Fatal(err)
	}
	pkts = readAll(t, r)
	if len(pkts) == 0 || len(pkts) >= 15 || len(r.Warnings()) != 1 {
		t.Errorf("cut gzip: %d packets, warnings %v", len(pkts), r.Warnings())
	}
}

func TestTruncatedLastRecord(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(testdata, "dnp3_null_loopback.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	full := readAll(t, mustReader(t, raw))
	last := full[len(full)-1]
	for _, cut := range []int{1, 10, 16 + len(last.Data) - 1} {
		r := mustReader(t, raw[:len(raw)-cut])
		pkts := readAll(t, r)
		if len(pkts) != len(full)-1 {
			t.Errorf("cut %d: %d packets, want %d", cut, len(pkts), len(full)-1)
		}
		w := r.Warnings()
		if len(w) != 1 || w[0].Offset != last.Offset || !strings.Contains(w[0].Reason, "truncated") {
			t.Errorf("cut %d: warnings %v, want one at byte %d", cut, w, last.Offset)
		}
	}
}

func mustReader(t testing.TB, b []byte) *Reader {
	t.Helper()
	r, err := NewReader(bytes.NewReader(b), "test")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCorruptPcapngBlock(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(testdata, "s7_pcapng_named_pcap.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	full := readAll(t, mustReader(t, raw))
	// Break the total length of the 10th packet block.
	bad := append([]byte(nil), raw...)
	off := full[9].Offset
	binary.LittleEndian.PutUint32(bad[off+4:], 0xfffffff0)
	r := mustReader(t, bad)
	pkts := readAll(t, r)
	if len(pkts) != 9 {
		t.Errorf("%d packets before the corrupt block, want 9", len(pkts))
	}
	if w := r.Warnings(); len(w) != 1 || w[0].Offset != off || !strings.Contains(w[0].Reason, "corrupt") {
		t.Errorf("warnings %v, want one corrupt block at %d", w, off)
	}
	// A trailing length that disagrees is corruption too.
	bad = append([]byte(nil), raw...)
	total := binary.LittleEndian.Uint32(raw[off+4:])
	binary.LittleEndian.PutUint32(bad[off+int64(total)-4:], total+4)
	r = mustReader(t, bad)
	if pkts := readAll(t, r); len(pkts) != 9 || len(r.Warnings()) != 1 {
		t.Errorf("trailer mismatch: %d packets, %v", len(pkts), r.Warnings())
	}
}

func TestNotACapture(t *testing.T) {
	for _, in := range []string{"", "abc", "hello, this is a README file"} {
		if _, err := NewReader(strings.NewReader(in), "x"); !errors.Is(err, ErrNotCapture) {
			t.Errorf("%q: %v", in, err)
		}
	}
}

func TestReplayMergesInTimeOrder(t *testing.T) {
	dir := t.TempDir()
	rec := []byte{0x45}
	// a: t=0,2,4 ; b: t=1,3 (seconds offsets via the record index)
	a := pcapFileTimes([]uint32{10, 12, 14}, rec)
	b := pcapFileTimes([]uint32{11, 13}, rec)
	os.WriteFile(filepath.Join(dir, "a.cap"), a, 0o644)
	os.WriteFile(filepath.Join(dir, "b.bin"), b, 0o644)
	os.WriteFile(filepath.Join(dir, "README.md"), []byte("not a capture"), 0o644)
	rp, err := OpenReplay(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer rp.Close()
	var got []int64
	var p Packet
	for rp.Next(&p) == nil {
		got = append(got, p.TimeNanos/1e9)
	}
	want := []int64{10, 11, 12, 13, 14}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if w := rp.Warnings(); len(w) != 1 || !strings.Contains(w[0].File, "README") {
		t.Errorf("warnings %v, want the README skipped", w)
	}
	if rp.BytesRead() != int64(len(a)+len(b)) || rp.TotalBytes() != int64(len(a)+len(b)) {
		t.Errorf("progress %d/%d, want %d", rp.BytesRead(), rp.TotalBytes(), len(a)+len(b))
	}
	// A glob, and an explicit non-capture is an error.
	if rp2, err := OpenReplay(filepath.Join(dir, "*.cap")); err != nil || len(rp2.Files()) != 1 {
		t.Errorf("glob: %v", err)
	} else {
		rp2.Close()
	}
	if _, err := OpenReplay(filepath.Join(dir, "README.md")); !errors.Is(err, ErrNotCapture) {
		t.Errorf("explicit README: %v", err)
	}
}

func pcapFileTimes(secs []uint32, rec []byte) []byte {
	var b bytes.Buffer
	b.Write(pcapFile(binary.LittleEndian, 0xa1b2c3d4, 101)[:24])
	for _, s := range secs {
		rh := make([]byte, 16)
		binary.LittleEndian.PutUint32(rh, s)
		binary.LittleEndian.PutUint32(rh[8:], uint32(len(rec)))
		binary.LittleEndian.PutUint32(rh[12:], uint32(len(rec)))
		b.Write(rh)
		b.Write(rec)
	}
	return b.Bytes()
}

// pcapngFile builds a little-endian pcapng section with interfaces given
// as (link type, if_tsresol) and enhanced packet blocks (interface, ts).
func pcapngFile(ifaces [][2]int, pkts [][2]uint64) []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	block := func(typ uint32, body []byte) {
		for len(body)%4 != 0 {
			body = append(body, 0)
		}
		h := make([]byte, 8)
		le.PutUint32(h, typ)
		le.PutUint32(h[4:], uint32(12+len(body)))
		b.Write(h)
		b.Write(body)
		b.Write(h[4:8])
	}
	shb := make([]byte, 16)
	le.PutUint32(shb, 0x1a2b3c4d)
	le.PutUint16(shb[4:], 1)
	le.PutUint64(shb[8:], ^uint64(0))
	block(0x0a0d0d0a, shb)
	for _, ifc := range ifaces {
		body := make([]byte, 8)
		le.PutUint16(body, uint16(ifc[0]))
		le.PutUint32(body[4:], 65535)
		body = append(body, 9, 0, 1, 0, byte(ifc[1]), 0, 0, 0) // if_tsresol
		body = append(body, 0, 0, 0, 0)                        // opt_endofopt
		block(1, body)
	}
	for _, p := range pkts {
		body := make([]byte, 20)
		le.PutUint32(body, uint32(p[0]))
		le.PutUint32(body[4:], uint32(p[1]>>32))
		le.PutUint32(body[8:], uint32(p[1]))
		le.PutUint32(body[12:], 4)
		le.PutUint32(body[16:], 4)
		body = append(body, 0x45, 0, 0, 0)
		block(6, body)
	}
	return b.Bytes()
}

func TestPcapngInterfacesAndResolutions(t *testing.T) {
	raw := pcapngFile(
		[][2]int{{1, 6}, {LinkTypeRaw, 9}, {LinkTypeSLL2, 0x80 | 10}},
		[][2]uint64{{0, 1_700_000_000_123_456}, {1, 1_700_000_000_123_456_789}, {2, 1_700_000_000<<10 | 512}, {7, 5}})
	r := mustReader(t, raw)
	pkts := readAll(t, r)
	if len(pkts) != 3 {
		t.Fatalf("%d packets, want 3 (the 4th names an undeclared interface)", len(pkts))
	}
	want := []struct {
		ns   int64
		link uint16
	}{{1_700_000_000_123_456_000, 1}, {1_700_000_000_123_456_789, LinkTypeRaw}, {1_700_000_000_500_000_000, LinkTypeSLL2}}
	for i, w := range want {
		if pkts[i].TimeNanos != w.ns || pkts[i].LinkType != w.link || pkts[i].Interface != i {
			t.Errorf("packet %d: %d link %d iface %d, want %d link %d", i, pkts[i].TimeNanos, pkts[i].LinkType, pkts[i].Interface, w.ns, w.link)
		}
	}
	if r.Skipped() != 1 || len(r.Warnings()) != 1 {
		t.Errorf("skipped %d, warnings %v", r.Skipped(), r.Warnings())
	}
}

func TestReaderAllocatesNothingPerPacket(t *testing.T) {
	recs := make([][]byte, 500)
	for i := range recs {
		recs[i] = make([]byte, 60+i%200)
	}
	for _, raw := range [][]byte{
		pcapFile(binary.LittleEndian, 0xa1b2c3d4, 1, recs...),
		pcapngFile([][2]int{{1, 6}}, func() (p [][2]uint64) {
			for i := 0; i < 500; i++ {
				p = append(p, [2]uint64{0, uint64(i)})
			}
			return p
		}()),
	} {
		r := mustReader(t, raw)
		var p Packet
		allocs := testing.AllocsPerRun(200, func() {
			if err := r.Next(&p); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > 0 {
			t.Errorf("%v allocations per packet (%v)", allocs, r.Format())
		}
	}
}

// TestReaderReset reuses one reader for captures of every kind, the way a
// Kafka partition decodes one chunk per record, without allocating.
func TestReaderReset(t *testing.T) {
	plain, err := os.ReadFile(filepath.Join(testdata, "dnp3_null_loopback.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	ng, err := os.ReadFile(filepath.Join(testdata, "s7_pcapng_named_pcap.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(plain)
	zw.Close()
	inputs := []struct {
		data []byte
		n    int
	}{{plain, 15}, {ng, 18}, {z.Bytes(), 15}, {plain, 15}, {[]byte("nope"), -1}, {ng, 18}}
	var r Reader
	var br bytes.Reader
	for i, in := range inputs {
		br.Reset(in.data)
		err := r.Reset(&br, "chunk")
		if in.n < 0 {
			if !errors.Is(err, ErrNotCapture) {
				t.Errorf("input %d: %v, want ErrNotCapture", i, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("input %d: %v", i, err)
		}
		if n := len(readAll(t, &r)); n != in.n || len(r.Warnings()) != 0 {
			t.Errorf("input %d: %d packets (warnings %v), want %d", i, n, r.Warnings(), in.n)
		}
	}
	allocs := testing.AllocsPerRun(20, func() {
		br.Reset(plain)
		if err := r.Reset(&br, "chunk"); err != nil {
			t.Fatal(err)
		}
		var p Packet
		for r.Next(&p) == nil {
		}
	})
	if allocs > 0 {
		t.Errorf("%v allocations per reused chunk", allocs)
	}
}
