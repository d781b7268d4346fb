package ot

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// capturePDUs decodes a committed capture through the stream decoder and
// returns copies of its PDUs.
func capturePDUs(t *testing.T, rel string) []PDU {
	t.Helper()
	var pdus []PDU
	s := newStreamDecoder()
	readL4(t, filepath.Join(goldenDir, rel), func(p l4Packet) {
		s.feed(p, func(d *PDU) {
			c := *d
			c.ClientID, c.Topic, c.Text = strings.Clone(d.ClientID), strings.Clone(d.Topic), strings.Clone(d.Text)
			c.buf = nil
			pdus = append(pdus, c)
		})
	})
	return pdus
}

// find returns the first PDU named name, failing the test when none is.
func find(t *testing.T, pdus []PDU, name string, response bool) PDU {
	t.Helper()
	for _, d := range pdus {
		if d.FunctionName == name && d.Response == response {
			return d
		}
	}
	t.Fatalf("no %s (response=%v) among %d PDUs", name, response, len(pdus))
	return PDU{}
}

// TestControlOperationsInRealCaptures checks the operations a network
// baseline must notice, in captures named after them.
func TestControlOperationsInRealCaptures(t *testing.T) {
	cases := []struct {
		capture, function string
		class             Class
		proto             Protocol
	}{
		{"s7comm/step7_s300_stop.pcapng", "plc_stop", ClassControl, S7comm},
		{"s7comm/s7comm_downloading_block_db1.pcap", "download_block", ClassControl, S7comm},
		{"s7comm/s7comm_downloading_block_db1.pcap", "request_download", ClassControl, S7comm},
		{"s7comm/snap7_s300_everything.pcapng", "start_upload", ClassControl, S7comm},
		{"s7comm/snap7_s300_everything.pcapng", "write_var", ClassWrite, S7comm},
		{"dnp3/cold_restart_and_response.pcap", "cold_restart", ClassControl, DNP3},
		{"dnp3/warm_restart_and_response.pcap", "warm_restart", ClassControl, DNP3},
		{"dnp3/directoperate_and_response.pcap", "direct_operate", ClassWrite, DNP3},
		{"dnp3/file_read.pcap", "open_file", ClassControl, DNP3},
		{"enip/cip_stop_plc.pcap", "stop", ClassControl, ENIP},
		{"enip/cip_start_plc.pcap", "start", ClassControl, ENIP},
		{"enip/EIP-RebootorRestart.pcap", "reset", ClassControl, ENIP},
		{"modbus/modbusSmall.pcap", "write_multiple_coils", ClassWrite, Modbus},
		{"modbus/modicon_test.pcap", "umas_initialize_upload", ClassControl, Modbus},
		{"iec104/090813_diverse.pcap", "C_SC_NA_1", ClassWrite, IEC104},
		{"iec104/090813_diverse.pcap", "C_IC_NA_1", ClassRead, IEC104},
		{"opcua/opc-ua-ap-method-wireshark-freeze.pcap", "call", ClassControl, OPCUA},
	}
	for _, c := range cases {
		d := find(t, capturePDUs(t, c.capture), c.function, false)
		if d.Class != c.class || d.Proto != c.proto || d.Malformed != "" {
			t.Errorf("%s: %s is %s/%s malformed=%q, want %s/%s", c.capture, c.function, d.Proto, d.Class, d.Malformed, c.proto, c.class)
		}
	}
}

func TestS7PlcStopCarriesPIService(t *testing.T) {
	d := find(t, capturePDUs(t, "s7comm/step7_s300_stop.pcapng"), "plc_stop", false)
	if d.Text != "P_PROGRAM" || d.Function != 0x29 || d.Sub != 1 {
		t.Fatalf("plc_stop: %+v", d)
	}
}

// TestS7commPlusRequestsAnswered: tshark 4.0 has no S7comm-plus dissector,
// so instead of a golden file this checks the decoded stream against the
// protocol's own structure: every request function is answered by a
// response with the same function.
func TestS7commPlusRequestsAnswered(t *testing.T) {
	pending := map[uint16]int{}
	requests := 0
	for _, d := range capturePDUs(t, "s7comm/S7-1200-Uploading-OB1-TIAV12.pcap") {
		if d.Proto != S7commPlus || d.Class == ClassOther && !strings.Contains(d.FunctionName, "_") {
			continue
		}
		if d.FunctionName == "s7plus_continuation" || d.FunctionName == "notification" || d.FunctionName == "keep_alive" {
			continue
		}
		if d.Response {
			pending[d.Function]--
		} else {
			pending[d.Function]++
			requests++
		}
	}
	t.Logf("%d S7comm-plus requests", requests)
	if requests < 10 {
		t.Fatalf("only %d S7comm-plus requests decoded", requests)
	}
	for fn, open := range pending {
		if open != 0 {
			t.Errorf("function %#04x: %d requests without a response", fn, open)
		}
	}
}

