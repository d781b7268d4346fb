package ot

// Modbus/TCP, from "MODBUS Messaging on TCP/IP Implementation Guide V1.0b"
// (§3.1.3, MBAP header) and "MODBUS Application Protocol Specification
// V1.1b3" (§4.1 PDU size, §6 function codes, §7 exception responses).

const (
	mbapLen       = 7   // transaction(2) protocol(2) length(2) unit(1), §3.1.3
	modbusMaxPDU  = 253 // §4.1: 256-byte serial ADU minus address and CRC
	modbusMaxMBAP = 1 + modbusMaxPDU
	// modbusLenTolerance accepts MBAP lengths a little over the maximum:
	// Schneider controllers send 255 in UMAS uploads (seen in
	// modicon_test.pcap) and Wireshark decodes them.
	modbusLenTolerance = 6
)

// modbusFuncs holds the public function codes of §5.1 and §6, plus
// Schneider's UMAS (90), which carries PLC start/stop and program transfer.
var modbusFuncs = [128]function{
	1:  {"read_coils", ClassRead},
	2:  {"read_discrete_inputs", ClassRead},
	3:  {"read_holding_registers", ClassRead},
	4:  {"read_input_registers", ClassRead},
	5:  {"write_single_coil", ClassWrite},
	6:  {"write_single_register", ClassWrite},
	7:  {"read_exception_status", ClassDiagnostic},
	8:  {"diagnostics", ClassDiagnostic},
	11: {"get_comm_event_counter", ClassDiagnostic},
	12: {"get_comm_event_log", ClassDiagnostic},
	15: {"write_multiple_coils", ClassWrite},
	16: {"write_multiple_registers", ClassWrite},
	17: {"report_server_id", ClassDiagnostic},
	20: {"read_file_record", ClassRead},
	21: {"write_file_record", ClassWrite},
	22: {"mask_write_register", ClassWrite},
	23: {"read_write_multiple_registers", ClassWrite},
	24: {"read_fifo_queue", ClassRead},
	43: {"encapsulated_interface_transport", ClassDiagnostic},
	90: {"umas", ClassOther},
}

// umasFuncs names Schneider UMAS sub-functions (the byte after the session
// id in function 90) that change the controller: the ones a baseline must
// notice.
var umasFuncs = [256]function{
	0x01: {"umas_init_comm", ClassOther},
	0x02: {"umas_read_id", ClassDiagnostic},
	0x03: {"umas_read_project_info", ClassRead},
	0x04: {"umas_read_plc_info", ClassDiagnostic},
	0x06: {"umas_read_card_info", ClassDiagnostic},
	0x0a: {"umas_repeat", ClassOther},
	0x10: {"umas_take_plc_reservation", ClassControl},
	0x11: {"umas_release_plc_reservation", ClassControl},
	0x12: {"umas_keep_alive", ClassOther},
	0x20: {"umas_read_memory_block", ClassRead},
	0x22: {"umas_read_variables", ClassRead},
	0x23: {"umas_write_variables", ClassWrite},
	0x24: {"umas_read_coils_registers", ClassRead},
	0x25: {"umas_write_coils_registers", ClassWrite},
	0x30: {"umas_initialize_download", ClassControl},
	0x31: {"umas_download_block", ClassControl},
	0x32: {"umas_end_download", ClassControl},
	0x33: {"umas_initialize_upload", ClassControl},
	0x34: {"umas_upload_block", ClassControl},
	0x35: {"umas_end_upload", ClassControl},
	0x36: {"umas_backup", ClassControl},
	0x37: {"umas_restore", ClassControl},
	0x40: {"umas_start_plc", ClassControl},
	0x41: {"umas_stop_plc", ClassControl},
	0x50: {"umas_monitor_plc", ClassRead},
	0x58: {"umas_check_plc", ClassDiagnostic},
	0x70: {"umas_read_io_object", ClassRead},
	0x71: {"umas_write_io_object", ClassWrite},
	0x73: {"umas_get_status_module", ClassDiagnostic},
	0xfe: {"umas_response_ok", ClassOther},
	0xfd: {"umas_response_error", ClassOther},
}

func decodeModbus(b []byte, fromServer bool, out *PDU) (int, error) {
	out.Response = fromServer
	if len(b) < 6 {
		return short(out, 0)
	}
	if proto := be16(b[2:]); proto != 0 {
		// §3.1.3: 0 is the only protocol identifier; without it the
		// length field cannot be trusted, so the rest of the segment is lost.
		return malformed(out, len(b), "modbus protocol identifier is not 0")
	}
	length := int(be16(b[4:]))
	if length < 2 || length > modbusMaxMBAP+modbusLenTolerance {
		return malformed(out, len(b), "modbus mbap length outside 2..260")
	}
	n := 6 + length
	out.Transaction = uint32(be16(b))
	if len(b) < n {
		return short(out, n)
	}
	out.Len = n
	out.Unit = uint16(b[6])
	decodeModbusPDU(b[mbapLen:n], out)
	return n, nil
}

