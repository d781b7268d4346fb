package ot

// EtherNet/IP and CIP, from "The CIP Networks Library" (ODVA):
//   - Volume 2 (EtherNet/IP adaptation) §2-3 encapsulation header (command,
//     length, session handle, status, sender context, options, 24 octets,
//     little-endian), §2-4 command codes, §2-6 common packet format (item
//     count, then typed items: 0x00a1 connected address, 0x00b1 connected
//     data with a 16-bit sequence count, 0x00b2 unconnected data, 0x8002
//     sequenced address for implicit I/O on UDP 2222).
//   - Volume 1 §2-4 message router request/response (service, path size in
//     words, EPATH; reply: service|0x80, reserved, general status, additional
//     status size), Appendix A service codes, Appendix C logical and
//     symbolic EPATH segments, §3-5.5.2 Connection Manager Unconnected Send
//     (embedded message request), § Multiple Service Packet.

const enipHeaderLen = 24

// enipCommandName names EtherNet/IP encapsulation commands (Vol 2 §2-3.2).
func enipCommandName(c uint16) string {
	switch c {
	case 0x0000:
		return "nop"
	case 0x0004:
		return "list_services"
	case 0x0063:
		return "list_identity"
	case 0x0064:
		return "list_interfaces"
	case 0x0065:
		return "register_session"
	case 0x0066:
		return "unregister_session"
	case 0x006f:
		return "send_rr_data"
	case 0x0070:
		return "send_unit_data"
	case 0x0072:
		return "indicate_status"
	case 0x0073:
		return "cancel"
	}
	return ""
}

func decodeENIP(b []byte, fromServer bool, out *PDU) (int, error) {
	out.Response = fromServer
	if len(b) < 2 {
		return short(out, 0)
	}
	if enipCommandName(le16(b)) == "" {
		if c := le16(b); c >= 1 && c <= 16 {
			// Implicit I/O datagrams (UDP 2222) carry no encapsulation
			// header: they start with the CPF item count.
			return decodeENIPIO(b, out)
		}
		return malformed(out, len(b), "enip unknown encapsulation command")
	}
	if len(b) < enipHeaderLen {
		return short(out, 0)
	}
	cmd := le16(b)
	l := int(le16(b[2:]))
	n := enipHeaderLen + l
	if len(b) < n {
		return short(out, n)
	}
	out.Len = n
	out.Sub = cmd
	out.Transaction = le32(b[4:])
	status := le32(b[8:])
	out.Function = 0x100 | cmd
	out.FunctionName = enipCommandName(cmd)
	if status != 0 {
		out.Response = true
		out.Exception = uint8(min(status, 0xff))
	}
	switch cmd {
	case 0x006f, 0x0070:
		decodeENIPCPF(b[enipHeaderLen:n], cmd == 0x0070, out)
	case 0x0063, 0x0004, 0x0064:
		out.Class = ClassDiagnostic
		out.Response = l > 0 // requests carry no data (Vol 2 §2-4.2)
	case 0x0065:
		out.Response = out.Transaction != 0
	}
	return n, nil
}

// decodeENIPIO reads an implicit I/O datagram: a CPF with a sequenced
// address item and a connected data item (Vol 2 §2-6).
func decodeENIPIO(b []byte, out *PDU) (int, error) {
	out.Function = 0x200
	out.FunctionName = "io_data"
	out.Len = len(b)
	items, ok := cpfItems(b)
	out.Quantity = uint16(items)
	if !ok {
		out.Malformed = "enip implicit i/o common packet format exceeds the datagram"
	}
	return len(b), nil
}

// cpfItems validates a common packet format (item count, then type, length,
// data per item) and returns the item count.
func cpfItems(b []byte) (int, bool) {
	if len(b) < 2 {
		return 0, false
	}
	count := int(le16(b))
	off := 2
	for range count {
		if off+4 > len(b) {
			return count, false
		}
		off += 4 + int(le16(b[off+2:]))
		if off > len(b) {
			return count, false
		}
	}
	return count, true
}

// decodeENIPCPF decodes SendRRData / SendUnitData: interface handle (4),
// timeout (2), then the CPF; the CIP message is in the unconnected data
// item (0x00b2) or, after the 2-octet sequence count, in the connected data
// item (0x00b1).
func decodeENIPCPF(d []byte, connected bool, out *PDU) {
	if len(d) < 8 {
		out.Malformed = "enip send data without common packet format"
		return
	}
	cpf := d[6:]
	count := int(le16(cpf))
	off := 2
	for range count {
		if off+4 > len(cpf) {
			out.Malformed = "enip cpf item header exceeds the encapsulation"
			return
		}
		typ, l := le16(cpf[off:]), int(le16(cpf[off+2:]))
		item := cpf[off+4:]
		if l > len(item) {
			out.Malformed = "enip cpf item exceeds the encapsulation"
			return
		}
		item = item[:l]
		off += 4 + l
		switch typ {
		case 0x00b2:
			decodeCIP(item, out)
			return
		case 0x00b1:
			if len(item) < 2 {
				out.Malformed = "enip connected data item without sequence count"
				return
			}
			decodeCIP(item[2:], out)
			return
		}
	}
}

