package ot

// Decoders still being written; Decode reports ErrUnsupported for them.

func decodeS7(b []byte, fromServer bool, out *PDU) (int, error)     { return 0, ErrUnsupported }
func decodeENIP(b []byte, fromServer bool, out *PDU) (int, error)   { return 0, ErrUnsupported }
func decodeIEC104(b []byte, fromServer bool, out *PDU) (int, error) { return 0, ErrUnsupported }
func decodeBACnet(b []byte, fromServer bool, out *PDU) (int, error) { return 0, ErrUnsupported }
func decodeMQTT(b []byte, fromServer bool, out *PDU) (int, error)   { return 0, ErrUnsupported }
func decodeOPCUA(b []byte, fromServer bool, out *PDU) (int, error)  { return 0, ErrUnsupported }

// enipCommandName names EtherNet/IP encapsulation commands (CIP Vol 2 §2-3.2).
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

// opcuaMessageType returns the index of the OPC UA message type at b[0:3]
// (OPC 10000-6 §7.1.2.2), or -1.
func opcuaMessageType(b []byte) int {
	if len(b) < 3 {
		return -1
	}
	for i, t := range opcuaTypes {
		if string(b[:3]) == t {
			return i
		}
	}
	return -1
}

var opcuaTypes = [...]string{"HEL", "ACK", "ERR", "RHE", "OPN", "MSG", "CLO"}
