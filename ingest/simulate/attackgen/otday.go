package attackgen

import (
	"io"
	"math"
	"net"
	"time"
)

// OTDayScenario sets the timeline of the OT day capture: a clean period of
// substation and plant traffic on 10.0.1.0/24, then the attacks one after
// the other, Gap apart, while the plant goes on.
type OTDayScenario struct {
	Start time.Time
	Clean time.Duration // clean period before the first attack
	Gap   time.Duration // quiet time between two attacks, and after the last
	Seed  uint64
}

// DefaultOTDayScenario is a clean 24-hour day followed by the attacks, four
// minutes apart.
func DefaultOTDayScenario() OTDayScenario {
	return OTDayScenario{
		Start: time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC),
		Clean: 24 * time.Hour,
		Gap:   4 * time.Minute,
		Seed:  11,
	}
}

// Hosts of the OT day besides HMI, PLC1 and PLC2. Every host is unmanaged:
// alerts name it by its IP text.
var (
	plc3        = host{ip: net.IPv4(10, 0, 1, 22).To4(), mac: mac(0x22)} // Modbus/TCP and EtherNet/IP server
	gateway     = host{ip: net.IPv4(10, 0, 1, 1).To4(), mac: mac(0x01)}  // router and DHCP server
	dnp3Master  = host{ip: net.IPv4(10, 0, 1, 5).To4(), mac: mac(0x05)}
	outstation1 = host{ip: net.IPv4(10, 0, 1, 40).To4(), mac: mac(0x40)}
	outstation2 = host{ip: net.IPv4(10, 0, 1, 41).To4(), mac: mac(0x41)}
	winHost     = host{ip: net.IPv4(10, 0, 1, 50).To4(), mac: mac(0x50)} // NetBIOS, mDNS, SSDP, DHCP client
	printer     = host{ip: net.IPv4(10, 0, 1, 60).To4(), mac: mac(0x60)} // mDNS and SSDP announcements

	subnetBroadcast  = host{ip: net.IPv4(10, 0, 1, 255).To4(), mac: broadcastMAC}
	limitedBroadcast = host{ip: net.IPv4bcast.To4(), mac: broadcastMAC}
	mdnsGroup        = multicast(224, 0, 0, 251)
	ssdpGroup        = multicast(239, 255, 255, 250)
)

// otLive are the hosts of the clean OT day: they answer ARP and ping.
var otLive = []host{gateway, dnp3Master, HMI, PLC1, PLC2, plc3, outstation1, outstation2, winHost, printer}

// otDay generates one OT day capture.
type otDay struct {
	g *gen
	s OTDayScenario
	// tamperAt is when the HMI–PLC2 Modbus session carries the conflicting
	// retransmission (the mitm_tcp_retransmission attack).
	tamperAt time.Time
}

// GenerateOTDay writes the OT day capture to w (classic pcap, microseconds,
// Ethernet) and returns the attacks' labels, one per attack, in time
// order and without overlap.
//
// The clean period holds a DNP3 master (10.0.1.5) polling two outstations
// (10.0.1.40 every 4 s, 10.0.1.41 every 5 s) for class 1–3 events with an
// integrity poll every 10 minutes; an HMI (10.0.1.10) polling three PLCs
// (10.0.1.20–22) with Modbus FC3; and irregular, bursty chatter: a Windows
// host's NetBIOS name service broadcasts, mDNS, SSDP and DHCP, a printer's
// mDNS and SSDP announcements, and now and then an ARP request for a real
// neighbour. The attacks follow, each from a host of its own where it has
// one, about Gap apart: ARP and ICMP sweeps of the /24, a slow TCP port
// scan, a UDP port scan, a Modbus host scan, a spoofed SYN flood with its
// backscatter, Modbus, BACnet, EtherNet/IP and S7 device identification,
// a Modbus register enumeration, a conflicting TCP retransmission and an
// ARP rebinding. A label spans its attack's first packet to a second after
// its last. The plant's traffic goes on under the attacks and for about
// one more Gap after the last; the capture ends on a whole minute.
func GenerateOTDay(w io.Writer, s OTDayScenario) ([]Label, error) {
	d := &otDay{g: newGen(s.Seed), s: s}
	labels := d.attacks(s.Start.Add(s.Clean))
	// Ending on a minute keeps the last feature windows whole.
	end := labels[len(labels)-1].End.Add(s.Gap).Truncate(time.Minute)
	d.clean(end)
	if err := d.g.write(w); err != nil {
		return nil, err
	}
	return labels, nil
}

