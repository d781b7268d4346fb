package ot

// S7comm over ISO-on-TCP: TPKT (RFC 1006 §6: version 3, reserved, 16-bit
// length of the whole packet), COTP (ISO 8073 / ITU-T X.224 §13: length
// indicator, TPDU code; DT data TPDU with the EOT bit), then the S7
// header. Siemens does not publish S7comm; the layout follows the reference
// dissector (Wireshark packet-s7comm.c, T. Wiens): protocol id 0x32, ROSCTR,
// redundancy id, PDU reference, parameter and data lengths, plus error
// class and code for ROSCTR 2 and 3; for Job/Ack_Data the first parameter
// octet is the function. S7comm-plus (S7-1200/1500) uses protocol id 0x72:
// version, data length, then opcode and a 16-bit function
// (packet-s7comm_plus.c).

const (
	tpktHeaderLen = 4
	s7ProtoID     = 0x32
	s7PlusProtoID = 0x72
)

const (
	cotpCR = 0xe0
	cotpCC = 0xd0
	cotpDR = 0x80
	cotpDC = 0xc0
	cotpDT = 0xf0
	cotpED = 0x10
	cotpAK = 0x60
	cotpEA = 0x20
	cotpRJ = 0x50
	cotpER = 0x70
)

func cotpName(t byte) string {
	switch t {
	case cotpCR:
		return "cotp_connection_request"
	case cotpCC:
		return "cotp_connection_confirm"
	case cotpDR:
		return "cotp_disconnect_request"
	case cotpDC:
		return "cotp_disconnect_confirm"
	case cotpDT:
		return "cotp_data"
	case cotpED:
		return "cotp_expedited_data"
	case cotpAK:
		return "cotp_data_ack"
	case cotpEA:
		return "cotp_expedited_data_ack"
	case cotpRJ:
		return "cotp_reject"
	case cotpER:
		return "cotp_error"
	}
	return ""
}

// s7Funcs: Job/Ack_Data functions. Block transfer, PLC control (PI
// services such as start or copy RAM to ROM) and PLC stop change the
// program or the run state: control.
var s7Funcs = [256]function{
	0x00: {"cpu_services", ClassOther},
	0x04: {"read_var", ClassRead},
	0x05: {"write_var", ClassWrite},
	0x1a: {"request_download", ClassControl},
	0x1b: {"download_block", ClassControl},
	0x1c: {"download_ended", ClassControl},
	0x1d: {"start_upload", ClassControl},
	0x1e: {"upload", ClassControl},
	0x1f: {"end_upload", ClassControl},
	0x28: {"plc_control", ClassControl},
	0x29: {"plc_stop", ClassControl},
	0xf0: {"setup_communication", ClassOther},
}

func decodeS7(b []byte, fromServer bool, out *PDU) (int, error) {
	out.Response = fromServer
	if len(b) < tpktHeaderLen {
		return short(out, 0)
	}
	if b[0] != 3 || b[1] != 0 {
		return malformed(out, len(b), "tpkt version is not 3")
	}
	n := int(be16(b[2:]))
	if n < tpktHeaderLen+2 {
		return malformed(out, len(b), "tpkt length below 6")
	}
	if len(b) < n {
		return short(out, n)
	}
	out.Len = n
	cotp := b[tpktHeaderLen:n]
	li := int(cotp[0])
	if li == 0 || li+1 > len(cotp) {
		return malformed(out, n, "cotp length indicator exceeds the tpkt")
	}
	typ := cotp[1] & 0xf0
	out.Sub = uint16(typ)
	if typ != cotpDT {
		out.Function = 0x100 | uint16(typ)
		out.FunctionName = cotpName(typ)
		if out.FunctionName == "" {
			out.FunctionName = "cotp_unknown"
			out.Malformed = "cotp unknown tpdu code"
		}
		out.Response = typ == cotpCC || typ == cotpDC
		return n, nil
	}
	if li < 2 {
		return malformed(out, n, "cotp data tpdu header shorter than 2")
	}
	eot := cotp[2]&0x80 != 0
	data := cotp[1+li:]
	out.Function = 0x100 | cotpDT
	out.FunctionName = "cotp_data"
	if len(data) == 0 {
		return n, nil
	}
	switch data[0] {
	case s7ProtoID:
		decodeS7PDU(data, eot, out)
	case s7PlusProtoID:
		decodeS7Plus(data, out)
	}
	// Anything else over COTP (e.g. ISO session/MMS on port 102) stays a
	// plain cotp_data: it is not an S7 protocol violation.
	return n, nil
}

