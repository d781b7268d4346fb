package sinks

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	syslog "github.com/leodido/go-syslog/v4"
	"github.com/leodido/go-syslog/v4/octetcounting"
	"github.com/leodido/go-syslog/v4/rfc5424"
)

// testReceiver is an in-process syslog receiver over TCP or TLS: it parses
// each stream with go-syslog (octet counting) or by lines (LF framing) and
// keeps the MSG part of every message. With dropAfter > 0 it closes each of
// its first two connections after that many messages, unread bytes
// included, the way a restarting receiver loses what it had not processed.
type testReceiver struct {
	t         *testing.T
	ln        net.Listener
	lf        bool
	dropAfter int

	mu    sync.Mutex
	msgs  []string
	conns int
	errs  []error
	wg    sync.WaitGroup
}

func startTestReceiver(t *testing.T, tlsConfig *tls.Config, lf bool, dropAfter int) *testReceiver {
	t.Helper()
	return startTestReceiverOn(t, "127.0.0.1:0", tlsConfig, lf, dropAfter)
}

// startTestReceiverAt starts a plain octet-counting receiver on addr.
func startTestReceiverAt(t *testing.T, addr string) *testReceiver {
	t.Helper()
	return startTestReceiverOn(t, addr, nil, false, 0)
}

func startTestReceiverOn(t *testing.T, addr string, tlsConfig *tls.Config, lf bool, dropAfter int) *testReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	r := &testReceiver{t: t, ln: ln, lf: lf, dropAfter: dropAfter}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(r.close)
	return r
}

func (r *testReceiver) addr() string { return r.ln.Addr().String() }

func (r *testReceiver) close() {
	r.ln.Close()
	r.wg.Wait()
}

func (r *testReceiver) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		r.conns++
		drop := r.dropAfter
		if r.conns > 2 {
			drop = 0
		}
		r.mu.Unlock()
		r.wg.Add(1)
		go r.serve(c, drop)
	}
}

func (r *testReceiver) serve(c net.Conn, dropAfter int) {
	defer r.wg.Done()
	defer c.Close()
	n := 0
	keep := func(msg string) bool {
		r.mu.Lock()
		r.msgs = append(r.msgs, msg)
		r.mu.Unlock()
		n++
		return dropAfter == 0 || n < dropAfter
	}
	if r.lf {
		sc := bufio.NewScanner(c)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		p := rfc5424.NewParser()
		for sc.Scan() {
			m, err := p.Parse(sc.Bytes())
			if err != nil {
				r.fail(err)
				return
			}
			if !keep(*m.(*rfc5424.SyslogMessage).Message) {
				return
			}
		}
		return
	}
	// The octet-counting parser reads until EOF; a drop closes the
	// connection from its listener.
	stop := false
	octetcounting.NewParser(syslog.WithListener(func(res *syslog.Result) {
		if stop {
			return
		}
		if res.Error != nil {
			r.fail(res.Error)
			stop = true
			c.Close()
			return
		}
		if !keep(*res.Message.(*rfc5424.SyslogMessage).Message) {
			stop = true
			c.Close()
		}
	})).Parse(c)
}

func (r *testReceiver) fail(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
}

func (r *testReceiver) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

// waitFor waits until cond holds on the received messages or fails.
func (r *testReceiver) waitFor(t *testing.T, what string, cond func([]string) bool) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		msgs := r.messages()
		if cond(msgs) {
			return msgs
		}
		if time.Now().After(deadline) {
			r.mu.Lock()
			errs := r.errs
			r.mu.Unlock()
			t.Fatalf("receiver did not get %s: %d messages, parse errors %v", what, len(msgs), errs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var externalIDRe = regexp.MustCompile(`externalId=([0-9a-zA-Z-]+)`)

// idsOf returns the set of externalIds in CEF lines.
func idsOf(lines []string) map[string]int {
	ids := make(map[string]int)
	for _, l := range lines {
		if m := externalIDRe.FindStringSubmatch(l); m != nil {
			ids[m[1]]++
		}
	}
	return ids
}

// testPKI is a CA and a server certificate for 127.0.0.1 and localhost,
// made at test time, written as PEM files in a temp dir.
type testPKI struct {
	caFile, certFile, keyFile string
	serverTLS                 *tls.Config
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vigil test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{
		caFile:   filepath.Join(dir, "ca.pem"),
		certFile: filepath.Join(dir, "server.pem"),
		keyFile:  filepath.Join(dir, "server-key.pem"),
	}
	writePEM(t, p.caFile, "CERTIFICATE", caDER)
	writePEM(t, p.certFile, "CERTIFICATE", srvDER)
	writePEM(t, p.keyFile, "PRIVATE KEY", keyDER)
	cert, err := tls.LoadX509KeyPair(p.certFile, p.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	p.serverTLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	return p
}

// testLogger logs through t, so sink logs show only for failing tests.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testLogWriter{t}, nil))
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
