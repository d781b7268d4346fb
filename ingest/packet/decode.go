package packet

import (
	"encoding/binary"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/vigil-ot/vigil/ingest/pcap"
)

// Outcome is what became of one packet, counted in the Summary.
type Outcome uint8

// Outcomes. Every packet has exactly one.
const (
	// OutcomeDecoded: every layer was understood — ARP, ICMP, TCP control
	// segments, and payloads of an OT protocol.
	OutcomeDecoded Outcome = iota
	// OutcomeUnknownProtocol: decoded up to a layer Vigil does not
	// interpret (a non-IP EtherType, an IP protocol other than TCP, UDP and
	// ICMP, a payload of no known application protocol, an IP fragment).
	OutcomeUnknownProtocol
	// OutcomeMalformed: a header could not be decoded or an OT PDU violates
	// its specification.
	OutcomeMalformed
	// OutcomeSkippedLinkType: the capture's link type is not supported.
	OutcomeSkippedLinkType
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"decoded", "unknown_protocol", "malformed", "skipped_link_type"}

func (o Outcome) String() string { return outcomeNames[o] }

// Frame is what the L2–L4 decoder learned of one packet. It is reused for
// every packet; Payload aliases the packet data.
type Frame struct {
	HasMAC         bool
	SrcMAC, DstMAC [6]byte
	IsIP           bool
	IPv6           bool
	Src, Dst       [16]byte // IPv4 addresses are stored IPv4-mapped (::ffff:a.b.c.d)
	Transport      uint8    // IP protocol number: 6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6
	SrcPort        uint16
	DstPort        uint16
	TCPFlags       uint8 // FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10
	Seq            uint32
	Payload        []byte
	Fragment       bool  // an IPv4 fragment: the L4 header is absent or incomplete
	Unreachable    bool  // ICMP destination unreachable
	ICMPType       uint8 // ICMPv4 or ICMPv6 type (see Transport)
	IsARP          bool
	ARPRequest     bool // an ARP request (operation 1)
	ARPSender      [16]byte
	ARPSenderMAC   [6]byte
	ARPTarget      [16]byte // target protocol address; zero when not IPv4
}

// TCP flag bits of Frame.TCPFlags.
const (
	flagFIN = 0x01
	flagSYN = 0x02
	flagRST = 0x04
	flagACK = 0x10
)

// L4 decode results of Decoder.Decode.
type l4Result uint8

const (
	l4None      l4Result = iota // not IP or not TCP/UDP/ICMP (see Frame)
	l4Transport                 // TCP or UDP: ports and payload are set
	l4ICMP
	l4ARP
	l4Malformed
	l4SkipLink
	l4Other // decoded but of no interest (non-IP EtherType, other IP protocol)
)

// Decoder decodes link, network and transport headers with gopacket's
// DecodingLayerParser, which decodes into preallocated layers and so never
// allocates per packet. Link types without a gopacket DecodingLayer (SLL2,
// BSD loopback, raw IP) are unwrapped by hand and decoded from their IP
// header.
type Decoder struct {
	eth     layers.Ethernet
	dot1q   layers.Dot1Q
	arp     layers.ARP
	ip4     layers.IPv4
	ip6     layers.IPv6
	ip6ext  layers.IPv6ExtensionSkipper
	tcp     layers.TCP
	udp     layers.UDP
	icmp4   layers.ICMPv4
	icmp6   layers.ICMPv6
	sll     layers.LinuxSLL
	fromEth *gopacket.DecodingLayerParser
	fromSLL *gopacket.DecodingLayerParser
	fromIP4 *gopacket.DecodingLayerParser
	fromIP6 *gopacket.DecodingLayerParser
	decoded []gopacket.LayerType
}

