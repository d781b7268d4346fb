// Package ot owns the decoding of industrial (OT) and IoT application
// protocols carried over TCP and UDP: Modbus/TCP, DNP3, S7comm (and the
// S7comm-plus header), EtherNet/IP with CIP, IEC 60870-5-104, BACnet/IP,
// MQTT and OPC UA binary.
//
// It sees only L4 payloads: the capture readers, L2–L4 decoding and TCP
// reassembly live in ingest/packet and ingest/pcap, which call Detect once per
// flow and Decode for every payload of that flow.
//
// Each decoder is written from the protocol's specification (cited in the
// comments), never allocates, never reads out of range and never panics:
// input that violates the specification is reported in PDU.Malformed, so it
// can be counted and alerted on as a protocol violation.
package ot

import (
	"errors"
	"unsafe"
)

// Protocol identifies an application protocol. The zero value None means
// "not an OT protocol we decode".
type Protocol uint8

// Protocols decoded by this package. S7commPlus is never returned by Detect
// (it shares TCP port 102 and the TPKT/COTP framing with S7comm); Decode(S7comm)
// reports it in PDU.Proto when the COTP payload carries protocol id 0x72.
const (
	None Protocol = iota
	Modbus
	DNP3
	S7comm
	ENIP
	IEC104
	BACnet
	MQTT
	OPCUA
	S7commPlus
	numProtocols
)

var protocolNames = [numProtocols]string{"none", "modbus", "dnp3", "s7comm", "enip", "iec104", "bacnet", "mqtt", "opcua", "s7comm-plus"}

// String returns the protocol's lower-case name ("modbus", "dnp3", "s7comm",
// "enip", "iec104", "bacnet", "mqtt", "opcua", "s7comm-plus", "none").
func (p Protocol) String() string {
	if p < numProtocols {
		return protocolNames[p]
	}
	return "unknown"
}

// Protocols lists every protocol Decode accepts, for callers that size
// per-protocol counters.
func Protocols() []Protocol {
	return []Protocol{Modbus, DNP3, S7comm, ENIP, IEC104, BACnet, MQTT, OPCUA, S7commPlus}
}

// Class is what a function does to the device, so that baselines and
// detectors can count reads, writes and control operations uniformly across
// protocols. A response that names the request's function (Modbus, S7,
// CIP, BACnet ACKs, OPC UA) carries its class; DNP3 responses and IEC 104
// monitor-direction data are ClassOther. Count requests (Response false)
// to count operations.
type Class uint8

// Classes. Control covers everything that changes how the device runs rather
// than its data: start, stop, restart, program download/upload, firmware.
const (
	ClassOther Class = iota
	ClassRead
	ClassWrite
	ClassControl
	ClassDiagnostic
	numClasses
)

var classNames = [numClasses]string{"other", "read", "write", "control", "diagnostic"}

// String returns "read", "write", "control", "diagnostic" or "other".
func (c Class) String() string {
	if c < numClasses {
		return classNames[c]
	}
	return "other"
}

// function is one entry of a protocol's table of function codes, service
// choices or message types: the name a PDU reports and its Class. An
// entry with an empty name is a code the protocol does not define.
type function struct {
	name  string
	class Class
}

