package pcap

import (
	"strings"
	"testing"
)

func TestSniff(t *testing.T) {
	for _, tc := range []struct {
		head []byte
		want Format
		ok   bool
	}{
		{[]byte{0xd4, 0xc3, 0xb2, 0xa1}, FormatPcap, true},         // little-endian, microseconds
		{[]byte{0xa1, 0xb2, 0xc3, 0xd4}, FormatPcap, true},         // big-endian
		{[]byte{0x4d, 0x3c, 0xb2, 0xa1}, FormatPcap, true},         // little-endian, nanoseconds
		{[]byte{0x34, 0xcd, 0xb2, 0xa1}, FormatPcap, true},         // Kuznetzov's modified pcap
		{[]byte{0x0a, 0x0d, 0x0d, 0x0a, 0, 0}, FormatPcapNG, true}, // section header block
		{[]byte("XCP\x00\x00\x00"), FormatNetXRay, false},
		{[]byte(`{"device":"plc-1"}`), FormatUnknown, false},
		{[]byte{0xd4, 0xc3, 0xb2}, FormatUnknown, false},
		{nil, FormatUnknown, false},
	} {
		if f, ok := Sniff(tc.head); f != tc.want || ok != tc.ok {
			t.Errorf("Sniff(% x) = %v, %v; want %v, %v", tc.head, f, ok, tc.want, tc.ok)
		}
	}
	if _, err := NewReader(strings.NewReader("XCP\x00 rest of a NetXRay file"), "trace.cap"); err == nil || err.Error() != "cannot read capture trace.cap: not a pcap or pcapng capture: it is a NetXRay/Sniffer capture, which Vigil does not read; convert it to pcapng with editcap -F pcapng" {
		t.Errorf("a NetXRay capture: %v", err)
	}
}
