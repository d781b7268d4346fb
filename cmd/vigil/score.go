package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/detect/score"
	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/jsonl"
	"github.com/vigil-ot/vigil/ingest/pcap"
)

const scoreUsage = `usage: vigil score [flags] INPUT...

Replays INPUT exactly as 'vigil replay' does (or reads the alerts of an
earlier replay with --alerts) and scores the alerts against labels, so a
detection change is judged by numbers, not by eye.

Labels
  --labels FILE     incidents: CSV with a header holding device,start,end (and
                    optionally id, kind, detector, behavior, note; RFC 3339
                    times; device "*" for any device, "group:KEY" for a group),
                    or a JSON array of the same objects; or packet labels for
                    a capture: "index;label" or "index,label" lines, 1-based,
                    turned into attack episodes (runs of attack packets).
  --rows COLUMN     row labels: the CSV input's column marking anomalous rows
                    (e.g. anomaly); a row is predicted anomalous while one of
                    its device's alarms is open.
  --changepoints COLUMN
                    the CSV input's column marking where anomalies start or
                    end (e.g. changepoint), for SKAB's changepoint score.

Views
  incidents   each incident detected or missed, by which detector, and the
              time to detect; false alarms (alarms outside every incident
              window widened by --slack) by device, detector and behavior,
              and per device-day
  rows        precision, recall, F1, false-alarm rate (FAR), missed-alarm
              rate (MAR)
  windows     NAB's score (standard, reward low FP, reward low FN; 0 is a
              detector that never alarms, 100 a perfect one) and SKAB's
              changepoint variant of it

Tuning
  --sweep KEY=V1,V2,… replays once per value of a config key (repeatable: every
  combination) in parallel and prints one table with a column per variant;
  replay is deterministic, so the comparison is exact.

Examples
  vigil score --config testdata/config/fleet.yaml --labels testdata/fleet/labels.csv testdata/fleet/telemetry.jsonl.gz
  vigil score --rows anomaly --changepoints changepoint --learn 400 skab/valve1/*.csv
  vigil score --rows anomaly --learn 400 --sweep detect.self.threshold=3,4,5 skab/*/*.csv
  vigil score --labels attack.labels --html report.html attack.pcap

Flags
`

// scoreOptions are the flags of vigil score.
type scoreOptions struct {
	config       string
	labels       string
	alerts       string
	rows         string
	changepoints string
	learn        string
	slack        time.Duration
	sweeps       []string
	json         bool
	html         string
	verbose      bool
	eachFile     bool
	inputs       []string
}

