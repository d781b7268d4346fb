package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/vigil-ot/vigil/sinks/console"
)

// observability serves /metrics, /healthz and /readyz for `vigil run` and
// `vigil demo`. /healthz answers 200 while the process is serving; /readyz
// answers 200 only once the consumer is in a generation with every
// assigned partition restored, so an orchestrator routes nothing to (and
// does not count as available) an instance still catching up. detail,
// when set, adds lines to /readyz's answer (the last drill), without
// changing its status.
type observability struct {
	srv *http.Server
	ln  net.Listener
}

func startObservability(addr string, ready func() bool, detail func() string, log *slog.Logger) (*observability, error) {
	return startObservabilityWith(addr, "kafka.http_listen", ready, detail, log, nil, nil)
}

// startObservabilityWith is startObservability with the operator console
// beside /metrics, when con is not nil: its page at / and its API under
// /api/v1, with tokens. setting names what sets addr, for the error when
// it is taken.
func startObservabilityWith(addr, setting string, ready func() bool, detail func() string, log *slog.Logger, con *console.Console, tokens *console.Tokens) (*observability, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s for /metrics: %w; set %s to a free address or \"\" to disable it", addr, err, setting)
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		log.Warn("/metrics, /healthz and /readyz are served to the network without TLS or authentication: "+
			"anyone who reaches this address reads topic and sink names, device counts and alarm rates; "+
			"set kafka.http_listen to a loopback address and scrape through a TLS proxy, or firewall the port",
			"addr", ln.Addr().String())
	}
	if con != nil {
		if err := console.CheckListener(ln.Addr(), tokens); err != nil {
			ln.Close()
			return nil, err
		}
	}
	// HELP and TYPE lines let Prometheus and Grafana tell counters from
	// gauges and show what a metric means.
	metrics.ExposeMetadata(true)
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		writeMetrics(w)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		more := ""
		if detail != nil {
			more = "\n" + detail()
		}
		if !ready() {
			http.Error(w, "not ready: joining the consumer group or restoring partition state"+more, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready"+more)
	})
	if con != nil {
		mux.Handle("/", con.Handler(tokens))
	}
	o := &observability{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln}
	go func() {
		if err := o.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("observability listener stopped", "err", err)
		}
	}()
	log.Info("serving /metrics, /healthz and /readyz", "addr", ln.Addr().String())
	return o, nil
}

func (o *observability) Addr() string { return o.ln.Addr().String() }

func (o *observability) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	o.srv.Shutdown(ctx)
}

// consoleSetup is the operator console a command serves, with the bearer
// tokens of the environment (console.LoadTokens).
type consoleSetup struct {
	console *console.Console
	tokens  *console.Tokens
}

func newConsoleSetup(cfg console.Config) (*consoleSetup, error) {
	tokens, err := console.LoadTokens(os.Getenv)
	if err != nil {
		return nil, err
	}
	return &consoleSetup{console: console.New(console.Options{Config: cfg}), tokens: tokens}, nil
}

// serveConsole starts the operator console on addr, alone.
func serveConsole(cfg console.Config, addr string, log *slog.Logger) (*console.Console, *console.Server, error) {
	setup, err := newConsoleSetup(cfg)
	if err != nil {
		return nil, nil, err
	}
	srv, err := setup.console.Serve(addr, setup.tokens, log)
	if err != nil {
		return nil, nil, err
	}
	return setup.console, srv, nil
}
