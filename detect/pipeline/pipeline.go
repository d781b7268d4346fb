// Package pipeline is the one place that wires Vigil's engine: the asset
// inventory, the registry of device and group names, the baseline store,
// the network detectors and the detect engine, writing to a sink. vigil
// replay, vigil score, vigil run and vigil demo all build theirs here, so
// a replay judges exactly as the Kafka consumer does; they differ only in
// the source that feeds the engine (files merged in event time, or Kafka
// partitions).
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/inventory"
	"github.com/vigil-ot/vigil/ingest/jsonl"
	"github.com/vigil-ot/vigil/ingest/packet"
)

// Config is what a pipeline is built from: the config sections of the
// stages it wires.
type Config struct {
	Inventory ingest.InventoryConfig
	Telemetry ingest.TelemetryConfig
	Packets   ingest.PacketConfig
	Baseline  baseline.Config
	Detect    detect.Config
	// Drill names drill devices (DevicePrefix), which the inventory puts
	// in drill groups of their own; zero: no drill devices.
	Drill ingest.DrillConfig
}

// Deps are what a pipeline works with besides its config.
type Deps struct {
	Sink   detect.Sink // required; the caller closes it
	Logger *slog.Logger
	// Clock stamps processing time; nil: event time (replay, byte-identical).
	Clock func() time.Time
	// NoNetwork leaves the network detectors out (a consumer without
	// packet topics has no communications to judge).
	NoNetwork bool
	// Trace sees every judged metric value (detect.Deps.Trace).
	Trace func(detect.TracePoint)
	// Rejected sees every row judging refused (detect.Deps.Rejected).
	Rejected func(ingest.RejectedRow)
	// Console, when set, is the operator console: the engine writes to
	// the sink through it and publishes its devices' status to it.
	Console Console
	// Shards is how many engines judge the stream, each the rows of its
	// own groups on a goroutine of its own (Sharded); 0 and 1: one
	// engine (vigil's commands ask for one per core). New uses one engine,
	// whatever Shards says, where shards would not raise one engine's
	// alerts yet: with a Trace (fed by one engine), with Packets, with
	// WholeStore, or when detect.when_full is evict_idle (one engine owns
	// the evictions of the registry's ids). With shards, each publishes
	// the status of its own devices and groups to the Console.
	Shards int
	// Packets: the input may carry packets (captures, packet topics),
	// whose network detectors judge on one engine.
	Packets bool
	// WholeStore: the caller reads or writes Pipeline.Store as the whole
	// learned state (checkpoints, the Kafka changelog and group state).
	WholeStore bool
}

// shards returns how many engines deps asks for and cfg and deps allow.
func (deps *Deps) shards(cfg *Config) int {
	if deps.Trace != nil || deps.Packets || deps.WholeStore || cfg.Detect.WhenFull == detect.WhenFullEvictIdle {
		return 1
	}
	return max(deps.Shards, 1)
}

// Console is the operator console (sinks/console.Console) as the pipeline
// feeds it. Attach returns the sink the engine writes to: sink, seen by
// the console, which also sends its operators' decisions through it;
// assets are the inventory. The engine publishes its status to it at most
// once per PublishInterval, and keeps the last RecentValues judged values
// of each metric of each device for it, at most one per RecentStep of
// event time (detect.Engine.PublishStatus).
type Console interface {
	detect.StatusSink
	Attach(sink detect.Sink, assets ingest.AssetLookup) detect.Sink
	PublishInterval() time.Duration
	RecentValues() int
	RecentStep() time.Duration
}

// Pipeline is a wired engine and what it is built on.
type Pipeline struct {
	Registry  *ingest.Registry
	Inventory *inventory.Inventory
	// Store is the baseline store; with shards, shard 0's (it knows every
	// metric, but holds only its own groups' state).
	Store *baseline.Store
	// Judge is what the source feeds: Engine, or Sharded.
	Judge Judge
	// Engine is the engine; nil with shards.
	Engine *detect.Engine
	// Sharded is the engine shards; nil with one engine.
	Sharded *Sharded
	// Network is the network detectors, nil under Deps.NoNetwork. The
	// engine (shard 0) runs them: read Network.Stats only between
	// batches, on the goroutine that feeds the engine.
	Network *detect.NetworkDetector
}

