package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/VictoriaMetrics/metrics"

	"github.com/vigil-ot/vigil/ingest/inventory"
	"github.com/vigil-ot/vigil/ingest/kafka"
	"github.com/vigil-ot/vigil/sinks/console"
)

const consoleUsage = `Usage: vigil console --config FILE [--http ADDR] [flags]

Serves the operator console of a consumer group of vigil run instances,
alone: no engine, no input topics. It builds the whole fleet's index from
the shared status topic (console.status_topic on kafka.brokers, with
kafka.tls and kafka.sasl), where every instance publishes the status of the
devices of its partitions, and it writes its operators' quarantine
decisions (approve, reject, release) there: the instance that owns the
device sends the decision's quarantine event to its sinks. Use the config
of the instances: it needs kafka.brokers and console.status_topic, and
takes the device attributes from input.inventory. Devices, their status and
the groups' learning come from the topic.

The page and the API (/api/v1) are served on --http, with /metrics (records
of the topic applied and rejected: vigil_console_status_records_total) and
/healthz. Bearer tokens come from VIGIL_CONSOLE_TOKENS or
VIGIL_CONSOLE_TOKENS_FILE (name:role:secret, role viewer or operator);
without tokens it serves only a loopback address.
Recent values (plots) do not travel on the topic: the device page has no
plots. A device's open alarms do (at most 8): the device page shows them,
and the alert timeline has their alerts; the other alerts go to the SIEM.
SIGTERM or SIGINT stops it.

Flags:
`

func runConsole(args []string) int {
	cmd := newConfigCommand("console", consoleUsage, "YAML configuration file of the vigil run instances (required)")
	addr := cmd.fs.String("http", "127.0.0.1:8080", "serve the console on `ADDR`")
	cfg, log, code := cmd.parse(args, func(c *Config) []error { return checkConfigFiles(c, false) })
	if log == nil {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := serveFleetConsole(ctx, cfg, *addr, log, func(served string) {
		log.Info("vigil console: serving the fleet of the status topic", "url", "http://"+served+"/", "topic", cfg.Console.StatusTopic)
	})
	if err != nil {
		log.Error("vigil console stopped", "err", err)
		return 1
	}
	return 0
}

// serveFleetConsole serves the console of the status topic on addr until
// ctx ends; served, when set, is called with the address once it serves.
func serveFleetConsole(ctx context.Context, cfg Config, addr string, log *slog.Logger, served func(addr string)) error {
	if cfg.Console.StatusTopic == "" || len(cfg.Kafka.Brokers) == 0 {
		return errors.New("vigil console reads the fleet from the status topic: set console.status_topic and kafka.brokers as the vigil run instances have them")
	}
	tokens, err := console.LoadTokens(os.Getenv)
	if err != nil {
		return err
	}
	inv, err := inventory.Open(cfg.Input.Inventory, log)
	if err != nil {
		return fmt.Errorf("cannot open inventory: %w", err)
	}
	c := console.New(console.Options{Config: cfg.Console, Assets: inv})
	defer c.Close()
	shared, err := shareConsole(c, cfg, "", log)
	if err != nil {
		return err
	}
	if err := shared.Start(ctx); err != nil {
		return err
	}
	defer shared.Stop()
	metrics.RegisterSet(shared.Metrics())
	defer metrics.UnregisterSet(shared.Metrics(), true)
	obs, err := startObservabilityWith(addr, "--http", func() bool { return true }, nil, log, c, tokens)
	if err != nil {
		return err
	}
	defer obs.Close()
	if served != nil {
		served(obs.Addr())
	}
	<-ctx.Done()
	return nil
}

// shareConsole connects c to the status topic of cfg as instance ("" for
// a console without an engine).
func shareConsole(c *console.Console, cfg Config, instance string, log *slog.Logger) (*console.Shared, error) {
	dialer, err := kafka.NewDialer(&cfg.Kafka, cfg.Kafka.ClientID)
	if err != nil {
		return nil, err
	}
	return console.Share(c, console.ShareOptions{Brokers: cfg.Kafka.Brokers, Topic: cfg.Console.StatusTopic, Dialer: dialer,
		Instance: instance, Logger: log}), nil
}
