package sinks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/vigil-ot/vigil/detect"
)

// syslogSink sends messages to one syslog receiver over UDP, TCP or TLS.
//
// Messages live in one ring of reusable slots, in sequence order:
//
//	head ........ sent ........ tail
//	 written, kept   queued, not yet
//	 for resending   written
//
// Write encodes a batch into the ring (blocking while queue_size messages
// wait: backpressure, never a drop) and returns once the connection
// goroutine wrote all of them. Written messages stay in the ring until
// newer ones need the room, at least resend_window of them: TCP does not
// tell what the receiver processed, so after a reconnect the goroutine
// starts again from head and the receiver dedupes on externalId.
type syslogSink struct {
	name   string
	cfg    SyslogConfig
	format *syslogFormat
	tls    *tls.Config
	logger *slog.Logger
	stats  *sinkStats

	queueDepth *metrics.Gauge
	reconnects *metrics.Counter
	resent     *metrics.Counter

	mu       sync.Mutex
	cond     *sync.Cond
	slots    [][]byte
	head     uint64 // oldest message kept
	sent     uint64 // next message to write on the current connection
	tail     uint64 // next free sequence number
	highSent uint64 // every message below it was written at least once
	closing  bool   // Close was called: drain, then stop
	stopped  bool   // the connection goroutine ended
	lastErr  error  // the last connection error, for Write's report

	msg []byte // encoding scratch, used by Write only

	ctx    context.Context // ends when Close gives up waiting
	cancel context.CancelFunc
	done   chan struct{}
}

// NewSyslogSink returns a sink that sends each item as one syslog message
// to cfg.Address. Zero fields of cfg take their defaults. It connects in
// the background; Write blocks until its items are written (or ctx ends),
// Close waits up to cfg.CloseTimeout for queued messages.
func NewSyslogSink(name string, cfg SyslogConfig, enc Encoder, logger *slog.Logger) (detect.Sink, error) {
	return newSyslogSink(name, cfg, enc, logger)
}