// New builds a pipeline over cfg.
func New(cfg Config, deps Deps) (*Pipeline, error) {
	if deps.Sink == nil {
		return nil, errors.New("BUG: pipeline.New without a sink")
	}
	inv, err := inventory.Open(cfg.Inventory, deps.Logger)
	if err != nil {
		return nil, fmt.Errorf("cannot open inventory: %w", err)
	}
	inv.SetDrillDevicePrefix(cfg.Drill.DevicePrefix)
	p := &Pipeline{Registry: ingest.NewRegistry(), Inventory: inv}
	p.Store = baseline.NewStore(cfg.Baseline, p.Registry)
	var extra []detect.BatchDetector
	if !deps.NoNetwork {
		// The allowlist lives in the store, so it is checkpointed with it.
		nd, err := detect.NewNetworkDetector(cfg.Detect.Network, p.Registry, p.Store.CommSet(NetworkCommSet, cfg.Detect.Network.Learning))
		if err != nil {
			return nil, fmt.Errorf("cannot set up network detectors: %w", err)
		}
		extra = append(extra, nd)
		p.Network = nd
	}
	sink := deps.Sink
	if deps.Console != nil {
		sink = deps.Console.Attach(sink, inv)
	}
	edeps := detect.Deps{Registry: p.Registry, Baseline: p.Store, Assets: inv, Sink: sink,
		Clock: deps.Clock, Logger: deps.Logger, Extra: extra, Trace: deps.Trace, Rejected: deps.Rejected}
	n := deps.shards(&cfg)
	if n == 1 {
		if p.Engine, err = detect.NewEngine(cfg.Detect, edeps); err != nil {
			return nil, fmt.Errorf("cannot set up detectors: %w", err)
		}
		if deps.Console != nil {
			p.Engine.PublishStatus(deps.Console, deps.Console.PublishInterval(), deps.Console.RecentValues(), deps.Console.RecentStep())
		}
		p.Judge = p.Engine
		return p, nil
	}
	s := &Sharded{sink: sink, clock: deps.Clock, current: make([]*shardJob, n), free: make([][]*detect.ShardOutput, n)}
	if deps.Console != nil {
		s.status = deps.Console
	}
	set := detect.NewShards(n)
	for i := range n {
		if i > 0 { // shard 0's are the pipeline's
			edeps.Baseline, edeps.Extra, edeps.Rejected = baseline.NewStore(cfg.Baseline, p.Registry), nil, nil
		}
		edeps.Clock = s.clockOf(i)
		e, err := detect.NewEngine(cfg.Detect, edeps)
		if err != nil {
			return nil, fmt.Errorf("cannot set up detectors: %w", err)
		}
		e.JoinShards(set, i)
		if deps.Console != nil {
			e.PublishStatus(deps.Console, deps.Console.PublishInterval(), deps.Console.RecentValues(), deps.Console.RecentStep())
		}
		s.engines, s.stores = append(s.engines, e), append(s.stores, edeps.Baseline)
	}
	p.Sharded, p.Judge = s, s
	return p, nil
}

// Shards returns how many engines judge the stream.
func (p *Pipeline) Shards() int {
	if p.Sharded != nil {
		return p.Sharded.Len()
	}
	return 1
}

// GroupInfos returns every group's baseline summary
// (baseline.Store.GroupInfos), with shards each from the store that
// learns it.
func (p *Pipeline) GroupInfos() []baseline.GroupInfo {
	if p.Sharded != nil {
		return p.Sharded.groupInfos()
	}
	return p.Store.GroupInfos()
}

// StoreStats returns the baseline's figures (baseline.Store.Stats), with
// shards those of all their stores. Call it between batches.
func (p *Pipeline) StoreStats() baseline.Stats {
	if p.Sharded != nil {
		return p.Sharded.storeStats()
	}
	return p.Store.Stats()
}

// NetworkCommSet names the baseline store's communication set of the
// network detectors (checkpointed with the store).
const NetworkCommSet = "network"

// Assets returns the inventory as the packet path's address lookup, or nil
// when it lists no asset.
func (p *Pipeline) Assets() packet.AssetsByIP {
	if p.Inventory.Len() == 0 {
		return nil
	}
	return p.Inventory
}