func runScore(args []string) int { return runFileCommand("score", args, parseScoreFlags, runScoring) }

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func parseScoreFlags(args []string, stderr io.Writer) (scoreOptions, error) {
	var o scoreOptions
	fs := flag.NewFlagSet("score", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.config, "config", "", "YAML config `FILE` the replay runs with; defaults in code when empty")
	fs.StringVar(&o.labels, "labels", "", "incident labels (CSV or JSON) or packet labels `FILE`")
	fs.StringVar(&o.alerts, "alerts", "", "score the alerts in `FILE` (JSON lines of 'vigil replay') instead of replaying")
	fs.StringVar(&o.rows, "rows", "", "`COLUMN` of the CSV inputs that marks anomalous rows (row view, NAB windows)")
	fs.StringVar(&o.changepoints, "changepoints", "", "`COLUMN` of the CSV inputs that marks changepoints (SKAB's changepoint score)")
	fs.StringVar(&o.learn, "learn", "", "part of the input not scored, as it is learning: a `DURATION` of event time from the input's first record (2h; devices first seen later are scored at once), or per device a FRACTION of its span (15%) or a row count (400)")
	fs.DurationVar(&o.slack, "slack", 0, "widen each incident window by `DURATION` on both sides when matching alarms")
	fs.Var((*listFlag)(&o.sweeps), "sweep", "`KEY=V1,V2,…`: score once per value of a config key (repeatable)")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON instead of tables")
	fs.StringVar(&o.html, "html", "", "also write a self-contained HTML report with plots of the misses and top false alarms to `FILE`")
	fs.BoolVar(&o.eachFile, "each-file", false, "replay every input on its own, from an empty baseline, and pool the scores (independent files, as in SKAB and NAB)")
	fs.BoolVar(&o.verbose, "verbose", false, "log the replay at info level (default: warnings only)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), scoreUsage)
		fs.PrintDefaults()
	}
	var err error
	if o.inputs, err = parseInterleaved(fs, args); err != nil {
		return o, err
	}
	fail := func(msg string) (scoreOptions, error) {
		fmt.Fprintf(stderr, "vigil score: %s (see --help)\n", msg)
		return o, errors.New(msg)
	}
	switch {
	case o.labels == "" && o.rows == "" && o.changepoints == "":
		return fail("nothing to score against: give --labels FILE, or --rows COLUMN / --changepoints COLUMN for labelled CSV inputs")
	case len(o.inputs) == 0 && o.alerts == "":
		return fail("no inputs: name the files 'vigil replay' would read")
	case o.alerts != "" && len(o.sweeps) > 0:
		return fail("--sweep replays the inputs and cannot score a fixed --alerts file")
	}
	if _, err := parseLearn(o.learn); err != nil {
		return fail(err.Error())
	}
	return o, nil
}

// learnSpec is --learn: the first part of each device's input that is
// learning and not scored.
type learnSpec struct {
	d        time.Duration
	fraction float64
	rows     int
}

func parseLearn(s string) (learnSpec, error) {
	switch {
	case s == "":
		return learnSpec{}, nil
	case strings.HasSuffix(s, "%"):
		f, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil || f < 0 || f >= 100 {
			return learnSpec{}, fmt.Errorf("cannot parse --learn %q: a fraction is 0%% to under 100%%, such as 15%%", s)
		}
		return learnSpec{fraction: f / 100}, nil
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return learnSpec{rows: n}, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return learnSpec{d: d}, nil
	}
	return learnSpec{}, fmt.Errorf("cannot parse --learn %q: give a duration (2h), a fraction (15%%) or a row count (400)", s)
}

// until returns the end of the learning part of rows, the sorted event
// times (Unix ns) of one device's rows: the time of the first scored row.
func (l learnSpec) until(rows []int64) int64 {
	if len(rows) == 0 {
		return 0
	}
	switch {
	case l.rows > 0:
		if l.rows >= len(rows) {
			return rows[len(rows)-1] + 1
		}
		return rows[l.rows]
	case l.fraction > 0:
		return rows[0] + int64(l.fraction*float64(rows[len(rows)-1]-rows[0]))
	}
	return rows[0]
}

// timeline is when each device reported: the distinct event times of its
// rows, in order, and its group. A replay's trace fills it.
type timeline struct {
	times map[string][]int64
	group map[string]string
}

func newTimeline() *timeline {
	return &timeline{times: map[string][]int64{}, group: map[string]string{}}
}

func (tl *timeline) add(p detect.TracePoint) {
	ts := tl.times[p.Device]
	if n := len(ts); n == 0 || ts[n-1] != p.Time {
		tl.times[p.Device] = append(ts, p.Time)
	}
	if p.Group != "" {
		tl.group[p.Device] = p.Group
	}
}

// merge adds the devices of o, a replay of other inputs.
func (tl *timeline) merge(o *timeline) {
	for d, ts := range o.times {
		tl.times[d] = append(tl.times[d], ts...)
	}
	for d, g := range o.group {
		tl.group[d] = g
	}
}

func (tl *timeline) hasDevice(d string) bool { _, ok := tl.times[d]; return ok }

func (tl *timeline) hasGroup(g string) bool {
	for _, x := range tl.group {
		if x == g {
			return true
		}
	}
	return false
}

