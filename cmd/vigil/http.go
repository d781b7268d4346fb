package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/VictoriaMetrics/metrics"
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
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s for /metrics: %w; set kafka.http_listen to a free address or \"\" to disable it", addr, err)
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		log.Warn("/metrics, /healthz and /readyz are served to the network without TLS or authentication: "+
			"anyone who reaches this address reads topic and sink names, device counts and alarm rates; "+
			"set kafka.http_listen to a loopback address and scrape through a TLS proxy, or firewall the port",
			"addr", ln.Addr().String())
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