// attacks runs every attack from at on, Gap apart, and returns their
// labels.
func (d *otDay) attacks(at time.Time) []Label {
	var labels []Label
	for _, attack := range []func(time.Time) Label{
		d.arpSweep, d.icmpSweep, d.slowPortScan, d.udpPortScan, d.modbusHostScan, d.spoofedSYNFlood,
		d.modbusDeviceID, d.bacnetWhoIs, d.enipListIdentity, d.s7SZLRead, d.modbusRegisterEnum,
		d.mitmTCPRetransmission, d.mitmARPRebinding,
	} {
		l := attack(at)
		labels = append(labels, l)
		at = l.End.Add(d.s.Gap).Truncate(time.Second)
	}
	return labels
}

// clean generates the plant's own traffic from Start to end.
func (d *otDay) clean(end time.Time) {
	t0 := d.s.Start
	d.dnp3Poll(t0, end, outstation1, 10, 50001, 4*time.Second)
	d.dnp3Poll(t0.Add(700*time.Millisecond), end, outstation2, 11, 50002, 5*time.Second)
	d.modbusPoll(t0.Add(200*time.Millisecond), end, PLC1, 49152, 2*time.Second)
	d.modbusPoll(t0.Add(400*time.Millisecond), end, PLC2, 49153, 5*time.Second)
	d.modbusPoll(t0.Add(600*time.Millisecond), end, plc3, 49154, 5*time.Second)
	d.bursts(t0, end, 2*time.Second, time.Hour, d.netbiosQuery)
	d.bursts(t0, end, 5*time.Second, 40*time.Minute, d.mdnsQuery)
	d.bursts(t0, end, 30*time.Second, time.Hour, d.ssdpSearch)
	d.bursts(t0, end, time.Minute, 2*time.Hour, d.printerAnnounce)
	d.bursts(t0, end, 10*time.Minute, 2*time.Hour, d.dhcpRenew)
	d.bursts(t0, end, time.Minute, 30*time.Minute, d.arpNeighbour)
}

// jitter is a poller's lateness, up to 30 ms.
func (d *otDay) jitter() time.Duration { return time.Duration(d.g.rng.IntN(30000)) * time.Microsecond }

// dnp3Poll is the master's session with one outstation: an event poll
// every period, an integrity poll every 10 minutes; one response in five
// carries analog change events.
func (d *otDay) dnp3Poll(t0, end time.Time, o host, addr, cport uint16, period time.Duration) {
	k := d.g.connect(t0, dnp3Master, o, cport, 20000)
	s := &dnp3Session{master: 1, outstation: addr}
	integrityEvery := int(10 * time.Minute / period)
	n := 0
	for t := t0.Add(time.Second); t.Before(end); t = t.Add(period) {
		at := t.Add(d.jitter())
		seed := uint16(at.Unix() / 60)
		switch {
		case n%integrityEvery == 0:
			d.g.exchange(k, at, s.request(1, dnp3IntegrityPoll), s.response(dnp3StaticData(seed)))
		case d.g.rng.IntN(5) == 0:
			d.g.exchange(k, at, s.request(1, dnp3EventPoll), s.response(dnp3AnalogEvents(1+d.g.rng.IntN(3), seed)))
		default:
			d.g.exchange(k, at, s.request(1, dnp3EventPoll), s.response(nil))
		}
		n++
	}
}

// modbusPoll is the HMI reading ten holding registers of plc every period.
// On PLC2's session, the poll at tamperAt is answered twice (see
// mitmTCPRetransmission).
func (d *otDay) modbusPoll(t0, end time.Time, plc host, cport uint16, period time.Duration) {
	k := d.g.connect(t0, HMI, plc, cport, 502)
	tampered := plc.ip.Equal(PLC2.ip) && !d.tamperAt.IsZero()
	var tid uint16
	for t := t0.Add(time.Second); t.Before(end); t = t.Add(period) {
		if tampered && !t.Before(d.tamperAt) {
			tampered = false
			tid++
			d.conflictingRetransmission(k, tid)
		}
		tid++
		at := t.Add(d.jitter())
		d.g.exchange(k, at, modbusReq(tid, 3, 0, 10), modbusReadResp(tid, 10, uint16(at.Unix()/10)))
	}
}

