// Package attackgen crafts labelled OT captures for testing and tuning the
// network detectors. Two scenarios: Generate, a clean period of Modbus/TCP
// polling (an HMI reading a PLC's holding registers) and S7comm reads (an
// engineering workstation reading a data block), then a new Modbus writer,
// an S7 PLC stop, a TCP port scan and a spoofed SYN flood; and
// GenerateOTDay, a substation day of DNP3 and Modbus polling with
// irregular office chatter, then thirteen scans, sweeps, identification
// probes, a flood and MITM signs. Each attack is listed in a labels file
// (WriteLabels) with its time span, device and the alert it must raise.
// GenerateModbusOnOTPorts and GenerateCorruptTimestamp write small
// unlabelled captures of odd but harmless traffic. Every frame is built
// with gopacket's serializers (valid IPv4, TCP, UDP and ICMP checksums,
// valid DNP3 CRCs) and written with pcapgo, so the captures open in
// Wireshark.
//
// It is the OT network `vigil demo` produces, so it belongs to the product
// (ingest/simulate), not to bench/; its command, cmd/attackgen, writes the
// captures the README replays.
package attackgen

import (
	"encoding/binary"
	"encoding/csv"
	"io"
	"net"
	"time"
)

// Scenario sets the timeline. Attack offsets are from Start.
type Scenario struct {
	Start        time.Time
	Clean        time.Duration // clean period before the first attack
	ModbusPoll   time.Duration // HMI → PLC1 read period
	S7Poll       time.Duration // EWS → PLC2 read period
	ScanPorts    int           // ports probed by the scan
	ScanDuration time.Duration
	FloodRate    int // SYN/s of the flood
	FloodFor     time.Duration
	Seed         uint64
}

// DefaultScenario is a 30-minute clean period followed by the four
// attacks, two minutes apart.
func DefaultScenario() Scenario {
	return Scenario{
		Start:        time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC),
		Clean:        30 * time.Minute,
		ModbusPoll:   time.Second,
		S7Poll:       2 * time.Second,
		ScanPorts:    200,
		ScanDuration: 4 * time.Second,
		FloodRate:    4000,
		FloodFor:     5 * time.Second,
		Seed:         1,
	}
}

// Hosts of the scenario.
var (
	HMI     = host{ip: net.IPv4(10, 0, 1, 10).To4(), mac: mac(0x10)}
	PLC1    = host{ip: net.IPv4(10, 0, 1, 20).To4(), mac: mac(0x20)} // Modbus/TCP server
	PLC2    = host{ip: net.IPv4(10, 0, 1, 21).To4(), mac: mac(0x21)} // S7comm server
	EWS     = host{ip: net.IPv4(10, 0, 1, 30).To4(), mac: mac(0x30)} // engineering workstation
	Scanner = host{ip: net.IPv4(10, 0, 1, 99).To4(), mac: mac(0x99)}
)

func mac(b byte) net.HardwareAddr { return net.HardwareAddr{0x00, 0x1b, 0x1b, 0x00, 0x01, b} }

// Label describes one injected attack and the alert it must raise.
type Label struct {
	Start, End time.Time
	Attack     string // short name
	Detector   string // detector that must fire
	Behavior   string // its behavior
	Technique  string // ATT&CK for ICS technique
	Device     string // device the alert names
	Src, Dst   string
}