func TestMQTTClientAndTopic(t *testing.T) {
	pdus := capturePDUs(t, "mqtt/mqtt.pcap")
	c := find(t, pdus, "connect", false)
	if !strings.HasPrefix(c.ClientID, "paho/") {
		t.Errorf("client id %q", c.ClientID)
	}
	if p := find(t, pdus, "publish", false); p.Topic != "SampleTopic" || p.Class != ClassWrite {
		t.Errorf("publish: %+v", p)
	}
}

// bacnetFrame wraps an APDU in a BVLC Original-Unicast-NPDU and an NPDU
// (ASHRAE 135 Annex J.2, clause 6.2) expecting a reply.
func bacnetFrame(apdu ...byte) []byte {
	b := []byte{0x81, 0x0a, 0, 0, 0x01, 0x04}
	b = append(b, apdu...)
	b[3] = byte(len(b))
	return b
}

// TestBACnetServices uses frames built from clause 20/21 encodings for the
// services the BACnet capture does not contain.
func TestBACnetServices(t *testing.T) {
	cases := []struct {
		name  string
		frame []byte
		want  string
		class Class
		resp  bool
		exc   uint8
	}{
		// confirmed request, invoke id 7, reinitialize-device(20), state coldstart
		{"reinitialize", bacnetFrame(0x00, 0x05, 0x07, 20, 0x09, 0x00), "reinitialize_device", ClassControl, false, 0},
		// device-communication-control(17): duration 5 min, disable
		{"dcc", bacnetFrame(0x00, 0x05, 0x08, 17, 0x09, 0x05, 0x19, 0x01), "device_communication_control", ClassControl, false, 0},
		// write-property(15): analog-value 1, present-value(85), real 1.0
		{"write", bacnetFrame(0x00, 0x05, 0x09, 15, 0x0c, 0x00, 0x80, 0x00, 0x01, 0x19, 0x55, 0x3e, 0x44, 0x3f, 0x80, 0, 0, 0x3f), "write_property", ClassWrite, false, 0},
		// simple ACK of write-property
		{"ack", bacnetFrame(0x20, 0x09, 15), "write_property", ClassWrite, true, 0},
		// error: class property(2), code write-access-denied(40)
		{"error", bacnetFrame(0x50, 0x09, 15, 0x91, 0x02, 0x91, 40), "write_property", ClassWrite, true, 40},
		// unconfirmed who-is
		{"whois", bacnetFrame(0x10, 0x08), "who_is", ClassDiagnostic, false, 0},
		// reject: invoke 3, reason unrecognized-service(9)
		{"reject", bacnetFrame(0x60, 0x03, 0x09), "reject", ClassOther, true, 9},
	}
	var d PDU
	for _, c := range cases {
		n, err := Decode(BACnet, c.frame, false, &d)
		if err != nil || n != len(c.frame) {
			t.Fatalf("%s: n=%d err=%v", c.name, n, err)
		}
		if d.FunctionName != c.want || d.Class != c.class || d.Response != c.resp || d.Exception != c.exc || d.Malformed != "" {
			t.Errorf("%s: got %s/%s resp=%v exc=%d malformed=%q", c.name, d.FunctionName, d.Class, d.Response, d.Exception, d.Malformed)
		}
	}
	if n, _ := Decode(BACnet, bacnetFrame(0x00, 0x05, 0x09, 15, 0x0c, 0x00, 0x80, 0x00, 0x01), false, &d); n == 0 || d.Address != 0x00800001 {
		t.Errorf("write-property object identifier %#x", d.Address)
	}
}

