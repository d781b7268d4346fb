package sinks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/leodido/go-syslog/v4/rfc3164"
	"github.com/leodido/go-syslog/v4/rfc5424"

	"github.com/vigil-ot/vigil/detect"
)

// makeAlerts returns n distinct alerts whose ids start with prefix.
func makeAlerts(prefix string, n int) []detect.Alert {
	base := fixtureAlerts()[1]
	out := make([]detect.Alert, n)
	for i := range out {
		a := base
		a.ID = fmt.Sprintf("%s-%06d", prefix, i)
		a.Device = fmt.Sprintf("dev-%d|x=y\nCEF:0|forged", i%97)
		a.EventTime = base.EventTime.Add(time.Duration(i) * time.Millisecond)
		a.ProcessingTime = a.EventTime
		out[i] = a
	}
	return out
}

func TestSyslogHeadersParseBack(t *testing.T) {
	alerts := fixtureAlerts()
	for _, profile := range []string{ProfileRFC5424, ProfileRFC3164, ProfileSentinel, ProfileQRadar} {
		format := FormatCEF
		if profile == ProfileQRadar {
			format = FormatLEEF
		}
		for _, f := range []Format{FormatCEF, FormatLEEF, FormatJSON} {
			if (profile == ProfileSentinel || profile == ProfileQRadar) && f != format {
				continue
			}
			enc := Encoder{Format: f, Host: "vigil-1"}
			sf := newSyslogFormat(SyslogConfig{Profile: profile, Facility: "local4", AppName: "vigil", Hostname: "vigil-1", MaxMessageSize: 1 << 20, Transport: TransportTCP}, enc)
			for i := range alerts {
				msg, _ := sf.appendAlert(nil, &alerts[i])
				want := string(enc.AppendAlert(nil, &alerts[i]))
				host, app, body := parseSyslog(t, profile, msg)
				if host != "vigil-1" {
					t.Errorf("%s/%s: hostname %q", profile, f, host)
				}
				switch profile {
				case ProfileSentinel:
					// The event's own "CEF:" reads as the tag, as Sentinel's
					// connector expects; go-syslog keeps it in the content too.
					if app != "CEF" || body != want {
						t.Errorf("sentinel: tag %q body %q, want CEF and %q", app, body, want)
					}
				case ProfileQRadar:
					if app != "LEEF" || body != want {
						t.Errorf("qradar: tag %q body %q, want LEEF and %q", app, body, want)
					}
				default:
					if app != "vigil" || body != want {
						t.Errorf("%s/%s alert %d:\n got %q %q\nwant %q", profile, f, i, app, body, want)
					}
				}
			}
		}
	}
}

