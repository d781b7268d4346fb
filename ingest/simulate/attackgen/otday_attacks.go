package attackgen

import (
	"encoding/binary"
	"net"
	"time"

	"github.com/google/gopacket/layers"
)

// The OT day's attackers, one host per attack so that each incident names
// its own device.
var (
	arpSweeper   = host{ip: net.IPv4(10, 0, 1, 99).To4(), mac: mac(0x99)}
	icmpSweeper  = host{ip: net.IPv4(10, 0, 1, 98).To4(), mac: mac(0x98)}
	slowScanner  = host{ip: net.IPv4(10, 0, 1, 97).To4(), mac: mac(0x97)}
	udpScanner   = host{ip: net.IPv4(10, 0, 1, 96).To4(), mac: mac(0x96)}
	hostScanner  = host{ip: net.IPv4(10, 0, 1, 95).To4(), mac: mac(0x95)}
	modbusProber = host{ip: net.IPv4(10, 0, 1, 94).To4(), mac: mac(0x94)}
	bacnetProber = host{ip: net.IPv4(10, 0, 1, 93).To4(), mac: mac(0x93)}
	enipProber   = host{ip: net.IPv4(10, 0, 1, 92).To4(), mac: mac(0x92)}
	s7Prober     = host{ip: net.IPv4(10, 0, 1, 91).To4(), mac: mac(0x91)}
	enumerator   = host{ip: net.IPv4(10, 0, 1, 90).To4(), mac: mac(0x90)}
	mitmHost     = host{ip: net.IPv4(10, 0, 1, 89).To4(), mac: mac(0x89)}
)

// ATT&CK for ICS techniques of the OT day's labels.
const (
	techScan      = "T0846" // Remote System Discovery
	techIdentify  = "T0888" // Remote System Information Discovery
	techEnumerate = "T0861" // Point & Tag Identification
	techDoS       = "T0814" // Denial of Service
	techMITM      = "T0830" // Adversary-in-the-Middle
)

// label is an attack from its first packet to a second after its last
// (last), about device.
func label(attack, detector, behavior, technique string, device host, first, last time.Time) Label {
	return Label{Start: first, End: last.Add(time.Second), Attack: attack, Detector: detector, Behavior: behavior,
		Technique: technique, Device: device.String(), Src: device.String()}
}

func subnetHost(i int) net.IP { return net.IPv4(10, 0, 1, byte(i)).To4() }

// target returns the host at ip and whether it is one of the OT day's
// live hosts. No host answers ARP for another address, so frames to it go
// to the broadcast MAC.
func target(ip net.IP) (h host, live bool) {
	for _, h := range otLive {
		if h.ip.Equal(ip) {
			return h, true
		}
	}
	return host{ip: ip, mac: broadcastMAC}, false
}

// arpSweep asks for every other address of the /24 in 10 s; the live
// hosts answer.
func (d *otDay) arpSweep(at time.Time) Label {
	const step = 39 * time.Millisecond // 254 addresses in 10 s
	t := at
	for i := 1; i <= 254; i++ {
		ip := subnetHost(i)
		if ip.Equal(arpSweeper.ip) {
			continue
		}
		t = at.Add(time.Duration(i-1) * step)
		d.g.arpRequest(t, arpSweeper, ip)
		if h, live := target(ip); live {
			d.g.arpReply(t.Add(300*time.Microsecond), h, arpSweeper)
		}
	}
	return label("arp_sweep", "scan", "sweep_arp", techScan, arpSweeper, at, t)
}

// icmpSweep pings every other address of the /24 in about 5 s; the live
// hosts answer.
func (d *otDay) icmpSweep(at time.Time) Label {
	id := uint16(d.g.rng.Uint32())
	t := at
	for i := 1; i <= 254; i++ {
		ip := subnetHost(i)
		if ip.Equal(icmpSweeper.ip) {
			continue
		}
		t = at.Add(time.Duration(i-1) * 20 * time.Millisecond)
		dst, live := target(ip)
		d.g.icmp(t, icmpSweeper, dst, layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), id, uint16(i), nil)
		if live {
			d.g.icmp(t.Add(400*time.Microsecond), dst, icmpSweeper, layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoReply, 0), id, uint16(i), nil)
		}
	}
	return label("icmp_sweep", "scan", "sweep_icmp", techScan, icmpSweeper, at, t)
}