// TestSplitPDUsNeedMoreBytes cuts every well-formed TCP PDU of the
// committed captures at every length: a prefix must ask for more bytes (with
// Need either unknown or the PDU's length), never decode as something else.
func TestSplitPDUsNeedMoreBytes(t *testing.T) {
	for dir, proto := range map[string]Protocol{"modbus": Modbus, "dnp3": DNP3, "s7comm": S7comm, "enip": ENIP, "iec104": IEC104, "mqtt": MQTT, "opcua": OPCUA} {
		checked := 0
		for _, seed := range seedPayloads(t, dir, proto, 300) {
			var d PDU
			n, err := Decode(proto, seed, false, &d)
			if err != nil || d.Malformed != "" || d.FunctionName == "" || (proto == ENIP && d.Function == 0x200) {
				continue
			}
			for k := 1; k < n; k++ {
				var p PDU
				m, err := Decode(proto, seed[:k], false, &p)
				if !errors.Is(err, ErrShort) || m != 0 || (p.Need != 0 && p.Need != n) {
					t.Fatalf("%s: %d-byte prefix of a %d-byte PDU: n=%d err=%v Need=%d", proto, k, n, m, err, p.Need)
				}
			}
			checked++
		}
		if checked == 0 {
			t.Errorf("%s: no PDU checked", proto)
		}
	}
}

func TestDetect(t *testing.T) {
	modbus := seedPayloads(t, "modbus", Modbus, 1)[0]
	dnp3 := seedPayloads(t, "dnp3", DNP3, 1)[0]
	tpkt := seedPayloads(t, "s7comm", S7comm, 1)[0]
	cases := []struct {
		name           string
		src, dst       uint16
		udp            bool
		payload        []byte
		want           Protocol
		wantFromServer bool
	}{
		{"modbus request", 49152, 502, false, modbus, Modbus, false},
		{"modbus response", 502, 49152, false, modbus, Modbus, true},
		{"syn to 502", 49152, 502, false, nil, Modbus, false},
		{"http on 502", 49152, 502, false, []byte("GET / HTTP/1.1\r\n\r\n"), None, false},
		{"tls on 8883", 49152, 8883, false, []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}, None, false},
		{"dnp3 on 20000", 40000, 20000, false, dnp3, DNP3, false},
		{"dnp3 request on odd ports (DIR set)", 30001, 40000, false, dnp3Frame(0xc4, 0xc0, 0xc1, 1, 60, 1, 0x06), DNP3, false},
		{"dnp3 response on odd ports (DIR clear)", 40000, 30001, false, dnp3Frame(0x44, 0xc0, 0xc1, 129, 0, 0), DNP3, true},
		{"opcua acknowledge on odd ports", 30000, 12001, false, []byte("ACKF\x1c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00"), OPCUA, true},
		{"s7 on 102", 40000, 102, false, tpkt, S7comm, false},
		{"opcua hello on odd port", 50000, 12001, false, []byte("HEL\x46\x08\x00\x00\x00"), OPCUA, false},
		{"bacnet on 47808", 47808, 47808, true, bacnetFrame(0x10, 0x08), BACnet, true},
		{"mqtt connect on odd port", 50000, 11883, false, []byte{0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 0}, MQTT, false},
		{"iec104 startdt", 40000, 2404, false, []byte{0x68, 4, 7, 0, 0, 0}, IEC104, false},
		{"random udp", 5353, 5353, true, []byte{1, 2, 3, 4}, None, false},
	}
	for _, c := range cases {
		p, fromServer := Detect(c.src, c.dst, c.udp, c.payload)
		if p != c.want || (p != None && fromServer != c.wantFromServer) {
			t.Errorf("%s: got %s fromServer=%v, want %s fromServer=%v", c.name, p, fromServer, c.want, c.wantFromServer)
		}
	}
}

func TestMalformedFramesAreExplained(t *testing.T) {
	cases := []struct {
		proto   Protocol
		payload []byte
		reason  string
	}{
		{Modbus, []byte{0, 1, 0, 5, 0, 6, 1, 3, 0, 0, 0, 1}, "modbus protocol identifier is not 0"},
		{Modbus, []byte{0, 1, 0, 0, 0, 3, 1, 0x83, 0}, "modbus exception code 0"},
		{Modbus, []byte{0, 1, 0, 0, 0, 6, 1, 5, 0, 1, 0x12, 0x34}, "modbus write single coil value is not 0x0000 or 0xff00"},
		{IEC104, []byte{0x68, 4, 0x0f, 0, 0, 0}, "iec104 u-format with none or several functions"},
		{IEC104, []byte{0x68, 0x0e, 0, 0, 0, 0, 45, 1, 0, 0, 1, 0, 1, 0, 0, 1}, "iec104 cause of transmission 0"},
		{MQTT, []byte{0x00, 0x00}, "mqtt reserved packet type 0"},
		{MQTT, []byte{0x82, 0x00}, "mqtt subscribe without packet identifier"},
		{OPCUA, []byte("XYZF\x08\x00\x00\x00"), "opcua unknown message type"},
		{BACnet, []byte{0x81, 0x0a, 0x00, 0x40, 0x01, 0x00}, "bacnet bvlc length does not fit the datagram"},
		{ENIP, []byte{0x99, 0x99}, "enip unknown encapsulation command"},
	}
	var d PDU
	for _, c := range cases {
		n, err := Decode(c.proto, c.payload, false, &d)
		if err != nil || n == 0 || d.Malformed != c.reason {
			t.Errorf("%s % x: n=%d err=%v malformed=%q, want %q", c.proto, c.payload, n, err, d.Malformed, c.reason)
		}
	}
}