// decodeModbusPDU decodes function code and data (at least one byte).
func decodeModbusPDU(pdu []byte, out *PDU) {
	fc := pdu[0]
	data := pdu[1:]
	if fc&0x80 != 0 {
		// §7: exception response = function code + 0x80, exception code.
		out.Response = true
		fc &^= 0x80
		out.Function = uint16(fc)
		out.FunctionName, out.Class = modbusFuncName(fc)
		if len(data) != 1 {
			out.Malformed = "modbus exception response is not 2 bytes"
			return
		}
		out.Exception = data[0]
		if data[0] == 0 {
			out.Malformed = "modbus exception code 0"
		}
		return
	}
	out.Function = uint16(fc)
	out.FunctionName, out.Class = modbusFuncName(fc)
	if fc == 0 {
		out.Malformed = "modbus function code 0"
		return
	}
	switch fc {
	case 1, 2, 3, 4:
		checkModbusRead(fc, data, out)
	case 5, 6:
		// §6.5, §6.6: request and echo response are address + value.
		if len(data) >= 2 {
			out.Address = uint32(be16(data))
			out.Quantity = 1
		}
		if len(data) != 4 {
			out.Malformed = "modbus write single has wrong length"
			return
		}
		if fc == 5 {
			if v := be16(data[2:]); v != 0 && v != 0xff00 {
				out.Malformed = "modbus write single coil value is not 0x0000 or 0xff00"
			}
		}
	case 15, 16:
		checkModbusWriteMultiple(fc, data, out)
	case 8:
		// §6.8: sub-function 1 restarts the communications option and 4
		// forces listen-only mode: both take the device off the bus.
		if len(data) < 2 {
			out.Malformed = "modbus diagnostics without sub-function"
			return
		}
		out.Address = uint32(be16(data))
		if sub := be16(data); sub == 1 || sub == 4 {
			out.Class = ClassControl
		}
	case 22:
		// §6.16: reference, AND mask, OR mask (request and echo).
		if len(data) >= 2 {
			out.Address = uint32(be16(data))
			out.Quantity = 1
		}
		if len(data) != 6 {
			out.Malformed = "modbus mask write register has wrong length"
		}
	case 24:
		// §6.18: the request is the FIFO pointer address.
		if !out.Response {
			if len(data) >= 2 {
				out.Address = uint32(be16(data))
			}
			if len(data) != 2 {
				out.Malformed = "modbus read fifo queue request is not a pointer address"
			}
		}
	case 23:
		if !out.Response {
			// §6.17: read addr, read qty, write addr, write qty, byte count, values.
			if len(data) < 9 || int(data[8]) != len(data)-9 {
				out.Malformed = "modbus read/write multiple registers byte count does not match"
				return
			}
			out.Address = uint32(be16(data[4:]))
			out.Quantity = be16(data[6:])
		}
	case 43:
		if len(data) < 1 {
			out.Malformed = "modbus encapsulated interface transport without mei type"
			return
		}
		if data[0] == 14 {
			out.FunctionName = "read_device_identification"
		}
	case 90:
		// UMAS: session id, sub-function (Schneider, not in the public spec).
		if len(data) < 2 {
			out.Malformed = "modbus umas without sub-function"
			return
		}
		if f := umasFuncs[data[1]]; f.name != "" {
			out.FunctionName, out.Class = f.name, f.class
		}
		out.Address = uint32(data[1])
	}
}

func modbusFuncName(fc uint8) (string, Class) {
	if f := modbusFuncs[fc&0x7f]; f.name != "" {
		return f.name, f.class
	}
	if fc >= 65 && fc <= 72 || fc >= 100 && fc <= 110 {
		return "user_defined", ClassOther // §5.1 user-defined ranges
	}
	return "unassigned", ClassOther
}

// checkModbusRead validates §6.1–§6.4: a request is address + quantity, a
// response is a byte count and that many bytes. Requests and responses have
// the same function code, so the length tells them apart when the
// direction hint is wrong.
func checkModbusRead(fc uint8, data []byte, out *PDU) {
	if !out.Response {
		if len(data) != 4 {
			out.Malformed = "modbus read request is not address and quantity"
			return
		}
		out.Address = uint32(be16(data))
		out.Quantity = be16(data[2:])
		limit := uint16(125)
		if fc <= 2 {
			limit = 2000
		}
		if out.Quantity == 0 || out.Quantity > limit {
			out.Malformed = "modbus read quantity out of range"
		}
		return
	}
	if len(data) < 1 || int(data[0]) != len(data)-1 {
		out.Malformed = "modbus read response byte count does not match"
	}
}

// checkModbusWriteMultiple validates §6.11 and §6.12.
func checkModbusWriteMultiple(fc uint8, data []byte, out *PDU) {
	if len(data) < 4 {
		out.Malformed = "modbus write multiple is too short"
		return
	}
	out.Address = uint32(be16(data))
	out.Quantity = be16(data[2:])
	if out.Response {
		if len(data) != 4 {
			out.Malformed = "modbus write multiple response is not address and quantity"
		}
		return
	}
	if len(data) < 5 || int(data[4]) != len(data)-5 {
		out.Malformed = "modbus write multiple byte count does not match"
		return
	}
	want := int(out.Quantity) * 2
	limit := uint16(123)
	if fc == 15 {
		want = (int(out.Quantity) + 7) / 8
		limit = 1968
	}
	if out.Quantity == 0 || out.Quantity > limit || int(data[4]) != want {
		out.Malformed = "modbus write multiple quantity does not match byte count"
	}
}
