package sinks

import (
	"strconv"
	"time"

	"github.com/vigil-ot/vigil/detect"
)

// facilities maps syslog facility names to their codes (RFC 5424 6.2.1).
var facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "audit": 13, "alert": 14, "clock": 15,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// syslogFormat builds one syslog message (header and encoded event) and
// frames it for its transport.
type syslogFormat struct {
	profile  string
	facility int
	hostname string // sanitized: printable ASCII, no spaces
	appName  string // sanitized likewise
	framing  string // "" for UDP: one datagram per message
	maxSize  int
	enc      Encoder
}

func newSyslogFormat(c SyslogConfig, enc Encoder) *syslogFormat {
	f := &syslogFormat{
		profile:  c.Profile,
		facility: facilities[c.Facility],
		hostname: syslogToken(c.Hostname, 255),
		appName:  syslogToken(c.AppName, 48),
		framing:  c.Framing,
		maxSize:  c.MaxMessageSize,
		enc:      enc,
	}
	if c.Profile == ProfileRFC3164 {
		f.appName = syslogToken(c.AppName, 32) // RFC 3164 4.1.3: tag of at most 32 characters
	}
	if c.Transport == TransportUDP {
		f.framing = ""
	}
	return f
}

// syslogToken makes s a header field: printable ASCII without spaces, at
// most limit bytes, "-" (the nil value) when empty.
func syslogToken(s string, limit int) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s) && len(b) < limit; i++ {
		if c := s[i]; c > ' ' && c < 0x7f {
			b = append(b, c)
		}
	}
	if len(b) == 0 {
		return "-"
	}
	return string(b)
}

// syslogSeverity maps Vigil's 0-10 severity to the syslog severity of the
// PRI: 9-10 critical, 7-8 error, 4-6 warning, 1-3 notice, 0 informational.
func syslogSeverity(sev int) int {
	switch {
	case sev >= 9:
		return 2
	case sev >= 7:
		return 3
	case sev >= 4:
		return 4
	case sev >= 1:
		return 5
	}
	return 6
}

// appendAlert appends the message of a (header and event, no framing) and
// reports whether it had to be cut to the size limit.
// Its timestamp is the processing time (event time in a replay), so a
// replay produces the same bytes.
func (f *syslogFormat) appendAlert(dst []byte, a *detect.Alert) ([]byte, bool) {
	sev := syslogSeverity(a.Severity)
	if a.State == detect.StateCleared {
		sev = 6
	}
	t := a.ProcessingTime
	if t.IsZero() {
		t = a.EventTime
	}
	start := len(dst)
	dst = f.appendHeader(dst, sev, t, "alert")
	dst = f.enc.AppendAlert(dst, a)
	n := f.cut(dst[start:])
	return dst[:start+n], start+n != len(dst)
}

// appendQuarantine appends the message of q.
func (f *syslogFormat) appendQuarantine(dst []byte, q *detect.QuarantineEvent) ([]byte, bool) {
	start := len(dst)
	dst = f.appendHeader(dst, syslogSeverity(q.Severity), q.Time, "quarantine")
	dst = f.enc.AppendQuarantine(dst, q)
	n := f.cut(dst[start:])
	return dst[:start+n], start+n != len(dst)
}

func (f *syslogFormat) appendHeader(dst []byte, sev int, t time.Time, msgID string) []byte {
	if t.IsZero() {
		t = time.Now()
	}
	t = t.UTC()
	dst = append(dst, '<')
	dst = strconv.AppendInt(dst, int64(f.facility*8+sev), 10)
	dst = append(dst, '>')
	switch f.profile {
	case ProfileRFC5424:
		// RFC 5424 6.2.3: at most six digits of second fraction.
		dst = append(dst, '1', ' ')
		dst = appendRFC5424Time(dst, t)
		dst = append(dst, ' ')
		dst = append(dst, f.hostname...)
		dst = append(dst, ' ')
		dst = append(dst, f.appName...)
		dst = append(dst, " - "...)
		dst = append(dst, msgID...)
		return append(dst, " - "...)
	case ProfileRFC3164:
		dst = appendStamp(dst, t)
		dst = append(dst, ' ')
		dst = append(dst, f.hostname...)
		dst = append(dst, ' ')
		dst = append(dst, f.appName...)
		return append(dst, ':', ' ')
	}
	// Sentinel and QRadar: the event follows the host name, so its own
	// "CEF:" or "LEEF:" prefix is what the receiver reads as the tag.
	dst = appendStamp(dst, t)
	dst = append(dst, ' ')
	dst = append(dst, f.hostname...)
	return append(dst, ' ')
}

// appendRFC5424Time appends t (UTC) as 2006-01-02T15:04:05.000000Z: RFC
// 5424 allows at most six fraction digits.
func appendRFC5424Time(dst []byte, t time.Time) []byte {
	if year := t.Year(); year < 0 || year > 9999 {
		return t.AppendFormat(dst, "2006-01-02T15:04:05.000000Z07:00")
	}
	dst = appendDateTime(dst, t)
	dst = append(dst, '.')
	dst = appendDigits(dst, t.Nanosecond()/1e3, 6)
	return append(dst, 'Z')
}

// appendStamp appends t as RFC 3164's "Jan _2 15:04:05".
func appendStamp(dst []byte, t time.Time) []byte {
	_, month, day := t.Date()
	hour, minute, sec := t.Clock()
	dst = append(dst, month.String()[:3]...)
	dst = append(dst, ' ')
	if day < 10 {
		dst = append(dst, ' ', byte('0'+day))
	} else {
		dst = appendDigits(dst, day, 2)
	}
	dst = append(dst, ' ')
	dst = appendDigits(dst, hour, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, minute, 2)
	dst = append(dst, ':')
	return appendDigits(dst, sec, 2)
}

// cut returns the length msg keeps under maxSize. A cut message ends in
// the truncation marker, and the cut never splits a UTF-8 character or an
// escape sequence (an odd run of backslashes).
func (f *syslogFormat) cut(msg []byte) int {
	if len(msg) <= f.maxSize {
		return len(msg)
	}
	n := f.maxSize - len(truncMarker)
	for n > 0 && msg[n]&0xc0 == 0x80 {
		n--
	}
	backslashes := 0
	for i := n - 1; i >= 0 && msg[i] == '\\'; i-- {
		backslashes++
	}
	if backslashes%2 == 1 {
		n--
	}
	return n + copy(msg[n:], truncMarker)
}

// appendFramed appends msg framed for the transport: octet counting puts
// the length and a space before it (RFC 6587 3.4.1), LF framing a newline
// after it, UDP nothing.
func (f *syslogFormat) appendFramed(dst, msg []byte) []byte {
	switch f.framing {
	case FramingOctetCounting:
		dst = strconv.AppendInt(dst, int64(len(msg)), 10)
		dst = append(dst, ' ')
		return append(dst, msg...)
	case FramingLF:
		dst = append(dst, msg...)
		return append(dst, '\n')
	}
	return append(dst, msg...)
}
