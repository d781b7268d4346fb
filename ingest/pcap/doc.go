// Package pcap owns reading packet captures: classic pcap (micro- and
// nanosecond, either byte order, the modified "Kuznetsov" variant) and
// pcapng (several sections and interfaces, each with its own link type and
// timestamp resolution), optionally gzip-compressed, detected by their magic
// bytes and never by file name. Several files, directories and globs are
// merged into one stream in time order by Replay.
//
// Readers never allocate per packet: Packet.Data aliases the reader's
// buffer and stays valid only until the next call on the same reader. A
// damaged capture (a truncated last record, a corrupt block) ends that file
// with a Warning carrying the byte offset; every packet before it is kept.
package pcap