// PDU is one decoded application protocol data unit. It is meant to be reused
// between calls: Decode resets every field. Strings (FunctionName,
// Malformed) are static; ClientID, Topic and Text alias a buffer owned by the
// PDU and stay valid only until the next Decode into the same PDU — copy them
// to keep them.
//
// Function is the protocol's own code for what the PDU does, so that the pair
// (Proto, Function) identifies an operation for an allowlist:
//   - Modbus: function code (exception bit 0x80 cleared).
//   - DNP3: application function code; 0x100+link function code for frames
//     without application data; 0x200 for a transport segment that
//     continues a fragment (no application header).
//   - Modbus UMAS (function 90) keeps Function 90; its sub-function is in
//     FunctionName (e.g. "umas_stop_plc") and Address.
//   - S7comm: Job/Ack-Data parameter function code; 0x1000|group<<8|subfunction
//     for Userdata; 0x102 for Ack; 0x100+COTP TPDU code for COTP frames
//     without S7 data (also non-S7 payloads such as ISO session/MMS).
//   - S7commPlus: function code of the S7comm-plus header (e.g. 0x04ca).
//   - ENIP: CIP service code (response bit cleared) when a CIP request or
//     reply is visible (the embedded request of an Unconnected Send, with
//     Routed set), otherwise 0x100+encapsulation command; 0x200 for
//     implicit I/O datagrams.
//   - IEC104: ASDU type identification for I-frames, 0x100+control byte for
//     U-frames (0x107 STARTDT act, …), 0x101 for S-frames.
//   - BACnet: confirmed service choice; 0x100+unconfirmed service choice;
//     0x200+network layer message type; 0x300+BVLC function when no NPDU;
//     0x400 segment ACK, 0x406 reject, 0x407 abort.
//   - MQTT: control packet type (1 CONNECT … 15 AUTH).
//   - OPCUA: numeric NodeId of the encoded service (e.g. 631 ReadRequest)
//     for MSG/OPN/CLO bodies in the clear, else 0xff00+message type index
//     (see Sub).
type PDU struct {
	Proto        Protocol
	Response     bool   // the PDU flows from server/outstation to client
	Function     uint16 // see the type comment
	FunctionName string // static snake_case name, e.g. "write_single_register"
	Class        Class
	// Exception is non-zero when a response reports failure: Modbus exception
	// code, DNP3 IIN2 request-error bits, S7 error class, CIP general status
	// (or the encapsulation status, capped at 255), BACnet error code (0xff
	// for "other") / reject or abort reason / BVLC result, IEC104 negative
	// or unknown-* cause, MQTT CONNACK/SUBACK return code, 1 for an OPC UA
	// ERR message or ServiceFault.
	Exception uint8
	Malformed string // protocol violation, "" when the PDU is well formed
	Len       int    // bytes of this PDU in the payload
	Need      int    // with ErrShort: total PDU length when the header is complete, else 0

	Transaction uint32 // Modbus transaction id, S7 PDU reference, BACnet invoke id, OPC UA request id, MQTT packet id, ENIP session handle, IEC104 send sequence N(S)
	Unit        uint16 // Modbus unit id, IEC104 common address of ASDU, BACnet destination network
	Src, Dst    uint16 // DNP3 link-layer source and destination addresses
	Address     uint32 // first data address: Modbus reference, IEC104 information object address, CIP class<<16|instance, BACnet object identifier, DNP3 first object group<<8|variation
	Quantity    uint16 // Modbus quantity of coils/registers, IEC104 number of objects, DNP3 object headers, CIP services in a Multiple Service Packet

	// Sub is the protocol's framing sub-kind: S7 ROSCTR (COTP TPDU code for
	// COTP-only frames), S7comm-plus version, ENIP encapsulation command,
	// BACnet BVLC function, IEC104 frame format ('I', 'S', 'U'), DNP3 link
	// function code, OPC UA message type index (HEL=0, ACK, ERR, RHE, OPN,
	// MSG, CLO) << 8 | chunk type ('F', 'C', 'A').
	Sub    uint16
	Cause  uint8 // IEC104 cause of transmission (6 bits)
	Routed bool  // CIP: the request was embedded in a Connection Manager Unconnected Send (0x52), which Function does not show

	ClientID string // MQTT CONNECT client identifier
	Topic    string // MQTT PUBLISH topic
	Text     string // S7 PI service, CIP symbolic tag, OPC UA security policy (OPN) / endpoint (HEL) / reason (ERR)

	buf []byte // backing store of ClientID, Topic and Text
}

// maxStringBytes caps how much of a device-controlled string a PDU keeps, so
// a hostile topic cannot grow the PDU's buffer without bound.
const maxStringBytes = 1024

