package attackgen

import (
	"io"
	"time"
)

// Small captures of traffic that is odd but not an attack, for the tests
// of the packet path's robustness. They carry no labels: nothing in them
// should raise an alert.

// GenerateModbusOnOTPorts writes Modbus/TCP polling whose client ports are
// other OT protocols' well-known ports: the HMI polls PLC1:502 from port
// 2404 (IEC 60870-5-104's) and PLC2:502 from port 2222 (EtherNet/IP
// implicit I/O's). Each connection opens with its handshake; each polls
// ten holding registers once a second from start for d. A decoder that
// trusts ports names these IEC 104 and EtherNet/IP and turns their
// direction around.
func GenerateModbusOnOTPorts(w io.Writer, start time.Time, d time.Duration) error {
	g := newGen(1)
	end := start.Add(d)
	g.modbusPolling(start, end, PLC1, 2404)
	g.modbusPolling(start.Add(300*time.Millisecond), end, PLC2, 2222)
	return g.write(w)
}

// GenerateCorruptTimestamp writes d of the HMI polling PLC1 with Modbus
// once a second from start, in which the packet in the middle carries a
// timestamp 71 minutes late (a corrupt capture time) and the others are
// in order. It returns that packet's number in the capture (1-based, as
// Wireshark counts).
func GenerateCorruptTimestamp(w io.Writer, start time.Time, d time.Duration) (int, error) {
	g := newGen(1)
	g.modbusPolling(start, start.Add(d), PLC1, 49152)
	if g.err != nil {
		return 0, g.err
	}
	g.sort()
	mid := len(g.frames) / 2
	g.frames[mid].t = g.frames[mid].t.Add(71 * time.Minute)
	return mid + 1, g.writeFrames(w)
}

// modbusPolling is the HMI connecting to plc:502 from cport at t0 and
// reading ten holding registers every second until end.
func (g *gen) modbusPolling(t0, end time.Time, plc host, cport uint16) {
	k := g.connect(t0, HMI, plc, cport, 502)
	var tid uint16
	for t := t0.Add(time.Second); t.Before(end); t = t.Add(time.Second) {
		tid++
		g.exchange(k, t, modbusReq(tid, 3, 0, 10), modbusReadResp(tid, 10, uint16(t.Unix())))
	}
}