// Files is a replay's input: telemetry files and captures, merged in event
// time.
type Files struct {
	Telemetry *jsonl.Source        // nil without telemetry files
	Captures  *packet.ReplaySource // nil without captures
	Merged    *ingest.TimeMerge
}

// FileOptions say how files are read, beside the config.
type FileOptions struct {
	Speed         float64  // captures at N× their own pace; 0 as fast as possible
	CSVNamesAmong []string // see jsonl.Options.NameCSVAmong
}

// OpenFiles opens telemetry files and captures (already told apart) over
// the pipeline's registry and inventory. The caller closes the result.
func (p *Pipeline) OpenFiles(cfg Config, telemetry, captures []string, opts FileOptions, logger *slog.Logger) (*Files, error) {
	f := &Files{}
	var sources []ingest.Source
	var err error
	if len(telemetry) > 0 {
		if f.Telemetry, err = jsonl.Open(telemetry, jsonl.Options{Telemetry: cfg.Telemetry, Registry: p.Registry, Grouper: p.Inventory,
			Logger: logger, NameCSVAmong: opts.CSVNamesAmong}); err != nil {
			return nil, fmt.Errorf("cannot open telemetry: %w", err)
		}
		sources = append(sources, f.Telemetry)
	}
	if len(captures) > 0 {
		popts := packet.ReplayOptions{Options: packet.Options{Registry: p.Registry, Assets: p.Inventory, Grouper: p.Inventory}, Speed: opts.Speed, Logger: logger}
		if f.Captures, err = packet.OpenReplay(cfg.Packets, popts, captures...); err != nil {
			f.Close()
			return nil, fmt.Errorf("cannot open captures: %w", err)
		}
		sources = append(sources, f.Captures)
	}
	f.Merged = ingest.NewTimeMerge(sources...)
	return f, nil
}

// Close closes the files.
func (f *Files) Close() {
	if f.Telemetry != nil {
		f.Telemetry.Close()
	}
	if f.Captures != nil {
		f.Captures.Close()
	}
}

// Run feeds every batch of src to the engine until src ends, then flushes
// it. It reads src on a goroutine of its own, up to readAhead batches
// ahead of judging, so that reading and decoding the next batches and
// judging this one take a core each; engine shards judge up to readAhead
// batches ahead of delivery (Sharded.JudgeAhead), so that the reader and
// the shards share the cores without waiting for each other at every
// batch. A read error ends the run (the file sources return theirs
// after every row they could read).
// readAhead is how many batches Run's reader may be ahead of judging. A
// capture makes a small batch per 10 s window (a sparse OT day: 8 rows
// each); with one batch of room the reader and the engine waited on each
// other at every window and the replay of the OT day took longer than
// without reading ahead (0.76–0.89 s against 0.63 s); with 8, 0.57 s.
const readAhead = 8

func (p *Pipeline) Run(ctx context.Context, src ingest.Source) (err error) {
	if s := p.Sharded; s != nil {
		s.JudgeAhead(readAhead)
		defer func() {
			s.JudgeAhead(0)
			s.drop(err) // after an error: the batches still judging
		}()
	}
	type read struct {
		b   *ingest.Batch
		err error
	}
	readCtx, cancel := context.WithCancel(ctx)
	reads := make(chan read, readAhead)
	go func() {
		defer close(reads)
		for {
			b, err := src.ReadBatch(readCtx)
			reads <- read{b, err}
			if err != nil {
				return
			}
		}
	}()
	defer func() { // stop reading; release what was read ahead
		cancel()
		for r := range reads {
			if r.b != nil {
				r.b.Release()
			}
		}
	}()
	for r := range reads {
		if r.err == io.EOF {
			break
		}
		if r.err != nil {
			return fmt.Errorf("cannot read input: %w", r.err)
		}
		if err := p.Judge.Process(ctx, r.b); err != nil {
			return fmt.Errorf("cannot write alerts: %w", err)
		}
	}
	if err := p.Judge.Flush(ctx); err != nil {
		return fmt.Errorf("cannot write alerts: %w", err)
	}
	return nil
}
