package ot

// BACnet/IP, from ANSI/ASHRAE Standard 135-2020: BVLC header in Annex J.2
// (type 0x81, function, 16-bit length of the whole BVLL message), NPDU in
// clause 6.2 (version 1, control octet, optional DNET/DADR, SNET/SADR and
// hop count, network layer message type), APDU in clause 20.1 (PDU type in
// the high nibble: confirmed request, unconfirmed request, simple ACK,
// complex ACK, segment ACK, error, reject, abort) and service choices of
// clause 21 (BACnetConfirmedServiceChoice, BACnetUnconfirmedServiceChoice).

// bacnetConfirmed: reinitialize-device and device-communication-control
// restart or silence a device (control); file writes, object creation and
// property writes change it (write).
var bacnetConfirmed = [34]function{
	0:  {"acknowledge_alarm", ClassOther},
	1:  {"confirmed_cov_notification", ClassOther},
	2:  {"confirmed_event_notification", ClassOther},
	3:  {"get_alarm_summary", ClassRead},
	4:  {"get_enrollment_summary", ClassRead},
	5:  {"subscribe_cov", ClassRead},
	6:  {"atomic_read_file", ClassRead},
	7:  {"atomic_write_file", ClassWrite},
	8:  {"add_list_element", ClassWrite},
	9:  {"remove_list_element", ClassWrite},
	10: {"create_object", ClassWrite},
	11: {"delete_object", ClassWrite},
	12: {"read_property", ClassRead},
	13: {"read_property_conditional", ClassRead},
	14: {"read_property_multiple", ClassRead},
	15: {"write_property", ClassWrite},
	16: {"write_property_multiple", ClassWrite},
	17: {"device_communication_control", ClassControl},
	18: {"confirmed_private_transfer", ClassOther},
	19: {"confirmed_text_message", ClassOther},
	20: {"reinitialize_device", ClassControl},
	21: {"vt_open", ClassOther},
	22: {"vt_close", ClassOther},
	23: {"vt_data", ClassOther},
	24: {"authenticate", ClassOther},
	25: {"request_key", ClassOther},
	26: {"read_range", ClassRead},
	27: {"life_safety_operation", ClassControl},
	28: {"subscribe_cov_property", ClassRead},
	29: {"get_event_information", ClassRead},
	30: {"subscribe_cov_property_multiple", ClassRead},
	31: {"confirmed_cov_notification_multiple", ClassOther},
	32: {"confirmed_audit_notification", ClassOther},
	33: {"audit_log_query", ClassRead},
}

var bacnetUnconfirmed = [15]function{
	0:  {"i_am", ClassDiagnostic},
	1:  {"i_have", ClassDiagnostic},
	2:  {"unconfirmed_cov_notification", ClassOther},
	3:  {"unconfirmed_event_notification", ClassOther},
	4:  {"unconfirmed_private_transfer", ClassOther},
	5:  {"unconfirmed_text_message", ClassOther},
	6:  {"time_synchronization", ClassDiagnostic},
	7:  {"who_has", ClassDiagnostic},
	8:  {"who_is", ClassDiagnostic},
	9:  {"utc_time_synchronization", ClassDiagnostic},
	10: {"write_group", ClassWrite},
	11: {"unconfirmed_cov_notification_multiple", ClassOther},
	12: {"unconfirmed_audit_notification", ClassOther},
	13: {"who_am_i", ClassDiagnostic},
	14: {"you_are", ClassControl},
}

var bvlcNames = [13]string{
	"bvlc_result", "write_broadcast_distribution_table", "read_broadcast_distribution_table",
	"read_broadcast_distribution_table_ack", "forwarded_npdu", "register_foreign_device",
	"read_foreign_device_table", "read_foreign_device_table_ack", "delete_foreign_device_table_entry",
	"distribute_broadcast_to_network", "original_unicast_npdu", "original_broadcast_npdu", "secure_bvll",
}

