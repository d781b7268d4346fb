package ot

// OPC UA binary over TCP (UA TCP), from OPC 10000-6 (UA Part 6: Mappings)
// v1.04: message header §7.1.2.2 (three-octet message type, chunk type
// F/C/A, 32-bit little-endian message size including the header), Hello,
// Acknowledge, Error and ReverseHello bodies §7.1.2.3–§7.1.2.6, secure
// conversation message layout §6.7.2 (secure channel id, asymmetric
// security header with SecurityPolicyUri for OPN, symmetric token id for
// MSG/CLO, sequence header with sequence number and request id), and the
// service body that starts with the ExpandedNodeId of its DataTypeEncoding
// (§5.2.2.9 NodeId binary encodings). Encoding ids are from the standard
// NodeSet (OPC 10000-5 / NodeIds.csv, "*_Encoding_DefaultBinary").

const opcuaHeaderLen = 8

// opcuaTypes is indexed by opcuaMessageType.
var opcuaTypes = [...]string{"HEL", "ACK", "ERR", "RHE", "OPN", "MSG", "CLO"}

var opcuaTypeNames = [...]string{"hello", "acknowledge", "error", "reverse_hello", "open_secure_channel", "message", "close_secure_channel"}

// opcuaMessageType returns the index of the OPC UA message type at b[0:3]
// (OPC 10000-6 §7.1.2.2), or -1.
func opcuaMessageType(b []byte) int {
	if len(b) < 3 {
		return -1
	}
	switch string(b[:3]) {
	case "HEL":
		return 0
	case "ACK":
		return 1
	case "ERR":
		return 2
	case "RHE":
		return 3
	case "OPN":
		return 4
	case "MSG":
		return 5
	case "CLO":
		return 6
	}
	return -1
}

type opcuaService struct {
	name     string
	class    Class
	response bool
}

// opcuaServiceByID maps DefaultBinary encoding NodeIds of service requests
// and responses. Method calls can start, stop or reconfigure anything on
// the server: control. Node management and writes change the address
// space: write.
func opcuaServiceByID(id uint32) opcuaService {
	switch id {
	case 397:
		return opcuaService{"service_fault", ClassOther, true}
	case 422, 425:
		return opcuaService{"find_servers", ClassDiagnostic, id == 425}
	case 428, 431:
		return opcuaService{"get_endpoints", ClassDiagnostic, id == 431}
	case 437, 440:
		return opcuaService{"register_server", ClassWrite, id == 440}
	case 446, 449:
		return opcuaService{"open_secure_channel", ClassOther, id == 449}
	case 452, 455:
		return opcuaService{"close_secure_channel", ClassOther, id == 455}
	case 461, 464:
		return opcuaService{"create_session", ClassOther, id == 464}
	case 467, 470:
		return opcuaService{"activate_session", ClassOther, id == 470}
	case 473, 476:
		return opcuaService{"close_session", ClassOther, id == 476}
	case 479, 482:
		return opcuaService{"cancel", ClassOther, id == 482}
	case 488, 491:
		return opcuaService{"add_nodes", ClassWrite, id == 491}
	case 494, 497:
		return opcuaService{"add_references", ClassWrite, id == 497}
	case 500, 503:
		return opcuaService{"delete_nodes", ClassWrite, id == 503}
	case 506, 509:
		return opcuaService{"delete_references", ClassWrite, id == 509}
	case 527, 530:
		return opcuaService{"browse", ClassRead, id == 530}
	case 533, 536:
		return opcuaService{"browse_next", ClassRead, id == 536}
	case 554, 557:
		return opcuaService{"translate_browse_paths_to_node_ids", ClassRead, id == 557}
	case 560, 563:
		return opcuaService{"register_nodes", ClassRead, id == 563}
	case 566, 569:
		return opcuaService{"unregister_nodes", ClassRead, id == 569}
	case 615, 618:
		return opcuaService{"query_first", ClassRead, id == 618}
	case 621, 624:
		return opcuaService{"query_next", ClassRead, id == 624}
	case 631, 634:
		return opcuaService{"read", ClassRead, id == 634}
	case 664, 667:
		return opcuaService{"history_read", ClassRead, id == 667}
	case 673, 676:
		return opcuaService{"write", ClassWrite, id == 676}
	case 700, 703:
		return opcuaService{"history_update", ClassWrite, id == 703}
	case 712, 715:
		return opcuaService{"call", ClassControl, id == 715}
	case 751, 754:
		return opcuaService{"create_monitored_items", ClassRead, id == 754}
	case 763, 766:
		return opcuaService{"modify_monitored_items", ClassRead, id == 766}
	case 769, 772:
		return opcuaService{"set_monitoring_mode", ClassRead, id == 772}
	case 775, 778:
		return opcuaService{"set_triggering", ClassRead, id == 778}
	case 781, 784:
		return opcuaService{"delete_monitored_items", ClassRead, id == 784}
	case 787, 790:
		return opcuaService{"create_subscription", ClassRead, id == 790}
	case 793, 796:
		return opcuaService{"modify_subscription", ClassRead, id == 796}
	case 799, 802:
		return opcuaService{"set_publishing_mode", ClassRead, id == 802}
	case 826, 829:
		return opcuaService{"publish", ClassRead, id == 829}
	case 832, 835:
		return opcuaService{"republish", ClassRead, id == 835}
	case 841, 844:
		return opcuaService{"transfer_subscriptions", ClassRead, id == 844}
	case 847, 850:
		return opcuaService{"delete_subscriptions", ClassRead, id == 850}
	}
	return opcuaService{}
}