// parseSyslog parses msg with go-syslog's parser for profile and returns
// hostname, app name (tag) and message.
func parseSyslog(t *testing.T, profile string, msg []byte) (string, string, string) {
	t.Helper()
	if profile == ProfileRFC5424 {
		m, err := rfc5424.NewParser().Parse(msg)
		if err != nil {
			t.Fatalf("RFC 5424 parser rejects %q: %v", msg, err)
		}
		sm := m.(*rfc5424.SyslogMessage)
		return deref(sm.Hostname), deref(sm.Appname), deref(sm.Message)
	}
	m, err := rfc3164.NewParser(rfc3164.WithYear(rfc3164.CurrentYear{})).Parse(msg)
	if err != nil {
		t.Fatalf("RFC 3164 parser rejects %q: %v", msg, err)
	}
	sm := m.(*rfc3164.SyslogMessage)
	return deref(sm.Hostname), deref(sm.Appname), deref(sm.Message)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func TestSyslogTruncation(t *testing.T) {
	a := fixtureAlerts()[3]
	a.Message = strings.Repeat(`a\=`, 2000)
	for _, limit := range []int{480, 481, 482, 1000, 2048} {
		sf := newSyslogFormat(SyslogConfig{Profile: ProfileRFC5424, Facility: "local4", AppName: "vigil", Hostname: "h", MaxMessageSize: limit, Transport: TransportUDP}, Encoder{Format: FormatCEF})
		msg, truncated := sf.appendAlert(nil, &a)
		if !truncated || len(msg) > limit || !strings.HasSuffix(string(msg), truncMarker) {
			t.Fatalf("limit %d: truncated=%v len=%d suffix %q", limit, truncated, len(msg), msg[len(msg)-5:])
		}
		body := strings.TrimSuffix(string(msg), truncMarker)
		if n := len(body) - len(strings.TrimRight(body, `\`)); n%2 == 1 {
			t.Fatalf("limit %d: cut inside an escape sequence: %q", limit, msg[len(msg)-8:])
		}
		parseSyslog(t, ProfileRFC5424, msg)
	}
}

func TestSyslogTCPInProcess(t *testing.T) {
	for _, lf := range []bool{false, true} {
		t.Run(fmt.Sprintf("lf=%v", lf), func(t *testing.T) {
			r := startTestReceiver(t, nil, lf, 0)
			framing := FramingOctetCounting
			if lf {
				framing = FramingLF
			}
			s, err := NewSyslogSink("tcp-test", SyslogConfig{Address: r.addr(), Framing: framing, Hostname: "vigil-1"}, Encoder{Format: FormatCEF}, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			alerts := makeAlerts("tcp", 3000)
			sendInBatches(t, s, alerts, 250)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			msgs := r.waitFor(t, "3000 messages", func(m []string) bool { return len(m) >= len(alerts) })
			checkIntact(t, msgs, alerts)
		})
	}
}

// sendInBatches writes alerts in batches of size n.
func sendInBatches(t *testing.T, s detect.Sink, alerts []detect.Alert, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < len(alerts); i += n {
		out := detect.Output{Alerts: alerts[i:min(i+n, len(alerts))]}
		if err := s.Write(ctx, &out); err != nil {
			t.Fatalf("batch at %d: %v", i, err)
		}
	}
}

// checkIntact checks that every alert arrived at least once, byte for byte
// as the encoder wrote it.
func checkIntact(t *testing.T, msgs []string, alerts []detect.Alert) {
	t.Helper()
	byID := make(map[string]string, len(msgs))
	for _, m := range msgs {
		ids := externalIDRe.FindAllStringSubmatch(m, -1)
		if len(ids) != 1 {
			t.Fatalf("message with %d externalIds (split or forged event?): %q", len(ids), m)
		}
		byID[ids[0][1]] = m
	}
	missing := 0
	for i := range alerts {
		got, ok := byID[alerts[i].ID]
		if !ok {
			missing++
			continue
		}
		if want := string(AppendAlertCEF(nil, &alerts[i])); got != want {
			t.Fatalf("alert %s arrived altered:\n got %q\nwant %q", alerts[i].ID, got, want)
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d alerts lost", missing, len(alerts))
	}
}

func TestSyslogReconnectResendsTail(t *testing.T) {
	// The receiver drops every connection after 700 messages, discarding
	// what it had buffered: only the resend window brings those back.
	r := startTestReceiver(t, nil, false, 700)
	s, err := NewSyslogSink("reconnect-test", SyslogConfig{Address: r.addr(), ResendWindow: 8192, BackoffMin: 10 * time.Millisecond}, Encoder{Format: FormatCEF}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	alerts := makeAlerts("rc", 4000)
	sendInBatches(t, s, alerts, 100)
	// The last drop may come after the last Write returned: the sink, still
	// open, notices the dead connection by itself and resends the tail.
	msgs := r.waitFor(t, "every alert", func(m []string) bool { return len(idsOf(m)) >= len(alerts) })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkIntact(t, msgs, alerts)
	if r.conns < 2 {
		t.Fatalf("the receiver saw %d connection(s); the test did not exercise a reconnect", r.conns)
	}
}

func TestSyslogTLSInProcess(t *testing.T) {
	pki := newTestPKI(t)
	r := startTestReceiver(t, pki.serverTLS, false, 0)
	s, err := NewSyslogSink("tls-test", SyslogConfig{Address: r.addr(), Transport: TransportTLS, TLS: TLSConfig{CAFile: pki.caFile}}, Encoder{Format: FormatCEF}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	alerts := makeAlerts("tls", 500)
	sendInBatches(t, s, alerts, 100)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkIntact(t, r.waitFor(t, "500 messages", func(m []string) bool { return len(m) >= 500 }), alerts)
}

func TestSyslogTLSVerifiesByDefault(t *testing.T) {
	pki := newTestPKI(t)
	r := startTestReceiver(t, pki.serverTLS, false, 0)
	// No CA given: the system roots do not know the test CA.
	s, err := NewSyslogSink("tls-untrusted", SyslogConfig{Address: r.addr(), Transport: TransportTLS, CloseTimeout: 100 * time.Millisecond, BackoffMin: 10 * time.Millisecond}, Encoder{Format: FormatCEF}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Each Write gives up after 300 ms; on a loaded machine the first
	// handshake may not have failed by then (the error is the deadline's
	// alone), so write again until a connection attempt has failed, for
	// up to 20 s.
	out := detect.Output{Alerts: makeAlerts("untrusted", 3)}
	for until := time.Now().Add(20 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err = s.Write(ctx, &out)
		cancel()
		if err == nil || strings.Contains(err.Error(), "last connection error") || time.Now().After(until) {
			break
		}
	}
	var de *detect.DeliveryError
	if !errors.As(err, &de) || len(de.Failed) != 3 {
		t.Fatalf("want all 3 reported failed, got %v", err)
	}
	if !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("the error should name the certificate problem: %v", err)
	}
	if len(r.messages()) != 0 {
		t.Fatal("an unverified receiver got messages")
	}
}

func TestSyslogBackpressure(t *testing.T) {
	// Nothing listens: the queue fills and Write blocks instead of dropping.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s, err := newSyslogSink("backpressure-test", SyslogConfig{Address: addr, QueueSize: 5, CloseTimeout: 50 * time.Millisecond, BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond}, Encoder{Format: FormatCEF}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	out := detect.Output{Alerts: makeAlerts("bp", 20)}
	start := time.Now()
	err = s.Write(ctx, &out)
	var de *detect.DeliveryError
	if !errors.As(err, &de) || len(de.Failed) != 20 || de.Failed[0] != "bp-000000" {
		t.Fatalf("want all 20 reported failed, got %v", err)
	}
	if time.Since(start) < 150*time.Millisecond {
		t.Fatalf("Write returned after %v: it should block until ctx ends", time.Since(start))
	}
	s.mu.Lock()
	queued := s.tail - s.sent
	s.mu.Unlock()
	if queued != 5 {
		t.Fatalf("queue holds %d, want its bound 5", queued)
	}
}

func TestSyslogUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	s, err := NewSyslogSink("udp-test", SyslogConfig{Address: pc.LocalAddr().String(), Transport: TransportUDP, MaxMessageSize: 600}, Encoder{Format: FormatCEF}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	alerts := makeAlerts("udp", 20)
	alerts[7].Message = strings.Repeat("long ", 400)
	sendInBatches(t, s, alerts, 5)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	seen := 0
	for seen < len(alerts) {
		pc.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("after %d datagrams: %v", seen, err)
		}
		if n > 600 {
			t.Fatalf("datagram of %d bytes exceeds max_message_size 600", n)
		}
		_, _, body := parseSyslog(t, ProfileRFC5424, buf[:n])
		if strings.Contains(body, "udp-000007") && !strings.HasSuffix(body, truncMarker) {
			t.Fatalf("oversized message not marked as truncated: %q", body)
		}
		seen++
	}
}

func TestSyslogTimestamps(t *testing.T) {
	for _, ts := range []time.Time{
		time.Date(2026, 1, 2, 3, 4, 5, 6789000, time.UTC),
		time.Date(2026, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(1999, 7, 10, 0, 0, 0, 0, time.UTC),
	} {
		if got, want := string(appendRFC5424Time(nil, ts)), ts.Format("2006-01-02T15:04:05.000000Z07:00"); got != want {
			t.Errorf("RFC 5424 time %q, want %q", got, want)
		}
		if got, want := string(appendStamp(nil, ts)), ts.Format(time.Stamp); got != want {
			t.Errorf("RFC 3164 stamp %q, want %q", got, want)
		}
		if got, want := string(appendLEEFTime(nil, ts)), ts.Format(leefGoTime); got != want {
			t.Errorf("LEEF time %q, want %q", got, want)
		}
	}
}

// TestSyslogMutualTLS: a receiver that demands a client certificate gets
// one, and server_name picks the name verified in the server's certificate.
func TestSyslogMutualTLS(t *testing.T) {
	pki := newTestPKI(t)
	server := pki.serverTLS.Clone()
	server.ClientAuth = tls.RequireAndVerifyClientCert
	server.ClientCAs = x509.NewCertPool()
	caPEM, err := os.ReadFile(pki.caFile)
	if err != nil {
		t.Fatal(err)
	}
	server.ClientCAs.AppendCertsFromPEM(caPEM)
	r := startTestReceiver(t, server, false, 0)
	cfg := SyslogConfig{Address: r.addr(), Transport: TransportTLS, TLS: TLSConfig{CAFile: pki.caFile, CertFile: pki.certFile, KeyFile: pki.keyFile, ServerName: "localhost"}}
	s, err := NewSyslogSink("mtls-test", cfg, Encoder{Format: FormatCEF}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	alerts := makeAlerts("mtls", 50)
	sendInBatches(t, s, alerts, 25)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkIntact(t, r.waitFor(t, "50 messages", func(m []string) bool { return len(m) >= 50 }), alerts)

	// Without the client certificate the receiver refuses the handshake.
	cfg.TLS.CertFile, cfg.TLS.KeyFile = "", ""
	cfg.CloseTimeout, cfg.BackoffMin = 50*time.Millisecond, 10*time.Millisecond
	s, err = NewSyslogSink("mtls-nocert", cfg, Encoder{Format: FormatCEF}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := s.Write(ctx, &detect.Output{Alerts: makeAlerts("nocert", 2)}); err == nil {
		t.Fatal("a receiver requiring a client certificate accepted a client without one")
	}
}