// cipCommon: common services, Vol 1 Appendix A-3. Reset, start and stop act
// on the device or object run state; restore and save replace or persist
// configuration.
var cipCommon = [0x4b]function{
	0x01: {"get_attributes_all", ClassRead},
	0x02: {"set_attributes_all", ClassWrite},
	0x03: {"get_attribute_list", ClassRead},
	0x04: {"set_attribute_list", ClassWrite},
	0x05: {"reset", ClassControl},
	0x06: {"start", ClassControl},
	0x07: {"stop", ClassControl},
	0x08: {"create", ClassWrite},
	0x09: {"delete", ClassWrite},
	0x0a: {"multiple_service_packet", ClassOther},
	0x0d: {"apply_attributes", ClassWrite},
	0x0e: {"get_attribute_single", ClassRead},
	0x10: {"set_attribute_single", ClassWrite},
	0x11: {"find_next_object_instance", ClassRead},
	0x14: {"error_response", ClassOther},
	0x15: {"restore", ClassControl},
	0x16: {"save", ClassControl},
	0x17: {"no_operation", ClassOther},
	0x18: {"get_member", ClassRead},
	0x19: {"set_member", ClassWrite},
	0x1a: {"insert_member", ClassWrite},
	0x1b: {"remove_member", ClassWrite},
	0x1c: {"group_sync", ClassOther},
}

// cipObjectSpecific names class-specific services (0x4b–0x63), whose
// meaning depends on the object class: the Connection Manager (class 6,
// Vol 1 §3-5.5), the File object (class 0x37, Vol 1 §5A-42) and the Logix
// tag services addressed by symbolic segment (Rockwell 1756-PM020).
func cipObjectSpecific(service byte, class uint16, symbolic bool) function {
	switch {
	case class == 0x06:
		switch service {
		case 0x4e:
			return function{"forward_close", ClassOther}
		case 0x52:
			return function{"unconnected_send", ClassOther}
		case 0x54:
			return function{"forward_open", ClassOther}
		case 0x56:
			return function{"get_connection_data", ClassRead}
		case 0x57:
			return function{"search_connection_data", ClassRead}
		case 0x5a:
			return function{"get_connection_owner", ClassRead}
		case 0x5b:
			return function{"large_forward_open", ClassOther}
		}
	case class == 0x37:
		switch service {
		case 0x4b:
			return function{"initiate_upload", ClassControl}
		case 0x4c:
			return function{"initiate_download", ClassControl}
		case 0x4d:
			return function{"initiate_partial_read", ClassRead}
		case 0x4e:
			return function{"initiate_partial_write", ClassWrite}
		case 0x4f:
			return function{"upload_transfer", ClassControl}
		case 0x50:
			return function{"download_transfer", ClassControl}
		case 0x51:
			return function{"clear_file", ClassControl}
		}
	case class == 0x67 && service == 0x4b:
		return function{"execute_pccc", ClassOther}
	case class == 0x8e:
		// Rockwell controller object (vendor range): the QuickDraw captures
		// lock, unlock and change the controller mode through it.
		return function{"vendor_controller_service", ClassControl}
	case class == 0xa1:
		// Rockwell firmware update object (vendor range): ControlFLASH
		// transfers firmware through it (EIP-FirmwareChange.pcap).
		return function{"vendor_firmware_service", ClassControl}
	case symbolic || class == 0x6b || class == 0x6c:
		switch service {
		case 0x4c:
			return function{"read_tag", ClassRead}
		case 0x4d:
			return function{"write_tag", ClassWrite}
		case 0x4e:
			return function{"read_modify_write_tag", ClassWrite}
		case 0x52:
			return function{"read_tag_fragmented", ClassRead}
		case 0x53:
			return function{"write_tag_fragmented", ClassWrite}
		case 0x55:
			return function{"get_instance_attribute_list", ClassRead}
		}
	}
	return function{"object_specific", ClassOther}
}

// cipPath is what decodeCIP keeps of a request path.
type cipPath struct {
	class, instance       uint32
	hasClass, hasInstance bool
	symbol                []byte
	ok                    bool
}

// parseEPATH reads logical class/instance segments and an ANSI extended
// symbolic segment (Vol 1 Appendix C-1.4.2, C-1.5). Other segment types
// stop the walk without error: they are legal but carry nothing we use.
func parseEPATH(p []byte) cipPath {
	var r cipPath
	r.ok = true
	for i := 0; i < len(p); {
		seg := p[i]
		switch {
		case seg == 0x91: // ANSI extended symbol: length, chars, pad to even
			if i+2 > len(p) || i+2+int(p[i+1]) > len(p) {
				r.ok = false
				return r
			}
			l := int(p[i+1])
			if r.symbol == nil {
				r.symbol = p[i+2 : i+2+l]
			}
			i += 2 + l + l&1
		case seg&0xe0 == 0x20: // logical segment
			typ, format := seg>>2&7, seg&3
			var v uint32
			switch format {
			case 0:
				if i+2 > len(p) {
					r.ok = false
					return r
				}
				v = uint32(p[i+1])
				i += 2
			case 1:
				if i+4 > len(p) {
					r.ok = false
					return r
				}
				v = uint32(le16(p[i+2:]))
				i += 4
			case 2:
				if i+6 > len(p) {
					r.ok = false
					return r
				}
				v = le32(p[i+2:])
				i += 6
			default:
				r.ok = false
				return r
			}
			// Keep the first class and instance: later ones address
			// objects inside it (e.g. 0x8e/1 then 0x74/1).
			switch {
			case typ == 0 && !r.hasClass:
				r.class, r.hasClass = v, true
			case typ == 1 && !r.hasInstance:
				r.instance, r.hasInstance = v, true
			}
		default:
			return r
		}
	}
	return r
}

