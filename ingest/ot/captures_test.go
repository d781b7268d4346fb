package ot

import (
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/vigil-ot/vigil/ingest/pcap/pcaptest"
)

// protocolFolders names, per protocol, the folders (or files) of the
// real-capture folder whose traffic is mainly that protocol.
var protocolFolders = map[Protocol][]string{
	Modbus: {"ITI-ICS-Security-Tools/ModbusTCP", "ITI-ICS-Security-Tools/bro/modbus", "ITI-ICS-Security-Tools/modicon", "zeek-btest-Traces/modbus"},
	DNP3:   {"ITI-ICS-Security-Tools/dnp3", "ITI-ICS-Security-Tools/bro/dnp3", "zeek-btest-Traces/dnp3"},
	S7comm: {"ITI-ICS-Security-Tools/s7"},
	ENIP:   {"ITI-ICS-Security-Tools/EthernetIP", "ITI-ICS-Security-Tools/CIP", "ITI-ICS-Security-Tools/quickdraw/CL5000EIP"},
	IEC104: {"ITI-ICS-Security-Tools/IEC60870-5-104"},
	BACnet: {"ITI-ICS-Security-Tools/BACnet"},
	MQTT:   {"zeek-btest-Traces/mqtt.pcap"},
	OPCUA:  {"ITI-ICS-Security-Tools/OPC"},
}

// fuzzedCaptures hold deliberately broken traffic: they must not crash the
// decoders, but their malformed share is not bounded.
var fuzzedCaptures = []string{"fuzz-", "Malformed", "TestDissect", "flowbuffer-overflow"}

type captureStats struct {
	portPayloads int // TCP/UDP payloads to or from the protocol's well-known port
	pdus         int
	malformed    int
}

// TestSharedCaptures decodes every capture in ../shared/captures (pcap and
// pcapng, all link types gopacket knows) and checks that the decoders never
// panic or return an out-of-range length, and that each protocol's folders
// yield a plausible number of PDUs: at least half as many as there are
// payload packets on the protocol's well-known port, with few violations.
func TestSharedCaptures(t *testing.T) {
	if testing.Short() {
		t.Skip("walks ~60 MB of captures")
	}
	dir := pcaptest.Require(t)
	var files []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(path, ".pcap") || strings.HasSuffix(path, ".pcapng")) {
			files = append(files, path)
		}
		return nil
	})
	sort.Strings(files)
	perProto := map[Protocol]*captureStats{}
	totals := map[Protocol][2]int{}
	for _, path := range files {
		rel, _ := filepath.Rel(dir, path)
		owner := folderProtocol(rel)
		fuzzed := isFuzzed(rel)
		s := newStreamDecoder()
		readL4(t, path, func(p l4Packet) {
			if owner != None && !fuzzed && (portProtocol(p.srcPort, p.udp) == owner || portProtocol(p.dstPort, p.udp) == owner) {
				st(perProto, owner).portPayloads++
			}
			s.feed(p, func(d *PDU) {
				proto := d.Proto
				if proto == S7commPlus {
					proto = S7comm
				}
				c := totals[proto]
				c[0]++
				if d.Malformed != "" {
					c[1]++
				}
				totals[proto] = c
				if proto == owner && !fuzzed {
					st(perProto, owner).pdus++
					if d.Malformed != "" {
						st(perProto, owner).malformed++
					}
				}
			})
		})
	}
	t.Logf("%d captures decoded", len(files))
	for _, p := range Protocols() {
		if p == S7commPlus {
			continue
		}
		c := totals[p]
		s := st(perProto, p)
		t.Logf("%-7s all captures: %7d PDUs, %5d malformed; own folders: %6d PDUs, %4d malformed, %6d payloads on its port",
			p, c[0], c[1], s.pdus, s.malformed, s.portPayloads)
		if s.pdus == 0 {
			t.Errorf("%s: no PDU decoded from its folders", p)
			continue
		}
		if 2*s.pdus < s.portPayloads {
			t.Errorf("%s: %d PDUs from %d payloads on its port; expected at least half", p, s.pdus, s.portPayloads)
		}
		if 20*s.malformed > s.pdus {
			t.Errorf("%s: %d of %d PDUs malformed in captures that are not fuzzed; expected under 5%%", p, s.malformed, s.pdus)
		}
	}
}

func st(m map[Protocol]*captureStats, p Protocol) *captureStats {
	if m[p] == nil {
		m[p] = &captureStats{}
	}
	return m[p]
}

func folderProtocol(rel string) Protocol {
	rel = filepath.ToSlash(rel)
	for p, dirs := range protocolFolders {
		for _, d := range dirs {
			if strings.HasPrefix(rel, d) {
				return p
			}
		}
	}
	return None
}

func isFuzzed(rel string) bool {
	for _, f := range fuzzedCaptures {
		if strings.Contains(rel, f) {
			return true
		}
	}
	return false
}