// Generate writes the capture to w (classic pcap, microseconds, Ethernet)
// and returns the attacks' labels.
func Generate(w io.Writer, s Scenario) ([]Label, error) {
	g := newGen(s.Seed)
	t0 := s.Start

	// Clean period (which goes on under the attacks, as a plant does).
	end := t0.Add(s.Clean + 10*time.Minute)
	mb := g.connect(t0, HMI, PLC1, 49152, 502)
	s7 := g.connect(t0.Add(300*time.Millisecond), EWS, PLC2, 49153, 102)
	g.s7Setup(s7, t0.Add(310*time.Millisecond))
	var tid uint16
	for t := t0.Add(time.Second); t.Before(end); t = t.Add(s.ModbusPoll) {
		tid++
		g.exchange(mb, t, modbusReq(tid, 3, 0, 10), modbusReadResp(tid, 10, uint16(t.Unix())))
	}
	// The S7 session carries the PLC stop in the middle of its polling, so
	// its sequence numbers must be generated in time order.
	stopAt := t0.Add(s.Clean + 3*time.Minute + 250*time.Millisecond)
	stopped := false
	var ref uint16
	for t := t0.Add(1500 * time.Millisecond); t.Before(end); t = t.Add(s.S7Poll) {
		if !stopped && !t.Before(stopAt) {
			stopped = true
			g.exchange(s7, stopAt, s7PLCStop(0x7fff), s7AckData(0x7fff, 0x29))
		}
		ref++
		g.exchange(s7, t, s7ReadVar(ref), s7ReadVarResp(ref, uint16(t.Unix())))
	}

	var labels []Label
	// 1. A new Modbus writer: the engineering workstation, which only ever
	// spoke S7, opens Modbus to PLC1 and writes a holding register.
	at := t0.Add(s.Clean + time.Minute)
	wr := g.connect(at, EWS, PLC1, 49200, 502)
	g.exchange(wr, at.Add(50*time.Millisecond), modbusReq(1, 6, 40, 0xdead), modbusReq(1, 6, 40, 0xdead))
	g.close(wr, at.Add(100*time.Millisecond))
	labels = append(labels,
		Label{Start: at, End: at.Add(time.Second), Attack: "new_modbus_writer", Detector: "novelty", Behavior: "new_function:write_single_register",
			Technique: "T0855", Device: EWS.ip.String(), Src: EWS.ip.String(), Dst: PLC1.ip.String()},
		Label{Start: at, End: at.Add(time.Second), Attack: "new_modbus_writer", Detector: "novelty", Behavior: "new_edge",
			Device: EWS.ip.String(), Src: EWS.ip.String(), Dst: PLC1.ip.String()})

	// 2. An S7 PLC stop on the engineering workstation's existing session.
	at = stopAt
	labels = append(labels, Label{Start: at, End: at.Add(time.Second), Attack: "s7_plc_stop", Detector: "novelty", Behavior: "new_function:plc_stop",
		Technique: "T0858", Device: EWS.ip.String(), Src: EWS.ip.String(), Dst: PLC2.ip.String()})

	// 3. A TCP SYN scan of PLC1 from a host never seen before.
	at = t0.Add(s.Clean + 5*time.Minute)
	step := s.ScanDuration / time.Duration(s.ScanPorts)
	for i := 0; i < s.ScanPorts; i++ {
		t := at.Add(time.Duration(i) * step)
		port := uint16(i + 1)
		if i == s.ScanPorts-1 {
			port = 502 // the open port answers
		}
		sport := uint16(40000 + i)
		g.tcp(t, Scanner, PLC1, sport, port, tcpFlags{syn: true}, 1000, 0, nil)
		if port == 502 {
			g.tcp(t.Add(200*time.Microsecond), PLC1, Scanner, port, sport, tcpFlags{syn: true, ack: true}, 5000, 1001, nil)
			g.tcp(t.Add(400*time.Microsecond), Scanner, PLC1, sport, port, tcpFlags{rst: true}, 1001, 0, nil)
		} else {
			g.tcp(t.Add(200*time.Microsecond), PLC1, Scanner, port, sport, tcpFlags{rst: true, ack: true}, 0, 1001, nil)
		}
	}
	labels = append(labels, Label{Start: at, End: at.Add(s.ScanDuration), Attack: "port_scan", Detector: "scan", Behavior: "scan_ports",
		Technique: "T0846", Device: Scanner.ip.String(), Src: Scanner.ip.String(), Dst: PLC1.ip.String()})

	// 4. A SYN flood on PLC1:502 from spoofed sources.
	at = t0.Add(s.Clean + 7*time.Minute)
	n := int(s.FloodFor.Seconds() * float64(s.FloodRate))
	for i := 0; i < n; i++ {
		t := at.Add(time.Duration(i) * time.Second / time.Duration(s.FloodRate))
		src := host{ip: net.IPv4(172, 16, byte(g.rng.IntN(256)), byte(1+g.rng.IntN(254))).To4(), mac: mac(0xee)}
		g.tcp(t, src, PLC1, uint16(1024+g.rng.IntN(60000)), 502, tcpFlags{syn: true}, g.rng.Uint32(), 0, nil)
	}
	labels = append(labels, Label{Start: at, End: at.Add(s.FloodFor), Attack: "syn_flood", Detector: "flood", Behavior: "flood",
		Technique: "T0814", Device: PLC1.ip.String(), Dst: PLC1.ip.String()})

	if err := g.write(w); err != nil {
		return nil, err
	}
	return labels, nil
}

