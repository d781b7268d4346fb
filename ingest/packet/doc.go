// Package packet owns the packet path from a captured frame to an
// observation batch: L2–L4 decoding with gopacket's DecodingLayerParser
// (Ethernet, 802.1Q, ARP, IPv4, IPv6, TCP, UDP, ICMP, ICMPv6 under the link
// types Ethernet, Linux SLL/SLL2, raw IP and BSD loopback), the flow table
// and TCP reassembly that hand L4 payloads to the OT decoders of ingest/ot,
// asset discovery (MAC, address, protocols, client/server and
// master/outstation roles, merged with the inventory), and feature
// extraction per host and per group over event-time windows.
//
// An Extractor turns packets into one ingest.Batch per closed window of
// the shortest length: observation rows (net_* metrics), the window's
// Communications (who talked to whom, over which protocol and OT function)
// and NetEvents (scans, floods, malformed OT frames, hosts missing from the
// inventory). ReplaySource wraps it as the ingest.Source of `vigil replay`
// for captures; ingest/kafka drives it for packet topics.
//
// Memory is bounded whatever the traffic: the flow and host tables, the
// per-window distinct sets, the stream buffers, and the communications and
// findings of a batch all have caps, and what they turn away is counted in
// Stats. The per-packet path allocates nothing.
package packet
