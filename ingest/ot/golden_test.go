package ot

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The golden tests compare, frame by frame, what Decode reports with what
// tshark 4.0 shows for the same packets. The expected files were produced
// once by testdata/ot/gen_golden.sh and are committed; tshark is not needed
// to run the tests.

const goldenDir = "../../testdata/ot"

// field renders one tshark field from a decoded PDU; ok is false when
// tshark would show nothing for this PDU.
type field func(d *PDU) (v string, ok bool)

func dec(v uint32) string  { return strconv.FormatUint(uint64(v), 10) }
func hex2(v uint32) string { return fmt.Sprintf("0x%02x", v) }

func framed(d *PDU) bool { return d.FunctionName != "" }

func isS7(d *PDU) bool {
	return d.Proto == S7comm && !strings.HasPrefix(d.FunctionName, "cotp_") && d.FunctionName != ""
}

// modbusHasAddress: requests of the read/write functions and the echoed
// write responses carry a reference number that Decode reports.
func modbusHasAddress(d *PDU) bool {
	// Quantity violations are reported after the reference and quantity
	// were read; single writes report the reference whenever it is there.
	if d.Exception != 0 {
		return false
	}
	switch d.Function {
	case 1, 2, 3, 4, 15, 16:
		ok := d.Malformed == "" || strings.Contains(d.Malformed, "quantity")
		return ok && (!d.Response || d.Function >= 15)
	case 5, 6, 22:
		return true
	case 24:
		return !d.Response
	}
	return false
}

func modbusWords(fc uint16) bool { return fc == 3 || fc == 4 || fc == 6 || fc == 16 }

func isCIP(d *PDU) bool { return d.Proto == ENIP && d.Function < 0x100 }