// dnp3CRCBytewise is the one-byte-at-a-time reference for dnp3CRC.
func dnp3CRCBytewise(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc = crc>>8 ^ dnp3CRCTable[byte(crc)^c]
	}
	return ^crc
}

// TestDNP3CRC checks the sliced CRC against the bytewise one and against
// the check value of CRC-16/DNP ("123456789" → 0xEA82).
func TestDNP3CRC(t *testing.T) {
	if got := dnp3CRC([]byte("123456789")); got != 0xea82 {
		t.Fatalf("CRC-16/DNP check value %#04x, want 0xea82", got)
	}
	b := make([]byte, 64)
	for i := range b {
		b[i] = byte(i*131 + 7)
	}
	for n := 0; n <= len(b); n++ {
		if dnp3CRC(b[:n]) != dnp3CRCBytewise(b[:n]) {
			t.Fatalf("length %d: sliced %#04x, bytewise %#04x", n, dnp3CRC(b[:n]), dnp3CRCBytewise(b[:n]))
		}
	}
}

// TestCraftedFromSpec covers encodings the real captures lack, each built
// by hand from the cited clause.
func TestCraftedFromSpec(t *testing.T) {
	opcMsg := func(nodeID ...byte) []byte {
		// OPC 10000-6 §6.7.2: MSG, F, size, channel id, token id, sequence
		// number, request id (7), then the service NodeId.
		b := []byte("MSGF\x00\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x05\x00\x00\x00\x07\x00\x00\x00")
		b = append(b, nodeID...)
		b[4] = byte(len(b))
		return b
	}
	cases := []struct {
		name    string
		proto   Protocol
		payload []byte
		check   func(d *PDU) bool
	}{
		{"enip implicit i/o (Vol 2 §2-6: sequenced address + connected data)", ENIP,
			[]byte{2, 0, 0x02, 0x80, 8, 0, 1, 0, 0, 0, 9, 0, 0, 0, 0xb1, 0, 4, 0, 9, 0, 0xaa, 0xbb},
			func(d *PDU) bool { return d.FunctionName == "io_data" && d.Quantity == 2 && d.Malformed == "" }},
		{"enip implicit i/o item past the datagram", ENIP,
			[]byte{2, 0, 0x02, 0x80, 8, 0, 1, 0, 0, 0, 9, 0, 0, 0, 0xb1, 0, 40, 0, 9, 0},
			func(d *PDU) bool { return d.Malformed == "enip implicit i/o common packet format exceeds the datagram" }},
		{"mqtt 5 connect with properties (§3.1.2.11)", MQTT,
			[]byte{0x10, 18, 0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 60, 3, 0x21, 0, 10, 0, 2, 'i', 'd'},
			func(d *PDU) bool { return d.ClientID == "id" && d.Malformed == "" }},
		{"mqtt 3.1 connect (MQIsdp)", MQTT,
			[]byte{0x10, 16, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 2, 0, 60, 0, 2, 'c', '1'},
			func(d *PDU) bool { return d.ClientID == "c1" && d.Malformed == "" }},
		{"mqtt 5 subscribe with properties (§3.8.2.1)", MQTT,
			[]byte{0x82, 9, 0, 7, 2, 0x0b, 1, 0, 2, 'a', '/'},
			func(d *PDU) bool { return d.Topic == "a/" && d.Transaction == 7 }},
		{"mqtt publish qos 1 with packet id", MQTT,
			[]byte{0x32, 7, 0, 3, 't', '/', 'x', 0, 42},
			func(d *PDU) bool { return d.Topic == "t/x" && d.Transaction == 42 && d.Class == ClassWrite }},
		{"mqtt connack refused (§3.2.2.3)", MQTT, []byte{0x20, 2, 0, 5},
			func(d *PDU) bool { return d.Exception == 5 && d.Response }},
		{"opcua write request, four-byte NodeId (§5.2.2.9)", OPCUA, opcMsg(0x01, 0x00, 0xa1, 0x02),
			func(d *PDU) bool { return d.FunctionName == "write" && d.Class == ClassWrite && d.Transaction == 7 }},
		{"opcua service fault, numeric NodeId", OPCUA, opcMsg(0x02, 0, 0, 0x8d, 0x01, 0, 0),
			func(d *PDU) bool { return d.FunctionName == "service_fault" && d.Exception == 1 && d.Response }},
		{"opcua encrypted body (string NodeId)", OPCUA, opcMsg(0x03, 0, 0, 1, 0, 0, 0, 'x'),
			func(d *PDU) bool { return d.FunctionName == "message" && d.Function == 0xff05 }},
		{"bacnet routed npdu to network 5 (clause 6.2.2)", BACnet,
			[]byte{0x81, 0x0a, 0, 17, 0x01, 0x24, 0, 5, 1, 9, 0xff, 0x00, 0x05, 0x01, 12, 0x0c, 0},
			func(d *PDU) bool { return d.Unit == 5 && d.FunctionName == "read_property" }},
		{"bacnet who-is-router network message (clause 6.4.1)", BACnet,
			[]byte{0x81, 0x0b, 0, 7, 0x01, 0x80, 0x00},
			func(d *PDU) bool { return d.FunctionName == "who_is_router_to_network" && d.Function == 0x200 }},
		{"bacnet forwarded npdu (Annex J.2.9)", BACnet,
			[]byte{0x81, 0x04, 0, 16, 10, 0, 0, 1, 0xba, 0xc0, 0x01, 0x00, 0x10, 0x08, 0, 0},
			func(d *PDU) bool { return d.FunctionName == "who_is" }},
		{"s7comm-plus keep alive", S7comm, []byte{3, 0, 0, 11, 2, 0xf0, 0x80, 0x72, 0xff, 0, 0},
			func(d *PDU) bool { return d.Proto == S7commPlus && d.FunctionName == "keep_alive" }},
		{"cotp disconnect request", S7comm, []byte{3, 0, 0, 11, 6, 0x80, 0, 1, 0, 2, 0},
			func(d *PDU) bool { return d.FunctionName == "cotp_disconnect_request" && d.Function == 0x180 }},
		{"iec104 stopdt con", IEC104, []byte{0x68, 4, 0x23, 0, 0, 0},
			func(d *PDU) bool { return d.FunctionName == "stopdt_con" && d.Response }},
		{"iec104 reset process command (C_RP_NA_1)", IEC104,
			[]byte{0x68, 14, 0, 0, 0, 0, 105, 1, 6, 0, 1, 0, 0, 0, 0, 1},
			func(d *PDU) bool { return d.Class == ClassControl && !d.Response && d.Malformed == "" }},
		{"dnp3 read class 0 (g60v1, all objects)", DNP3, dnp3Frame(0xc4, 0xc0, 0xc1, 1, 60, 1, 0x06),
			func(d *PDU) bool { return d.FunctionName == "read" && d.Address == 0x3c01 && d.Malformed == "" }},
		{"dnp3 stop application (clause 4, function 18)", DNP3, dnp3Frame(0xc4, 0xc0, 0xc1, 18),
			func(d *PDU) bool { return d.FunctionName == "stop_application" && d.Class == ClassControl }},
	}
	var d PDU
	for _, c := range cases {
		n, err := Decode(c.proto, c.payload, false, &d)
		if err != nil || n != len(c.payload) || !c.check(&d) {
			t.Errorf("%s: n=%d/%d err=%v pdu=%+v", c.name, n, len(c.payload), err, d)
		}
	}
}

// dnp3Frame builds a DNP3 link frame (IEEE 1815 clause 9) from master 1 to
// outstation 10 with the given control octet and user data, CRCs included.
func dnp3Frame(ctrl byte, user ...byte) []byte {
	h := []byte{0x05, 0x64, byte(5 + len(user)), ctrl, 10, 0, 1, 0}
	crc := dnp3CRCBytewise(h)
	b := append(h, byte(crc), byte(crc>>8))
	for len(user) > 0 {
		blk := user[:min(16, len(user))]
		user = user[len(blk):]
		crc := dnp3CRCBytewise(blk)
		b = append(append(b, blk...), byte(crc), byte(crc>>8))
	}
	return b
}