// NewDecoder returns a decoder for every supported link type.
func NewDecoder() *Decoder {
	d := &Decoder{decoded: make([]gopacket.LayerType, 0, 8)}
	all := []gopacket.DecodingLayer{&d.eth, &d.dot1q, &d.arp, &d.ip4, &d.ip6, &d.ip6ext, &d.tcp, &d.udp, &d.icmp4, &d.icmp6, &d.sll}
	mk := func(first gopacket.LayerType) *gopacket.DecodingLayerParser {
		p := gopacket.NewDecodingLayerParser(first)
		// A slice indexed by layer type: faster than the default map.
		p.SetDecodingLayerContainer(gopacket.DecodingLayerSparse(nil))
		for _, l := range all {
			p.AddDecodingLayer(l)
		}
		p.IgnoreUnsupported = true // stopping at an unknown layer is normal
		return p
	}
	d.fromEth = mk(layers.LayerTypeEthernet)
	d.fromSLL = mk(layers.LayerTypeLinuxSLL)
	d.fromIP4 = mk(layers.LayerTypeIPv4)
	d.fromIP6 = mk(layers.LayerTypeIPv6)
	return d
}

// ipVersionParser picks the parser for a raw IP packet by its version nibble.
func (d *Decoder) ipVersionParser(b []byte) *gopacket.DecodingLayerParser {
	if len(b) == 0 {
		return nil
	}
	switch b[0] >> 4 {
	case 4:
		return d.fromIP4
	case 6:
		return d.fromIP6
	}
	return nil
}

// Decode decodes data captured with linkType into f.
func (d *Decoder) Decode(data []byte, linkType uint16, f *Frame) l4Result {
	f.HasMAC, f.IsIP, f.IPv6, f.Fragment, f.Unreachable, f.IsARP = false, false, false, false, false, false
	f.ICMPType, f.ARPRequest = 0, false
	f.Transport, f.SrcPort, f.DstPort, f.TCPFlags, f.Payload = 0, 0, 0, 0, nil
	var parser *gopacket.DecodingLayerParser
	switch linkType {
	case pcap.LinkTypeEthernet:
		parser = d.fromEth
	case pcap.LinkTypeLinuxSLL:
		parser = d.fromSLL
	case pcap.LinkTypeRaw, pcap.LinkTypeIPv4, pcap.LinkTypeIPv6, 12, 14:
		// 12 and 14 are raw IP on some BSDs and old libpcaps.
		parser = d.ipVersionParser(data)
	case pcap.LinkTypeNull, pcap.LinkTypeLoop:
		if len(data) < 4 {
			return l4Malformed
		}
		// The address family is in host byte order for NULL, network
		// order for LOOP; AF_INET is 2 everywhere, AF_INET6 varies (10,
		// 24, 28, 30), so the IP version nibble decides.
		data = data[4:]
		parser = d.ipVersionParser(data)
	case pcap.LinkTypeSLL2:
		if len(data) < 20 {
			return l4Malformed
		}
		proto := binary.BigEndian.Uint16(data)
		data = data[20:]
		switch proto {
		case 0x0800:
			parser = d.fromIP4
		case 0x86dd:
			parser = d.fromIP6
		default:
			return l4Other
		}
	default:
		return l4SkipLink
	}
	if parser == nil {
		return l4Other
	}
	if err := parser.DecodeLayers(data, &d.decoded); err != nil {
		return l4Malformed
	}
	res := l4Other
	for _, typ := range d.decoded {
		switch typ {
		case layers.LayerTypeEthernet:
			f.HasMAC = true
			// Array conversions, not copy: a 6-byte move inline rather
			// than a memmove call (the decoder guarantees 6 bytes).
			f.SrcMAC = [6]byte(d.eth.SrcMAC)
			f.DstMAC = [6]byte(d.eth.DstMAC)
		case layers.LayerTypeIPv4:
			f.IsIP = true
			f.Src = v4mapped(d.ip4.SrcIP)
			f.Dst = v4mapped(d.ip4.DstIP)
			f.Transport = uint8(d.ip4.Protocol)
			if d.ip4.Flags&layers.IPv4MoreFragments != 0 || d.ip4.FragOffset != 0 {
				f.Fragment = true
			}
		case layers.LayerTypeIPv6:
			f.IsIP, f.IPv6 = true, true
			f.Src = [16]byte(d.ip6.SrcIP)
			f.Dst = [16]byte(d.ip6.DstIP)
			f.Transport = uint8(d.ip6.NextHeader)
		case layers.LayerTypeIPv6Fragment:
			// Skipped by the extension skipper; a later fragment's bytes
			// would pass for a transport header, so stop at L3.
			f.Fragment = true
		case layers.LayerTypeTCP:
			f.Transport = 6
			f.SrcPort, f.DstPort = uint16(d.tcp.SrcPort), uint16(d.tcp.DstPort)
			f.Seq = d.tcp.Seq
			f.TCPFlags = tcpFlags(&d.tcp)
			f.Payload = d.tcp.Payload
			res = l4Transport
		case layers.LayerTypeUDP:
			f.Transport = 17
			f.SrcPort, f.DstPort = uint16(d.udp.SrcPort), uint16(d.udp.DstPort)
			f.Payload = d.udp.Payload
			res = l4Transport
		case layers.LayerTypeICMPv4:
			f.Transport = 1
			f.ICMPType = d.icmp4.TypeCode.Type()
			f.Unreachable = f.ICMPType == layers.ICMPv4TypeDestinationUnreachable
			res = l4ICMP
		case layers.LayerTypeICMPv6:
			f.Transport = 58
			f.ICMPType = d.icmp6.TypeCode.Type()
			f.Unreachable = f.ICMPType == layers.ICMPv6TypeDestinationUnreachable
			res = l4ICMP
		case layers.LayerTypeARP:
			f.IsARP = true
			if len(d.arp.SourceProtAddress) == 4 && len(d.arp.SourceHwAddress) == 6 {
				f.ARPSender = v4mapped(d.arp.SourceProtAddress)
				copy(f.ARPSenderMAC[:], d.arp.SourceHwAddress)
			}
			f.ARPRequest = d.arp.Operation == layers.ARPRequest
			f.ARPTarget = [16]byte{}
			if len(d.arp.DstProtAddress) == 4 {
				f.ARPTarget = v4mapped(d.arp.DstProtAddress)
			}
			res = l4ARP
		}
	}
	if f.Fragment {
		// The parser stops at the fragment; the extractor reassembles
		// the datagram and decodes its transport header then.
		return l4Other
	}
	if f.IsIP && res == l4Other && (f.Transport == 6 || f.Transport == 17) {
		return l4Malformed // an IP packet whose TCP/UDP header did not decode
	}
	return res
}