// slowPortScan sends one SYN every 1.5 s to 300 ports of PLC1 (1–299 and
// 502, shuffled) from one source port, as nmap's SYN scan does; closed
// ports answer RST, 502 answers SYN-ACK and is reset.
func (d *otDay) slowPortScan(at time.Time) Label {
	ports := make([]uint16, 0, 300)
	for p := uint16(1); p < 300; p++ {
		ports = append(ports, p)
	}
	ports = append(ports, 502)
	d.g.rng.Shuffle(len(ports), func(i, j int) { ports[i], ports[j] = ports[j], ports[i] })
	var t time.Time
	for i, port := range ports {
		t = at.Add(time.Duration(i) * 1500 * time.Millisecond)
		d.synProbe(t, slowScanner, PLC1, 61432, port, port == 502)
	}
	l := label("slow_port_scan", "scan", "scan_ports_slow", techScan, slowScanner, at, t)
	l.Dst = PLC1.String()
	return l
}

// synProbe is a SYN and its answer: SYN-ACK then the prober's RST when the
// port is open, else RST-ACK.
func (d *otDay) synProbe(t time.Time, src, dst host, sport, dport uint16, open bool) {
	seq := d.g.rng.Uint32()
	d.g.tcp(t, src, dst, sport, dport, tcpFlags{syn: true}, seq, 0, nil)
	if !open {
		d.g.tcp(t.Add(200*time.Microsecond), dst, src, dport, sport, tcpFlags{rst: true, ack: true}, 0, seq+1, nil)
		return
	}
	d.g.tcp(t.Add(200*time.Microsecond), dst, src, dport, sport, tcpFlags{syn: true, ack: true}, d.g.rng.Uint32(), seq+1, nil)
	d.g.tcp(t.Add(400*time.Microsecond), src, dst, sport, dport, tcpFlags{rst: true}, seq+1, 0, nil)
}

// udpPortScan sends an empty datagram to 100 ports of PLC2 in 20 s; each
// is answered with ICMP port unreachable quoting it.
func (d *otDay) udpPortScan(at time.Time) Label {
	var t time.Time
	for i, p := range d.g.rng.Perm(1024)[:100] {
		t = at.Add(time.Duration(i) * 200 * time.Millisecond)
		port := uint16(p + 1)
		d.g.udp(t, udpScanner, PLC2, 53211, port, nil)
		quoted := d.g.ipUDPHeaders(udpScanner, PLC2, 53211, port)
		d.g.icmp(t.Add(300*time.Microsecond), PLC2, udpScanner, layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodePort), 0, 0, quoted)
	}
	l := label("udp_port_scan", "scan", "scan_ports", techScan, udpScanner, at, t)
	l.Dst = PLC2.String()
	return l
}

// modbusHostScan probes port 502 of 12 addresses (10.0.1.15–26), one
// every 1.5 s; the three PLCs among them answer, the other addresses are
// unused.
func (d *otDay) modbusHostScan(at time.Time) Label {
	var t time.Time
	for i := range 12 {
		t = at.Add(time.Duration(i) * 1500 * time.Millisecond)
		dst, live := target(subnetHost(15 + i))
		if !live {
			d.g.tcp(t, hostScanner, dst, uint16(40000+i), 502, tcpFlags{syn: true}, d.g.rng.Uint32(), 0, nil) // unanswered
			continue
		}
		d.synProbe(t, hostScanner, dst, uint16(40000+i), 502, true)
	}
	return label("modbus_host_scan", "scan", "scan_hosts_slow", techScan, hostScanner, at, t)
}