func decodeS7PDU(s []byte, eot bool, out *PDU) {
	if len(s) < 10 {
		out.Malformed = "s7comm header truncated"
		return
	}
	rosctr := s[1]
	out.Sub = uint16(rosctr)
	out.Transaction = uint32(be16(s[4:]))
	plen, dlen := int(be16(s[6:])), int(be16(s[8:]))
	hl := 10
	switch rosctr {
	case 1, 7:
	case 2, 3:
		hl = 12
		if len(s) < hl {
			out.Malformed = "s7comm ack header truncated"
			return
		}
		out.Exception = s[10]
		out.Response = true
	default:
		out.FunctionName = "unknown_rosctr"
		out.Malformed = "s7comm unknown rosctr"
		return
	}
	if hl+plen+dlen != len(s) && (eot || hl+plen+dlen < len(s)) {
		out.Malformed = "s7comm parameter and data lengths do not match the tpdu"
	}
	param := s[hl:]
	if plen < len(param) {
		param = param[:plen]
	}
	switch rosctr {
	case 1:
		out.Response = false
	case 2:
		out.Function = 0x102
		out.FunctionName = "ack"
		return
	case 7:
		decodeS7Userdata(param, out)
		return
	}
	if len(param) == 0 {
		out.FunctionName = "no_parameter"
		return
	}
	fc := param[0]
	out.Function = uint16(fc)
	f := s7Funcs[fc]
	out.FunctionName, out.Class = f.name, f.class
	if f.name == "" {
		out.FunctionName = "unknown"
		if out.Malformed == "" {
			out.Malformed = "s7comm unknown function"
		}
		return
	}
	if !out.Response {
		out.Text = s7PIService(fc, param, out)
	}
}

// s7PIService returns the program-invocation service name of a PLC control
// (0x28: 7 reserved octets, parameter block length and block, name length,
// name) or PLC stop (0x29: 5 reserved octets, name length, name) request,
// e.g. "P_PROGRAM" or "_MODU" (copy RAM to ROM).
func s7PIService(fc byte, param []byte, out *PDU) string {
	var off int
	switch fc {
	case 0x28:
		if len(param) < 10 {
			return ""
		}
		off = 10 + int(be16(param[8:]))
	case 0x29:
		off = 6
	default:
		return ""
	}
	if off >= len(param) {
		return ""
	}
	l := int(param[off])
	if off+1+l > len(param) {
		out.Malformed = "s7comm pi service name exceeds the parameter"
		return ""
	}
	return out.setString(param[off+1 : off+1+l])
}

// decodeS7Userdata decodes the Userdata parameter: head 00 01 12, length,
// method, type (high nibble: 4 request, 8 response, 0 push) and function
// group (low nibble), subfunction, sequence number.
func decodeS7Userdata(p []byte, out *PDU) {
	if len(p) < 8 {
		out.FunctionName = "userdata"
		if out.Malformed == "" {
			out.Malformed = "s7comm userdata parameter truncated"
		}
		return
	}
	typ, group, sub := p[5]>>4, p[5]&0x0f, p[6]
	if p[0] != 0x00 || p[1] != 0x01 || p[2] != 0x12 {
		// STEP 7 and TIA Portal both send Userdata with head 01 00 10
		// (step7_s300_stop, tia_s300_downloadHwConfig); its layout is
		// undocumented, so it is named but not called a violation.
		out.Function = 0x1000 | uint16(group)<<8 | uint16(sub)
		out.FunctionName = "userdata_unknown_head"
		return
	}
	out.Response = typ == 8
	out.Function = 0x1000 | uint16(group)<<8 | uint16(sub)
	out.FunctionName, out.Class = s7UserdataName(group, sub)
	if out.Response && len(p) >= 12 {
		out.Exception = p[10] // error code, high octet: class of the error
	}
}

