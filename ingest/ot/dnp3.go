package ot

// DNP3, from IEEE Std 1815-2012: data link layer (clause 9: frame format
// with a CRC after the header and after every 16 octets of user data),
// transport function (clause 8: FIN/FIR/sequence octet) and application layer
// (clause 4: application header, function codes, internal indications). Over
// TCP and UDP the link frames travel unchanged (DNP3 Users Group "Transporting
// DNP3 over Local and Wide Area Networks", IEEE 1815 Annex).

const (
	dnp3HeaderLen = 10  // start(2) length control dst(2) src(2) crc(2)
	dnp3MaxUser   = 250 // length octet 255 minus control and addresses
)

var dnp3CRCTable = func() (t [256]uint16) {
	// Clause 9 CRC-16-DNP: polynomial 0x3D65, processed LSB first
	// (reflected 0xA6BC), initial 0, result complemented.
	for i := range t {
		crc := uint16(i)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xa6bc
			} else {
				crc >>= 1
			}
		}
		t[i] = crc
	}
	return t
}()

// dnp3CRCSlices[k] advances the CRC over a byte followed by k zero bytes,
// so four bytes can be folded in at once (slicing-by-4; the table-driven
// CRC without init or final XOR is linear over XOR).
var dnp3CRCSlices = func() (t [4][256]uint16) {
	t[0] = dnp3CRCTable
	for k := 1; k < 4; k++ {
		for i := range 256 {
			prev := t[k-1][i]
			t[k][i] = prev>>8 ^ dnp3CRCTable[byte(prev)]
		}
	}
	return t
}()

func dnp3CRC(b []byte) uint16 {
	var crc uint16
	for len(b) >= 4 {
		x := crc ^ (uint16(b[0]) | uint16(b[1])<<8)
		crc = dnp3CRCSlices[3][byte(x)] ^ dnp3CRCSlices[2][x>>8] ^ dnp3CRCSlices[1][b[2]] ^ dnp3CRCSlices[0][b[3]]
		b = b[4:]
	}
	for _, c := range b {
		crc = crc>>8 ^ dnp3CRCTable[byte(crc)^c]
	}
	return ^crc
}

// dnp3FrameLen returns the octets on the wire for a frame whose length
// octet is l: the header block plus user data with a CRC after every 16
// octets.
func dnp3FrameLen(l int) int {
	user := l - 5
	return dnp3HeaderLen + user + 2*((user+15)/16)
}

var dnp3LinkPrimary = [16]string{
	0: "link_reset_link_states", 2: "link_test_link_states", 3: "link_confirmed_user_data",
	4: "link_unconfirmed_user_data", 9: "link_request_link_status",
}

var dnp3LinkSecondary = [16]string{
	0: "link_ack", 1: "link_nack", 11: "link_status", 15: "link_not_supported",
}

// dnp3Funcs: application function codes of IEEE 1815-2012 clause 4
// (application header, function code octet). Select/operate move outputs (process
// writes); restarts, application start/stop, configuration activation,
// unsolicited-reporting changes and file transfer change how the outstation
// runs (control).
var dnp3Funcs = [256]function{
	0:   {"confirm", ClassOther},
	1:   {"read", ClassRead},
	2:   {"write", ClassWrite},
	3:   {"select", ClassWrite},
	4:   {"operate", ClassWrite},
	5:   {"direct_operate", ClassWrite},
	6:   {"direct_operate_nr", ClassWrite},
	7:   {"immediate_freeze", ClassWrite},
	8:   {"immediate_freeze_nr", ClassWrite},
	9:   {"freeze_clear", ClassWrite},
	10:  {"freeze_clear_nr", ClassWrite},
	11:  {"freeze_at_time", ClassWrite},
	12:  {"freeze_at_time_nr", ClassWrite},
	13:  {"cold_restart", ClassControl},
	14:  {"warm_restart", ClassControl},
	15:  {"initialize_data", ClassControl},
	16:  {"initialize_application", ClassControl},
	17:  {"start_application", ClassControl},
	18:  {"stop_application", ClassControl},
	19:  {"save_configuration", ClassControl},
	20:  {"enable_unsolicited", ClassControl},
	21:  {"disable_unsolicited", ClassControl},
	22:  {"assign_class", ClassWrite},
	23:  {"delay_measurement", ClassDiagnostic},
	24:  {"record_current_time", ClassDiagnostic},
	25:  {"open_file", ClassControl},
	26:  {"close_file", ClassControl},
	27:  {"delete_file", ClassControl},
	28:  {"get_file_info", ClassRead},
	29:  {"authenticate_file", ClassControl},
	30:  {"abort_file", ClassControl},
	31:  {"activate_configuration", ClassControl},
	32:  {"authentication_request", ClassOther},
	33:  {"authentication_request_no_ack", ClassOther},
	129: {"response", ClassOther},
	130: {"unsolicited_response", ClassOther},
	131: {"authentication_response", ClassOther},
}