// spoofedSYNFlood sends 130 SYN/s for 30 s to PLC1:502 from random forged
// sources outside the /24 (through the gateway); PLC1 answers each with a
// SYN-ACK (the backscatter).
func (d *otDay) spoofedSYNFlood(at time.Time) Label {
	const rate, secs = 130, 30
	var t time.Time
	for i := range rate * secs {
		t = at.Add((time.Duration(i) * time.Second / rate).Truncate(time.Microsecond))
		src := host{ip: d.forgedIP(), mac: gateway.mac}
		sport, seq := uint16(1024+d.g.rng.IntN(64000)), d.g.rng.Uint32()
		d.g.tcp(t, src, PLC1, sport, 502, tcpFlags{syn: true}, seq, 0, nil)
		d.g.tcp(t.Add(100*time.Microsecond), PLC1, src, 502, sport, tcpFlags{syn: true, ack: true}, d.g.rng.Uint32(), seq+1, nil)
	}
	return Label{Start: at, End: t.Add(time.Second), Attack: "spoofed_syn_flood", Detector: "flood", Behavior: "flood",
		Technique: techDoS, Device: PLC1.String(), Dst: PLC1.String()}
}

// forgedIP is a random unicast address outside 10.0.0.0/8 and loopback.
func (d *otDay) forgedIP() net.IP {
	for {
		a := byte(1 + d.g.rng.IntN(223))
		if a != 10 && a != 127 {
			return net.IPv4(a, byte(d.g.rng.IntN(256)), byte(d.g.rng.IntN(256)), byte(1+d.g.rng.IntN(254))).To4()
		}
	}
}

// modbusDeviceID reads the basic device identification (FC 0x2B, MEI
// 0x0E) of the three PLCs, one connection each, a second apart.
func (d *otDay) modbusDeviceID(at time.Time) Label {
	var t time.Time
	for i, plc := range []host{PLC1, PLC2, plc3} {
		t = at.Add(time.Duration(i) * time.Second)
		k := d.g.connect(t, modbusProber, plc, uint16(45000+i), 502)
		d.g.exchange(k, t.Add(5*time.Millisecond), modbusReadDeviceID(1), modbusDeviceIDResp(1))
		d.g.close(k, t.Add(20*time.Millisecond))
	}
	return label("modbus_device_id", "scan", "identify_modbus", techIdentify, modbusProber, at, t.Add(22*time.Millisecond))
}

// bacnetWhoIs is a global Who-Is broadcast from port 47808. One broadcast
// Who-Is is how every BACnet workstation finds its devices, so it is no
// sweep (the scan rules count identification sent host by host); from a
// host that never spoke BACnet it is a new asset speaking it.
func (d *otDay) bacnetWhoIs(at time.Time) Label {
	d.g.udp(at, bacnetProber, subnetBroadcast, 47808, 47808, bacnetWhoIsBroadcast)
	return label("bacnet_who_is", "novelty", "new_asset", techIdentify, bacnetProber, at, at)
}

// enipListIdentity sends a CIP ListIdentity over UDP to 10.0.1.16–31, 50
// ms apart; PLC3 answers with its identity.
func (d *otDay) enipListIdentity(at time.Time) Label {
	const sport = 51820
	var t time.Time
	for i := range 16 {
		t = at.Add(time.Duration(i) * 50 * time.Millisecond)
		dst, _ := target(subnetHost(16 + i))
		d.g.udp(t, enipProber, dst, sport, 44818, enipListIdentityRequest)
		if dst.ip.Equal(plc3.ip) {
			d.g.udp(t.Add(time.Millisecond), plc3, enipProber, 44818, sport, enipListIdentityReply(plc3.ip))
		}
	}
	return label("enip_list_identity", "scan", "identify_enip", techIdentify, enipProber, at, t)
}

// s7SZLRead connects to the ISO-TSAP port of each PLC, a second apart,
// and reads the module and component identification lists (SZL 0x0011 and
// 0x001C), as nmap's s7-info script run over the segment does.
func (d *otDay) s7SZLRead(at time.Time) Label {
	var t time.Time
	for i, plc := range []host{PLC1, PLC2, plc3} {
		t = at.Add(time.Duration(i) * time.Second)
		k := d.g.connect(t, s7Prober, plc, uint16(45102+i), 102)
		d.g.s7Setup(k, t.Add(5*time.Millisecond))
		d.g.exchange(k, t.Add(30*time.Millisecond), s7ReadSZL(1, 0x0011), s7ReadSZLResp(1, 0x0011))
		d.g.exchange(k, t.Add(40*time.Millisecond), s7ReadSZL(2, 0x001c), s7ReadSZLResp(2, 0x001c))
		d.g.close(k, t.Add(50*time.Millisecond))
	}
	return label("s7_szl_read", "scan", "identify_s7comm", techIdentify, s7Prober, at, t.Add(52*time.Millisecond))
}

