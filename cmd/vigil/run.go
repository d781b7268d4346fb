package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/detect/drill"
	"github.com/vigil-ot/vigil/detect/pipeline"
	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/inventory"
	"github.com/vigil-ot/vigil/ingest/kafka"
	"github.com/vigil-ot/vigil/ingest/packet"
	"github.com/vigil-ot/vigil/sinks"
	"github.com/vigil-ot/vigil/sinks/console"
)

const runUsage = `Usage: vigil run --config FILE [flags]

Consumes the telemetry and packet topics of the "kafka" section as a member
of its consumer group, judges them and sends alerts to the configured sinks.
SIGTERM or SIGINT stops it gracefully within kafka.shutdown_timeout: it stops
fetching, judges what is in flight, flushes the sinks, checkpoints state and
commits. /metrics, /healthz and /readyz listen on kafka.http_listen.

With console.status_topic set, the instances of the group share the
operator console: each publishes the status of the devices of its
partitions to that compacted topic, and serves the whole fleet's console
(read from the topic) on kafka.http_listen; a quarantine decision taken on
any console goes there, and the instance that owns the device sends it to
its sinks. 'vigil console --config FILE' serves the same console alone.

Flags:
`

func runRun(args []string) int {
	cmd := newConfigCommand("run", runUsage, "YAML configuration file (required)")
	shards := cmd.fs.Int("shards", runtime.GOMAXPROCS(0), "judge with `N` engines at once, each the rows of its own groups, with the alerts of one (one per core by default; one with packet topics, the changelog or group state sharing)")
	// What validate checks, run checks before it connects to anything.
	cfg, log, code := cmd.parse(args, func(c *Config) []error { return checkConfigFiles(c, true) })
	if log == nil {
		return code
	}
	cfg.shards = *shards
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	sink, err := sinks.Build(cfg.Sinks, log)
	if err != nil {
		log.Error("cannot build sinks", "err", err)
		return 1
	}
	if err := runInstance(ctx, cfg, sink, log, nil, nil); err != nil {
		log.Error("vigil run stopped", "err", err)
		return 1
	}
	return 0
}

// configCommand is the flags of a command that runs on a config: --config
// FILE, --log-level and --log-format (vigil run, vigil console).
type configCommand struct {
	fs                              *flag.FlagSet
	configPath, logLevel, logFormat *string
}

func newConfigCommand(name, usage, configHelp string) *configCommand {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage); fs.PrintDefaults() }
	return &configCommand{fs: fs, configPath: fs.String("config", "", configHelp),
		logLevel:  fs.String("log-level", "info", "log level: debug, info, warn or error"),
		logFormat: fs.String("log-format", "text", "log format: text or json")}
}

// parse parses args, makes the logger and loads the config with check
// (see loadConfig). Without a logger the command is over: code is its exit
// code, with the reason printed.
func (c *configCommand) parse(args []string, check func(*Config) []error) (Config, *slog.Logger, int) {
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, nil, 0
		}
		return Config{}, nil, 2
	}
	if *c.configPath == "" || c.fs.NArg() > 0 {
		c.fs.Usage()
		return Config{}, nil, 2
	}
	log, err := newLogger(os.Stderr, *c.logLevel, *c.logFormat)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return Config{}, nil, 2
	}
	cfg, err := loadConfig(*c.configPath, check)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return Config{}, nil, 1
	}
	return cfg, log, 0
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("cannot parse --log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("cannot use --log-format %q: use text or json", format)
}

// instance is one consumer-group member: registry, baseline, engine and
// the Kafka consumer that feeds it.
type instance struct {
	reg      *ingest.Registry
	pipe     *pipeline.Pipeline // the baseline's figures
	engine   pipeline.Judge
	network  *detect.NetworkDetector // nil without packet topics
	consumer *kafka.Consumer
	metrics  *kafka.Metrics
	inv      *inventory.Inventory
	drills   *drillSchedule // nil unless drill.interval is set
}