// options returns the scorer's options for this timeline: each device's
// learning end by learn (a group's is its devices' earliest, for fleet
// alarms), and the device count and scored span for the false-alarm rate.
func (tl *timeline) options(learn learnSpec, slack time.Duration) score.Options {
	// A duration of learning counts from the input's first event, for
	// every device: a host first seen afterwards (an attacker, a new PLC)
	// is judged at once, as the detectors judge it.
	start, seen := int64(0), false
	for _, ts := range tl.times {
		if !seen || ts[0] < start {
			start, seen = ts[0], true
		}
	}
	until := map[string]time.Time{}
	var from, to int64
	for d, ts := range tl.times {
		u := learn.until(ts)
		if learn.d > 0 {
			u = start + int64(learn.d)
		}
		until[d] = time.Unix(0, u).UTC()
		if g, ok := tl.group[d]; ok {
			if cur, ok := until[g]; !ok || time.Unix(0, u).Before(cur) {
				if _, isDevice := tl.times[g]; !isDevice {
					until[g] = time.Unix(0, u).UTC()
				}
			}
		}
		if from == 0 || u < from {
			from = u
		}
		to = max(to, ts[len(ts)-1])
	}
	o := score.Options{Slack: slack, Devices: len(tl.times), LearnUntil: func(d string) time.Time { return until[d] }}
	if to > from {
		o.Span = time.Duration(to - from)
	}
	return o
}

// collectSink keeps every alert a replay raises.
type collectSink struct{ alerts []detect.Alert }

func (c *collectSink) Write(_ context.Context, out *detect.Output) error {
	c.alerts = append(c.alerts, out.Alerts...)
	return nil
}

func (c *collectSink) Close() error { return nil }

// replayed is what one variant's replay raised and saw.
type replayed struct {
	alerts []detect.Alert
	rows   *timeline
}

// replayForScore runs one replay of inputs under cfg and keeps its alerts
// and each device's row times. CSV devices are named as among the paths of
// among, so that inputs replayed one at a time are named as together.
func replayForScore(ctx context.Context, cfg Config, inputs, among []string, logger *slog.Logger, trace func(detect.TracePoint)) (replayed, error) {
	sink := &collectSink{}
	r := replayed{rows: newTimeline()}
	var rejected []ingest.RejectedRow
	setup := replaySetup{csvNamesAmong: among, trace: func(p detect.TracePoint) {
		r.rows.add(p)
		if trace != nil {
			trace(p)
		}
	}, rejected: func(row ingest.RejectedRow) { rejected = append(rejected, row) }}
	job, err := openReplay(cfg, inputs, sink, logger, setup)
	if err != nil {
		return r, err
	}
	defer job.close()
	if err := job.run(ctx); err != nil {
		return r, err
	}
	r.alerts = append(sink.alerts, score.RejectionAlerts(rejected)...)
	return r, nil
}