func decodeBACnet(b []byte, fromServer bool, out *PDU) (int, error) {
	out.Response = fromServer
	if len(b) < 4 {
		return malformed(out, len(b), "bacnet bvlc header truncated")
	}
	if b[0] != 0x81 {
		return malformed(out, len(b), "bacnet bvlc type is not 0x81")
	}
	fn := b[1]
	l := int(be16(b[2:]))
	if l < 4 || l > len(b) {
		// One BVLL message per UDP datagram (Annex J.2): a length beyond
		// the datagram is a truncated or forged message.
		return malformed(out, len(b), "bacnet bvlc length does not fit the datagram")
	}
	out.Len = l
	out.Sub = uint16(fn)
	if int(fn) >= len(bvlcNames) {
		out.Function = 0x300 | uint16(fn)
		out.FunctionName = "bvlc_unknown"
		out.Malformed = "bacnet undefined bvlc function"
		return l, nil
	}
	npdu := b[4:l]
	switch fn {
	case 0x04: // forwarded: original source B/IP address (6 octets) first
		if len(npdu) < 6 {
			return malformed(out, l, "bacnet forwarded npdu without source address")
		}
		npdu = npdu[6:]
	case 0x09, 0x0a, 0x0b:
	default:
		out.Function = 0x300 | uint16(fn)
		out.FunctionName = bvlcNames[fn]
		out.Class = ClassDiagnostic
		out.Response = fn == 0x00 || fn == 0x03 || fn == 0x07
		if fn == 0x01 || fn == 0x08 {
			out.Class = ClassWrite // rewrites broadcast or foreign-device tables
		}
		if fn == 0x00 && len(npdu) >= 2 {
			out.Exception = npdu[1] // result code: 0 success, 0x10–0x60 NAKs
		}
		return l, nil
	}
	decodeNPDU(npdu, out)
	return l, nil
}

func decodeNPDU(p []byte, out *PDU) {
	if len(p) < 2 {
		out.FunctionName = "npdu_truncated"
		out.Malformed = "bacnet npdu shorter than 2 octets"
		return
	}
	if p[0] != 1 {
		out.FunctionName = "npdu_bad_version"
		out.Malformed = "bacnet npdu version is not 1"
		return
	}
	ctrl := p[1]
	i := 2
	if ctrl&0x20 != 0 { // DNET, DLEN, DADR
		if i+3 > len(p) || i+3+int(p[i+2]) > len(p) {
			out.Malformed = "bacnet npdu destination address truncated"
			return
		}
		out.Unit = be16(p[i:])
		i += 3 + int(p[i+2])
	}
	if ctrl&0x08 != 0 { // SNET, SLEN, SADR
		if i+3 > len(p) || i+3+int(p[i+2]) > len(p) {
			out.Malformed = "bacnet npdu source address truncated"
			return
		}
		i += 3 + int(p[i+2])
	}
	if ctrl&0x20 != 0 { // hop count
		i++
	}
	if i >= len(p) {
		out.FunctionName = "npdu_truncated"
		out.Malformed = "bacnet npdu without message"
		return
	}
	if ctrl&0x80 != 0 {
		mt := p[i]
		out.Function = 0x200 | uint16(mt)
		out.FunctionName = bacnetNetworkMessage(mt)
		out.Class = ClassDiagnostic
		return
	}
	decodeAPDU(p[i:], out)
}

// bacnetNetworkMessage names network layer messages (clause 6.2.4).
func bacnetNetworkMessage(t byte) string {
	switch t {
	case 0x00:
		return "who_is_router_to_network"
	case 0x01:
		return "i_am_router_to_network"
	case 0x02:
		return "i_could_be_router_to_network"
	case 0x03:
		return "reject_message_to_network"
	case 0x04:
		return "router_busy_to_network"
	case 0x05:
		return "router_available_to_network"
	case 0x06:
		return "initialize_routing_table"
	case 0x07:
		return "initialize_routing_table_ack"
	case 0x08:
		return "establish_connection_to_network"
	case 0x09:
		return "disconnect_connection_to_network"
	case 0x12:
		return "what_is_network_number"
	case 0x13:
		return "network_number_is"
	}
	if t >= 0x80 {
		return "proprietary_network_message"
	}
	return "reserved_network_message"
}

