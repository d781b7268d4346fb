package sinks

import (
	"fmt"

	"github.com/vigil-ot/vigil/detect"
)

// Format is a wire form of alerts and quarantine events. Its values are the
// names used in the "format" key of a sink's config.
type Format string

// Wire formats.
const (
	FormatJSON Format = "json" // Vigil's versioned alert schema, one object a line
	FormatECS  Format = "ecs"  // the same content under Elastic Common Schema field names
	FormatCEF  Format = "cef"  // ArcSight Common Event Format (Sentinel, ArcSight, Splunk)
	FormatLEEF Format = "leef" // IBM QRadar Log Event Extended Format 2.0
)

// ParseFormat returns the Format named s.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatJSON, FormatECS, FormatCEF, FormatLEEF:
		return f, nil
	}
	return "", fmt.Errorf("cannot use format %q: set it to json, ecs, cef or leef", s)
}

// Encoder appends alerts and quarantine events in one Format. Every method
// appends exactly one line without its terminating newline, so that a
// transport can choose its framing; the result never contains CR or LF.
// The zero value encodes JSON. An Encoder is safe for concurrent use.
type Encoder struct {
	Format Format
	// Host is the name of the host running Vigil: CEF dvchost, LEEF
	// identHostName, ECS observer.hostname. Empty leaves it out.
	Host string
	// LEEFDelimiter separates LEEF attributes; 0 means tab, the LEEF 2.0
	// default. It must be a printable ASCII character other than '=' and '\\'.
	LEEFDelimiter byte
}

// AppendAlert appends a in e's format to dst.
func (e *Encoder) AppendAlert(dst []byte, a *detect.Alert) []byte {
	switch e.Format {
	case FormatCEF:
		return appendAlertCEF(dst, a, e.Host)
	case FormatLEEF:
		return appendAlertLEEF(dst, a, e.Host, e.leefDelimiter())
	case FormatECS:
		return appendAlertECS(dst, a, e.Host)
	}
	return AppendAlertJSON(dst, a)
}

// AppendQuarantine appends q in e's format to dst.
func (e *Encoder) AppendQuarantine(dst []byte, q *detect.QuarantineEvent) []byte {
	switch e.Format {
	case FormatCEF:
		return appendQuarantineCEF(dst, q, e.Host)
	case FormatLEEF:
		return appendQuarantineLEEF(dst, q, e.Host, e.leefDelimiter())
	case FormatECS:
		return appendQuarantineECS(dst, q, e.Host)
	}
	return AppendQuarantineJSON(dst, q)
}

func (e *Encoder) leefDelimiter() byte {
	if e.LEEFDelimiter == 0 {
		return '\t'
	}
	return e.LEEFDelimiter
}