func decodeDNP3(b []byte, fromServer bool, out *PDU) (int, error) {
	out.Response = fromServer
	if len(b) > 0 && b[0] != 0x05 || len(b) > 1 && b[1] != 0x64 {
		// Skip to the next candidate start octet (clause 9: a receiver
		// hunts for 0x05 0x64).
		return malformed(out, resync(b, 0x05), "dnp3 link frame does not start with 0x0564")
	}
	if len(b) < 2 {
		return short(out, 0)
	}
	if len(b) < dnp3HeaderLen {
		return short(out, 0)
	}
	if dnp3CRC(b[:8]) != le16(b[8:]) {
		// The length octet is not trustworthy, so neither is any framing after it.
		return malformed(out, len(b), "dnp3 link header crc mismatch")
	}
	l := int(b[2])
	if l < 5 {
		return malformed(out, len(b), "dnp3 link length below 5")
	}
	n := dnp3FrameLen(l)
	if len(b) < n {
		return short(out, n)
	}
	out.Len = n
	ctrl := b[3]
	out.Dst = le16(b[4:])
	out.Src = le16(b[6:])
	out.Sub = uint16(ctrl & 0x0f)
	out.Response = ctrl&0x80 == 0 // DIR: 1 = from master

	// De-block the user data, checking each block's CRC (clause 9).
	var user [dnp3MaxUser]byte
	u := 0
	for off := dnp3HeaderLen; off < n; {
		blk := min(16, n-off-2)
		if dnp3CRC(b[off:off+blk]) != le16(b[off+blk:]) {
			out.Malformed = "dnp3 user data crc mismatch"
		}
		u += copy(user[u:], b[off:off+blk])
		off += blk + 2
	}
	primary := ctrl&0x40 != 0
	fc := ctrl & 0x0f
	if !primary || (fc != 3 && fc != 4) {
		out.Function = 0x100 | uint16(fc)
		if primary {
			out.FunctionName = dnp3LinkPrimary[fc]
		} else {
			out.FunctionName = dnp3LinkSecondary[fc]
		}
		if out.FunctionName == "" {
			out.FunctionName = "link_unknown"
			out.Malformed = "dnp3 undefined link function code"
		} else if u > 0 {
			out.Malformed = "dnp3 link function without user data carries user data"
		}
		return n, nil
	}
	if u == 0 {
		return malformed(out, n, "dnp3 user data frame without transport header")
	}
	decodeDNP3Transport(user[:u], out)
	return n, nil
}

// decodeDNP3Transport decodes the transport header (clause 8: FIN, FIR,
// sequence) and, in the first segment of a fragment, the application
// header.
func decodeDNP3Transport(seg []byte, out *PDU) {
	th := seg[0]
	if th&0x40 == 0 {
		out.Function = 0x200
		out.FunctionName = "transport_continuation"
		return
	}
	app := seg[1:]
	if len(app) < 2 {
		if out.Malformed == "" {
			out.Malformed = "dnp3 application header truncated"
		}
		out.FunctionName = "unknown"
		return
	}
	fc := app[1]
	out.Function = uint16(fc)
	f := dnp3Funcs[fc]
	out.FunctionName, out.Class = f.name, f.class
	if f.name == "" {
		out.FunctionName = "unknown"
		if out.Malformed == "" {
			out.Malformed = "dnp3 undefined application function code"
		}
		return
	}
	out.Response = fc >= 129
	objs := app[2:]
	if fc >= 129 {
		// Clause 4: responses (including authentication responses) carry
		// two octets of internal indications;
		// IIN2 bits 0–5 report request errors.
		if len(objs) < 2 {
			if out.Malformed == "" {
				out.Malformed = "dnp3 response without internal indications"
			}
			return
		}
		out.Exception = objs[1] & 0x3f
		objs = objs[2:]
	}
	if len(objs) >= 3 {
		// First object header: group, variation, qualifier.
		out.Address = uint32(objs[0])<<8 | uint32(objs[1])
		out.Quantity = 1
	}
	if th&0x80 == 0 {
		return // the fragment continues in later segments: objects are cut
	}
	headers, violation := checkDNP3Objects(objs, fc)
	if headers > 0 {
		out.Quantity = uint16(headers)
	}
	if violation != "" && out.Malformed == "" {
		out.Malformed = violation
	}
}