func s7UserdataName(group, sub byte) (string, Class) {
	switch group {
	case 1: // programmer commands
		switch sub {
		case 0x01, 0x13:
			return "request_diag_data", ClassDiagnostic
		case 0x02:
			return "vartab", ClassRead
		case 0x0c:
			return "erase", ClassControl
		case 0x0e:
			return "read_diag_data", ClassDiagnostic
		case 0x0f:
			return "remove_diag_data", ClassDiagnostic
		case 0x10:
			return "forces", ClassWrite
		}
		return "programmer_command", ClassDiagnostic
	case 2:
		return "cyclic_data", ClassRead
	case 3: // block functions
		switch sub {
		case 0x01:
			return "list_blocks", ClassRead
		case 0x02:
			return "list_blocks_of_type", ClassRead
		case 0x03:
			return "get_block_info", ClassRead
		}
		return "block_function", ClassRead
	case 4: // CPU functions
		switch sub {
		case 0x01:
			return "read_szl", ClassDiagnostic
		case 0x02:
			return "message_service", ClassOther
		case 0x03:
			return "diagnostic_message", ClassDiagnostic
		case 0x0b, 0x0c:
			return "alarm_ack", ClassOther
		case 0x13:
			return "alarm_query", ClassRead
		}
		return "cpu_function", ClassOther
	case 5: // security
		if sub == 0x01 {
			return "plc_password", ClassControl
		}
		return "security", ClassControl
	case 6:
		return "programmable_block_communication", ClassOther
	case 7: // time functions
		switch sub {
		case 0x01, 0x03:
			return "read_clock", ClassRead
		case 0x02, 0x04:
			return "set_clock", ClassWrite
		}
		return "time_function", ClassOther
	case 0xf:
		return "nc_programming", ClassControl
	}
	return "userdata_unknown_group", ClassOther
}

// decodeS7Plus reads the S7comm-plus frame: 0x72, version, data length,
// then (for data PDUs) opcode, two reserved octets and the function.
// Version 3 (firmware with integrity protection) puts a 1-octet digest
// length and the digest before the opcode.
func decodeS7Plus(s []byte, out *PDU) {
	out.Proto = S7commPlus
	out.FunctionName = "s7plus"
	if len(s) < 4 {
		out.Malformed = "s7comm-plus header truncated"
		return
	}
	version := s[1]
	out.Sub = uint16(version)
	if version == 0xff {
		out.FunctionName = "keep_alive"
		out.Function = 0xff
		return
	}
	dlen := int(be16(s[2:]))
	d := s[4:]
	if dlen > len(d) {
		out.Malformed = "s7comm-plus data length exceeds the tpdu"
		return
	}
	d = d[:dlen]
	if version == 3 && len(d) > 0 && int(d[0])+1 <= len(d) && d[0] == 32 {
		d = d[1+int(d[0]):]
	}
	if len(d) < 5 {
		out.FunctionName = "s7plus_fragment"
		return
	}
	opcode := d[0]
	fn := be16(d[3:])
	out.Function = fn
	switch opcode {
	case 0x31:
	case 0x32, 0x02:
		out.Response = true
	case 0x33:
		out.Response = true
		out.FunctionName = "notification"
		out.Function = 0x33
		return
	default:
		// Continuation of a PDU split over several TPKTs: no opcode here.
		out.FunctionName = "s7plus_continuation"
		out.Function = 0
		return
	}
	out.FunctionName, out.Class = s7PlusFuncName(fn)
}

func s7PlusFuncName(fn uint16) (string, Class) {
	switch fn {
	case 0x04bb:
		return "explore", ClassRead
	case 0x04ca:
		return "create_object", ClassWrite
	case 0x04d4:
		return "delete_object", ClassWrite
	case 0x04f2:
		return "set_variable", ClassWrite
	case 0x04fc:
		return "get_variable", ClassRead
	case 0x0506:
		return "add_link", ClassOther
	case 0x051a:
		return "remove_link", ClassOther
	case 0x0524:
		return "get_link", ClassRead
	case 0x0542:
		return "set_multi_variables", ClassWrite
	case 0x054c:
		return "get_multi_variables", ClassRead
	case 0x0556:
		return "begin_sequence", ClassControl
	case 0x0560:
		return "end_sequence", ClassControl
	case 0x056b:
		return "invoke", ClassControl
	case 0x057c:
		return "set_var_substreamed", ClassWrite
	case 0x0586:
		return "get_var_substreamed", ClassRead
	case 0x0590:
		return "get_variables_address", ClassRead
	case 0x059a:
		return "abort", ClassOther
	case 0x04b1:
		return "error", ClassOther
	}
	return "s7plus_unknown_function", ClassOther
}
