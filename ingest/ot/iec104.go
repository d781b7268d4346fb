package ot

// IEC 60870-5-104 (2006): APCI in §5 (start octet 0x68, APDU length of at
// most 253, four control octets; I-, S- and U-format in §5.1–5.3) and the
// ASDU of IEC 60870-5-101 §7 as profiled by 104 §6–§8 (type
// identification, variable structure qualifier, cause of transmission with
// test and negative bits, one-octet originator address, two-octet common
// address, three-octet information object addresses).

const (
	iec104Start  = 0x68
	iec104MaxLen = 253
	asduHeader   = 6 // type, vsq, cot, originator, common address (2)
)

type iec104Type struct {
	name  string
	class Class
	size  int8 // octets of one information element (without IOA); -1: variable
}

// iec104Types lists type identifications of 101 §7.2.1.1 and 104 §8
// with the size of their information element, so the ASDU length can be
// checked against the number of objects. Process information in the
// monitor direction is reported data (other); commands in the control
// direction (45–64) change the process (write); interrogations read;
// clock, test and delay are diagnostics; reset process and file transfer
// change how the station runs (control).
var iec104Types = [128]iec104Type{
	1:   {"M_SP_NA_1", ClassOther, 1},
	2:   {"M_SP_TA_1", ClassOther, 4},
	3:   {"M_DP_NA_1", ClassOther, 1},
	4:   {"M_DP_TA_1", ClassOther, 4},
	5:   {"M_ST_NA_1", ClassOther, 2},
	6:   {"M_ST_TA_1", ClassOther, 5},
	7:   {"M_BO_NA_1", ClassOther, 5},
	8:   {"M_BO_TA_1", ClassOther, 8},
	9:   {"M_ME_NA_1", ClassOther, 3},
	10:  {"M_ME_TA_1", ClassOther, 6},
	11:  {"M_ME_NB_1", ClassOther, 3},
	12:  {"M_ME_TB_1", ClassOther, 6},
	13:  {"M_ME_NC_1", ClassOther, 5},
	14:  {"M_ME_TC_1", ClassOther, 8},
	15:  {"M_IT_NA_1", ClassOther, 5},
	16:  {"M_IT_TA_1", ClassOther, 8},
	17:  {"M_EP_TA_1", ClassOther, 6},
	18:  {"M_EP_TB_1", ClassOther, 7},
	19:  {"M_EP_TC_1", ClassOther, 7},
	20:  {"M_PS_NA_1", ClassOther, 5},
	21:  {"M_ME_ND_1", ClassOther, 2},
	30:  {"M_SP_TB_1", ClassOther, 8},
	31:  {"M_DP_TB_1", ClassOther, 8},
	32:  {"M_ST_TB_1", ClassOther, 9},
	33:  {"M_BO_TB_1", ClassOther, 12},
	34:  {"M_ME_TD_1", ClassOther, 10},
	35:  {"M_ME_TE_1", ClassOther, 10},
	36:  {"M_ME_TF_1", ClassOther, 12},
	37:  {"M_IT_TB_1", ClassOther, 12},
	38:  {"M_EP_TD_1", ClassOther, 10},
	39:  {"M_EP_TE_1", ClassOther, 11},
	40:  {"M_EP_TF_1", ClassOther, 11},
	45:  {"C_SC_NA_1", ClassWrite, 1},
	46:  {"C_DC_NA_1", ClassWrite, 1},
	47:  {"C_RC_NA_1", ClassWrite, 1},
	48:  {"C_SE_NA_1", ClassWrite, 3},
	49:  {"C_SE_NB_1", ClassWrite, 3},
	50:  {"C_SE_NC_1", ClassWrite, 5},
	51:  {"C_BO_NA_1", ClassWrite, 4},
	58:  {"C_SC_TA_1", ClassWrite, 8},
	59:  {"C_DC_TA_1", ClassWrite, 8},
	60:  {"C_RC_TA_1", ClassWrite, 8},
	61:  {"C_SE_TA_1", ClassWrite, 10},
	62:  {"C_SE_TB_1", ClassWrite, 10},
	63:  {"C_SE_TC_1", ClassWrite, 12},
	64:  {"C_BO_TA_1", ClassWrite, 11},
	70:  {"M_EI_NA_1", ClassOther, 1},
	100: {"C_IC_NA_1", ClassRead, 1},
	101: {"C_CI_NA_1", ClassRead, 1},
	102: {"C_RD_NA_1", ClassRead, 0},
	103: {"C_CS_NA_1", ClassDiagnostic, 7},
	104: {"C_TS_NA_1", ClassDiagnostic, 2},
	105: {"C_RP_NA_1", ClassControl, 1},
	106: {"C_CD_NA_1", ClassDiagnostic, 2},
	107: {"C_TS_TA_1", ClassDiagnostic, 9},
	110: {"P_ME_NA_1", ClassWrite, 3},
	111: {"P_ME_NB_1", ClassWrite, 3},
	112: {"P_ME_NC_1", ClassWrite, 5},
	113: {"P_AC_NA_1", ClassWrite, 1},
	120: {"F_FR_NA_1", ClassControl, 6},
	121: {"F_SR_NA_1", ClassControl, 7},
	122: {"F_SC_NA_1", ClassControl, 4},
	123: {"F_LS_NA_1", ClassControl, 5},
	124: {"F_AF_NA_1", ClassControl, 4},
	125: {"F_SG_NA_1", ClassControl, -1},
	126: {"F_DR_TA_1", ClassControl, 13},
	127: {"F_SC_NB_1", ClassControl, -1},
}