func newInstance(cfg Config, sink detect.Sink, log *slog.Logger, con pipeline.Console) (*instance, error) {
	var drills drill.Config
	if cfg.Drill.Interval > 0 {
		var err error
		if drills, err = drillConfig(&cfg); err != nil {
			return nil, err
		}
		if cfg.Kafka.HTTPListen != "" {
			// Its own /metrics: the drill also checks every sink.
			drills.MetricsURL = "http://" + cfg.Kafka.HTTPListen + "/metrics"
		}
	}
	deps := pipeline.Deps{Sink: sink, Logger: log, Clock: time.Now, NoNetwork: len(cfg.Kafka.PacketTopics) == 0,
		Shards: cfg.shards, Packets: len(cfg.Kafka.PacketTopics) > 0,
		WholeStore: cfg.Kafka.ChangelogTopic != "" || cfg.Kafka.GroupStateTopic != ""}
	if con != nil {
		deps.Console = con
	}
	p, err := pipeline.New(cfg.pipeline(), deps)
	if err != nil {
		return nil, err
	}
	if p.Sharded != nil {
		// as many batches judging as may wait for the engine; the
		// consumer drains them when its queue is empty (kafka.Drainer)
		p.Sharded.JudgeAhead(cfg.Kafka.EngineQueue)
	}
	m := kafka.NewMetrics()
	decoders := func(kind, topic string, part int32) (kafka.Decoder, error) {
		if kind == kafka.KindPackets {
			d, err := kafka.NewPacketDecoder(cfg.Kafka.Packets, cfg.Input.Packets, packet.Options{Registry: p.Registry, Assets: p.Assets(), Grouper: p.Inventory})
			if err != nil {
				return nil, err
			}
			d.RegisterMetrics(m, topic)
			return d, nil
		}
		return kafka.NewTelemetryDecoder(cfg.Input.Telemetry, cfg.drillCheck())
	}
	c, err := kafka.New(kafka.Options{
		Config: cfg.Kafka, Decoders: decoders, Engine: p.Judge, State: p.Store, Groups: p.Store,
		Registry: p.Registry, Grouper: p.Inventory, Logger: log, Metrics: m,
	})
	if err != nil {
		return nil, err
	}
	inst := &instance{reg: p.Registry, pipe: p, engine: p.Judge, network: p.Network, consumer: c, metrics: m, inv: p.Inventory}
	if cfg.Drill.Interval > 0 {
		inst.drills = &drillSchedule{cfg: drills, log: log}
	}
	publishDrillMetrics(m.Set, inst.drills)
	return inst, nil
}

// runInstance runs one consumer until ctx ends, with the observability
// listener, then flushes and closes sink. con is the console it feeds, if
// any; with console.status_topic set the console (con, else one of its
// own) is fed by that topic and the instance publishes its devices' status
// there (console.Shared). started, when set, is called with the instance
// once it runs.
func runInstance(ctx context.Context, cfg Config, sink detect.Sink, log *slog.Logger, con *consoleSetup, started func(*instance)) error {
	if con == nil && cfg.Console.StatusTopic != "" {
		// Every instance serves the whole fleet's console beside /metrics.
		var err error
		if con, err = newConsoleSetup(cfg.Console); err != nil {
			sink.Close()
			return err
		}
		defer con.console.Close() // after the engine's last publication
	}
	var c *console.Console
	var feed pipeline.Console
	var shared *console.Shared
	if con != nil {
		c, feed = con.console, con.console
		if cfg.Console.StatusTopic != "" {
			var err error
			if shared, err = shareConsole(c, cfg, kafka.InstanceName(&cfg.Kafka), log); err != nil {
				sink.Close()
				return err
			}
			feed = shared
		}
	}
	inst, err := newInstance(cfg, sink, log, feed)
	if err != nil {
		sink.Close()
		return err
	}
	if shared != nil {
		if err := shared.Start(ctx); err != nil {
			sink.Close()
			return err
		}
		metrics.RegisterSet(shared.Metrics())
		defer metrics.UnregisterSet(shared.Metrics(), true)
	}
	// Stopped after the engine's last publication, before the sinks
	// close: the owner of a device may be sending a decision to them.
	stopShared := func() {
		if shared != nil {
			shared.Stop()
			shared = nil
		}
	}
	defer stopShared()
	metrics.RegisterSet(inst.metrics.Set)
	defer metrics.UnregisterSet(inst.metrics.Set, true)
	publishInstanceMetrics(inst)
	var drillDetail func() string
	if inst.drills != nil {
		drillDetail = inst.drills.detail
	}
	if cfg.Kafka.HTTPListen != "" {
		var tokens *console.Tokens
		if con != nil {
			tokens = con.tokens
		}
		obs, err := startObservabilityWith(cfg.Kafka.HTTPListen, "kafka.http_listen", inst.consumer.Ready, drillDetail, log, c, tokens)
		if err != nil {
			sink.Close()
			return err
		}
		defer obs.Close()
	}
	var background sync.WaitGroup
	defer background.Wait()
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go inst.inv.Watch(watchCtx)
	if inst.drills != nil {
		background.Add(1)
		go func() {
			defer background.Done()
			inst.drills.run(watchCtx, cfg.Drill.Interval, inst.consumer.Ready)
		}()
	}
	if started != nil {
		started(inst)
	}
	log.Info("vigil run: consuming", "brokers", strings.Join(cfg.Kafka.Brokers, ","), "group", cfg.Kafka.GroupID,
		"telemetry_topics", cfg.Kafka.TelemetryTopics, "packet_topics", cfg.Kafka.PacketTopics, "instance", inst.consumer.Instance())
	runErr := inst.consumer.Run(ctx)
	// The consumer committed only what the sinks accepted; flushing here
	// delivers what a failed write left over before the process ends.
	flushCtx, cancel := context.WithTimeout(context.Background(), cfg.Kafka.ShutdownTimeout/4)
	defer cancel()
	if err := inst.engine.Flush(flushCtx); err != nil {
		log.Warn("cannot deliver every alert before exit; they are raised again after the restart", "err", err)
	}
	stopShared()
	if err := sink.Close(); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("cannot close sinks: %w", err))
	}
	st := inst.engine.Stats()
	var alarms int64
	for _, n := range st.Alerts {
		alarms += n
	}
	log.Info("vigil run stopped", "records", inst.consumer.Consumed(), "rows_judged", st.Rows, "alarms", alarms, "cleared", st.Cleared)
	return runErr
}