func decodeAPDU(a []byte, out *PDU) {
	typ := a[0] >> 4
	need := func(n int) bool {
		if len(a) < n {
			out.FunctionName = "apdu_truncated"
			out.Malformed = "bacnet apdu header truncated"
			return false
		}
		return true
	}
	switch typ {
	case 0: // confirmed request
		hl := 4
		if a[0]&0x08 != 0 {
			hl = 6 // segmented: sequence number and window size
		}
		if !need(hl) {
			return
		}
		out.Response = false
		out.Transaction = uint32(a[2])
		setBACnetConfirmed(a[hl-1], out)
		if sc := a[hl-1]; sc == 12 || sc == 15 || sc == 14 || sc == 16 {
			out.Address = bacnetObjectID(a[hl:])
		}
	case 1: // unconfirmed request
		if !need(2) {
			return
		}
		out.Response = false
		sc := a[1]
		out.Function = 0x100 | uint16(sc)
		if int(sc) < len(bacnetUnconfirmed) {
			s := bacnetUnconfirmed[sc]
			out.FunctionName, out.Class = s.name, s.class
		} else {
			out.FunctionName = "unknown_unconfirmed_service"
		}
	case 2: // simple ACK
		if !need(3) {
			return
		}
		out.Response = true
		out.Transaction = uint32(a[1])
		setBACnetConfirmed(a[2], out)
	case 3: // complex ACK
		hl := 3
		if a[0]&0x08 != 0 {
			hl = 5
		}
		if !need(hl) {
			return
		}
		out.Response = true
		out.Transaction = uint32(a[1])
		setBACnetConfirmed(a[hl-1], out)
	case 4: // segment ACK
		if !need(4) {
			return
		}
		out.Transaction = uint32(a[1])
		out.Function = 0x400
		out.FunctionName = "segment_ack"
	case 5: // error: invoke id, service, error class, error code
		if !need(3) {
			return
		}
		out.Response = true
		out.Transaction = uint32(a[1])
		setBACnetConfirmed(a[2], out)
		out.Exception = bacnetErrorCode(a[3:])
		if out.Exception == 0 {
			// Error code 0 ("other") or unreadable: still a failure.
			out.Exception = 0xff
		}
	case 6, 7: // reject, abort: invoke id, reason
		if !need(3) {
			return
		}
		out.Response = true
		out.Transaction = uint32(a[1])
		out.Function = 0x400 | uint16(typ)
		out.FunctionName = "reject"
		if typ == 7 {
			out.FunctionName = "abort"
		}
		out.Exception = a[2]
	default:
		out.FunctionName = "apdu_unknown"
		out.Malformed = "bacnet undefined apdu type"
	}
}

func setBACnetConfirmed(sc byte, out *PDU) {
	out.Function = uint16(sc)
	if int(sc) < len(bacnetConfirmed) {
		s := bacnetConfirmed[sc]
		out.FunctionName, out.Class = s.name, s.class
		return
	}
	out.FunctionName = "unknown_confirmed_service"
}

// bacnetObjectID reads a context tag 0 BACnetObjectIdentifier (tag octet
// 0x0c, four octets: type in the upper 10 bits, instance in the lower 22),
// the first parameter of read/write-property requests (clause 20.2).
func bacnetObjectID(p []byte) uint32 {
	if len(p) < 5 || p[0] != 0x0c {
		return 0
	}
	return be32(p[1:])
}

// bacnetErrorCode reads the second application-tagged enumerated value
// (error class, then error code; clause 21 BACnet-Error) and returns its
// low octet.
func bacnetErrorCode(p []byte) uint8 {
	i := 0
	var v uint8
	for k := 0; k < 2; k++ {
		if i >= len(p) || p[i]>>4 != 9 { // application tag 9: enumerated
			return 0
		}
		l := int(p[i] & 7)
		if l == 0 || l > 4 || i+1+l > len(p) {
			return 0
		}
		v = p[i+l]
		i += 1 + l
	}
	return v
}
