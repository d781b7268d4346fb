package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/detect/pipeline"
	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/jsonl"
	"github.com/vigil-ot/vigil/ingest/packet"
	"github.com/vigil-ot/vigil/ingest/pcap"
	"github.com/vigil-ot/vigil/sinks"
	"github.com/vigil-ot/vigil/sinks/console"
)

const replayUsage = `usage: vigil replay [flags] FILE...

Replays JSONL telemetry files and pcap/pcapng captures through the baselines
and detectors, in event time, and writes the alerts as JSON lines (one alert or
quarantine event a line) to standard output or --out. At the end a summary goes
to standard error: records read and rejected by reason, alerts by detector and
severity, and for captures the packets by outcome, assets, edges and protocols.

Inputs
  Each FILE's kind is told by its first bytes, not its name: pcap and pcapng
  (plain or gzip-compressed) are captures, anything else is telemetry (plain
  or gzip): a CSV time series when its first line is a CSV header, JSONL
  otherwise; "-" reads JSONL from standard input, and a directory is walked
  for captures. Telemetry lines are native JSON, Telegraf JSON or AWS IoT
  Device Defender reports (input.telemetry.format in the config; auto by
  default); CSV columns are set in input.telemetry.csv. Files of one kind are merged in time order; each file must be in
  time order itself.

Determinism
  Every window, decay and timeout runs on the records' own timestamps, and an
  alert's processing time is its event time, so the same input gives
  byte-identical output. --wallclock stamps alerts with the real clock instead.

Tuning
  Replay a sample with --config, look at the alerts and the summary, change
  the detect section, replay again. --checkpoint saves the learned baseline
  (Arrow IPC) at the end; --restore starts from one, e.g. to judge a day of
  incidents against a baseline learned from a clean week.
  'vigil baseline inspect FILE' prints what a checkpoint learned.

Examples
  vigil replay --config testdata/config/fleet.yaml testdata/fleet/telemetry.jsonl.gz
  vigil replay --out alerts.jsonl --checkpoint base.arrow clean-week/*.jsonl.gz
  vigil replay --restore base.arrow --config plant.yaml capture.pcapng
  vigil replay --sinks --config siem.yaml incident.pcapng     # send to the SIEM as 'vigil run' would

Flags
`

// replayOptions are the flags of `vigil replay`.
type replayOptions struct {
	config      string
	out         string
	progress    bool
	wallclock   bool
	checkpoint  string
	restore     string
	speed       float64
	verbose     bool
	quiet       bool
	sinks       bool
	sinkTimeout time.Duration
	serve       string
	shards      int
	inputs      []string
}

func runReplay(args []string) int { return runFileCommand("replay", args, parseReplayFlags, replay) }

// runFileCommand runs a command that reads files (replay, score): flags
// parsed by parse (exit 0 for --help, 2 for a usage error), then run until
// it ends or SIGINT/SIGTERM; exit 1 when it fails.
func runFileCommand[O any](name string, args []string, parse func([]string, io.Writer) (O, error),
	run func(context.Context, O, io.Writer, io.Writer) error) int {
	opts, err := parse(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, opts, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "vigil %s: %v\n", name, err)
		return 1
	}
	return 0
}

// parseInterleaved parses args with fs, flags allowed before, between and
// after the files, and returns the files.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			return files, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return files, nil
		}
		files = append(files, args[0])
		args = args[1:]
	}
}

