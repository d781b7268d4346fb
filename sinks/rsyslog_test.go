package sinks

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rsyslogd is a real rsyslog receiver started for one test: imtcp on a
// loopback port in plain TCP and another with TLS (gtls driver, test CA),
// writing the app name and MSG of every message to out.log.
type rsyslogd struct {
	t                *testing.T
	dir, conf, out   string
	tcpPort, tlsPort int
	cmd              *exec.Cmd
}

const rsyslogConf = `global(workDirectory="{{dir}}" maxMessageSize="64k"
  defaultNetstreamDriverCAFile="{{ca}}"
  defaultNetstreamDriverCertFile="{{cert}}"
  defaultNetstreamDriverKeyFile="{{key}}")
module(load="imtcp" maxSessions="200")
template(name="appmsg" type="string" string="%app-name% %msg%\n")
ruleset(name="out") {
  action(type="omfile" file="{{dir}}/out.log" template="appmsg"{{omfile}})
}
input(type="imtcp" address="127.0.0.1" port="{{tcp}}" ruleset="out")
input(type="imtcp" address="127.0.0.1" port="{{tls}}" ruleset="out"
  streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
`

// startRsyslog writes a config into a temp dir and starts rsyslogd on it;
// the test is skipped when rsyslogd is not installed (.ci/install-deps
// installs it). omfile adds parameters to the file output's action.
func startRsyslog(t *testing.T, pki *testPKI, omfile string) *rsyslogd {
	t.Helper()
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		for _, p := range []string{"/usr/sbin/rsyslogd", "/sbin/rsyslogd"} {
			if _, err := os.Stat(p); err == nil {
				bin = p
			}
		}
	}
	if bin == "" {
		// CI installs rsyslog (.ci/install-deps) and sets VIGIL_REQUIRE_RSYSLOG,
		// so a missing receiver there fails instead of passing silently.
		if os.Getenv("VIGIL_REQUIRE_RSYSLOG") != "" {
			t.Fatal("rsyslogd is not installed but VIGIL_REQUIRE_RSYSLOG is set: run .ci/install-deps")
		}
		t.Skip("rsyslogd is not installed (apt-get install rsyslog rsyslog-gnutls, or run .ci/install-deps)")
	}
	if missing := missingRsyslogModules(); len(missing) > 0 {
		if os.Getenv("VIGIL_REQUIRE_RSYSLOG") != "" {
			t.Fatalf("rsyslog modules %v are not installed but VIGIL_REQUIRE_RSYSLOG is set: run .ci/install-deps", missing)
		}
		t.Skipf("rsyslog modules %v are not installed (apt-get install rsyslog rsyslog-gnutls, or run .ci/install-deps)", missing)
	}
	dir := t.TempDir()
	r := &rsyslogd{t: t, dir: dir, conf: filepath.Join(dir, "rsyslog.conf"), out: filepath.Join(dir, "out.log"),
		tcpPort: freePort(t), tlsPort: freePort(t)}
	conf := strings.NewReplacer("{{dir}}", dir, "{{ca}}", pki.caFile, "{{cert}}", pki.certFile, "{{key}}", pki.keyFile,
		"{{omfile}}", omfile, "{{tcp}}", fmt.Sprint(r.tcpPort), "{{tls}}", fmt.Sprint(r.tlsPort)).Replace(rsyslogConf)
	if err := os.WriteFile(r.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// Cleanup first: a start that fails while waiting for the ports must
	// not leave rsyslogd running.
	t.Cleanup(func() { r.stop(syscall.SIGTERM) })
	r.start(bin)
	return r
}

// rsyslogModules are the loadable modules rsyslogConf needs: imtcp for the
// inputs, lmnsd_gtls for the TLS one (package rsyslog-gnutls).
var rsyslogModules = []string{"imtcp.so", "lmnsd_gtls.so"}

// missingRsyslogModules returns the modules of rsyslogModules found in none
// of the places Debian and other distributions install them.
func missingRsyslogModules() []string {
	dirs, _ := filepath.Glob("/usr/lib/*/rsyslog")
	dirs = append(dirs, "/usr/lib/rsyslog", "/usr/lib64/rsyslog")
	var missing []string
	for _, m := range rsyslogModules {
		found := false
		for _, d := range dirs {
			if _, err := os.Stat(filepath.Join(d, m)); err == nil {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, m)
		}
	}
	return missing
}