// setString copies b (truncated to maxStringBytes) into the PDU's buffer
// and returns a string aliasing it. Capacity is reserved on first use so
// that later copies never reallocate and invalidate earlier strings of the
// same Decode.
func (out *PDU) setString(b []byte) string {
	if len(b) > maxStringBytes {
		b = b[:maxStringBytes]
	}
	if out.buf == nil {
		out.buf = make([]byte, 0, 3*maxStringBytes)
	}
	if len(out.buf)+len(b) > cap(out.buf) {
		return ""
	}
	start := len(out.buf)
	out.buf = append(out.buf, b...)
	if len(b) == 0 {
		return ""
	}
	s := out.buf[start:]
	return unsafe.String(&s[0], len(s))
}

func (out *PDU) reset(p Protocol) {
	buf := out.buf[:0]
	*out = PDU{Proto: p, buf: buf}
}

// ErrShort means the payload holds only the beginning of a PDU: keep the
// bytes and call Decode again when more have arrived. PDU.Need says how many
// bytes the whole PDU has when its header is complete, so a reassembler that
// will not buffer that much can skip it instead.
var ErrShort = errors.New("cannot decode OT PDU: payload ends inside the PDU; buffer more bytes of the stream")

// ErrUnsupported is returned for a Protocol that Decode does not handle.
var ErrUnsupported = errors.New("cannot decode OT PDU: unsupported protocol; pass one returned by Detect")

// Decode decodes the one application PDU at the start of payload, the L4
// payload of one TCP segment (or reassembled stream bytes) or one UDP
// datagram, into out. fromServer tells which way the payload flows
// (source port is the server's); protocols with their own direction bit use
// it instead.
//
// Results:
//   - n > 0, err == nil: out describes payload[:n]; decode payload[n:] next
//     (TCP segments often carry several PDUs). out.Malformed is set when the
//     PDU is framed but violates the specification. When framing itself is
//     lost, n covers the bytes up to the next possible start of a PDU (the
//     next 0x68 for IEC 104, 0x05 for DNP3) or, for protocols without a
//     start marker (e.g. a Modbus protocol identifier that is not 0), the
//     whole payload.
//   - n == 0, err == ErrShort: the PDU continues beyond payload (or payload
//     is empty). For a UDP datagram this means the datagram is truncated:
//     count it as malformed.
//   - err == ErrUnsupported: p is not a protocol of this package.
//
// Decode never allocates once out's string buffer exists, and never panics.
func Decode(p Protocol, payload []byte, fromServer bool, out *PDU) (n int, err error) {
	out.reset(p)
	if len(payload) == 0 {
		return 0, ErrShort
	}
	switch p {
	case Modbus:
		return decodeModbus(payload, fromServer, out)
	case DNP3:
		return decodeDNP3(payload, fromServer, out)
	case S7comm, S7commPlus:
		out.Proto = S7comm
		return decodeS7(payload, fromServer, out)
	case ENIP:
		return decodeENIP(payload, fromServer, out)
	case IEC104:
		return decodeIEC104(payload, fromServer, out)
	case BACnet:
		return decodeBACnet(payload, fromServer, out)
	case MQTT:
		return decodeMQTT(payload, fromServer, out)
	case OPCUA:
		return decodeOPCUA(payload, fromServer, out)
	}
	return 0, ErrUnsupported
}

// short records the PDU's total length (0 when unknown) and returns ErrShort.
func short(out *PDU, need int) (int, error) {
	out.Need = need
	return 0, ErrShort
}

// malformed marks the PDU as a protocol violation of n bytes.
func malformed(out *PDU, n int, reason string) (int, error) {
	out.Malformed = reason
	out.Len = n
	return n, nil
}

// resync returns the offset of the next start octet after b[0], or len(b).
func resync(b []byte, start byte) int {
	for i := 1; i < len(b); i++ {
		if b[i] == start {
			return i
		}
	}
	return len(b)
}

func be16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }
func le16(b []byte) uint16 { return uint16(b[1])<<8 | uint16(b[0]) }
func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
func le32(b []byte) uint32 {
	return uint32(b[3])<<24 | uint32(b[2])<<16 | uint32(b[1])<<8 | uint32(b[0])
}
