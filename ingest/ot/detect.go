package ot

import "errors"

// Well-known ports (IANA registry unless noted).
const (
	portModbus   = 502
	portDNP3     = 20000
	portS7       = 102 // ISO-TSAP (RFC 1006)
	portENIP     = 44818
	portENIPIO   = 2222 // EtherNet/IP implicit (class 0/1) I/O over UDP
	portIEC104   = 2404
	portBACnet   = 47808 // 0xBAC0
	portMQTT     = 1883
	portMQTTTLS  = 8883
	portOPCUA    = 4840
	portBACnetHi = 47823 // 0xBACF: BACnet/IP devices may use 0xBAC0–0xBACF (ASHRAE 135 Annex J.1)
)

// Detect guesses the protocol of a flow from its ports and the first bytes of
// a payload. It returns None when nothing fits, and whether the payload flows
// from the server (the side on the well-known port; for payload-only
// guesses, see signatureFromServer).
//
// A well-known port is accepted only when the payload is empty or plausible
// for that protocol, so that other traffic on port 502 or a TLS session on
// 8883 is not decoded as Modbus or MQTT. When no port matches, only strong
// payload signatures are accepted (a DNP3 header with a valid CRC, TPKT+COTP,
// an MQTT CONNECT, an OPC UA message whose size matches, an MBAP or
// encapsulation header whose length matches the payload exactly). Call it
// on the first payload of a flow and keep the answer; when it returns None,
// calling it again on the flow's next payloads lets a flow whose first
// segment was garbage or mid-PDU be recognised later.
//
// When both ports name a protocol (a Modbus client that happens to use
// source port 2404) and the payload is plausible for both, the one whose
// PDU decodes without a violation wins; the source port wins a tie. On an
// empty payload the answer is only a port guess, for the protocol and the
// direction alike: when the TCP handshake told client and server apart,
// use DetectServer instead.
func Detect(srcPort, dstPort uint16, udp bool, payload []byte) (p Protocol, fromServer bool) {
	ps, pd := portProtocol(srcPort, udp), portProtocol(dstPort, udp)
	okS := ps != None && plausible(ps, payload, udp)
	okD := pd != None && pd != ps && plausible(pd, payload, udp)
	if okS && okD && len(payload) > 0 && !decodesCleanly(ps, payload, true) && decodesCleanly(pd, payload, false) {
		okS = false
	}
	switch {
	case okS:
		return ps, true
	case okD:
		return pd, false
	}
	if p = bySignature(payload, udp); p != None {
		return p, signatureFromServer(p, payload, srcPort, dstPort)
	}
	return None, false
}

// DetectServer guesses the protocol of a flow whose server is known, from
// the TCP handshake (the SYN's destination) or an earlier payload: only the
// server's port may name the protocol, and only when the payload is
// plausible for it; otherwise only a strong payload signature counts, as
// in Detect. The client's port is never consulted, so a Modbus poll from
// client port 2404 stays Modbus. An empty payload yields the server port's
// protocol as a guess: call again on the flow's first payload.
func DetectServer(serverPort uint16, udp bool, payload []byte) Protocol {
	if p := portProtocol(serverPort, udp); p != None && plausible(p, payload, udp) {
		return p
	}
	return bySignature(payload, udp)
}

// decodesCleanly reports whether b starts with a PDU of p that violates
// nothing, or with the beginning of one.
func decodesCleanly(p Protocol, b []byte, fromServer bool) bool {
	var d PDU
	_, err := Decode(p, b, fromServer, &d)
	return errors.Is(err, ErrShort) || err == nil && d.Malformed == ""
}

// signatureFromServer tells the direction of a payload recognised by its
// shape: from the protocol's own direction marks where it has them (DNP3
// DIR bit, COTP CC, OPC UA ACK/ERR, MQTT CONNECT), else the lower port is
// taken to be the server's.
func signatureFromServer(p Protocol, b []byte, srcPort, dstPort uint16) bool {
	switch p {
	case DNP3:
		return b[3]&0x80 == 0 // DIR set: from the master
	case S7comm:
		return b[5]&0xf0 == cotpCC
	case OPCUA:
		return string(b[:3]) == "ACK" || string(b[:3]) == "ERR"
	case MQTT:
		return false // only a CONNECT is recognised
	}
	return srcPort < dstPort
}

// PortProtocol returns the protocol whose well-known port is port (None
// when there is none): a guess to hold until a payload validates.
func PortProtocol(port uint16, udp bool) Protocol { return portProtocol(port, udp) }