func newSyslogSink(name string, cfg SyslogConfig, enc Encoder, logger *slog.Logger) (*syslogSink, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(enc.Format); err != nil {
		return nil, fmt.Errorf("cannot build syslog sink %s: %w", name, err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	s := &syslogSink{
		name:       name,
		cfg:        cfg,
		format:     newSyslogFormat(cfg, enc),
		logger:     logger.With("sink", name, "address", cfg.Address, "transport", cfg.Transport),
		stats:      newSinkStats(name),
		queueDepth: metrics.GetOrCreateGauge(fmt.Sprintf(`vigil_sink_queue_depth{sink=%q}`, name), nil),
		reconnects: metrics.GetOrCreateCounter(fmt.Sprintf(`vigil_sink_reconnects_total{sink=%q}`, name)),
		resent:     metrics.GetOrCreateCounter(fmt.Sprintf(`vigil_sink_resent_total{sink=%q}`, name)),
		slots:      make([][]byte, cfg.QueueSize+cfg.ResendWindow),
		done:       make(chan struct{}),
	}
	if cfg.Transport == TransportUDP {
		// A datagram is gone once written: there is nothing to resend.
		s.slots = make([][]byte, cfg.QueueSize)
	}
	if cfg.Transport == TransportTLS {
		tc, err := cfg.TLS.clientConfig(cfg.Address)
		if err != nil {
			return nil, fmt.Errorf("cannot build syslog sink %s: %w", name, err)
		}
		s.tls = tc
	}
	s.cond = sync.NewCond(&s.mu)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.run()
	return s, nil
}

// clientConfig returns the TLS client config: system roots or CAFile,
// optional client certificate, server name from the address by default.
func (t TLSConfig) clientConfig(address string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if tc.ServerName == "" {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return nil, fmt.Errorf("cannot take the TLS server name from %q: %w; set tls.server_name", address, err)
		}
		tc.ServerName = host
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read tls.ca_file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cannot use tls.ca_file %s: it holds no PEM certificate", t.CAFile)
		}
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cannot load the TLS client certificate: %w; check tls.cert_file and tls.key_file", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func (s *syslogSink) Write(ctx context.Context, out *detect.Output) error {
	n := out.Len()
	if n == 0 {
		return nil
	}
	// Wake the waits below when ctx ends.
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stop()

	var first uint64
	for i := 0; i < n; i++ {
		var truncated bool
		if i < len(out.Alerts) {
			s.msg, truncated = s.format.appendAlert(s.msg[:0], &out.Alerts[i])
		} else {
			s.msg, truncated = s.format.appendQuarantine(s.msg[:0], &out.Quarantine[i-len(out.Alerts)])
		}
		if truncated {
			s.stats.truncated.Inc()
		}
		seq, err := s.enqueue(ctx, s.msg)
		if err != nil {
			// Items enqueued before i may not be written either.
			from := i
			if i > 0 {
				s.mu.Lock()
				if w := s.highSent; w < first+uint64(i) {
					from = int(max(w, first) - first)
				}
				s.mu.Unlock()
			}
			s.stats.delivered.Add(from)
			return s.failedFrom(out, from, fmt.Errorf("cannot queue for %s: %w", s.cfg.Address, err))
		}
		if i == 0 {
			first = seq
		}
	}

	s.mu.Lock()
	for s.highSent < first+uint64(n) && ctx.Err() == nil && !s.stopped {
		s.cond.Wait()
	}
	written := s.highSent
	lastErr := s.lastErr
	s.mu.Unlock()
	if written >= first+uint64(n) {
		s.stats.delivered.Add(n)
		return nil
	}
	cause := ctx.Err()
	if cause == nil {
		cause = errSinkClosed
	}
	if lastErr != nil {
		cause = fmt.Errorf("%w (last connection error: %v)", cause, lastErr)
	}
	from := 0
	if written > first {
		from = int(written - first)
		s.stats.delivered.Add(from)
	}
	return s.failedFrom(out, from, fmt.Errorf("cannot write to %s: %w", s.cfg.Address, cause))
}

// errSinkClosed is the cause of a write that the sink refused or could
// not finish because it was closed.
var errSinkClosed = errors.New("sink closed")

// enqueue copies msg, framed, into the next slot, waiting while the queue
// is full. It returns the message's sequence number.
func (s *syslogSink) enqueue(ctx context.Context, msg []byte) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for int(s.tail-s.sent) >= s.cfg.QueueSize {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if s.closing || s.stopped {
			return 0, errSinkClosed
		}
		s.cond.Wait()
	}
	if s.closing || s.stopped {
		return 0, errSinkClosed
	}
	if s.tail-s.head == uint64(len(s.slots)) {
		s.head++ // the oldest written message leaves the resend window
	}
	if s.head > s.sent {
		panic("BUG: syslog ring evicted an unwritten message")
	}
	i := s.tail % uint64(len(s.slots))
	s.slots[i] = s.format.appendFramed(s.slots[i][:0], msg)
	seq := s.tail
	s.tail++
	s.queueDepth.Set(float64(s.tail - s.sent))
	s.cond.Broadcast()
	return seq, nil
}

// failedFrom reports items from index i on as not accepted.
func (s *syslogSink) failedFrom(out *detect.Output, i int, err error) error {
	ids := make([]string, 0, out.Len()-i)
	for ; i < out.Len(); i++ {
		if i < len(out.Alerts) {
			ids = append(ids, out.Alerts[i].ID)
		} else {
			ids = append(ids, out.Quarantine[i-len(out.Alerts)].ID)
		}
	}
	s.stats.failed.Add(len(ids))
	return &detect.DeliveryError{Sink: s.name, Failed: ids, Err: err}
}