func decodeOPCUA(b []byte, fromServer bool, out *PDU) (int, error) {
	out.Response = fromServer
	if len(b) < opcuaHeaderLen {
		if len(b) >= 3 && opcuaMessageType(b) < 0 {
			return malformed(out, len(b), "opcua unknown message type")
		}
		return short(out, 0)
	}
	mt := opcuaMessageType(b)
	if mt < 0 {
		return malformed(out, len(b), "opcua unknown message type")
	}
	n := int(le32(b[4:]))
	if n < opcuaHeaderLen {
		return malformed(out, len(b), "opcua message size below 8")
	}
	if len(b) < n {
		return short(out, n)
	}
	out.Len = n
	chunk := b[3]
	out.Sub = uint16(mt)<<8 | uint16(chunk)
	out.Function = 0xff00 | uint16(mt)
	out.FunctionName = opcuaTypeNames[mt]
	if chunk != 'F' && chunk != 'C' && chunk != 'A' {
		out.Malformed = "opcua chunk type is not F, C or A"
	}
	body := b[opcuaHeaderLen:n]
	switch opcuaTypes[mt] {
	case "HEL":
		out.Response = false
		// version, receive/send buffer, max message size, max chunk count, endpoint URL
		if url, ok := opcuaString(body, 20); ok {
			out.Text = out.setString(url)
		} else {
			out.Malformed = "opcua hello endpoint url exceeds the message"
		}
	case "ACK":
		out.Response = true
		if len(body) < 20 {
			out.Malformed = "opcua acknowledge shorter than 28 octets"
		}
	case "ERR":
		out.Response = true
		out.Exception = 1
		if reason, ok := opcuaString(body, 4); ok {
			out.Text = out.setString(reason)
		} else {
			out.Malformed = "opcua error reason exceeds the message"
		}
	case "RHE":
		out.Response = true
	case "OPN":
		decodeOPCUASecure(body, true, out)
	case "MSG", "CLO":
		decodeOPCUASecure(body, false, out)
	}
	return n, nil
}

// opcuaString reads a UA String (Int32 length, -1 for null, then UTF-8)
// at off.
func opcuaString(b []byte, off int) ([]byte, bool) {
	if off+4 > len(b) {
		return nil, false
	}
	l := int32(le32(b[off:]))
	if l < 0 {
		return nil, l == -1
	}
	if off+4+int(l) > len(b) {
		return nil, false
	}
	return b[off+4 : off+4+int(l)], true
}

// decodeOPCUASecure walks secure channel id, the security header, the
// sequence header and the service NodeId. An encrypted body yields a
// NodeId that names no service: the message type stays the function.
func decodeOPCUASecure(body []byte, asym bool, out *PDU) {
	if len(body) < 4 {
		out.Malformed = "opcua secure channel id truncated"
		return
	}
	off := 4
	if asym {
		policy, ok := opcuaString(body, off)
		if !ok {
			out.Malformed = "opcua security policy uri exceeds the message"
			return
		}
		out.Text = out.setString(policy)
		off += 4 + len(policy)
		for range 2 { // sender certificate, receiver thumbprint (ByteString)
			v, ok := opcuaString(body, off)
			if !ok {
				out.Malformed = "opcua asymmetric security header exceeds the message"
				return
			}
			off += 4 + len(v)
		}
	} else {
		off += 4 // token id
	}
	if off+8 > len(body) {
		out.Malformed = "opcua sequence header truncated"
		return
	}
	out.Transaction = le32(body[off+4:]) // request id
	off += 8
	if chunk := byte(out.Sub); chunk != 'F' && chunk != 'A' {
		return // intermediate chunk: the service NodeId was in the first one
	}
	id, ok := opcuaNodeID(body[off:])
	if !ok {
		return
	}
	s := opcuaServiceByID(id)
	if s.name == "" {
		return
	}
	out.Function = uint16(id)
	out.FunctionName, out.Class, out.Response = s.name, s.class, s.response
	if id == 397 {
		out.Exception = 1
	}
}

// opcuaNodeID reads a numeric NodeId in namespace 0 in its two-octet,
// four-octet or numeric encoding (§5.2.2.9).
func opcuaNodeID(b []byte) (uint32, bool) {
	if len(b) < 2 {
		return 0, false
	}
	switch b[0] {
	case 0x00:
		return uint32(b[1]), true
	case 0x01:
		if len(b) < 4 || b[1] != 0 {
			return 0, false
		}
		return uint32(le16(b[2:])), true
	case 0x02:
		if len(b) < 7 || le16(b[1:]) != 0 {
			return 0, false
		}
		return le32(b[3:]), true
	}
	return 0, false
}
