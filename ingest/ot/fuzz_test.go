package ot

import (
	"errors"
	"path/filepath"
	"testing"
)

// seedPayloads returns up to max L4 payloads of proto from the committed
// captures in testdata/ot/<dir>, so every fuzz target starts from real
// traffic.
func seedPayloads(tb testing.TB, dir string, proto Protocol, max int) [][]byte {
	tb.Helper()
	var seeds [][]byte
	files, _ := filepath.Glob(filepath.Join(goldenDir, dir, "*.pcap*"))
	for _, f := range files {
		if filepath.Ext(f) == ".tsv" {
			continue
		}
		flows := map[string]Protocol{}
		readL4(tb, f, func(p l4Packet) {
			k := flowKey(p)
			got, seen := flows[k]
			if !seen || got == None {
				got, _ = Detect(p.srcPort, p.dstPort, p.udp, p.payload)
				flows[k] = got
			}
			if got == proto && len(seeds) < max {
				seeds = append(seeds, append([]byte(nil), p.payload...))
			}
		})
	}
	if len(seeds) == 0 {
		tb.Fatalf("no %s seed payloads in testdata/ot/%s", proto, dir)
	}
	return seeds
}

// checkDecode asserts the contract of Decode for any input.
func checkDecode(t *testing.T, proto Protocol, b []byte, fromServer bool) {
	var d PDU
	n, err := Decode(proto, b, fromServer, &d)
	switch {
	case errors.Is(err, ErrShort):
		if n != 0 {
			t.Fatalf("ErrShort with n=%d", n)
		}
		if d.Need != 0 && d.Need <= len(b) {
			t.Fatalf("ErrShort asks for %d bytes but %d are there", d.Need, len(b))
		}
		return
	case err != nil:
		t.Fatalf("unexpected error %v", err)
	}
	if n <= 0 || n > len(b) {
		t.Fatalf("n=%d outside 1..%d", n, len(b))
	}
	if d.Len != n {
		t.Fatalf("PDU.Len=%d, n=%d", d.Len, n)
	}
	if d.Proto != proto && !(proto == S7comm && d.Proto == S7commPlus) {
		t.Fatalf("Proto %s, decoded as %s", d.Proto, proto)
	}
	if d.Malformed == "" && d.FunctionName == "" {
		t.Fatalf("well-formed PDU without a function name: %+v", d)
	}
	if d.FunctionName == "" {
		// Framing was lost: n skips to a possible next start, and that
		// garbage alone may well look like the start of a PDU.
		return
	}
	// Framing is self-consistent: the PDU alone decodes to the same length.
	var again PDU
	n2, err := Decode(proto, b[:n], fromServer, &again)
	if err != nil || n2 != n {
		t.Fatalf("re-decoding the %d framed bytes gave n=%d err=%v", n, n2, err)
	}
	if again.Function != d.Function || again.FunctionName != d.FunctionName {
		t.Fatalf("re-decoding changed the function: %d/%s then %d/%s", d.Function, d.FunctionName, again.Function, again.FunctionName)
	}
}

func fuzzDecoder(f *testing.F, dir string, proto Protocol) {
	for i, s := range seedPayloads(f, dir, proto, 200) {
		f.Add(s, i%2 == 1)
	}
	f.Fuzz(func(t *testing.T, b []byte, fromServer bool) {
		checkDecode(t, proto, b, fromServer)
	})
}

func FuzzModbus(f *testing.F) { fuzzDecoder(f, "modbus", Modbus) }
func FuzzDNP3(f *testing.F)   { fuzzDecoder(f, "dnp3", DNP3) }
func FuzzS7comm(f *testing.F) { fuzzDecoder(f, "s7comm", S7comm) }
func FuzzENIP(f *testing.F)   { fuzzDecoder(f, "enip", ENIP) }
func FuzzIEC104(f *testing.F) { fuzzDecoder(f, "iec104", IEC104) }
func FuzzBACnet(f *testing.F) { fuzzDecoder(f, "bacnet", BACnet) }
func FuzzMQTT(f *testing.F)   { fuzzDecoder(f, "mqtt", MQTT) }
func FuzzOPCUA(f *testing.F)  { fuzzDecoder(f, "opcua", OPCUA) }

// FuzzDetect checks that Detect never panics and that whatever it returns
// decodes without breaking the Decode contract.
func FuzzDetect(f *testing.F) {
	for _, dir := range []string{"modbus", "dnp3", "s7comm", "enip", "iec104", "bacnet", "mqtt", "opcua"} {
		for _, s := range seedPayloads(f, dir, map[string]Protocol{"modbus": Modbus, "dnp3": DNP3, "s7comm": S7comm, "enip": ENIP, "iec104": IEC104, "bacnet": BACnet, "mqtt": MQTT, "opcua": OPCUA}[dir], 5) {
			f.Add(uint16(40000), uint16(0), false, s)
		}
	}
	f.Fuzz(func(t *testing.T, src, dst uint16, udp bool, b []byte) {
		p, fromServer := Detect(src, dst, udp, b)
		if p == None {
			return
		}
		checkDecode(t, p, b, fromServer)
	})
}