// WriteLabels writes labels as the incident CSV 'vigil score --labels'
// reads: one line an attack (the labels of one attack folded into one
// window), with header id,device,start,end,kind,detector,behavior,
// technique,src,dst; detector, behavior and technique are the first label's,
// the behaviors of the others follow it after a "|".
func WriteLabels(w io.Writer, labels []Label) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"id", "device", "start", "end", "kind", "detector", "behavior", "technique", "src", "dst"})
	var order []string
	byAttack := map[string]*Label{}
	for _, l := range labels {
		m, ok := byAttack[l.Attack]
		if !ok {
			c := l
			byAttack[l.Attack] = &c
			order = append(order, l.Attack)
			continue
		}
		if l.Start.Before(m.Start) {
			m.Start = l.Start
		}
		if l.End.After(m.End) {
			m.End = l.End
		}
		m.Behavior += "|" + l.Behavior
	}
	for _, a := range order {
		l := byAttack[a]
		cw.Write([]string{l.Attack, l.Device, l.Start.Format(time.RFC3339Nano), l.End.Format(time.RFC3339Nano), l.Attack,
			l.Detector, l.Behavior, l.Technique, l.Src, l.Dst})
	}
	cw.Flush()
	return cw.Error()
}

// s7Setup opens the ISO transport connection (COTP CR/CC) and the S7
// communication (setup communication job and its ack).
func (g *gen) s7Setup(k *conn, t time.Time) {
	cr := tpkt([]byte{0x11, 0xe0, 0x00, 0x00, 0x00, 0x01, 0x00, 0xc1, 0x02, 0x01, 0x00, 0xc2, 0x02, 0x01, 0x02, 0xc0, 0x01, 0x0a})
	cc := tpkt([]byte{0x11, 0xd0, 0x00, 0x01, 0x00, 0x01, 0x00, 0xc1, 0x02, 0x01, 0x00, 0xc2, 0x02, 0x01, 0x02, 0xc0, 0x01, 0x0a})
	g.exchange(k, t, cr, cc)
	setup := s7Job(0, []byte{0xf0, 0x00, 0x00, 0x01, 0x00, 0x01, 0x01, 0xe0}, nil)
	ack := s7Ack(0, []byte{0xf0, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0xf0}, nil)
	g.exchange(k, t.Add(10*time.Millisecond), setup, ack)
}

// modbusReq is a request whose PDU is function, address, value/quantity
// (read holding registers, write single register).
func modbusReq(tid uint16, fc byte, addr, val uint16) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b, tid)
	binary.BigEndian.PutUint16(b[4:], 6)
	b[6] = 1
	b[7] = fc
	binary.BigEndian.PutUint16(b[8:], addr)
	binary.BigEndian.PutUint16(b[10:], val)
	return b
}

func modbusReadResp(tid, qty, seed uint16) []byte {
	b := make([]byte, 9+2*int(qty))
	binary.BigEndian.PutUint16(b, tid)
	binary.BigEndian.PutUint16(b[4:], 3+2*qty)
	b[6] = 1
	b[7] = 3
	b[8] = byte(2 * qty)
	for i := 0; i < int(qty); i++ {
		binary.BigEndian.PutUint16(b[9+2*i:], seed+uint16(i))
	}
	return b
}

// tpkt wraps a COTP TPDU in a TPKT header (RFC 1006).
func tpkt(cotp []byte) []byte {
	b := make([]byte, 4, 4+len(cotp))
	b[0] = 3
	binary.BigEndian.PutUint16(b[2:], uint16(4+len(cotp)))
	return append(b, cotp...)
}

// s7 builds TPKT + COTP DT + S7 header (job: 10 octets, ack_data: 12).
func s7(rosctr byte, ref uint16, param, data []byte) []byte {
	h := []byte{0x02, 0xf0, 0x80, 0x32, rosctr, 0, 0, byte(ref >> 8), byte(ref), byte(len(param) >> 8), byte(len(param)), byte(len(data) >> 8), byte(len(data))}
	if rosctr == 3 {
		h = append(h, 0, 0) // error class, error code
	}
	h = append(h, param...)
	return tpkt(append(h, data...))
}

func s7Job(ref uint16, param, data []byte) []byte { return s7(1, ref, param, data) }
func s7Ack(ref uint16, param, data []byte) []byte { return s7(3, ref, param, data) }

// s7ReadVar reads DBW0 of DB1 (one item, S7ANY addressing).
func s7ReadVar(ref uint16) []byte {
	return s7Job(ref, []byte{0x04, 0x01, 0x12, 0x0a, 0x10, 0x02, 0x00, 0x01, 0x00, 0x01, 0x84, 0x00, 0x00, 0x00}, nil)
}

func s7ReadVarResp(ref, v uint16) []byte {
	return s7Ack(ref, []byte{0x04, 0x01}, []byte{0xff, 0x04, 0x00, 0x10, byte(v >> 8), byte(v)})
}

// s7PLCStop is the PI service "P_PROGRAM" stop request (function 0x29).
func s7PLCStop(ref uint16) []byte {
	return s7Job(ref, append([]byte{0x29, 0, 0, 0, 0, 0, 9}, "P_PROGRAM"...), nil)
}

func s7AckData(ref uint16, fc byte) []byte { return s7Ack(ref, []byte{fc}, nil) }
