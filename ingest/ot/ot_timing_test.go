package ot

import (
	"path/filepath"
	"strings"
	"testing"
)

// benchPDU is one complete, well-formed PDU cut from a committed capture.
type benchPDU struct {
	b          []byte
	fromServer bool
}

// benchPDUs cuts the well-formed PDUs of proto out of the segments of the
// captures in testdata/ot/<dir> (PDUs split across segments are left out).
func benchPDUs(b *testing.B, dir string, proto Protocol) (pdus []benchPDU, bytes int) {
	b.Helper()
	files, _ := filepath.Glob(filepath.Join(goldenDir, dir, "*.pcap*"))
	for _, f := range files {
		if strings.HasSuffix(f, ".tsv") {
			continue
		}
		flows := map[string]*flowState{}
		readL4(b, f, func(p l4Packet) {
			k := flowKey(p)
			fs := flows[k]
			if fs == nil || fs.proto == None {
				pr, fromServer := Detect(p.srcPort, p.dstPort, p.udp, p.payload)
				fs = &flowState{proto: pr, fromServer: fromServer}
				flows[k] = fs
			}
			if fs.proto != proto {
				return
			}
			var d PDU
			for rest := p.payload; len(rest) > 0; {
				n, err := Decode(proto, rest, fs.fromServer, &d)
				if err != nil || d.Malformed != "" {
					return
				}
				pdus = append(pdus, benchPDU{append([]byte(nil), rest[:n]...), fs.fromServer})
				bytes += n
				rest = rest[n:]
			}
		})
	}
	if len(pdus) == 0 {
		b.Fatalf("no %s PDUs in testdata/ot/%s", proto, dir)
	}
	return pdus, bytes
}

// benchDecode measures Decode over the real PDUs of one protocol; one op is
// one PDU. The PDU is reused, as callers do, so steady state must not
// allocate.
func benchDecode(b *testing.B, dir string, proto Protocol) {
	pdus, bytes := benchPDUs(b, dir, proto)
	var d PDU
	for _, p := range pdus { // warm the PDU's string buffer
		Decode(proto, p.b, p.fromServer, &d)
	}
	b.SetBytes(int64(bytes / len(pdus)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := &pdus[i%len(pdus)]
		if _, err := Decode(proto, p.b, p.fromServer, &d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeModbus(b *testing.B) { benchDecode(b, "modbus", Modbus) }
func BenchmarkDecodeDNP3(b *testing.B)   { benchDecode(b, "dnp3", DNP3) }
func BenchmarkDecodeS7comm(b *testing.B) { benchDecode(b, "s7comm", S7comm) }
func BenchmarkDecodeENIP(b *testing.B)   { benchDecode(b, "enip", ENIP) }
func BenchmarkDecodeIEC104(b *testing.B) { benchDecode(b, "iec104", IEC104) }
func BenchmarkDecodeBACnet(b *testing.B) { benchDecode(b, "bacnet", BACnet) }
func BenchmarkDecodeMQTT(b *testing.B)   { benchDecode(b, "mqtt", MQTT) }
func BenchmarkDecodeOPCUA(b *testing.B)  { benchDecode(b, "opcua", OPCUA) }

// BenchmarkDetect measures Detect on the first payloads of Modbus flows,
// the check a reassembler makes once per new flow.
func BenchmarkDetect(b *testing.B) {
	pdus, _ := benchPDUs(b, "modbus", Modbus)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if p, _ := Detect(40000, 502, false, pdus[i%len(pdus)].b); p != Modbus {
			b.Fatal("not detected")
		}
	}
}

// TestDecodeDoesNotAllocate keeps the zero-allocation claim honest in the
// ordinary test run, not only in benchmarks.
func TestDecodeDoesNotAllocate(t *testing.T) {
	for dir, proto := range map[string]Protocol{"modbus": Modbus, "dnp3": DNP3, "s7comm": S7comm, "enip": ENIP, "iec104": IEC104, "bacnet": BACnet, "mqtt": MQTT, "opcua": OPCUA} {
		var pdus [][]byte
		var dirs []bool
		files, _ := filepath.Glob(filepath.Join(goldenDir, dir, "*.pcap*"))
		for _, f := range files {
			if strings.HasSuffix(f, ".tsv") {
				continue
			}
			readL4(t, f, func(p l4Packet) {
				if pr, fromServer := Detect(p.srcPort, p.dstPort, p.udp, p.payload); pr == proto {
					pdus = append(pdus, p.payload)
					dirs = append(dirs, fromServer)
				}
			})
		}
		var d PDU
		for i, p := range pdus {
			Decode(proto, p, dirs[i], &d)
		}
		allocs := testing.AllocsPerRun(3, func() {
			for i, p := range pdus {
				Decode(proto, p, dirs[i], &d)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %.1f allocations per pass over %d payloads", proto, allocs, len(pdus))
		}
	}
}