// replayVariants replays every variant, as many at once as there are
// cores, and returns their results in the variants' order. With eachFile,
// every input is a stream of its own: replayed alone from an empty
// baseline, its alerts and rows pooled with the others' (the protocol of
// benchmarks made of independent files, such as SKAB and NAB).
func replayVariants(ctx context.Context, variants []variant, inputs []string, eachFile bool, logger *slog.Logger) ([]replayed, error) {
	groups := inputGroups(inputs, eachFile)
	parts := make([][]replayed, len(variants))
	errs := make([]error, len(variants)*len(groups))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i := range variants {
		parts[i] = make([]replayed, len(groups))
		for k := range groups {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				var err error
				parts[i][k], err = replayForScore(ctx, variants[i].cfg, groups[k], inputs, logger, nil)
				if err != nil && len(variants) > 1 {
					err = fmt.Errorf("variant %s: %w", variants[i].name, err)
				}
				errs[i*len(groups)+k] = err
			}()
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := make([]replayed, len(variants))
	for i, ps := range parts {
		out[i] = replayed{rows: newTimeline()}
		for _, p := range ps {
			out[i].alerts = append(out[i].alerts, p.alerts...)
			out[i].rows.merge(p.rows)
		}
	}
	return out, nil
}

// inputGroups returns the inputs replayed together: all of them, or with
// eachFile one at a time.
func inputGroups(inputs []string, eachFile bool) [][]string {
	if !eachFile {
		return [][]string{inputs}
	}
	groups := make([][]string, len(inputs))
	for i, in := range inputs {
		groups[i] = []string{in}
	}
	return groups
}

// replayPlotted replays the inputs once more as the scored replay did,
// with trace seeing every judged value.
func replayPlotted(ctx context.Context, cfg Config, opts scoreOptions, logger *slog.Logger, trace func(detect.TracePoint)) error {
	for _, g := range inputGroups(opts.inputs, opts.eachFile) {
		if _, err := replayForScore(ctx, cfg, g, opts.inputs, logger, trace); err != nil {
			return err
		}
	}
	return nil
}

// runScoring runs vigil score: labels read, variants replayed, each scored,
// the report printed (and the HTML page written).
func runScoring(ctx context.Context, opts scoreOptions, stdout, stderr io.Writer) error {
	level := slog.LevelWarn
	if opts.verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: stderr}, &slog.HandlerOptions{Level: level}))
	learn, _ := parseLearn(opts.learn) // checked with the flags
	variants, err := sweepVariants(opts.config, opts.sweeps)
	if err != nil {
		return err
	}
	base := variants[0].cfg
	telemetryFiles, captureFiles, err := classifyInputs(opts.inputs)
	if err != nil {
		return err
	}
	rows, err := readRowLabels(telemetryFiles, base, opts.rows, opts.changepoints)
	if err != nil {
		return err
	}

	var results []replayed
	if opts.alerts != "" {
		alerts, err := readAlertsFile(opts.alerts)
		if err != nil {
			return err
		}
		// Without a replay, the row labels tell when each device reported;
		// failing those, the alerts do (the false-alarm rate and NAB's
		// window length are then only as good as that).
		r := replayed{alerts: alerts, rows: newTimeline()}
		for _, row := range rows {
			r.rows.add(detect.TracePoint{Device: row.Device, Time: row.Time.UnixNano()})
		}
		if len(rows) == 0 {
			sorted := slices.Clone(alerts)
			slices.SortStableFunc(sorted, func(a, b detect.Alert) int { return a.EventTime.Compare(b.EventTime) })
			for _, a := range sorted {
				r.rows.add(detect.TracePoint{Device: a.Device, Group: a.Group, Time: a.EventTime.UnixNano()})
			}
		}
		results = []replayed{r}
	} else if results, err = replayVariants(ctx, variants, opts.inputs, opts.eachFile, logger); err != nil {
		return err
	}

	var incidents []score.Incident
	if opts.labels != "" {
		if incidents, err = readIncidents(opts.labels, captureFiles); err != nil {
			return err
		}
		// A device no input names is a typo in the labels; an alerts file
		// alone cannot tell (a device may have raised nothing). A host
		// that is no device of the input (a scanner whose probes were all
		// refused) is known by the alerts about it.
		if seen := results[0].rows; opts.alerts == "" || len(rows) > 0 {
			alerted := map[string]bool{}
			for _, a := range results[0].alerts {
				alerted[a.Device] = true
			}
			known := func(d string) bool { return seen.hasDevice(d) || alerted[d] }
			err := score.ValidateDevices(incidents, known, seen.hasGroup)
			switch {
			case err != nil && len(captureFiles) > 0:
				// A capture's host that only sent probes nobody answered
				// makes no device and, if missed, no alert either.
				fmt.Fprintf(stderr, "vigil score: warning: %v\n", err)
			case err != nil:
				return err
			}
		}
	}
	reports := make([]*score.Report, len(results))
	for i, r := range results {
		reports[i] = score.Score(r.alerts, incidents, rows, r.rows.options(learn, opts.slack))
	}
	if len(reports) == 1 {
		if opts.json {
			err = reports[0].WriteJSON(stdout)
		} else {
			err = reports[0].WriteText(stdout)
		}
	} else {
		err = writeSweep(stdout, variants, reports, opts.json)
	}
	if err != nil {
		return fmt.Errorf("cannot write the report: %w", err)
	}
	if opts.html != "" {
		if incidents == nil && rows != nil {
			incidents = score.RowIncidents(rows) // what Score scored against
		}
		return writeScoreHTML(ctx, opts, variants[0], results[0], reports[0], incidents, logger)
	}
	return nil
}