// Close stops accepting items, waits up to CloseTimeout for queued ones to
// be written, and closes the connection.
func (s *syslogSink) Close() error {
	s.mu.Lock()
	s.closing = true
	s.cond.Broadcast()
	s.mu.Unlock()
	timer := time.NewTimer(s.cfg.CloseTimeout)
	defer timer.Stop()
	select {
	case <-s.done:
	case <-timer.C:
		s.cancel()
		<-s.done
	}
	s.cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if left := s.tail - s.highSent; s.tail > s.highSent {
		return fmt.Errorf("cannot flush %d message(s) to %s within %v: %v; check that the receiver is reachable", left, s.cfg.Address, s.cfg.CloseTimeout, s.lastErr)
	}
	return nil
}

// syslogConn is a connection and whether its peer has gone away.
type syslogConn struct {
	net.Conn
	dead   atomic.Bool
	onDead func() // wakes the connection goroutine
}

// watch reads from the connection until it fails. A syslog receiver never
// sends anything, so any end of the read (EOF from a peer that closed, a
// reset) means the connection is dead: it is closed so that the next write
// fails at once instead of filling a buffer nobody reads.
func (c *syslogConn) watch() {
	var buf [512]byte
	for {
		if _, err := c.Read(buf[:]); err != nil {
			c.dead.Store(true)
			c.Close()
			c.onDead()
			return
		}
	}
}

// run owns the connection: it dials with exponential backoff, resends the
// window after a reconnect, and writes queued messages in order.
func (s *syslogSink) run() {
	defer close(s.done)
	var conn *syslogConn
	defer func() {
		if conn != nil {
			conn.Close()
		}
		s.mu.Lock()
		s.stopped = true
		s.cond.Broadcast()
		s.mu.Unlock()
	}()
	backoff := s.cfg.BackoffMin
	everConnected := false
	var connectedAt time.Time
	var wbuf []byte
	for {
		// Wait for messages, or for the connection to die: then reconnect
		// at once to resend the unconfirmed tail, even with nothing new.
		s.mu.Lock()
		for s.sent == s.tail && !s.closing && (conn == nil || !conn.dead.Load()) {
			s.cond.Wait()
		}
		// Closing with everything written: done, unless the connection
		// died meanwhile; then the tail goes out again first (bounded by
		// CloseTimeout).
		alive := conn != nil && !conn.dead.Load()
		if s.sent == s.tail && s.closing && (alive || !everConnected) {
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()

		if conn == nil || conn.dead.Load() {
			if conn != nil {
				conn.Close()
				conn = nil
				// A receiver that accepts and then drops every connection
				// must not turn this loop into a busy one.
				if time.Since(connectedAt) < time.Second {
					if !s.sleep(jitter(backoff)) {
						return
					}
					backoff = min(2*backoff, s.cfg.BackoffMax)
				}
			}
			c, err := s.dial()
			if err != nil {
				s.setErr(err)
				s.logger.Warn("cannot connect to syslog receiver; retrying", "error", err, "retry_in", backoff)
				if !s.sleep(jitter(backoff)) {
					return
				}
				backoff = min(2*backoff, s.cfg.BackoffMax)
				continue
			}
			conn, connectedAt = c, time.Now()
			if s.cfg.Transport != TransportUDP {
				go conn.watch()
			}
			s.mu.Lock()
			resend := min(s.sent-s.head, uint64(s.cfg.ResendWindow))
			s.sent -= resend
			s.mu.Unlock()
			if everConnected {
				s.reconnects.Inc()
				s.resent.Add(int(resend))
				s.logger.Info("reconnected to syslog receiver; resending the unconfirmed tail", "resend", resend)
			}
			everConnected = true
		}

		var end uint64
		var err error
		if s.cfg.Transport == TransportUDP {
			end, err = s.writeDatagram(conn)
		} else {
			end, wbuf, err = s.writeStream(conn, wbuf)
		}
		if err != nil {
			s.setErr(err)
			s.logger.Warn("cannot write to syslog receiver; reconnecting", "error", err)
			conn.dead.Store(true) // the top of the loop closes it and paces the redial
			if s.ctx.Err() != nil {
				return
			}
			continue
		}
		if time.Since(connectedAt) >= time.Second {
			backoff = s.cfg.BackoffMin
		}
		s.mu.Lock()
		s.sent = end
		if end > s.highSent {
			s.highSent = end
		}
		s.queueDepth.Set(float64(s.tail - s.sent))
		s.cond.Broadcast()
		s.mu.Unlock()
	}
}

// maxWriteBytes bounds one stream write, so that a slow receiver is
// noticed by the write deadline rather than after a huge buffer.
const maxWriteBytes = 256 << 10

// writeStream writes the messages from sent on, up to maxWriteBytes, in
// one write, and returns the sequence number after the last one written.
func (s *syslogSink) writeStream(conn *syslogConn, wbuf []byte) (uint64, []byte, error) {
	wbuf = wbuf[:0]
	s.mu.Lock()
	seq := s.sent
	for seq < s.tail && len(wbuf) < maxWriteBytes {
		wbuf = append(wbuf, s.slots[seq%uint64(len(s.slots))]...)
		seq++
	}
	s.mu.Unlock()
	if conn.dead.Load() {
		return 0, wbuf, errors.New("the receiver closed the connection")
	}
	if err := conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout)); err != nil {
		return 0, wbuf, err
	}
	if _, err := conn.Write(wbuf); err != nil {
		return 0, wbuf, err
	}
	return seq, wbuf, nil
}

