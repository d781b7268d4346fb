package ot

import "testing"

// TestDetectWhenBothPortsAreKnown: a Modbus client on a port another
// protocol owns (2404, IEC 104's; 2222, EtherNet/IP I/O's) stays Modbus,
// even when its transaction id's bytes look like the other protocol's
// start; DetectServer never consults the client's port.
func TestDetectWhenBothPortsAreKnown(t *testing.T) {
	iec := []byte{0x68, 0x01, 0, 0, 0, 6, 1, 3, 0, 0, 0, 10}  // Modbus read, transaction 0x6801
	enip := []byte{0x04, 0x00, 0, 0, 0, 6, 1, 3, 0, 0, 0, 10} // transaction 0x0400: ENIP ListServices little-endian
	resp := []byte{0x68, 0x01, 0, 0, 0, 5, 1, 3, 2, 0, 7}
	cases := []struct {
		name           string
		src, dst       uint16
		payload        []byte
		want           Protocol
		wantFromServer bool
	}{
		{"request from 2404", 2404, 502, iec, Modbus, false},
		{"response to 2404", 502, 2404, resp, Modbus, true},
		{"request from tcp 2222", 2222, 502, enip, Modbus, false},
		{"iec104 startdt from 502", 502, 2404, []byte{0x68, 4, 7, 0, 0, 0}, IEC104, false},
	}
	for _, c := range cases {
		p, fromServer := Detect(c.src, c.dst, false, c.payload)
		if p != c.want || fromServer != c.wantFromServer {
			t.Errorf("Detect %s: %s fromServer=%v, want %s fromServer=%v", c.name, p, fromServer, c.want, c.wantFromServer)
		}
	}
	for _, c := range []struct {
		name    string
		server  uint16
		udp     bool
		payload []byte
		want    Protocol
	}{
		{"modbus poll from 2404", 502, false, iec, Modbus},
		{"syn to 502", 502, false, nil, Modbus},
		{"http to 8080 from 502", 8080, false, []byte("GET / HTTP/1.1\r\n\r\n"), None},
		{"tcp 2222 is no enip", 2222, false, nil, None},
		{"udp 2222 is enip i/o", 2222, true, nil, ENIP},
		{"dnp3 by signature on an odd port", 30000, false, dnp3Frame(0xc4, 0xc0, 0xc1, 1, 60, 1, 0x06), DNP3},
	} {
		if got := DetectServer(c.server, c.udp, c.payload); got != c.want {
			t.Errorf("DetectServer %s: %s, want %s", c.name, got, c.want)
		}
	}
}