// readRowLabels reads the row-label columns of the CSV inputs (none when
// neither column is named).
func readRowLabels(files []string, cfg Config, anomaly, changepoint string) ([]score.Row, error) {
	if anomaly == "" && changepoint == "" {
		return nil, nil
	}
	if len(files) == 0 {
		return nil, errors.New("--rows and --changepoints name columns of CSV inputs, and no input is telemetry")
	}
	var cols []string
	for _, c := range []string{anomaly, changepoint} {
		if c != "" {
			cols = append(cols, c)
		}
	}
	labeled, err := jsonl.ReadRowLabels(files, cfg.Input.Telemetry, cols)
	if err != nil {
		return nil, err
	}
	rows := make([]score.Row, len(labeled))
	for i, l := range labeled {
		rows[i] = score.Row{Device: l.Device, Time: l.Time}
		k := 0
		if anomaly != "" {
			rows[i].Anomaly = l.Labels[k] >= 0.5
			k++
		}
		if changepoint != "" {
			rows[i].Changepoint = l.Labels[k] >= 0.5
		}
	}
	return rows, nil
}

func readAlertsFile(path string) ([]detect.Alert, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read alerts: %w", err)
	}
	defer f.Close()
	alerts, err := score.ReadAlerts(f)
	if err != nil {
		return nil, fmt.Errorf("cannot read alerts %s: %w", path, err)
	}
	return alerts, nil
}

// readIncidents reads --labels: incident labels, or packet labels of the
// one capture among the inputs, whose packet times place the episodes.
func readIncidents(path string, captures []string) ([]score.Incident, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read labels: %w", err)
	}
	if !isPacketLabels(data) {
		return score.ParseIncidents(path, bytes.NewReader(data))
	}
	if len(captures) != 1 {
		return nil, fmt.Errorf("%s holds packet labels (index;label), which number the packets of one capture; the inputs hold %d captures: score one capture at a time", path, len(captures))
	}
	times, err := packetTimes(captures[0])
	if err != nil {
		return nil, err
	}
	return score.ParsePacketLabels(path, bytes.NewReader(data), times)
}

// isPacketLabels tells packet labels (index;label or index,label lines,
// perhaps after a header) from incident labels by their first two lines.
func isPacketLabels(data []byte) bool {
	lines := 0
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.FieldsFunc(line, func(r rune) bool { return r == ';' || r == ',' })
		if _, err := strconv.Atoi(strings.TrimSpace(firstOr(fields, ""))); err == nil && len(fields) == 2 {
			return true
		}
		if lines++; lines == 2 {
			return false
		}
	}
	return false
}

func firstOr(s []string, def string) string {
	if len(s) == 0 {
		return def
	}
	return s[0]
}

// packetTimes returns the capture time of every packet of a capture
// (directories are not one capture).
func packetTimes(path string) ([]time.Time, error) {
	r, err := pcap.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the capture the packet labels number: %w", err)
	}
	defer r.Close()
	var times []time.Time
	var p pcap.Packet
	for {
		err := r.Next(&p)
		if err == io.EOF {
			return times, nil
		}
		if err != nil {
			return nil, fmt.Errorf("cannot read the capture the packet labels number: %w", err)
		}
		times = append(times, time.Unix(0, p.TimeNanos).UTC())
	}
}

