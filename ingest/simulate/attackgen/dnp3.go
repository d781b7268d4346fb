package attackgen

import "encoding/binary"

// DNP3 over TCP as ingest/ot decodes it (IEEE 1815-2012): link frames
// 05 64, length, control, destination, source and a CRC, then the user data
// in blocks of up to 16 octets, each followed by its CRC; the user data is
// a transport octet (FIN, FIR, sequence) and the application fragment.

// dnp3CRC is the link layer's CRC-16-DNP: polynomial 0x3D65 processed LSB
// first (reflected 0xA6BC), initial 0, result complemented.
func dnp3CRC(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xa6bc
			} else {
				crc >>= 1
			}
		}
	}
	return ^crc
}

func appendDNP3CRC(b, over []byte) []byte { return binary.LittleEndian.AppendUint16(b, dnp3CRC(over)) }

// dnp3Frame builds a link frame carrying user data (at most 250 octets).
func dnp3Frame(ctrl byte, dst, src uint16, user []byte) []byte {
	b := []byte{0x05, 0x64, byte(5 + len(user)), ctrl, byte(dst), byte(dst >> 8), byte(src), byte(src >> 8)}
	b = appendDNP3CRC(b, b)
	for len(user) > 0 {
		blk := user[:min(16, len(user))]
		b = appendDNP3CRC(append(b, blk...), blk)
		user = user[len(blk):]
	}
	return b
}

// dnp3Session is the sequence state of one master–outstation
// association: each side's transport sequence and the application
// sequence of the outstanding request.
type dnp3Session struct {
	master, outstation uint16
	mtseq, otseq, aseq byte
}

// Link control octets of unconfirmed user data (function 4, PRM set):
// DIR set from the master, clear from the outstation.
const (
	dnp3FromMaster     = 0xc4
	dnp3FromOutstation = 0x44
)

// request is a single-fragment request of function fc with its objects.
func (s *dnp3Session) request(fc byte, objs []byte) []byte {
	user := append([]byte{0xc0 | s.mtseq&0x3f, 0xc0 | s.aseq&0x0f, fc}, objs...)
	s.mtseq++
	return dnp3Frame(dnp3FromMaster, s.outstation, s.master, user)
}

// response answers the outstanding request (function 129, internal
// indications clear) with objs.
func (s *dnp3Session) response(objs []byte) []byte {
	user := append([]byte{0xc0 | s.otseq&0x3f, 0xc0 | s.aseq&0x0f, 129, 0, 0}, objs...)
	s.otseq++
	s.aseq++
	return dnp3Frame(dnp3FromOutstation, s.master, s.outstation, user)
}

// Object headers of class polls: group 60 variations 2–4 (class 1–3
// events) and 1 (class 0, static data), qualifier 06 (all objects).
var (
	dnp3EventPoll     = []byte{60, 2, 0x06, 60, 3, 0x06, 60, 4, 0x06}
	dnp3IntegrityPoll = []byte{60, 2, 0x06, 60, 3, 0x06, 60, 4, 0x06, 60, 1, 0x06}
)

// dnp3StaticData is an integrity poll's answer: eight binary inputs with
// flags (g1v2) and four 16-bit analog inputs with flags (g30v2), indexes
// 0–7 and 0–3 (qualifier 00, 1-octet start and stop).
func dnp3StaticData(seed uint16) []byte {
	b := []byte{1, 2, 0x00, 0, 7}
	for i := range 8 {
		b = append(b, 0x01|byte(int(seed)>>i&1)<<7) // online, state
	}
	b = append(b, 30, 2, 0x00, 0, 3)
	for i := range 4 {
		b = append(b, 0x01)
		b = binary.LittleEndian.AppendUint16(b, seed+uint16(100*i))
	}
	return b
}

// dnp3AnalogEvents is n 16-bit analog change events without time (g32v2),
// each with a 1-octet index prefix (qualifier 17, 1-octet count).
func dnp3AnalogEvents(n int, seed uint16) []byte {
	b := []byte{32, 2, 0x17, byte(n)}
	for i := range n {
		b = append(b, byte(i), 0x01)
		b = binary.LittleEndian.AppendUint16(b, seed+uint16(i))
	}
	return b
}