func (r *rsyslogd) start(bin string) {
	r.t.Helper()
	if bin == "" {
		bin = r.cmd.Path
	}
	cmd := exec.Command(bin, "-n", "-f", r.conf, "-i", filepath.Join(r.dir, "rsyslogd.pid"))
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("cannot start rsyslogd: %v", err)
	}
	r.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for _, port := range []int{r.tcpPort, r.tlsPort} {
		for {
			var c net.Conn
			var err error
			if port == r.tlsPort {
				// A bare connect would make gnutls log a broken handshake.
				c, err = tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{InsecureSkipVerify: true})
			} else {
				c, err = net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			}
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				r.t.Fatalf("rsyslogd does not listen on %d: %v", port, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// stop ends rsyslogd with sig and waits for it.
func (r *rsyslogd) stop(sig syscall.Signal) {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	r.cmd.Process.Signal(sig)
	r.cmd.Wait()
	r.cmd = &exec.Cmd{Path: r.cmd.Path}
}

// cutTornLine cuts a last line without its newline from out.log, and
// returns it ("" if there is none). rsyslogd's file output writes whole
// buffers, and a message that does not fit in the buffer's rest is split
// across two writes: a receiver killed between them leaves the first part
// of a line, and the receiver started next would append its first message
// to it. That is the receiver's own loss, which no sender can mend (the
// sender resends the message whole), so the test drops the torn line
// where the killed receiver left it, as a log reader would.
func (r *rsyslogd) cutTornLine() string {
	r.t.Helper()
	data, err := os.ReadFile(r.out)
	if err != nil || len(data) == 0 || data[len(data)-1] == '\n' {
		return ""
	}
	end := strings.LastIndexByte(string(data), '\n') + 1
	if err := os.Truncate(r.out, int64(end)); err != nil {
		r.t.Fatal(err)
	}
	return string(data[end:])
}

// lines returns the messages rsyslogd wrote: app name, space, MSG. A last
// line without its newline is still being written and is left out.
func (r *rsyslogd) lines() []string {
	data, err := os.ReadFile(r.out)
	if err != nil {
		return nil
	}
	out := strings.Split(string(data), "\n")
	return out[:len(out)-1]
}

// waitForIDs waits until every alert id appears in the output file.
func (r *rsyslogd) waitForIDs(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		lines := r.lines()
		if len(idsOf(lines)) >= n || time.Now().After(deadline) {
			return lines
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// msgsOf strips the app name from rsyslog lines and checks it.
func msgsOf(t *testing.T, lines []string, app string) []string {
	t.Helper()
	msgs := make([]string, 0, len(lines))
	for _, l := range lines {
		a, msg, ok := strings.Cut(l, " ")
		if !ok || a != app {
			t.Fatalf("rsyslog line with app name %q, want %q: %q", a, app, l)
		}
		msgs = append(msgs, msg)
	}
	return msgs
}

func TestRsyslogTCPAndTLSIntegration(t *testing.T) {
	pki := newTestPKI(t)
	r := startRsyslog(t, pki, "")
	for _, tc := range []struct {
		name string
		cfg  SyslogConfig
	}{
		{"tcp-octet", SyslogConfig{Address: fmt.Sprintf("127.0.0.1:%d", r.tcpPort), Transport: TransportTCP}},
		{"tcp-lf", SyslogConfig{Address: fmt.Sprintf("127.0.0.1:%d", r.tcpPort), Transport: TransportTCP, Framing: FramingLF}},
		{"tls", SyslogConfig{Address: fmt.Sprintf("127.0.0.1:%d", r.tlsPort), Transport: TransportTLS, TLS: TLSConfig{CAFile: pki.caFile}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(r.lines())
			tc.cfg.AppName = "vigil-" + tc.name
			s, err := NewSyslogSink(tc.name, tc.cfg, Encoder{Format: FormatCEF}, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			alerts := makeAlerts(tc.name, 2000)
			sendInBatches(t, s, alerts, 200)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(20 * time.Second)
			var lines []string
			for {
				lines = r.lines()[before:]
				if len(lines) >= len(alerts) || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			checkIntact(t, msgsOf(t, lines, tc.cfg.AppName), alerts)
		})
	}
}

func TestRsyslogRestartLosesNothingIntegration(t *testing.T) {
	pki := newTestPKI(t)
	// The file output writes only when its 4 KiB buffer is full (and once
	// a second): when the receiver is killed, its file almost always ends
	// in part of a message (see endLine), which the test then meets every
	// run, not one run in many.
	r := startRsyslog(t, pki, ` ioBufferSize="4k" flushOnTXEnd="off" asyncWriting="on" flushInterval="1"`)
	const n = 20000
	// rsyslogd reads into an in-memory queue of up to 100k messages, and
	// SIGKILL loses that queue; on a loaded machine it can hold thousands.
	// The window has to cover what the receiver may hold: here all of it.
	// VIGIL_TEST_RESEND_WINDOW=1 shows the loss the window prevents.
	window := n
	if w := os.Getenv("VIGIL_TEST_RESEND_WINDOW"); w != "" {
		fmt.Sscan(w, &window)
	}
	s, err := newSyslogSink("restart", SyslogConfig{Address: fmt.Sprintf("127.0.0.1:%d", r.tcpPort), AppName: "vigil", ResendWindow: window, BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond}, Encoder{Format: FormatCEF}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	alerts := makeAlerts("restart", n)
	// Kill the receiver outright while messages are in flight: whatever it
	// had queued or left unread in its socket is gone, and only the resend
	// window brings it back. Then start it again on the same port.
	restarted := make(chan struct{})
	var torn string // the line the killed receiver left unfinished
	go func() {
		defer close(restarted)
		for deadline := time.Now().Add(20 * time.Second); len(r.lines()) < 2000 && time.Now().Before(deadline); {
			time.Sleep(2 * time.Millisecond)
		}
		r.stop(syscall.SIGKILL)
		torn = r.cutTornLine()
		time.Sleep(300 * time.Millisecond)
		r.start("")
	}()
	sendInBatches(t, s, alerts, 100)
	<-restarted
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.reconnects.Get() == 0 {
		t.Fatal("the sink never reconnected: the receiver was not killed mid-stream")
	}
	lines := r.waitForIDs(t, len(alerts))
	if torn != "" {
		// The start of a message the receiver had when it was killed:
		// resent, it must be there whole.
		if !slices.ContainsFunc(lines, func(l string) bool { return len(l) > len(torn) && strings.HasPrefix(l, torn) }) {
			t.Fatalf("the killed receiver left %q unfinished, and no message it begins arrived whole", torn)
		}
		t.Logf("the killed receiver left a line unfinished (%d bytes); the message arrived whole", len(torn))
	}
	checkIntact(t, msgsOf(t, lines, "vigil"), alerts)
}