var goldenFields = map[string]field{
	// Modbus
	"mbtcp.trans_id": func(d *PDU) (string, bool) { return dec(d.Transaction), framed(d) },
	"mbtcp.unit_id":  func(d *PDU) (string, bool) { return dec(uint32(d.Unit)), framed(d) },
	"modbus.func_code": func(d *PDU) (string, bool) {
		return dec(uint32(d.Function)), framed(d)
	},
	"modbus.exception_code": func(d *PDU) (string, bool) { return dec(uint32(d.Exception)), d.Exception != 0 },
	"modbus.reference_num":  func(d *PDU) (string, bool) { return dec(d.Address), framed(d) && modbusHasAddress(d) },
	"modbus.word_cnt": func(d *PDU) (string, bool) {
		return dec(uint32(d.Quantity)), framed(d) && modbusHasAddress(d) && modbusWords(d.Function) && d.Function != 6 && d.Function < 22
	},
	"modbus.bit_cnt": func(d *PDU) (string, bool) {
		return dec(uint32(d.Quantity)), framed(d) && modbusHasAddress(d) && !modbusWords(d.Function) && d.Function != 5 && d.Function < 22
	},
	// DNP3
	"dnp3.src":     func(d *PDU) (string, bool) { return dec(uint32(d.Src)), framed(d) },
	"dnp3.dst":     func(d *PDU) (string, bool) { return dec(uint32(d.Dst)), framed(d) },
	"dnp3.al.func": func(d *PDU) (string, bool) { return dec(uint32(d.Function)), framed(d) && d.Function < 0x100 },
	"dnp3.al.obj": func(d *PDU) (string, bool) {
		return fmt.Sprintf("0x%04x", d.Address), framed(d) && d.Function < 0x100 && d.Quantity > 0
	},
	// S7comm
	"s7comm.header.rosctr": func(d *PDU) (string, bool) { return dec(uint32(d.Sub)), isS7(d) },
	"s7comm.header.pduref": func(d *PDU) (string, bool) { return dec(d.Transaction), isS7(d) },
	"s7comm.param.func": func(d *PDU) (string, bool) {
		return hex2(uint32(d.Function)), isS7(d) && (d.Sub == 1 || d.Sub == 3) && d.Function < 0x100
	},
	"s7comm.param.userdata.funcgroup": func(d *PDU) (string, bool) {
		return dec(uint32(d.Function >> 8 & 0xf)), isS7(d) && d.Sub == 7 && d.Function >= 0x1000
	},
	"s7comm.param.userdata.subfunc": func(d *PDU) (string, bool) {
		return dec(uint32(d.Function & 0xff)), isS7(d) && d.Sub == 7 && d.Function >= 0x1000
	},
	"s7comm.header.errcls": func(d *PDU) (string, bool) {
		return hex2(uint32(d.Exception)), isS7(d) && (d.Sub == 2 || d.Sub == 3)
	},
	"s7comm.param.pistart.servicename": func(d *PDU) (string, bool) { return d.Text, isS7(d) && d.Text != "" },
	// EtherNet/IP and CIP
	"enip.command": func(d *PDU) (string, bool) { return fmt.Sprintf("0x%04x", d.Sub), framed(d) && d.Sub != 0 },
	"enip.session": func(d *PDU) (string, bool) { return fmt.Sprintf("0x%08x", d.Transaction), framed(d) && d.Sub != 0 },
	"cip.sc": func(d *PDU) (string, bool) {
		if d.Routed {
			return "0x52," + hex2(uint32(d.Function)), isCIP(d)
		}
		return hex2(uint32(d.Function)), isCIP(d)
	},
	"cip.genstat": func(d *PDU) (string, bool) { return hex2(uint32(d.Exception)), isCIP(d) && d.Response },
	// IEC 60870-5-104
	"iec60870_104.type": func(d *PDU) (string, bool) {
		v := map[uint16]uint32{'I': 0, 'S': 1, 'U': 3}[d.Sub]
		return fmt.Sprintf("0x%08x", v), framed(d) && d.Sub != 0
	},
	"iec60870_104.utype": func(d *PDU) (string, bool) {
		return fmt.Sprintf("0x%08x", uint32(d.Function&0xff)>>2), d.Sub == 'U'
	},
	"iec60870_asdu.typeid": func(d *PDU) (string, bool) { return dec(uint32(d.Function)), d.Sub == 'I' && d.Function != 0 },
	"iec60870_asdu.causetx": func(d *PDU) (string, bool) {
		return dec(uint32(d.Cause)), d.Sub == 'I' && d.Function != 0 && (d.FunctionName != "asdu_truncated" || d.Cause != 0)
	},
	"iec60870_asdu.addr": func(d *PDU) (string, bool) {
		return dec(uint32(d.Unit)), d.Sub == 'I' && d.Function != 0 && d.FunctionName != "asdu_truncated"
	},
	"iec60870_asdu.numix": func(d *PDU) (string, bool) {
		return dec(uint32(d.Quantity)), d.Sub == 'I' && d.Function != 0 && (d.FunctionName != "asdu_truncated" || d.Quantity != 0)
	},
	"iec60870_asdu.ioa": func(d *PDU) (string, bool) {
		return dec(d.Address), d.Sub == 'I' && d.Function != 0 && d.FunctionName != "asdu_truncated"
	},
	// BACnet/IP
	"bvlc.function": func(d *PDU) (string, bool) { return hex2(uint32(d.Sub)), framed(d) },
	"bacapp.confirmed_service": func(d *PDU) (string, bool) {
		return dec(uint32(d.Function)), framed(d) && d.Function < 0x100
	},
	"bacapp.unconfirmed_service": func(d *PDU) (string, bool) {
		return dec(uint32(d.Function - 0x100)), d.Function >= 0x100 && d.Function < 0x200
	},
	"bacapp.invoke_id": func(d *PDU) (string, bool) { return dec(d.Transaction), framed(d) && d.Function < 0x100 },
	// MQTT
	"mqtt.msgtype":  func(d *PDU) (string, bool) { return dec(uint32(d.Function)), framed(d) },
	"mqtt.clientid": func(d *PDU) (string, bool) { return d.ClientID, d.ClientID != "" },
	"mqtt.topic":    func(d *PDU) (string, bool) { return d.Topic, d.Topic != "" },
	"mqtt.msgid":    func(d *PDU) (string, bool) { return dec(d.Transaction), d.Transaction != 0 },
	// OPC UA
	"opcua.transport.type": func(d *PDU) (string, bool) {
		return opcuaTypes[min(int(d.Sub>>8), len(opcuaTypes)-1)], framed(d)
	},
	"opcua.transport.chunk": func(d *PDU) (string, bool) { return string(rune(d.Sub & 0xff)), framed(d) },
	"opcua.servicenodeid.numeric": func(d *PDU) (string, bool) {
		return dec(uint32(d.Function)), framed(d) && d.Function < 0xff00
	},
	"opcua.security.rqid": func(d *PDU) (string, bool) {
		t := d.Sub >> 8
		return dec(d.Transaction), framed(d) && t >= 4 // OPN, MSG, CLO
	},
	"opcua.security.spu":       func(d *PDU) (string, bool) { return d.Text, d.Sub>>8 == 4 && d.Text != "" },
	"opcua.transport.endpoint": func(d *PDU) (string, bool) { return d.Text, d.Sub>>8 == 0 && d.Text != "" },
}

// sequenceFields are compared as one ordered list over the whole capture
// instead of per frame: tshark reports a DNP3 application function in the
// frame that completes the transport reassembly, Decode in the frame that
// carries the first segment (it does not buffer fragments).
var sequenceFields = map[string]bool{"dnp3.al.func": true, "dnp3.al.obj": true}