// parseReplayFlags parses args; flags may come before, between or after the
// files.
func parseReplayFlags(args []string, stderr io.Writer) (replayOptions, error) {
	var o replayOptions
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.config, "config", "", "YAML config `FILE` (see 'vigil validate'); defaults in code when empty")
	fs.StringVar(&o.out, "out", "", "write alerts to `FILE` instead of standard output (truncated first)")
	fs.BoolVar(&o.progress, "progress", false, "show progress on standard error even when it is not a terminal")
	fs.BoolVar(&o.wallclock, "wallclock", false, "stamp alerts' processing time with the real clock (output is then not reproducible)")
	fs.StringVar(&o.checkpoint, "checkpoint", "", "save the learned baseline to `FILE` (Arrow IPC) at the end")
	fs.StringVar(&o.restore, "restore", "", "start from the baseline checkpoint in `FILE` instead of an empty one")
	fs.Float64Var(&o.speed, "speed", 0, "replay captures at `N`x their own pace; 0 is as fast as possible")
	fs.BoolVar(&o.verbose, "verbose", false, "log at info level (default: warnings only)")
	fs.BoolVar(&o.quiet, "quiet", false, "print no summary")
	fs.DurationVar(&o.sinkTimeout, "sink-timeout", time.Minute, "with --sinks: how long to retry a sink that refuses alerts before the replay fails (vigil run retries until delivered)")
	fs.StringVar(&o.serve, "serve", "", "serve the operator console on `ADDR` (e.g. 127.0.0.1:8080) during the replay and after it, until interrupted")
	fs.IntVar(&o.shards, "shards", runtime.GOMAXPROCS(0), "judge with `N` engines at once, each the rows of its own groups, with the alerts of one (one per core by default; one with captures, --checkpoint or --restore)")
	fs.BoolVar(&o.sinks, "sinks", false, "deliver alerts to the sinks of the config (syslog, Kafka, file, …) instead of standard output; --out still gets a copy")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), replayUsage)
		fs.PrintDefaults()
	}
	var err error
	if o.inputs, err = parseInterleaved(fs, args); err != nil {
		return o, err
	}
	if len(o.inputs) == 0 {
		fmt.Fprintln(stderr, "vigil replay: no input files; name JSONL telemetry files or pcap/pcapng captures (see --help)")
		return o, errors.New("no inputs")
	}
	if o.speed < 0 {
		fmt.Fprintf(stderr, "vigil replay: --speed %g is negative; use 0 (as fast as possible) or more\n", o.speed)
		return o, errors.New("bad speed")
	}
	return o, nil
}