func tcpFlags(t *layers.TCP) uint8 {
	var f uint8
	if t.FIN {
		f |= flagFIN
	}
	if t.SYN {
		f |= flagSYN
	}
	if t.RST {
		f |= flagRST
	}
	if t.ACK {
		f |= flagACK
	}
	return f
}

func v4mapped(ip []byte) (a [16]byte) {
	if len(ip) == 16 {
		return [16]byte(ip)
	}
	if len(ip) == 4 {
		a[10], a[11] = 0xff, 0xff
		*(*[4]byte)(a[12:]) = [4]byte(ip)
	}
	return a
}

// decodeTransport decodes the TCP or UDP header of a reassembled IPv4
// payload into f; false when it does not decode.
func (d *Decoder) decodeTransport(proto uint8, b []byte, f *Frame) bool {
	switch proto {
	case 6:
		if d.tcp.DecodeFromBytes(b, gopacket.NilDecodeFeedback) != nil {
			return false
		}
		f.SrcPort, f.DstPort = uint16(d.tcp.SrcPort), uint16(d.tcp.DstPort)
		f.Seq = d.tcp.Seq
		f.TCPFlags = tcpFlags(&d.tcp)
		f.Payload = d.tcp.Payload
	case 17:
		if d.udp.DecodeFromBytes(b, gopacket.NilDecodeFeedback) != nil {
			return false
		}
		f.SrcPort, f.DstPort = uint16(d.udp.SrcPort), uint16(d.udp.DstPort)
		f.Payload = d.udp.Payload
	default:
		return false
	}
	f.Fragment = false
	return true
}
