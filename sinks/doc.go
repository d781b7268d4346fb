// Package sinks owns the way out: encoders (CEF, LEEF, JSON and its ECS
// form) and transports (syslog over UDP/TCP/TLS, Kafka, file, stdout),
// fan-out with per-sink retry, and backpressure. Every sink implements
// detect.Sink; Build turns the "sinks" config section into one.
//
// Encoders are append-style (dst = AppendX(dst[:0], ...)) and allocate
// nothing per alert. Every device-controlled string is escaped for the
// format it lands in, so that no device can split or forge an event.
package sinks

import "github.com/vigil-ot/vigil/detect"

var _ detect.Sink = (*writerSink)(nil)