func decodeIEC104(b []byte, fromServer bool, out *PDU) (int, error) {
	out.Response = fromServer
	if len(b) > 0 && b[0] != iec104Start {
		// Skip to the next start octet, as a receiver resynchronises.
		return malformed(out, resync(b, iec104Start), "iec104 apdu does not start with 0x68")
	}
	if len(b) < 2 {
		return short(out, 0)
	}
	l := int(b[1])
	if l < 4 || l > iec104MaxLen {
		return malformed(out, resync(b, iec104Start), "iec104 apdu length outside 4..253")
	}
	n := 2 + l
	if len(b) < n {
		return short(out, n)
	}
	out.Len = n
	cf := b[2:6]
	switch {
	case cf[0]&1 == 0:
		out.Sub = 'I'
		out.Transaction = uint32(le16(cf) >> 1) // send sequence number N(S)
		decodeASDU(b[6:n], out)
	case cf[0]&3 == 1:
		out.Sub = 'S'
		out.Function = 0x101
		out.FunctionName = "s_frame"
		if l != 4 {
			out.Malformed = "iec104 s-format apdu carries an asdu"
		}
	default:
		out.Sub = 'U'
		out.Function = 0x100 | uint16(cf[0])
		out.FunctionName = iec104UName(cf[0])
		if out.FunctionName == "" {
			out.FunctionName = "u_unknown"
			out.Malformed = "iec104 u-format with none or several functions"
		} else if l != 4 {
			out.Malformed = "iec104 u-format apdu carries an asdu"
		}
		// STARTDT/STOPDT/TESTFR confirmations answer an activation.
		out.Response = cf[0]&0xa8 != 0
	}
	return n, nil
}

// iec104UName names a U-format control octet: exactly one of the six
// function bits (104 §5.3).
func iec104UName(c byte) string {
	switch c {
	case 0x07:
		return "startdt_act"
	case 0x0b:
		return "startdt_con"
	case 0x13:
		return "stopdt_act"
	case 0x23:
		return "stopdt_con"
	case 0x43:
		return "testfr_act"
	case 0x83:
		return "testfr_con"
	}
	return ""
}

func decodeASDU(a []byte, out *PDU) {
	if len(a) < asduHeader {
		// Report what the truncated header still says.
		out.FunctionName = "asdu_truncated"
		out.Malformed = "iec104 i-format asdu shorter than its header"
		if len(a) > 0 {
			out.Function = uint16(a[0])
		}
		if len(a) > 1 {
			out.Quantity = uint16(a[1] & 0x7f)
		}
		if len(a) > 2 {
			out.Cause = a[2] & 0x3f
		}
		return
	}
	typ := a[0]
	out.Function = uint16(typ)
	var t iec104Type
	if typ < 128 {
		t = iec104Types[typ]
	}
	if t.name == "" {
		out.FunctionName = "unknown_type"
		out.Malformed = "iec104 undefined type identification"
		return
	}
	out.FunctionName, out.Class = t.name, t.class
	sq, num := a[1]&0x80 != 0, int(a[1]&0x7f)
	out.Quantity = uint16(num)
	cot := a[2]
	out.Cause = cot & 0x3f
	out.Unit = le16(a[4:])
	if cot&0x40 != 0 || out.Cause >= 44 && out.Cause <= 47 {
		out.Exception = out.Cause // negative confirm or unknown type/cause/address
	}
	// Activation and deactivation travel from the controlling station,
	// their confirmations and terminations back (101 §7.2.3).
	switch out.Cause {
	case 6, 8:
		out.Response = false
	case 7, 9, 10, 44, 45, 46, 47:
		out.Response = true
	}
	if out.Cause == 0 {
		out.Malformed = "iec104 cause of transmission 0"
	}
	objs := a[asduHeader:]
	if len(objs) >= 3 {
		out.Address = uint32(objs[0]) | uint32(objs[1])<<8 | uint32(objs[2])<<16
	}
	if t.size < 0 {
		return
	}
	want := num * (3 + int(t.size))
	if sq && num > 0 {
		want = 3 + num*int(t.size)
	}
	if num == 0 || len(objs) != want {
		if out.Malformed == "" {
			out.Malformed = "iec104 asdu length does not match its number of objects"
		}
	}
}