// sweepFigures are the report's figures a sweep table shows, in order,
// by their JSON names.
var sweepFigures = []string{
	"incidents_total", "incidents_detected", "false_alarms", "false_alarms_per_device_day", "alarms", "alarms_learning",
	"precision", "recall", "f1", "far", "mar",
	"nab_standard", "nab_reward_low_fp", "nab_reward_low_fn", "skab_standard", "skab_low_fp", "skab_low_fn",
}

// writeSweep prints one column per variant: the figures of sweepFigures
// that any report has, or with asJSON an array of {variant, report}.
func writeSweep(w io.Writer, variants []variant, reports []*score.Report, asJSON bool) error {
	if asJSON {
		type entry struct {
			Variant string        `json:"variant"`
			Report  *score.Report `json:"report"`
		}
		out := make([]entry, len(reports))
		for i := range reports {
			out[i] = entry{variants[i].name, reports[i]}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	figures := make([]map[string]any, len(reports))
	for i, r := range reports {
		data, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(data, &figures[i]); err != nil {
			return err
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "\t")
	for _, v := range variants {
		fmt.Fprintf(tw, "%s\t", v.name)
	}
	fmt.Fprintln(tw)
	for _, name := range sweepFigures {
		present := false
		for _, f := range figures {
			if _, ok := f[name].(float64); ok {
				present = true
			}
		}
		if !present {
			continue
		}
		fmt.Fprintf(tw, "%s\t", name)
		for _, f := range figures {
			v, ok := f[name].(float64)
			switch {
			case !ok:
				fmt.Fprint(tw, "-\t")
			case v == float64(int64(v)) && !strings.HasPrefix(name, "nab") && !strings.HasPrefix(name, "skab"):
				fmt.Fprintf(tw, "%d\t", int64(v))
			default:
				fmt.Fprintf(tw, "%.3f\t", v)
			}
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// writeScoreHTML writes the HTML report of the first variant: its text
// report and a plot for each missed incident and top false alarm. The
// plotted values and bands come from a second replay with a trace, which
// gives the same alerts (replay is deterministic).
func writeScoreHTML(ctx context.Context, opts scoreOptions, v variant, r replayed, rep *score.Report, incidents []score.Incident, logger *slog.Logger) error {
	targets := score.PlotTargets(rep)
	var points []detect.TracePoint
	if len(targets) > 0 && len(opts.inputs) > 0 {
		want := map[string][]score.PlotTarget{}
		for _, t := range targets {
			want[t.Device] = append(want[t.Device], t)
		}
		keep := func(p detect.TracePoint) {
			for _, t := range want[p.Device] {
				if p.Time >= t.From.UnixNano() && p.Time <= t.To.UnixNano() {
					points = append(points, p)
					return
				}
			}
		}
		if err := replayPlotted(ctx, v.cfg, opts, logger, keep); err != nil {
			return err
		}
	}
	alarms := score.Alarms(r.alerts)
	title := strings.Join(opts.inputs, " ")
	if len(opts.inputs) > 3 {
		title = fmt.Sprintf("%s and %d more inputs", strings.Join(opts.inputs[:2], " "), len(opts.inputs)-2)
	}
	if opts.alerts != "" {
		title = opts.alerts
	}
	page := score.Page{Title: "Vigil score: " + title}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		return err
	}
	page.Summary = text.String()
	for _, t := range targets {
		page.Plots = append(page.Plots, score.BuildPlot(t, points, alarms, incidents))
	}
	f, err := os.Create(opts.html)
	if err != nil {
		return fmt.Errorf("cannot write the HTML report: %w", err)
	}
	if err := score.WriteHTML(f, page); err != nil {
		f.Close()
		return fmt.Errorf("cannot write the HTML report %s: %w", opts.html, err)
	}
	return f.Close()
}