// replay runs a whole replay: alerts to stdout (or opts.out), progress,
// warnings and the summary to stderr.
func replay(ctx context.Context, opts replayOptions, stdout, stderr io.Writer) (runErr error) {
	started := time.Now()
	// The progress ticker and the logger write to stderr from two goroutines.
	stderr = &lockedWriter{w: stderr}
	level := slog.LevelWarn
	if opts.verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	cfg := DefaultConfig()
	if opts.config != "" {
		var err error
		if cfg, err = LoadConfig(opts.config); err != nil {
			return err
		}
	} else if err := cfg.Validate(); err != nil {
		return fmt.Errorf("BUG: default config invalid: %w", err)
	}

	var (
		w       io.Writer = stdout
		outFile *os.File
		err     error
	)
	if opts.out != "" {
		if outFile, err = os.Create(opts.out); err != nil {
			return fmt.Errorf("cannot create --out file: %w", err)
		}
		defer outFile.Close() // on early returns; closed and checked below
		w = outFile
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	var sink detect.Sink = sinks.NewWriterSink("replay", bw, sinks.FormatJSON)
	var bounded *boundedSink
	if opts.sinks {
		// The config's sinks (syslog, Kafka, files) replace standard
		// output, so a replay can feed a SIEM; --out still gets a copy.
		configured, err := sinks.Build(cfg.Sinks, logger)
		if err != nil {
			return fmt.Errorf("cannot set up the config's sinks: %w", err)
		}
		if opts.out != "" {
			sink = sinks.NewFanout(configured, sink)
		} else {
			sink = configured
		}
		bounded = &boundedSink{Sink: sink, timeout: opts.sinkTimeout}
		sink = bounded
	}
	defer sink.Close()

	setup := replaySetup{restore: opts.restore, wallclock: opts.wallclock, speed: opts.speed,
		shards: opts.shards, wholeStore: opts.checkpoint != "" || opts.restore != ""}
	var srv *console.Server
	if opts.serve != "" {
		if setup.console, srv, err = serveConsole(cfg.Console, opts.serve, logger); err != nil {
			return err
		}
		defer setup.console.Close() // after the listener (defers run last first)
		defer srv.Close()
		fmt.Fprintf(stderr, "console: http://%s/\n", srv.Addr())
	}
	job, err := openReplay(cfg, opts.inputs, sink, logger, setup)
	if err != nil {
		return err
	}
	defer job.close()
	stopProgress := func() {}
	if opts.progress || isTerminal(stderr) {
		stopProgress = startProgress(stderr, job.Telemetry, job.Captures)
	}
	runErr = job.run(ctx)
	stopProgress()
	if bounded != nil && bounded.undelivered > 0 {
		runErr = fmt.Errorf("%d alerts and quarantine events were not delivered to the sinks (--sink-timeout %s): %w",
			bounded.undelivered, opts.sinkTimeout, bounded.err)
	}
	// What was judged before an interruption or failure is still written.
	if err := bw.Flush(); err != nil && runErr == nil {
		runErr = fmt.Errorf("cannot write alerts: %w", err)
	}
	if runErr == nil && opts.checkpoint != "" {
		runErr = job.checkpoint(opts.checkpoint)
	}
	defer func() {
		// The console's decisions after the replay went to the sink too.
		if err := bw.Flush(); err != nil && runErr == nil {
			runErr = fmt.Errorf("cannot write alerts: %w", err)
		}
		if outFile != nil {
			if err := outFile.Close(); err != nil && runErr == nil {
				runErr = fmt.Errorf("cannot write alerts to %s: %w", opts.out, err)
			}
		}
	}()
	if !opts.quiet {
		for _, w := range cfg.Detect.UnseenMetrics(job.Store.HasMetric) {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
		if runErr != nil {
			fmt.Fprintf(stderr, "replay stopped early: %v; the summary and alerts cover the input read so far\n", runErr)
		}
		var ns detect.NetworkStats
		if job.Network != nil {
			ns = job.Network.Stats()
		}
		writeSummary(stderr, time.Since(started), job.Merged, job.Telemetry, job.Captures, job.Judge.Stats(), ns, job.Pipeline)
	}
	if srv != nil && ctx.Err() == nil {
		fmt.Fprintf(stderr, "console: http://%s/ shows what the replay learned; Ctrl-C to stop\n", srv.Addr())
		<-ctx.Done()
	}
	return runErr
}

// boundedSink gives each Write of a replay at most timeout: a replay has an
// end, so a sink that stays down fails it with the count of what was not
// delivered instead of blocking it forever (vigil run keeps its
// backpressure instead).
type boundedSink struct {
	detect.Sink
	timeout     time.Duration
	undelivered int   // items of the first Write that failed
	err         error // its error
}

func (b *boundedSink) Write(ctx context.Context, out *detect.Output) error {
	wctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	err := b.Sink.Write(wctx, out)
	if err != nil && b.err == nil {
		b.undelivered, b.err = out.Len(), err
	}
	return err
}

// replaySetup is how a replay job starts, beside its config and inputs.
type replaySetup struct {
	restore   string  // a baseline checkpoint to start from; "" for none
	wallclock bool    // stamp processing time with the real clock
	speed     float64 // captures at N× their pace; 0 as fast as possible
	// csvNamesAmong names CSV files' devices as among these paths (see
	// jsonl.Options.NameCSVAmong); nil: among the inputs.
	csvNamesAmong []string
	// trace, when set, sees each judged metric value with the self band
	// it was judged against (vigil score plots it).
	trace func(detect.TracePoint)
	// rejected, when set, sees each row judging refused (vigil score
	// scores clock incidents with them).
	rejected func(ingest.RejectedRow)
	console  *console.Console // the operator console, or nil
	// shards and wholeStore are pipeline.Deps'.
	shards     int
	wholeStore bool
}

// replayJob is one replay: inputs opened in event-time order and the
// pipeline that judges them, writing to a sink. vigil replay and vigil
// score both run one, so a score is of exactly what replay would have
// raised.
type replayJob struct {
	*pipeline.Pipeline
	*pipeline.Files
}

// openReplay opens inputs (telemetry files and captures, told apart by
// their first bytes) and builds the pipeline over cfg writing to sink. The
// caller closes the job, and the sink.
func openReplay(cfg Config, inputs []string, sink detect.Sink, logger *slog.Logger, setup replaySetup) (*replayJob, error) {
	telemetryFiles, captureFiles, err := classifyInputs(inputs)
	if err != nil {
		return nil, err
	}
	deps := pipeline.Deps{Sink: sink, Logger: logger, Trace: setup.trace, Rejected: setup.rejected,
		Shards: setup.shards, Packets: len(captureFiles) > 0, WholeStore: setup.wholeStore}
	if setup.console != nil {
		deps.Console = setup.console
	}
	if setup.wallclock {
		deps.Clock = time.Now
	}
	p, err := pipeline.New(cfg.pipeline(), deps)
	if err != nil {
		return nil, err
	}
	if setup.restore != "" {
		if err := restoreBaseline(p.Store, setup.restore); err != nil {
			return nil, err
		}
	}
	files, err := p.OpenFiles(cfg.pipeline(), telemetryFiles, captureFiles,
		pipeline.FileOptions{Speed: setup.speed, CSVNamesAmong: setup.csvNamesAmong}, logger)
	if err != nil {
		return nil, err
	}
	return &replayJob{Pipeline: p, Files: files}, nil
}

// run feeds every batch to the engine until the inputs end.
func (j *replayJob) run(ctx context.Context) error { return j.Run(ctx, j.Merged) }

// checkpoint saves the learned baseline to path, with the input positions
// it covers.
func (j *replayJob) checkpoint(path string) error {
	positions := map[string]int64{}
	if j.Telemetry != nil {
		positions["replay:telemetry_records"] = j.Telemetry.Stats().Records
	}
	if j.Captures != nil {
		positions["replay:packets"] = j.Captures.Progress().Packets
	}
	return saveCheckpoint(j.Store, path, positions)
}

func (j *replayJob) close() {
	j.Merged.Close()
	j.Files.Close()
}

// classifyInputs sorts paths into telemetry files and captures by their
// first bytes, and fails for an input that cannot be replayed (see
// checkInput), naming it.
func classifyInputs(paths []string) (telemetry, captures []string, err error) {
	for _, p := range paths {
		if p == jsonl.Stdin {
			telemetry = append(telemetry, p)
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, nil, fmt.Errorf("cannot read input: %w", err)
		}
		if st.IsDir() {
			captures = append(captures, p)
			continue
		}
		isCap, err := isCapture(p)
		if err != nil {
			return nil, nil, err
		}
		if err := checkInput(p, isCap); err != nil {
			return nil, nil, err
		}
		if isCap {
			captures = append(captures, p)
		} else {
			telemetry = append(telemetry, p)
		}
	}
	return telemetry, captures, nil
}

// isCapture tells a pcap or pcapng file, plain or gzip, by its magic
// number.
func isCapture(path string) (bool, error) {
	head, err := readHead(path, 4)
	if err != nil {
		return false, err
	}
	_, ok := pcap.Sniff(head)
	return ok, nil
}

func restoreBaseline(store *baseline.Store, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot restore baseline: %w", err)
	}
	defer f.Close()
	if _, err := store.Restore(bufio.NewReader(f)); err != nil {
		return fmt.Errorf("cannot restore baseline from %s: %w; it must be written by 'vigil replay --checkpoint' with the same baseline.half_lives", path, err)
	}
	return nil
}

// saveCheckpoint writes the checkpoint next to path and renames it, so a
// failed write never leaves a truncated checkpoint behind.
func saveCheckpoint(store *baseline.Store, path string, positions map[string]int64) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("cannot save checkpoint: %w", err)
	}
	bw := bufio.NewWriter(tmp)
	err = store.Checkpoint(bw, positions)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cannot save checkpoint %s: %w", path, err)
	}
	return nil
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func isTerminal(w io.Writer) bool {
	if l, ok := w.(*lockedWriter); ok {
		w = l.w
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressEvery is how often progress is printed; tests shorten it.
var progressEvery = 500 * time.Millisecond

// startProgress prints how far the replay has got, by bytes read, every
// progressEvery until the returned function is called.
func startProgress(w io.Writer, tel *jsonl.Source, caps *packet.ReplaySource) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(progressEvery)
		defer tick.Stop()
		start := time.Now()
		for {
			select {
			case <-done:
				fmt.Fprint(w, "\r\033[K")
				return
			case <-tick.C:
			}
			var read, total, records int64
			if tel != nil {
				st := tel.Stats()
				read, total, records = read+st.BytesRead, total+st.BytesTotal, records+st.Records
			}
			if caps != nil {
				p := caps.Progress()
				read, total, records = read+p.BytesRead, total+p.TotalBytes, records+p.Packets
			}
			fmt.Fprintf(w, "\r\033[K%s", progressLine(read, total, records, time.Since(start)))
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

func progressLine(read, total, records int64, elapsed time.Duration) string {
	rate := float64(records) / max(elapsed.Seconds(), 1e-3)
	if total <= 0 {
		return fmt.Sprintf("replay: %s read, %d records (%.0f/s)", byteSize(read), records, rate)
	}
	frac := min(float64(read)/float64(total), 1)
	const width = 30
	n := int(frac * width)
	return fmt.Sprintf("replay: [%s%s] %3.0f%% %s/%s, %d records (%.0f/s)",
		strings.Repeat("#", n), strings.Repeat(".", width-n), 100*frac, byteSize(read), byteSize(total), records, rate)
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// writeSummary prints what the replay read and raised.
func writeSummary(w io.Writer, elapsed time.Duration, m *ingest.TimeMerge, tel *jsonl.Source, caps *packet.ReplaySource, es detect.Stats, ns detect.NetworkStats, p *pipeline.Pipeline) {
	store := p.Store
	fmt.Fprintf(w, "replay finished in %s", elapsed.Round(time.Millisecond))
	if from, to := m.Span(); to > 0 {
		first, last := time.Unix(0, from).UTC(), time.Unix(0, to).UTC()
		fmt.Fprintf(w, "; event time %s to %s (%s)", first.Format(time.RFC3339), last.Format(time.RFC3339), last.Sub(first).Round(time.Second))
	}
	fmt.Fprintln(w)
	if tel != nil {
		st := tel.Stats()
		fmt.Fprintf(w, "telemetry: %d file(s), %d lines, %d records (%.0f records/s), %d rejected\n",
			st.Files, st.Lines, st.Records, float64(st.Records)/max(elapsed.Seconds(), 1e-3), st.Rejected)
		for _, k := range sortedKeys(st.Rejects) {
			if st.Rejects[k] > 0 {
				fmt.Fprintf(w, "  rejected %-24s %d\n", k, st.Rejects[k])
			}
		}
		if st.BadCells > 0 {
			fmt.Fprintf(w, "  CSV cells that are not numbers (left empty) %d\n", st.BadCells)
		}
	}
	if caps != nil {
		s := caps.Summary()
		fmt.Fprintf(w, "captures: %d file(s), %d packets, %s: %d decoded, %d unknown protocol, %d malformed, %d skipped link type\n",
			len(s.Files), s.Packets, byteSize(s.Bytes), s.Decoded, s.UnknownProtocol, s.Malformed, s.SkippedLinkType)
		for _, lt := range sortedKeys(s.SkippedLinkTypes) {
			fmt.Fprintf(w, "  skipped link type %d: %d packets\n", lt, s.SkippedLinkTypes[lt])
		}
		for _, wa := range s.Warnings {
			fmt.Fprintf(w, "  warning: %s\n", wa)
		}
		writeCaptureRefusals(w, &s.Stats)
		inInv := 0
		for _, a := range s.Assets {
			if a.InInventory {
				inInv++
			}
		}
		fmt.Fprintf(w, "  assets %d (%d in the inventory), edges %d\n", len(s.Assets), inInv, len(s.Edges))
		for _, p := range s.Protocols {
			fmt.Fprintf(w, "  protocol %-12s %d packets, %d PDUs\n", p.Name, p.Packets, p.PDUs)
		}
	}
	var alarms int64
	for _, n := range es.Alerts {
		alarms += n
	}
	fmt.Fprintf(w, "rows judged: %d (%d not learned: device in alarm or row breached), engine shards: %d\n", es.Rows, es.NotLearned, p.Shards())
	if es.ShardMoves > 0 {
		fmt.Fprintf(w, "  shards: devices moved %d times to a group of another shard, where they started afresh: the alerts may differ from one engine's (--shards 1)\n", es.ShardMoves)
	}
	if es.FutureRows+es.UnclockedRows+es.LateRows > 0 {
		fmt.Fprintf(w, "  clock: %d rows rejected (%d ahead of the stream by more than clock.max_skew, %d before the stream had a clock), %d rows later than clock.max_lateness judged but not learned\n",
			es.FutureRows+es.UnclockedRows, es.FutureRows, es.UnclockedRows, es.LateRows)
	}
	if es.DeviceCapRows > 0 {
		fmt.Fprintf(w, "  devices: %d rows of new devices refused past detect.max_devices (not judged, not learned)\n", es.DeviceCapRows)
	}
	if es.DevicesEvicted > 0 {
		fmt.Fprintf(w, "  devices: %d evicted past detect.max_devices to make room for new ones (the longest idle; detect.when_full evict_idle)\n", es.DevicesEvicted)
	}
	fmt.Fprintf(w, "alerts: %d alarms, %d cleared", alarms, es.Cleared)
	if es.Suppressed+es.Maintenance+es.RateLimited+es.Folded > 0 {
		fmt.Fprintf(w, "; not sent: %d suppressed, %d in maintenance, %d rate-limited, %d repeats folded",
			es.Suppressed, es.Maintenance, es.RateLimited, es.Folded)
	}
	fmt.Fprintln(w)
	if alarms > 0 {
		fmt.Fprint(w, "  by detector:")
		for _, d := range sortedKeys(es.Alerts) {
			fmt.Fprintf(w, " %s %d", d, es.Alerts[d])
		}
		fmt.Fprint(w, "\n  by severity:")
		var bySev = map[string]int64{}
		for sev, n := range es.Severity {
			bySev[detect.SeverityName(sev)] += n
		}
		for _, name := range []string{"critical", "high", "medium", "low"} {
			fmt.Fprintf(w, " %s %d", name, bySev[name])
		}
		fmt.Fprintln(w)
	}
	if len(es.Quarantine) > 0 {
		fmt.Fprint(w, "  quarantine events:")
		for _, k := range sortedKeys(es.Quarantine) {
			fmt.Fprintf(w, " %s %d", k, es.Quarantine[k])
		}
		fmt.Fprintln(w)
	}
	if es.BadBatches+es.BadSetMembers > 0 {
		fmt.Fprintf(w, "  bad batches %d, unparsable set members %d\n", es.BadBatches, es.BadSetMembers)
	}
	var learning int
	groups := p.GroupInfos()
	for _, g := range groups {
		if g.Learning {
			learning++
		}
	}
	bs := p.StoreStats()
	fmt.Fprintf(w, "baseline: version %d, %d devices, %d groups (%d still learning)\n", bs.Version, bs.Devices, len(groups), learning)
	if _, to := m.Span(); to > 0 {
		// as of the newest time known: a restored baseline may be newer
		// than an input replayed onto it
		writeNetworkLearning(w, store, max(to, store.LastEventTime()))
	}
	writeNetworkStats(w, ns)
}

// writeCaptureRefusals says what the packet path did not keep or did not
// report, when anything: the bounded tables' refusals and evictions, and
// the capture clock's outliers and jumps (a warning above shows the first
// outlier; these are the counts).
func writeCaptureRefusals(w io.Writer, st *packet.Stats) {
	writeCounts(w, "  not kept: ", []countOf{
		{st.HalfOpenFlows, "half-open TCP flow", "half-open TCP flows"},
		{st.NonAssetHostsEvicted, "host that never proved it exists evicted", "hosts that never proved they exist evicted"},
		{st.ScanStatesEvicted, "scan state evicted", "scan states evicted"},
		{st.ScanSketchesRefused, "scan sketch refused (count left exact)", "scan sketches refused (counts left exact)"},
		{st.ProbesUntracked, "probe not checked for an answer", "probes not checked for an answer"},
		{st.ARPBindingsEvicted, "ARP binding evicted", "ARP bindings evicted"},
		{st.CommsDropped, "communication not reported (batch full)", "communications not reported (batch full)"},
		{st.EventsDropped, "finding not reported (batch full)", "findings not reported (batch full)"},
		{st.SetMembersDropped, "set member not reported (batch full)", "set members not reported (batch full)"},
	})
	writeCounts(w, "  capture clock: ", []countOf{
		{st.TimeOutliers, "time outlier (counted at the packet before it)", "time outliers (each counted at the packet before it)"},
		{st.TimeJumps, "jump taken as a gap in the capture", "jumps taken as gaps in the capture"},
	})
}

// writeNetworkStats says what the network detectors folded into incidents
// and what their tables refused, when anything.
func writeNetworkStats(w io.Writer, st detect.NetworkStats) {
	var parts []string
	if st.FloodIncidents+st.FoldedSources > 0 {
		parts = append(parts, fmt.Sprintf("%s folding %s (%d of groups never seen, not learned)",
			count(st.FloodIncidents, "flood incident", "flood incidents"), count(st.FoldedSources, "new source", "new sources"), st.FoldedUnlearned))
	}
	if st.ScanQuiet > 0 {
		parts = append(parts, count(st.ScanQuiet, "novelty alert of a scanner", "novelty alerts of scanners")+" left to the scan alarm")
	}
	if st.ScannersRefused+st.NamesRefused > 0 {
		parts = append(parts, fmt.Sprintf("tables full: %s not remembered (novelty alerts sent one by one), %s not remembered (flood targets named by address)",
			count(st.ScannersRefused, "scanner", "scanners"), count(st.NamesRefused, "host name", "host names")))
	}
	if len(parts) > 0 {
		fmt.Fprintf(w, "network detectors: %s\n", strings.Join(parts, "; "))
	}
}

// countOf is a count and its noun, singular and plural.
type countOf struct {
	n         int64
	one, many string
}

// writeCounts writes the non-zero counts after prefix on one line, or
// nothing when all are zero.
func writeCounts(w io.Writer, prefix string, counts []countOf) {
	var parts []string
	for _, c := range counts {
		if c.n != 0 {
			parts = append(parts, count(c.n, c.one, c.many))
		}
	}
	if len(parts) > 0 {
		fmt.Fprintf(w, "%s%s\n", prefix, strings.Join(parts, ", "))
	}
}

func count(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// writeNetworkLearning says which groups' communications are learned and
// which are still learning (until when, in event time), and how many
// communications older than a restored baseline were judged, not learned.
func writeNetworkLearning(w io.Writer, store *baseline.Store, now int64) {
	cs := store.LookupCommSet(pipeline.NetworkCommSet)
	if cs == nil || cs.Started() == 0 {
		return
	}
	still := cs.LearningUntil(now)
	fmt.Fprintf(w, "network: %d groups' communications learned, %d still learning", cs.Started()-len(still), len(still))
	for i, g := range still {
		if i == 5 {
			fmt.Fprintf(w, ", … %d more", len(still)-i)
			break
		}
		until := "until set to protect"
		if g.Until != math.MaxInt64 {
			until = "until " + time.Unix(0, g.Until).UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "; %s %s", store.Registry().GroupName(g.Group), until)
	}
	fmt.Fprintln(w)
	if n := cs.Stale(); n > 0 {
		fmt.Fprintf(w, "  warning: %d communications older than the restored baseline were judged but not learned: is the input older than the checkpoint?\n", n)
	}
}

func sortedKeys[K string | uint16, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}

// runBaseline is `vigil baseline inspect FILE`.
func runBaseline(args []string) int {
	if len(args) != 2 || args[0] != "inspect" {
		fmt.Fprint(os.Stderr, `usage: vigil baseline inspect FILE

Prints a baseline checkpoint (written by 'vigil replay --checkpoint' or by
baseline.checkpoint_path): its version, the input positions it covers, and per
group the learning state, span, devices and per metric the sample count, mean,
spread and percentiles.
`)
		if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return 0
		}
		return 2
	}
	out := bufio.NewWriter(os.Stdout)
	err := inspectBaseline(out, args[1])
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "vigil baseline inspect: %v\n", err)
		return 1
	}
	return 0
}

// inspectBaseline prints the checkpoint at path to w.
func inspectBaseline(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot open checkpoint: %w", err)
	}
	defer f.Close()
	if err := baseline.Inspect(w, bufio.NewReader(f)); err != nil {
		return fmt.Errorf("cannot read checkpoint %s: %w; it must be written by 'vigil replay --checkpoint' or baseline.checkpoint_path", path, err)
	}
	return nil
}