func portProtocol(port uint16, udp bool) Protocol {
	switch port {
	case portModbus:
		return Modbus
	case portDNP3:
		return DNP3
	case portS7:
		if !udp {
			return S7comm
		}
	case portENIP:
		return ENIP
	case portENIPIO:
		// Implicit I/O is UDP only; on TCP, 2222 is an ordinary port
		// (also a client's ephemeral one).
		if udp {
			return ENIP
		}
	case portIEC104:
		if !udp {
			return IEC104
		}
	case portMQTT, portMQTTTLS:
		if !udp {
			return MQTT
		}
	case portOPCUA:
		if !udp {
			return OPCUA
		}
	}
	if udp && port >= portBACnet && port <= portBACnetHi {
		return BACnet
	}
	return None
}

// plausible checks that payload could start a PDU of p. An empty payload
// (e.g. a SYN) is plausible: the port is all there is to go on.
func plausible(p Protocol, b []byte, udp bool) bool {
	if len(b) == 0 {
		return true
	}
	switch p {
	case Modbus:
		return len(b) < 6 || be16(b[2:]) == 0 && be16(b[4:]) >= 2 && be16(b[4:]) <= modbusMaxMBAP+modbusLenTolerance
	case DNP3:
		return b[0] == 0x05 && (len(b) < 2 || b[1] == 0x64)
	case S7comm:
		return b[0] == 0x03 && (len(b) < 2 || b[1] == 0x00)
	case ENIP:
		if len(b) < 2 {
			return true
		}
		// Implicit I/O datagrams have no encapsulation header: they start
		// with the common packet format's item count.
		c := le16(b)
		return enipCommandName(c) != "" || udp && c >= 1 && c <= 16
	case IEC104:
		return b[0] == 0x68
	case BACnet:
		return b[0] == 0x81
	case MQTT:
		t := b[0] >> 4
		return t >= 1 && t <= 15 && !looksLikeTLS(b)
	case OPCUA:
		return len(b) < 3 || opcuaMessageType(b) >= 0
	}
	return false
}

// looksLikeTLS recognises a TLS record header (content type 20–23, major
// version 3), which MQTT on 8883 carries.
func looksLikeTLS(b []byte) bool {
	return len(b) >= 3 && b[0] >= 20 && b[0] <= 23 && b[1] == 3
}

func bySignature(b []byte, udp bool) Protocol {
	switch {
	case len(b) >= 10 && b[0] == 0x05 && b[1] == 0x64 && dnp3CRC(b[:8]) == le16(b[8:]):
		return DNP3
	case !udp && len(b) >= 7 && b[0] == 0x03 && b[1] == 0 && int(be16(b[2:])) == len(b) &&
		int(b[4]) < len(b)-4 && (b[5] == 0xe0 || b[5] == 0xd0 || b[5] == 0xf0):
		return S7comm
	case !udp && len(b) >= 8 && opcuaMessageType(b) >= 0 && int(le32(b[4:])) == len(b):
		return OPCUA
	case !udp && len(b) >= 12 && b[0] == 0x10 && mqttConnectSignature(b):
		return MQTT
	case !udp && len(b) >= 8 && be16(b[2:]) == 0 && int(be16(b[4:])) == len(b)-6 && be16(b[4:]) >= 2 && b[7] != 0 && b[7] < 0x80 && modbusFuncs[b[7]].name != "":
		return Modbus
	case len(b) >= 24 && enipCommandName(le16(b)) != "" && int(le16(b[2:])) == len(b)-24:
		return ENIP
	case udp && len(b) >= 4 && b[0] == 0x81 && int(be16(b[2:])) == len(b) && b[1] <= 0x0c:
		return BACnet
	case !udp && len(b) == 6 && b[0] == 0x68 && b[1] == 4 && b[2]&3 == 3:
		return IEC104 // a lone U-frame such as STARTDT act
	}
	return None
}

// mqttConnectSignature recognises the protocol name of a CONNECT (MQTT 3.1.1
// §3.1.2.1 "MQTT", MQTT 3.1 "MQIsdp") after the remaining-length varint.
func mqttConnectSignature(b []byte) bool {
	i := 1
	for i < len(b) && i < 5 && b[i]&0x80 != 0 {
		i++
	}
	i++
	if i+8 > len(b) {
		return false
	}
	name := b[i:]
	return name[0] == 0 && (name[1] == 4 && string(name[2:6]) == "MQTT" || name[1] == 6 && len(name) >= 8 && string(name[2:8]) == "MQIsdp")
}