// writeDatagram writes the message at sent as one datagram. Slots from
// sent to tail are not touched by Write, so no copy is needed.
func (s *syslogSink) writeDatagram(conn *syslogConn) (uint64, error) {
	s.mu.Lock()
	seq := s.sent
	msg := s.slots[seq%uint64(len(s.slots))]
	s.mu.Unlock()
	if err := conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout)); err != nil {
		return 0, err
	}
	if _, err := conn.Write(msg); err != nil {
		return 0, err
	}
	return seq + 1, nil
}

func (s *syslogSink) dial() (*syslogConn, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.DialTimeout)
	defer cancel()
	d := &net.Dialer{KeepAlive: s.cfg.KeepAlive}
	var c net.Conn
	var err error
	switch s.cfg.Transport {
	case TransportUDP:
		c, err = d.DialContext(ctx, "udp", s.cfg.Address)
	case TransportTLS:
		td := &tls.Dialer{NetDialer: d, Config: s.tls}
		c, err = td.DialContext(ctx, "tcp", s.cfg.Address)
		if err == nil {
			err = awaitTLSVerdict(c.(*tls.Conn))
		}
	default:
		c, err = d.DialContext(ctx, "tcp", s.cfg.Address)
	}
	if err != nil {
		if c != nil {
			c.Close()
		}
		return nil, err
	}
	return &syslogConn{Conn: c, onDead: func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	}}, nil
}

// tlsVerdictWait is how long a new TLS 1.3 connection waits for the
// receiver to reject it.
const tlsVerdictWait = 250 * time.Millisecond

// awaitTLSVerdict waits briefly for a TLS 1.3 receiver's verdict on the
// client. In TLS 1.3 the client's handshake ends before the server has
// checked the client certificate; a server that rejects it says so with an
// alert the client only sees when it reads. Without this wait the first
// messages would be written into a connection that is already refused, and
// reported as accepted.
func awaitTLSVerdict(c *tls.Conn) error {
	if c.ConnectionState().Version != tls.VersionTLS13 {
		return nil // TLS 1.2 checks the client certificate inside the handshake
	}
	var b [1]byte
	c.SetReadDeadline(time.Now().Add(tlsVerdictWait))
	_, err := c.Read(b[:])
	c.SetReadDeadline(time.Time{})
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		return nil
	}
	c.Close()
	return fmt.Errorf("the receiver refused the TLS session: %w; check tls.cert_file and tls.key_file against what it requires", err)
}

func (s *syslogSink) setErr(err error) {
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
}

// sleep waits d, or returns false when the sink is told to stop.
func (s *syslogSink) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// jitter spreads d by ±20% so that many instances do not reconnect in step.
func jitter(d time.Duration) time.Duration {
	return d - d/5 + time.Duration(rand.Int64N(int64(d)*2/5+1))
}