// modbusRegisterEnum reads holding registers 0, 1, … 300 of PLC1, one
// register every 100 ms; PLC1 has 100, so most answers are exception 02
// (illegal data address).
func (d *otDay) modbusRegisterEnum(at time.Time) Label {
	k := d.g.connect(at, enumerator, PLC1, 45502, 502)
	var t time.Time
	for addr := range uint16(301) {
		t = at.Add(time.Duration(addr+1) * 100 * time.Millisecond)
		resp := modbusReadResp(addr+1, 1, addr)
		if addr >= 100 {
			resp = modbusException(addr+1, 3, 0x02)
		}
		d.g.exchange(k, t, modbusReq(addr+1, 3, addr, 1), resp)
	}
	d.g.close(k, t.Add(50*time.Millisecond))
	l := label("modbus_register_enum", "scan", "enumerate_modbus", techEnumerate, enumerator, at, t.Add(52*time.Millisecond))
	l.Dst = PLC1.String()
	return l
}

// mitmTCPRetransmission schedules, on the HMI's Modbus session with PLC2,
// a response sent again with the same sequence number and other register
// values (modbusPoll makes it).
func (d *otDay) mitmTCPRetransmission(at time.Time) Label {
	d.tamperAt = at
	return Label{Start: at, End: at.Add(200*time.Millisecond + time.Second), Attack: "mitm_tcp_retransmission", Detector: "mitm",
		Behavior: "mitm_tcp_retransmission", Technique: techMITM, Device: PLC2.String(), Src: PLC2.String(), Dst: HMI.String()}
}

// conflictingRetransmission is the HMI's poll tid at tamperAt answered
// twice: the second copy, 200 ms later, repeats the first's sequence
// number with other register values.
func (d *otDay) conflictingRetransmission(k *conn, tid uint16) {
	t := d.tamperAt
	d.g.request(k, t, modbusReq(tid, 3, 0, 10))
	seq := k.sseq
	d.g.respond(k, t.Add(2*time.Millisecond), modbusReadResp(tid, 10, 100))
	d.g.tcp(t.Add(200*time.Millisecond), k.s, k.c, k.sport, k.cport, tcpFlags{ack: true, psh: true}, seq, k.cseq, modbusReadResp(tid, 10, 900))
	d.g.ackResponse(k, t.Add(201*time.Millisecond))
}

// mitmARPRebinding tells the HMI, five times 2 s apart as arpspoof does,
// that PLC3's address is at the attacker's MAC.
func (d *otDay) mitmARPRebinding(at time.Time) Label {
	forged := host{ip: plc3.ip, mac: mitmHost.mac}
	var t time.Time
	for i := range 5 {
		t = at.Add(time.Duration(i) * 2 * time.Second)
		d.g.arpReply(t, forged, HMI)
	}
	return Label{Start: at, End: t.Add(time.Second), Attack: "mitm_arp_rebinding", Detector: "mitm", Behavior: "mitm_arp_rebinding",
		Technique: techMITM, Device: plc3.String(), Dst: HMI.String()}
}

// ipUDPHeaders is the IPv4 and UDP headers of an empty datagram, as an
// ICMP error quotes them.
func (g *gen) ipUDPHeaders(src, dst host, sport, dport uint16) []byte {
	_, ip := ipv4(src, dst, layers.IPProtocolUDP)
	u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	u.SetNetworkLayerForChecksum(ip)
	return g.serialize(ip, u)
}

// modbusException is an exception response to function fc.
func modbusException(tid uint16, fc, code byte) []byte {
	b := make([]byte, 9)
	binary.BigEndian.PutUint16(b, tid)
	binary.BigEndian.PutUint16(b[4:], 3)
	b[6] = 1
	b[7] = fc | 0x80
	b[8] = code
	return b
}