// bursts calls burst at irregular times from t0 to end: first within ten
// minutes (the host is on when the capture starts), then after gaps
// log-uniform between min and max, as chatty hosts are quiet for seconds
// or for an hour.
func (d *otDay) bursts(t0, end time.Time, min, max time.Duration, burst func(time.Time)) {
	lo, hi := math.Log(min.Seconds()), math.Log(max.Seconds())
	for t := t0.Add(time.Duration(d.g.rng.Int64N(int64(10 * time.Minute)))); t.Before(end); {
		burst(t)
		gap := math.Exp(lo + d.g.rng.Float64()*(hi-lo))
		t = t.Add(time.Duration(gap * float64(time.Second)))
	}
}

// netbiosNames are the names the Windows host asks for.
var netbiosNames = []string{"WPAD", "FILESRV01", "ENG-LAPTOP", "HISTORIAN", "ISATAP"}

// netbiosQuery is a NetBIOS name query broadcast, sent up to three times
// 750 ms apart as Windows retries when no one answers.
func (d *otDay) netbiosQuery(t time.Time) {
	q := netbiosNameQuery(uint16(d.g.rng.Uint32()), netbiosNames[d.g.rng.IntN(len(netbiosNames))])
	for i := range 1 + d.g.rng.IntN(3) {
		d.g.udp(t.Add(time.Duration(i)*750*time.Millisecond), winHost, subnetBroadcast, 137, 137, q)
	}
}

var mdnsServices = []string{"_googlecast._tcp.local", "_spotify-connect._tcp.local", "_ipp._tcp.local"}

// mdnsQuery is the Windows host asking for a service, repeated after 1 s
// and 3 s at times.
func (d *otDay) mdnsQuery(t time.Time) {
	name := mdnsServices[d.g.rng.IntN(len(mdnsServices))]
	for _, after := range []time.Duration{0, time.Second, 3 * time.Second}[:1+d.g.rng.IntN(3)] {
		d.g.udpLayer(t.Add(after), winHost, mdnsGroup, 5353, 5353, mdnsPTRQuery(name))
	}
}

// ssdpSearch is an M-SEARCH from an ephemeral port, sent twice.
func (d *otDay) ssdpSearch(t time.Time) {
	sport := uint16(50000 + d.g.rng.IntN(15000))
	for i := range 2 {
		d.g.udp(t.Add(time.Duration(i)*100*time.Millisecond), winHost, ssdpGroup, sport, 1900, ssdpMSearch)
	}
}

// printerAnnounce is the printer's mDNS announcement and SSDP NOTIFY.
func (d *otDay) printerAnnounce(t time.Time) {
	d.g.udpLayer(t, printer, mdnsGroup, 5353, 5353, mdnsPTRAnswer("_ipp._tcp.local", "Plant Printer._ipp._tcp.local"))
	d.g.udp(t.Add(50*time.Millisecond), printer, ssdpGroup, 1900, 1900, ssdpNotify(printer.ip))
}

// dhcpRenew is the Windows host rebinding its lease (a broadcast DHCP
// request) and the server's acknowledgement.
func (d *otDay) dhcpRenew(t time.Time) {
	xid := d.g.rng.Uint32()
	d.g.udpLayer(t, winHost, limitedBroadcast, 68, 67, dhcpRequest(xid, winHost))
	d.g.udpLayer(t.Add(3*time.Millisecond), gateway, winHost, 67, 68, dhcpAck(xid, winHost, gateway))
}

// arpNeighbours are pairs that talk: the first asks for the second's MAC.
var arpNeighbours = [][2]host{
	{HMI, PLC1}, {HMI, PLC2}, {dnp3Master, outstation1}, {dnp3Master, outstation2},
	{gateway, winHost}, {winHost, gateway}, {printer, gateway},
}

// arpNeighbour is an ARP request for a neighbour and its reply.
func (d *otDay) arpNeighbour(t time.Time) {
	p := arpNeighbours[d.g.rng.IntN(len(arpNeighbours))]
	d.g.arpRequest(t, p[0], p[1].ip)
	d.g.arpReply(t.Add(400*time.Microsecond), p[1], p[0])
}
