package attackgen

import (
	"encoding/binary"
	"net"

	"github.com/google/gopacket/layers"
)

// Payloads of the office chatter an OT segment carries beside its
// protocols.

// netbiosNameQuery is a NetBIOS name service broadcast query (RFC 1002
// 4.2.12) for name as a workstation (suffix 0x00).
func netbiosNameQuery(id uint16, name string) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	b = append(b, 0x01, 0x10, 0, 1, 0, 0, 0, 0, 0, 0) // RD and broadcast; one question
	b = append(b, 32)
	padded := []byte(name + "               ")[:15]
	for _, c := range append(padded, 0x00) {
		b = append(b, 'A'+c>>4, 'A'+c&0x0f) // first-level encoding (RFC 1001 14.1)
	}
	return append(b, 0, 0, 0x20, 0, 1) // root label; type NB, class IN
}

func mdnsPTRQuery(service string) *layers.DNS {
	return &layers.DNS{Questions: []layers.DNSQuestion{{Name: []byte(service), Type: layers.DNSTypePTR, Class: layers.DNSClassIN}}}
}

func mdnsPTRAnswer(service, instance string) *layers.DNS {
	return &layers.DNS{QR: true, AA: true, Answers: []layers.DNSResourceRecord{{
		Name: []byte(service), Type: layers.DNSTypePTR, Class: layers.DNSClassIN, TTL: 4500, PTR: []byte(instance)}}}
}

var ssdpMSearch = []byte("M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\n" +
	"ST: urn:dial-multiscreen-org:service:dial:1\r\nUSER-AGENT: Microsoft Edge/120.0 Windows\r\n\r\n")

func ssdpNotify(ip net.IP) []byte {
	return []byte("NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=1800\r\n" +
		"LOCATION: http://" + ip.String() + ":80/description.xml\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\n" +
		"SERVER: PrinterOS/1.0 UPnP/1.0\r\nUSN: uuid:4f1e0c2a-0000-1000-8000-001b1b000160::upnp:rootdevice\r\n\r\n")
}

// dhcpRequest is a client rebinding its address: a broadcast DHCPREQUEST
// with ciaddr set (RFC 2131 4.3.2). gopacket adds the end option.
func dhcpRequest(xid uint32, client host) *layers.DHCPv4 {
	return &layers.DHCPv4{Operation: layers.DHCPOpRequest, HardwareType: layers.LinkTypeEthernet, HardwareLen: 6, Xid: xid,
		ClientIP: client.ip, ClientHWAddr: client.mac, Options: []layers.DHCPOption{
			layers.NewDHCPOption(layers.DHCPOptMessageType, []byte{byte(layers.DHCPMsgTypeRequest)}),
			layers.NewDHCPOption(layers.DHCPOptClientID, append([]byte{1}, client.mac...)),
			layers.NewDHCPOption(layers.DHCPOptHostname, []byte("ENG-WS-07")),
			layers.NewDHCPOption(layers.DHCPOptParamsRequest, []byte{1, 3, 6, 15, 31, 33, 43, 44, 46, 47, 119, 121, 249, 252}),
		}}
}

func dhcpAck(xid uint32, client, server host) *layers.DHCPv4 {
	return &layers.DHCPv4{Operation: layers.DHCPOpReply, HardwareType: layers.LinkTypeEthernet, HardwareLen: 6, Xid: xid,
		ClientIP: client.ip, YourClientIP: client.ip, ClientHWAddr: client.mac, Options: []layers.DHCPOption{
			layers.NewDHCPOption(layers.DHCPOptMessageType, []byte{byte(layers.DHCPMsgTypeAck)}),
			layers.NewDHCPOption(layers.DHCPOptServerID, server.ip),
			layers.NewDHCPOption(layers.DHCPOptLeaseTime, []byte{0, 0, 0x0e, 0x10}), // 3600 s
			layers.NewDHCPOption(layers.DHCPOptSubnetMask, []byte{255, 255, 255, 0}),
			layers.NewDHCPOption(layers.DHCPOptRouter, server.ip),
		}}
}