// projectWant: some fields are compared with tshark's first value only: for a CIP
// Multiple Service Packet tshark lists the outer service (0x0a) and every
// embedded one, Decode reports the outer service (and the strongest class
// among the embedded ones).
func projectWant(col, want string) string {
	if col == "cip.sc" && strings.HasPrefix(want, "0x0a,") {
		return "0x0a"
	}
	if col == "iec60870_asdu.ioa" || col == "dnp3.al.obj" {
		// tshark lists every object, Decode reports the first one.
		want, _, _ = strings.Cut(want, ",")
	}
	if col == "cip.genstat" {
		want, _, _ = strings.Cut(want, ",") // outer status of a Multiple Service Packet reply
	}
	return want
}

// knownDifferences lists the cells where Decode and tshark disagree on
// purpose, with the reason; everything else must match.
var knownDifferences = map[string]string{
	// A Userdata parameter whose head is 01 00 10 instead of 00 01 12:
	// tshark reads group 0 and stops; Decode still reads the subfunction
	// octet from its position.
	"s7comm/step7_s300_stop.pcapng#4#s7comm.param.userdata.subfunc": "malformed userdata head",
}

type goldenFile struct {
	path    string
	columns []string
	rows    map[int][]string // frame → values per column
	frames  []int
}

func readGolden(t *testing.T, path string) goldenFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("cannot open golden file: %v", err)
	}
	defer f.Close()
	g := goldenFile{path: path, rows: map[int][]string{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		cols := strings.Split(line, "\t")
		if g.columns == nil {
			g.columns = cols[1:]
			continue
		}
		frame, err := strconv.Atoi(cols[0])
		if err != nil {
			t.Fatalf("%s: bad frame number %q", path, cols[0])
		}
		for len(cols) < len(g.columns)+1 {
			cols = append(cols, "")
		}
		g.rows[frame] = cols[1:]
		g.frames = append(g.frames, frame)
	}
	return g
}

func TestGoldenTshark(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(goldenDir, "*", "*.tshark.tsv"))
	if len(files) == 0 {
		t.Fatal("no golden files in testdata/ot")
	}
	for _, gf := range files {
		capture := strings.TrimSuffix(gf, ".tshark.tsv")
		rel, _ := filepath.Rel(goldenDir, capture)
		t.Run(rel, func(t *testing.T) {
			g := readGolden(t, gf)
			if len(g.frames) == 0 {
				t.Skip("tshark shows no PDU of this protocol in the capture")
			}
			got := map[int][]PDU{}
			s := newStreamDecoder()
			readL4(t, capture, func(p l4Packet) {
				s.feed(p, func(d *PDU) {
					c := *d
					c.ClientID, c.Topic, c.Text = strings.Clone(d.ClientID), strings.Clone(d.Topic), strings.Clone(d.Text)
					c.buf = nil
					got[p.frame] = append(got[p.frame], c)
				})
			})
			mismatches := 0
			seqWant, seqGot := map[string][]string{}, map[string][]string{}
			for _, frame := range g.frames {
				want := g.rows[frame]
				for i, col := range g.columns {
					want[i] = projectWant(col, want[i])
					fn := goldenFields[col]
					if fn == nil {
						t.Fatalf("no extractor for tshark field %s", col)
					}
					var vals []string
					for k := range got[frame] {
						if v, ok := fn(&got[frame][k]); ok {
							vals = append(vals, v)
						}
					}
					have := strings.Join(vals, ",")
					if col == "iec60870_asdu.ioa" {
						have, _, _ = strings.Cut(have, ",") // first object of the frame, as projectWant
					}
					if sequenceFields[col] {
						if want[i] != "" {
							seqWant[col] = append(seqWant[col], strings.Split(want[i], ",")...)
						}
						seqGot[col] = append(seqGot[col], vals...)
						continue
					}
					if have == want[i] {
						continue
					}
					key := fmt.Sprintf("%s#%d#%s", filepath.ToSlash(rel), frame, col)
					if _, ok := knownDifferences[key]; ok {
						continue
					}
					mismatches++
					if mismatches <= 10 {
						t.Errorf("frame %d %s: decoded %q, tshark %q", frame, col, have, want[i])
					}
				}
			}
			for col, w := range seqWant {
				if strings.Join(w, ",") != strings.Join(seqGot[col], ",") {
					t.Errorf("%s over the capture: decoded %v, tshark %v", col, seqGot[col], w)
				}
			}
			if mismatches > 10 {
				t.Errorf("%d mismatching cells in total", mismatches)
			}
			t.Logf("%d frames compared", len(g.frames))
		})
	}
}
