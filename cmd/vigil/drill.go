package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/vigil-ot/vigil/detect/drill"
	"github.com/vigil-ot/vigil/ingest/kafka"
	"github.com/vigil-ot/vigil/sinks"
)

const drillUsage = `Usage: vigil drill --config FILE [flags]

Runs an incident-response drill against a running 'vigil run' with the same
config: writes canary incidents (a spike and a silence of new drill devices,
tagged with the key in the variable drill.key_env names) to the first
telemetry topic, reads the alerts topic of the first Kafka sink from its
current end, and reports per canary whether its alert, flagged as a drill,
was delivered and how long it took. With --metrics, it also waits for
every sink of the run to count the drill's alerts as accepted
(vigil_drill_alerts_delivered_total). Exit status 1 when something was
not delivered within the deadline.

Flags:
`

func runDrill(args []string) int {
	fs := flag.NewFlagSet("drill", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), drillUsage); fs.PrintDefaults() }
	configPath := fs.String("config", "", "YAML configuration file of the vigil run to drill (required)")
	deadline := fs.Duration("deadline", 0, "how long to wait for the alerts (default drill.deadline)")
	metricsURL := fs.String("metrics", "", "vigil run's /metrics URL: also wait for every sink to accept the drill's alerts")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *configPath == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	cfg, err := LoadConfig(*configPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if *deadline > 0 {
		cfg.Drill.Deadline = *deadline
	}
	dc, err := drillConfig(&cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dc.MetricsURL = *metricsURL
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	rep, err := drill.Run(ctx, dc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vigil drill:", err)
		return 1
	}
	rep.WriteText(os.Stdout)
	if !rep.OK() {
		return 1
	}
	return 0
}

// drillCheck is how the consumer verifies drill records: the key from the
// environment (never logged) and the drill device prefix.
func (c *Config) drillCheck() kafka.DrillCheck {
	return kafka.DrillCheck{Key: []byte(os.Getenv(c.Drill.KeyEnv)), DevicePrefix: c.Drill.DevicePrefix}
}

// drillConfig is a drill of the run cfg configures: canaries into its
// first telemetry topic, alerts from its first Kafka sink.
func drillConfig(cfg *Config) (drill.Config, error) {
	k := &cfg.Kafka
	if len(k.Brokers) == 0 || len(k.TelemetryTopics) == 0 {
		return drill.Config{}, errors.New("cannot drill: the config has no kafka.brokers or kafka.telemetry_topics to inject into")
	}
	var sink *sinks.SinkConfig
	for i := range cfg.Sinks {
		if cfg.Sinks[i].Kind == sinks.KindKafka {
			sink = &cfg.Sinks[i]
			break
		}
	}
	if sink == nil {
		return drill.Config{}, errors.New("cannot drill: the config has no sink of kind kafka whose alerts topic the drill can read; add one")
	}
	in, err := kafka.NewDialer(k, "vigil-drill")
	if err != nil {
		return drill.Config{}, fmt.Errorf("cannot drill: %w", err)
	}
	out, err := sinks.KafkaDialer(sink.Kafka)
	if err != nil {
		return drill.Config{}, fmt.Errorf("cannot drill: %w", err)
	}
	key := cfg.drillCheck().Key
	if len(key) == 0 {
		return drill.Config{}, fmt.Errorf("cannot drill: the environment variable %s (drill.key_env) is empty; set it to the drill key vigil run has", cfg.Drill.KeyEnv)
	}
	return drill.Config{
		Telemetry:    drill.Target{Brokers: k.Brokers, Dialer: in, Topic: k.TelemetryTopics[0]},
		Alerts:       drill.Target{Brokers: sink.Kafka.Brokers, Dialer: out, Topic: sink.Kafka.AlertsTopicOrDefault()},
		Key:          key,
		DevicePrefix: cfg.Drill.DevicePrefix,
		GroupAttr:    cfg.Input.Inventory.GroupBy[0],
		Deadline:     cfg.Drill.Deadline,
		Sinks:        cfg.Sinks.Names(),
	}, nil
}

// drillSchedule runs a drill every drill.interval from inside vigil run
// and keeps the last result for /metrics and /readyz.
type drillSchedule struct {
	cfg drill.Config
	log *slog.Logger

	mu   sync.Mutex
	last *drill.Report
	err  error
}

// publishDrillMetrics exports the last scheduled drill's result on set:
// NaN while there is none (no drill.interval, or no drill finished yet).
func publishDrillMetrics(set *metrics.Set, s *drillSchedule) {
	set.NewGauge("vigil_drill_last_success", func() float64 {
		ok, _, ran := s.result()
		switch {
		case !ran:
			return math.NaN()
		case ok:
			return 1
		}
		return 0
	})
	set.NewGauge("vigil_drill_last_duration_seconds", func() float64 {
		_, d, ran := s.result()
		if !ran {
			return math.NaN()
		}
		return d.Seconds()
	})
}

// result returns whether the last drill passed and how long it took, and
// whether one ran at all; s may be nil.
func (s *drillSchedule) result() (ok bool, took time.Duration, ran bool) {
	if s == nil {
		return false, 0, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		return false, 0, s.err != nil
	}
	return s.err == nil && s.last.OK(), s.last.Duration, true
}

// run drills once the instance is ready, so a start shows at once whether
// alerts get through, then every interval until ctx ends.
func (s *drillSchedule) run(ctx context.Context, interval time.Duration, ready func() bool) {
	poll := time.NewTicker(100 * time.Millisecond)
	for !ready() {
		select {
		case <-ctx.Done():
			poll.Stop()
			return
		case <-poll.C:
		}
	}
	poll.Stop()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		rep, err := drill.Run(ctx, s.cfg)
		if ctx.Err() != nil {
			return
		}
		s.record(rep, err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *drillSchedule) record(rep *drill.Report, err error) {
	s.mu.Lock()
	s.last, s.err = rep, err
	s.mu.Unlock()
	switch {
	case err != nil:
		s.log.Warn("drill failed", "err", err)
	case !rep.OK():
		s.log.Warn("drill failed: not every canary's alert was delivered", "run", rep.Run, "deadline", s.cfg.Deadline)
	default:
		s.log.Info("drill passed", "run", rep.Run, "duration", rep.Duration)
	}
}

// detail is the last drill's line in /readyz.
func (s *drillSchedule) detail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.err != nil:
		return "last drill: failed: " + s.err.Error()
	case s.last == nil:
		return "last drill: none yet"
	case !s.last.OK():
		return fmt.Sprintf("last drill: %s at %s failed: not every alert delivered within %s", s.last.Run, s.last.Injected.UTC().Format(time.RFC3339), s.cfg.Deadline)
	}
	return fmt.Sprintf("last drill: %s at %s passed in %s", s.last.Run, s.last.Injected.UTC().Format(time.RFC3339), s.last.Duration.Round(time.Millisecond))
}
