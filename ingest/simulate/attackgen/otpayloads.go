package attackgen

import (
	"encoding/binary"
	"net"
)

// Payloads of the OT device-identification probes and their answers.

// modbusReadDeviceID asks for the basic device identification: function
// 0x2B, MEI type 0x0E (read device identification), read code 01, from
// object 00.
func modbusReadDeviceID(tid uint16) []byte {
	return modbusADU(tid, []byte{0x2b, 0x0e, 0x01, 0x00})
}

// modbusDeviceIDResp answers with vendor name, product code and revision
// (conformity level 01, no more to follow).
func modbusDeviceIDResp(tid uint16) []byte {
	pdu := []byte{0x2b, 0x0e, 0x01, 0x01, 0x00, 0x00, 3}
	for i, v := range []string{"Schneider Electric", "BMX P34 2020", "v3.20"} {
		pdu = append(append(pdu, byte(i), byte(len(v))), v...)
	}
	return modbusADU(tid, pdu)
}

// modbusADU wraps a PDU for unit 1 in an MBAP header.
func modbusADU(tid uint16, pdu []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, tid)
	b = append(b, 0, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(1+len(pdu)))
	return append(append(b, 1), pdu...)
}

// bacnetWhoIsBroadcast is a BVLC original-broadcast NPDU to every network
// (DNET 0xFFFF) carrying an unconfirmed Who-Is without limits.
var bacnetWhoIsBroadcast = []byte{0x81, 0x0b, 0x00, 0x0c, 0x01, 0x20, 0xff, 0xff, 0x00, 0xff, 0x10, 0x08}

// enipListIdentityRequest is the encapsulation command ListIdentity
// (0x0063) without data.
var enipListIdentityRequest = enipEncap(0x0063, nil)

// enipEncap is an EtherNet/IP encapsulation header (24 octets, little
// endian: command, length, session, status, sender context, options) and
// its data.
func enipEncap(cmd uint16, data []byte) []byte {
	b := binary.LittleEndian.AppendUint16(nil, cmd)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(data)))
	b = append(b, make([]byte, 20)...)
	return append(b, data...)
}

// enipListIdentityReply is a CIP identity item (type 0x0C) of a
// programmable logic controller at ip.
func enipListIdentityReply(ip net.IP) []byte {
	item := []byte{1, 0}                  // encapsulation protocol version
	item = append(item, 0, 2, 0xaf, 0x12) // socket address (big endian): AF_INET, port 44818
	item = append(append(item, ip.To4()...), make([]byte, 8)...)
	item = append(item, 1, 0, 0x0e, 0, 0x36, 0, 20, 11)     // vendor 1, device type 14 (PLC), product 54, revision 20.11
	item = append(item, 0x60, 0x00, 0x78, 0x56, 0x34, 0x12) // status, serial number
	name := "1756-L71/B LOGIX5571"
	item = append(append(append(item, byte(len(name))), name...), 3) // product name, state
	data := []byte{1, 0, 0x0c, 0}                                    // one item, type 0x000C
	data = binary.LittleEndian.AppendUint16(data, uint16(len(item)))
	return enipEncap(0x0063, append(data, item...))
}

// s7ReadSZL is a userdata request of the CPU functions group (4), read
// SZL (subfunction 01), for list id at index 0.
func s7ReadSZL(ref, id uint16) []byte {
	param := []byte{0x00, 0x01, 0x12, 0x04, 0x11, 0x44, 0x01, 0x00}
	data := []byte{0xff, 0x09, 0x00, 0x04, byte(id >> 8), byte(id), 0x00, 0x00}
	return s7(7, ref, param, data)
}

// s7ReadSZLResp answers with one data record: the order number (SZL
// 0x0011, 28 octets) or the station name (other lists, 34 octets).
func s7ReadSZLResp(ref, id uint16) []byte {
	param := []byte{0x00, 0x01, 0x12, 0x08, 0x12, 0x84, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00}
	rec, text := 34, "SUBSTATION-PLC"
	if id == 0x0011 {
		rec, text = 28, "6ES7 315-2EH14-0AB0 "
	}
	record := append([]byte{0x00, 0x01}, text...)
	record = append(record, make([]byte, rec-len(record))...)
	data := []byte{0xff, 0x09}
	data = binary.BigEndian.AppendUint16(data, uint16(8+rec))
	data = append(data, byte(id>>8), byte(id), 0x00, 0x00)
	data = binary.BigEndian.AppendUint16(data, uint16(rec))
	data = binary.BigEndian.AppendUint16(data, 1)
	return s7(7, ref, param, append(data, record...))
}
