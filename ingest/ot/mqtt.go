package ot

// MQTT, from OASIS MQTT Version 3.1.1 (2014) and Version 5.0 (2019): fixed
// header (§2.2: packet type and flags, remaining length as a 1–4 octet
// variable byte integer, §2.2.3), CONNECT (§3.1: protocol name, level,
// flags, keep alive, v5 properties, client identifier), CONNACK return
// code (§3.2.2.3), PUBLISH (§3.3: topic name, packet identifier when
// QoS > 0), SUBSCRIBE/UNSUBSCRIBE (§3.8, §3.10) and SUBACK (§3.9). MQTT 3.1
// ("MQIsdp", level 3) has the same layout.

type mqttPacket struct {
	name  string
	class Class
	flags int8 // required flags (§2.2.2); -1: PUBLISH, flags carry DUP/QoS/RETAIN
}

var mqttPackets = [16]mqttPacket{
	1:  {"connect", ClassOther, 0},
	2:  {"connack", ClassOther, 0},
	3:  {"publish", ClassWrite, -1},
	4:  {"puback", ClassWrite, 0},
	5:  {"pubrec", ClassWrite, 0},
	6:  {"pubrel", ClassWrite, 2},
	7:  {"pubcomp", ClassWrite, 0},
	8:  {"subscribe", ClassRead, 2},
	9:  {"suback", ClassRead, 0},
	10: {"unsubscribe", ClassRead, 2},
	11: {"unsuback", ClassRead, 0},
	12: {"pingreq", ClassDiagnostic, 0},
	13: {"pingresp", ClassDiagnostic, 0},
	14: {"disconnect", ClassOther, 0},
	15: {"auth", ClassOther, 0},
}

// mqttVarint reads a variable byte integer; n is 0 when b ends inside it,
// -1 when it is longer than four octets.
func mqttVarint(b []byte) (v, n int) {
	mul := 1
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, 0
		}
		v += int(b[i]&0x7f) * mul
		if b[i]&0x80 == 0 {
			return v, i + 1
		}
		mul <<= 7
	}
	return 0, -1
}

// mqttString reads a UTF-8 string field (§1.5.3: 16-bit length, octets).
func mqttString(b []byte) (s []byte, rest []byte, ok bool) {
	if len(b) < 2 || 2+int(be16(b)) > len(b) {
		return nil, b, false
	}
	l := int(be16(b))
	return b[2 : 2+l], b[2+l:], true
}

func decodeMQTT(b []byte, fromServer bool, out *PDU) (int, error) {
	out.Response = fromServer
	if len(b) < 2 {
		return short(out, 0)
	}
	typ, flags := b[0]>>4, b[0]&0x0f
	rem, vn := mqttVarint(b[1:])
	if vn < 0 {
		return malformed(out, len(b), "mqtt remaining length longer than 4 octets")
	}
	if vn == 0 {
		return short(out, 0)
	}
	hl := 1 + vn
	n := hl + rem
	if len(b) < n {
		return short(out, n)
	}
	out.Len = n
	out.Function = uint16(typ)
	pk := mqttPackets[typ]
	if pk.name == "" {
		out.FunctionName = "reserved"
		out.Malformed = "mqtt reserved packet type 0"
		return n, nil
	}
	out.FunctionName, out.Class = pk.name, pk.class
	switch typ {
	case 2, 4, 5, 7, 9, 11, 13:
		out.Response = true
	case 1, 8, 10, 12:
		out.Response = false
	}
	if pk.flags >= 0 && int8(flags) != pk.flags {
		out.Malformed = "mqtt fixed header flags are reserved values"
	}
	body := b[hl:n]
	switch typ {
	case 1:
		decodeMQTTConnect(body, out)
	case 2:
		if len(body) < 2 {
			out.Malformed = "mqtt connack shorter than 2 octets"
			break
		}
		out.Exception = body[1]
	case 3:
		decodeMQTTPublish(body, flags, out)
	case 4, 5, 6, 7, 11:
		if len(body) < 2 {
			out.Malformed = "mqtt acknowledgement without packet identifier"
			break
		}
		out.Transaction = uint32(be16(body))
	case 8, 10:
		decodeMQTTSubscribe(body, out)
	case 9:
		if len(body) < 3 {
			out.Malformed = "mqtt suback without return codes"
			break
		}
		out.Transaction = uint32(be16(body))
		if rc := body[len(body)-1]; rc >= 0x80 {
			out.Exception = rc
		}
	}
	return n, nil
}

func decodeMQTTConnect(body []byte, out *PDU) {
	name, rest, ok := mqttString(body)
	if !ok || len(rest) < 4 {
		out.Malformed = "mqtt connect variable header truncated"
		return
	}
	level := rest[0]
	switch {
	case string(name) == "MQTT" && (level == 4 || level == 5):
	case string(name) == "MQIsdp" && level == 3:
	default:
		out.Malformed = "mqtt connect protocol name or level unsupported"
		return
	}
	if rest[1]&1 != 0 {
		out.Malformed = "mqtt connect reserved flag set"
	}
	rest = rest[4:]
	if level == 5 {
		pl, vn := mqttVarint(rest)
		if vn <= 0 || vn+pl > len(rest) {
			out.Malformed = "mqtt connect properties exceed the packet"
			return
		}
		rest = rest[vn+pl:]
	}
	id, _, ok := mqttString(rest)
	if !ok {
		out.Malformed = "mqtt connect client identifier truncated"
		return
	}
	out.ClientID = out.setString(id)
}

func decodeMQTTPublish(body []byte, flags byte, out *PDU) {
	qos := flags >> 1 & 3
	if qos == 3 {
		out.Malformed = "mqtt publish qos 3"
	}
	topic, rest, ok := mqttString(body)
	if !ok {
		out.Malformed = "mqtt publish topic truncated"
		return
	}
	out.Topic = out.setString(topic)
	if qos > 0 {
		if len(rest) < 2 {
			out.Malformed = "mqtt publish without packet identifier"
			return
		}
		out.Transaction = uint32(be16(rest))
	}
}

// decodeMQTTSubscribe reads the packet identifier and the first topic
// filter. The protocol level is not known here, so the v3 layout is tried
// first and then the v5 one (properties before the filters).
func decodeMQTTSubscribe(body []byte, out *PDU) {
	if len(body) < 2 {
		out.Malformed = "mqtt subscribe without packet identifier"
		return
	}
	out.Transaction = uint32(be16(body))
	rest := body[2:]
	if f, after, ok := mqttString(rest); ok && len(f) > 0 && (out.Function == 10 || len(after) >= 1) {
		out.Topic = out.setString(f)
		return
	}
	if pl, vn := mqttVarint(rest); vn > 0 && vn+pl <= len(rest) {
		if f, _, ok := mqttString(rest[vn+pl:]); ok && len(f) > 0 {
			out.Topic = out.setString(f)
			return
		}
	}
	out.Malformed = "mqtt subscribe without topic filter"
}
