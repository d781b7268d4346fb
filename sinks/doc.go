// Package sinks owns the way out: encoders (CEF, LEEF, JSON) and
// transports (syslog over UDP/TCP/TLS, Kafka, file, stdout), fan-out with
// per-sink retry, and backpressure. Every sink implements detect.Sink.
package sinks

import "github.com/vigil-ot/vigil/detect"

var _ detect.Sink = nil