// decodeCIP decodes a message router request or reply.
func decodeCIP(m []byte, out *PDU) {
	if len(m) < 2 {
		out.Malformed = "cip message shorter than 2 octets"
		return
	}
	sc := m[0]
	if sc&0x80 != 0 {
		decodeCIPReply(m, out)
		return
	}
	out.Response = false
	words := int(m[1])
	if 2+2*words > len(m) {
		out.Malformed = "cip request path exceeds the message"
		return
	}
	path := parseEPATH(m[2 : 2+2*words])
	if !path.ok {
		out.Malformed = "cip request path segment truncated"
	}
	data := m[2+2*words:]
	setCIPService(sc, path, out)
	switch {
	case sc == 0x52 && path.class == 0x06:
		// Unconnected Send: priority/tick, timeout ticks, embedded
		// request length, embedded request. Report what is being sent.
		if len(data) < 4 {
			out.Malformed = "cip unconnected send truncated"
			return
		}
		l := int(le16(data[2:]))
		if 4+l > len(data) || l < 2 {
			out.Malformed = "cip unconnected send embedded request exceeds the message"
			return
		}
		decodeCIP(data[4:4+l], out)
		out.Routed = true
	case sc == 0x0a:
		decodeCIPMultiple(data, out)
	}
}

func setCIPService(sc byte, path cipPath, out *PDU) {
	var s function
	if sc < 0x4b {
		s = cipCommon[sc]
	} else if sc <= 0x63 {
		s = cipObjectSpecific(sc, uint16(path.class), path.symbol != nil)
	}
	if s.name == "" {
		s = function{"reserved_service", ClassOther}
	}
	out.Function = uint16(sc)
	out.FunctionName, out.Class = s.name, s.class
	out.Address = path.class<<16 | path.instance&0xffff
	out.Text = ""
	if path.symbol != nil {
		out.Text = out.setString(path.symbol)
	}
}

// decodeCIPMultiple walks a Multiple Service Packet (count, offsets from the
// count, requests) and keeps the strongest class among the embedded
// services, so a stop hidden in a batch still counts as control.
func decodeCIPMultiple(d []byte, out *PDU) {
	if len(d) < 2 {
		out.Malformed = "cip multiple service packet truncated"
		return
	}
	count := int(le16(d))
	out.Quantity = uint16(count)
	if 2+2*count > len(d) {
		out.Malformed = "cip multiple service packet offsets exceed the message"
		return
	}
	class := ClassOther
	for i := range count {
		off := int(le16(d[2+2*i:]))
		end := len(d)
		if i+1 < count {
			end = int(le16(d[4+2*i:]))
		}
		if off < 2+2*count || off+2 > end || end > len(d) {
			out.Malformed = "cip multiple service packet offset out of range"
			return
		}
		sub := d[off:end]
		words := int(sub[1])
		if 2+2*words > len(sub) {
			out.Malformed = "cip multiple service packet embedded path exceeds the request"
			return
		}
		var s function
		sc := sub[0] & 0x7f
		path := parseEPATH(sub[2 : 2+2*words])
		if sc < 0x4b {
			s = cipCommon[sc]
		} else if sc <= 0x63 {
			s = cipObjectSpecific(sc, uint16(path.class), path.symbol != nil)
		}
		if classRank(s.class) > classRank(class) {
			class = s.class
		}
	}
	out.Class = class
}

// classRank orders classes by how much a baseline should care.
func classRank(c Class) int {
	switch c {
	case ClassControl:
		return 4
	case ClassWrite:
		return 3
	case ClassRead:
		return 2
	case ClassDiagnostic:
		return 1
	}
	return 0
}

// decodeCIPReply: service|0x80, reserved, general status, size of
// additional status in words (Vol 1 §2-4.2). The reply does not repeat the
// path, so object-specific services are named without their class.
func decodeCIPReply(m []byte, out *PDU) {
	out.Response = true
	sc := m[0] &^ 0x80
	setCIPService(sc, cipPath{}, out)
	if len(m) < 4 {
		out.Malformed = "cip reply header truncated"
		return
	}
	out.Exception = m[2]
	if 4+2*int(m[3]) > len(m) {
		out.Malformed = "cip reply additional status exceeds the message"
	}
}
