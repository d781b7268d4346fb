//go:build !nodemo

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/ingest/kafka"
	"github.com/vigil-ot/vigil/ingest/pcap"
	"github.com/vigil-ot/vigil/ingest/simulate/attackgen"
	"github.com/vigil-ot/vigil/ingest/simulate/fleetgen"
	"github.com/vigil-ot/vigil/sinks"
)

const demoUsage = `Usage: vigil demo [flags]

Runs the whole pipeline on this machine and stops by itself: an embedded
Kafka-protocol broker on localhost, a simulated fleet producing telemetry
(60 devices, two days of event time, incidents on day 2) and an OT network
producing packets (Apache Metron layout, partitioned by flow, with a new
Modbus writer, an S7 PLC stop, a port scan and a flood), Vigil consuming
both as a consumer group, alerts printed as they happen and a summary at the
end.

The operator console (fleet search, device pages, alerts, quarantine queue)
is on http://127.0.0.1:8080/ while it runs (--http to move it, --stay to
keep it up after the summary). While it runs, any Kafka client can use the
broker, e.g. kcat (when 8080 or 9092 is taken and the flag is not given,
the demo takes a free port and prints it):
  kcat -b 127.0.0.1:9092 -L
  kcat -b 127.0.0.1:9092 -C -t vigil-alerts -o beginning
  echo '{"device":"plc-x","metrics":{"bytes_out":1}}' | kcat -b 127.0.0.1:9092 -P -t telemetry -k plc-x

Flags:
`

// demoConfig is the demo's configuration, as a user would write it; the
// kafka section is filled in by the demo. It is testdata/config/fleet.yaml
// (tuned on the fleet sample) plus the packet side: the attack capture
// has 30 minutes of clean traffic, so the network learns for 10.
const demoConfig = `
input:
  telemetry: {format: native}
  inventory: {group_by: [site, hw], reload_interval: 0s}
  packets: {max_flows: 4096, max_hosts: 4096}
baseline:
  half_lives: [1h, 24h, 168h]
  primary_half_life: 24h
  min_samples: 1000
  min_duration: 6h
detect:
  network: {learning: 10m}
  self: {threshold: 6, direction: up}
  peer: {statistic: p99.9}
  metrics:
    auth_failures: {disable_self: true, disable_peer: true}
    msgs_sent: {direction: both}
  rules:
    - name: auth-brute-force
      metric: auth_failures
      comparison_operator: greater-than
      value: 5
      consecutive_datapoints_to_alarm: 5
      consecutive_datapoints_to_clear: 3
      technique: T1110 # Brute Force (login failures); T0806 is Brute Force I/O
  # The demo compresses two days into seconds: a 100 ms stall of one
  # partition is an hour of event time. partition_idle scales with it, so a
  # stalled partition is waited for, not taken for dark.
  silence: {missed_reports: 5, partition_idle: 12h}
  identity: {window: 10m, max_src_ips: 1, max_devices_per_cert: 1, firmware_downgrade: true}
  fleet: {window: 1m, period: 5m}
  quarantine: {enabled: true, detectors: [identity, rule], min_severity: 5, recommend_min_severity: 7}
`

// Topics of the demo broker.
const (
	demoTelemetry  = "telemetry"
	demoPackets    = "ot-packets"
	demoAlerts     = "vigil-alerts"
	demoQuarantine = "vigil-quarantine"
	demoDeadLetter = "vigil-dead-letter"
	demoChangelog  = "vigil-state-changelog"
	demoGroupState = "vigil-group-state"
)

func runDemo(args []string) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), demoUsage); fs.PrintDefaults() }
	duration := fs.Duration("duration", 60*time.Second, "how long the demo runs: the scenario is produced over 3/4 of it")
	port := fs.Int("port", 9092, "broker port on 127.0.0.1 (0: any free port; a free one when 9092 is taken and --port is not given)")
	verbose := fs.Bool("v", false, "log the consumer's work (rebalances, restores, commits)")
	stay := fs.Bool("stay", false, "keep serving the console after the demo, until interrupted")
	httpListen := fs.String("http", "127.0.0.1:8080", "serve the operator console, and /metrics, /healthz and /readyz as vigil run does, on `ADDR` (\"\": none)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *duration < 5*time.Second {
		fmt.Fprintln(os.Stderr, "vigil demo: --duration must be at least 5s")
		return 2
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	addr, err := demoHTTPAddr(*httpListen, explicit["http"])
	if err != nil {
		fmt.Fprintln(os.Stderr, "vigil demo:", err)
		return 1
	}
	if !explicit["port"] && !portFree(*port) {
		*port = 0 // another broker on 9092: any free port, printed in the banner
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := demo(ctx, os.Stdout, *duration, *port, addr, *stay, log); err != nil {
		fmt.Fprintln(os.Stderr, "vigil demo:", err)
		return 1
	}
	return 0
}

// demo runs the demo until it stops by itself or ctx ends; every alert
// goes to the console, the broker's alert topic and the extra sinks. With
// httpListen, the consumer serves its metrics and health there.
// demoHTTPAddr returns where the demo serves its console and metrics:
// addr, or, when addr is the default (not given with --http) and another
// program holds it, a free port on the loopback, so that `make demo` works
// beside whatever else uses 8080. The banner prints the address.
func demoHTTPAddr(addr string, explicit bool) (string, error) {
	if addr == "" {
		return "", nil
	}
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		ln.Close()
		return addr, nil
	}
	if explicit {
		return "", fmt.Errorf("cannot serve the console on %s: %w; pass --http with a free address, or --http \"\" for none", addr, err)
	}
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("cannot serve the console: %w; pass --http \"\" for none", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// portFree reports whether the loopback port is free to listen on.
func portFree(port int) bool {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

func demo(ctx context.Context, out io.Writer, duration time.Duration, port int, httpListen string, stay bool, log *slog.Logger, extra ...detect.Sink) error {
	broker, err := startDemoBroker(port)
	if err != nil {
		return err
	}
	defer broker.Close()
	addr := broker.ListenAddrs()[0]
	fmt.Fprintf(out, "Vigil demo: Kafka-protocol broker on %s (embedded; topics %s, %s, %s, %s)\n", addr, demoTelemetry, demoPackets, demoAlerts, demoDeadLetter)
	fmt.Fprintf(out, "  try: kcat -b %s -C -t %s -o beginning     (alerts as JSON)\n", addr, demoAlerts)
	fmt.Fprintf(out, "       kcat -b %s -C -t %s -J              (rejected records with their reason)\n", addr, demoDeadLetter)
	if httpListen != "" {
		fmt.Fprintf(out, "       curl -s http://%s/metrics                   (Prometheus metrics, as vigil run serves them)\n", httpListen)
		fmt.Fprintf(out, "  console: http://%s/   (fleet search, device pages, alerts, quarantine queue)\n", httpListen)
	}
	fmt.Fprintln(out)

	dir, err := os.MkdirTemp("", "vigil-demo-")
	if err != nil {
		return fmt.Errorf("cannot create a temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)
	fleet := fleetgen.SampleConfig()
	inventoryPath := filepath.Join(dir, "inventory.csv")
	if err := writeFile(inventoryPath, func(w io.Writer) error { return fleetgen.WriteInventory(fleet, w) }); err != nil {
		return err
	}

	cfg, err := ParseConfig([]byte(demoConfig))
	if err != nil {
		return fmt.Errorf("BUG: demo config: %w", err)
	}
	cfg.Input.Inventory.Path = inventoryPath
	k := &cfg.Kafka
	k.Brokers = []string{addr}
	k.GroupID = "vigil-demo"
	k.InstanceID = "demo"
	k.TelemetryTopics = []string{demoTelemetry}
	k.PacketTopics = []string{demoPackets}
	k.DeadLetterTopic, k.ChangelogTopic, k.GroupStateTopic = demoDeadLetter, demoChangelog, demoGroupState
	k.HTTPListen = "" // the demo serves it, with the console, beyond the consumer's life
	k.SessionTimeout, k.HeartbeatInterval, k.RebalanceTimeout = 3*time.Second, 500*time.Millisecond, 5*time.Second
	k.ShutdownTimeout = 10 * time.Second
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("BUG: demo config: %w", err)
	}
	kafkaSink, err := sinks.Build(sinks.Config{{Kind: sinks.KindKafka, Kafka: sinks.KafkaConfig{
		Brokers: []string{addr}, AlertsTopic: demoAlerts, QuarantineTopic: demoQuarantine}}}, log)
	if err != nil {
		return err
	}
	printer := &alertPrinter{w: out, start: time.Now()}
	sink := sinks.NewFanout(append([]detect.Sink{printer, kafkaSink}, extra...)...)

	scenario, err := newDemoScenario(fleet)
	if err != nil {
		sink.Close()
		return err
	}
	fmt.Fprintf(out, "Producing %d telemetry reports (%d devices, 2 days of event time) and %d OT packets over %s.\n",
		len(scenario.telemetry), 6*fleet.DevicesPerGroup, len(scenario.packets), (duration * 3 / 4).Round(time.Second))
	fmt.Fprintln(out, "Day 1 is learning; the incidents come on day 2, and the network attacks after 30 min of clean traffic.")
	fmt.Fprintln(out, demoPacketNote)
	fmt.Fprintln(out)

	var con *consoleSetup
	var live atomic.Pointer[instance]
	if httpListen != "" {
		if con, err = newConsoleSetup(cfg.Console); err != nil {
			sink.Close()
			return err
		}
		defer con.console.Close() // the engine has stopped by then
		ready := func() bool { i := live.Load(); return i != nil && i.consumer.Ready() }
		obs, err := startObservabilityWith(httpListen, "--http", ready, nil, log, con.console, con.tokens)
		if err != nil {
			sink.Close()
			return err
		}
		defer obs.Close()
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	var inst *instance
	ready := make(chan struct{})
	runDone := make(chan error, 1)
	stopped := make(chan struct{})
	go func() {
		runDone <- runInstance(runCtx, cfg, sink, log, con, func(i *instance) { inst = i; live.Store(i); close(ready) })
		close(stopped)
	}()
	select {
	case <-ready:
	case <-stopped:
		select {
		case <-ready: // ready, then stopped (an interrupt): the path below reports it
		default:
			return <-runDone // it could not start
		}
	}

	// Production is paced from when Vigil reads. An interrupt (the end of
	// ctx) is a clean stop wherever it comes: while producing, or before
	// Vigil joined its group, when there is nothing to hand over.
	var produced int64
	var perr error
	joined := waitReady(runCtx, inst, stopped)
	if joined {
		produced, perr = scenario.produce(runCtx, addr, duration*3/4)
	}
	// Let the consumer catch up, but never past the duration.
	deadline := time.NewTimer(duration / 4)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
wait:
	for inst.consumer.Consumed() < produced {
		select {
		case <-tick.C:
		case <-deadline.C:
			break wait
		case <-runCtx.Done():
			break wait
		}
	}
	stopRun()
	runErr := <-runDone
	if ctx.Err() != nil && !joined {
		runErr = nil // the consumer never joined: nothing read, nothing to commit
	}
	printer.summary(inst, produced)
	if stay && httpListen != "" && ctx.Err() == nil {
		fmt.Fprintf(out, "\nThe console stays up at http://%s/ with what the demo saw; Ctrl-C to stop.\n", httpListen)
		<-ctx.Done()
	}
	return errors.Join(perr, runErr)
}

// waitReady waits until inst's consumer is in its group with every
// partition restored, and reports whether it got there before ctx ended
// or the consumer stopped.
func waitReady(ctx context.Context, inst *instance, stopped <-chan struct{}) bool {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !inst.consumer.Ready() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return false
		case <-stopped:
			return false
		}
	}
	return true
}

func startDemoBroker(port int) (*kfake.Cluster, error) {
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		// Three partitions per topic, as a real deployment has. The demo
		// replays two days in a minute, so a 100 ms lag between partitions is
		// minutes of event time: the engine judges silence against the
		// slowest partition's event time (its watermark), not the newest.
		kfake.SeedTopics(3, demoTelemetry, demoPackets, demoChangelog, demoQuarantine, demoDeadLetter, demoGroupState, demoAlerts),
		kfake.AllowAutoTopicCreation(),
		kfake.GroupMinSessionTimeout(time.Second),
		kfake.ListenFn(func(network, address string) (net.Listener, error) {
			return net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		}),
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot start the embedded broker on 127.0.0.1:%d: %w; pass --port 0 for any free port", port, err)
	}
	return c, nil
}

// demoPacketNote is what the demo says of its network alerts; the demo's
// test holds it to that against a replay of the capture.
const demoPacketNote = `OT packets are partitioned by flow (the pair of hosts), so the alerts of one conversation (new edge,
new OT function, the port scan) are those 'vigil replay' raises on the capture. The flood's
spoofed sources span every partition, each counting its share of the rate, and a host missing from
the inventory may be reported by each partition it sends in.`

// demoScenario is what the simulated fleet and network send, in event-time
// order per source.
type demoScenario struct {
	telemetry []kafkago.Message
	packets   []kafkago.Message
}

func newDemoScenario(fleet fleetgen.Config) (*demoScenario, error) {
	s := &demoScenario{}
	var jsonl bytes.Buffer
	if _, err := fleetgen.Generate(fleet, &jsonl); err != nil {
		return nil, fmt.Errorf("cannot generate the fleet: %w", err)
	}
	sc := bufio.NewScanner(&jsonl)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := append([]byte(nil), sc.Bytes()...)
		s.telemetry = append(s.telemetry, kafkago.Message{Key: deviceKey(line), Value: line})
	}
	// A few records nobody can decode: they land in the dead-letter topic.
	for i, bad := range []string{`{"device":"plc-a-001","ts":`, `not json`, `{"ts":"2026-11-03T12:00:00Z","metrics":{"x":1}}`} {
		at := (i + 1) * len(s.telemetry) / 4
		s.telemetry = append(s.telemetry[:at], append([]kafkago.Message{{Value: []byte(bad)}}, s.telemetry[at:]...)...)
	}
	var capture bytes.Buffer
	if _, err := attackgen.Generate(&capture, attackgen.DefaultScenario()); err != nil {
		return nil, fmt.Errorf("cannot generate the attack capture: %w", err)
	}
	r, err := pcap.NewReader(&capture, "attack")
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var p pcap.Packet
	for {
		if err := r.Next(&p); err != nil {
			break
		}
		key := binary.BigEndian.AppendUint64(nil, uint64(p.TimeNanos/int64(time.Microsecond)))
		s.packets = append(s.packets, kafkago.Message{Key: key, Value: append([]byte(nil), p.Data...)})
	}
	return s, nil
}

// deviceKey returns the device of a native JSON line, the record key that
// keeps a device's reports in one partition and in order.
func deviceKey(line []byte) []byte {
	const field = `"device":"`
	i := bytes.Index(line, []byte(field))
	if i < 0 {
		return nil
	}
	rest := line[i+len(field):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil
	}
	return append([]byte(nil), rest[:j]...)
}

// produce sends both sources, paced evenly over span, and returns how many
// records went out. The end of ctx (an interrupt) stops it without error.
func (s *demoScenario) produce(ctx context.Context, addr string, span time.Duration) (int64, error) {
	newWriter := func(topic string, b kafkago.Balancer) *kafkago.Writer {
		return &kafkago.Writer{Addr: kafkago.TCP(addr), Topic: topic, Balancer: b,
			BatchSize: 1000, BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafkago.RequireOne}
	}
	// Telemetry is keyed by device; a Metron key is the capture time, so
	// packets are partitioned by flow instead of by key.
	flows, err := kafka.NewFlowBalancer("ethernet")
	if err != nil {
		return 0, err
	}
	tw, pw := newWriter(demoTelemetry, &kafkago.Hash{}), newWriter(demoPackets, flows)
	defer tw.Close()
	defer pw.Close()
	const tick = 100 * time.Millisecond
	steps := int(span / tick)
	t := time.NewTicker(tick)
	defer t.Stop()
	var sent int64
	for i := 1; i <= steps; i++ {
		ti, pi := len(s.telemetry)*(i-1)/steps, len(s.packets)*(i-1)/steps
		tj, pj := len(s.telemetry)*i/steps, len(s.packets)*i/steps
		if err := tw.WriteMessages(ctx, s.telemetry[ti:tj]...); err != nil {
			if ctx.Err() != nil {
				return sent, nil
			}
			return sent, fmt.Errorf("cannot produce telemetry: %w", err)
		}
		sent += int64(tj - ti)
		if pj > pi {
			if err := pw.WriteMessages(ctx, s.packets[pi:pj]...); err != nil {
				if ctx.Err() != nil {
					return sent, nil
				}
				return sent, fmt.Errorf("cannot produce packets: %w", err)
			}
			sent += int64(pj - pi)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return sent, nil
		}
	}
	return sent, nil
}

// alertPrinter is the demo's console: one line per alert as it is
// accepted, and the tallies for the summary.
type alertPrinter struct {
	mu         sync.Mutex
	w          io.Writer
	start      time.Time
	seen       map[string]bool
	byDetector map[string]int
	bySeverity map[string]int
	quarantine int
}

func (p *alertPrinter) Write(_ context.Context, out *detect.Output) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen == nil {
		p.seen, p.byDetector, p.bySeverity = map[string]bool{}, map[string]int{}, map[string]int{}
	}
	for i := range out.Alerts {
		a := &out.Alerts[i]
		if p.seen[a.ID+a.State] { // a redelivery: receivers dedupe on the id
			continue
		}
		p.seen[a.ID+a.State] = true
		if a.State == detect.StateAlarm {
			p.byDetector[a.Detector]++
			p.bySeverity[detect.SeverityName(a.Severity)]++
		}
		fmt.Fprintf(p.w, "[%5.1fs] %-7s %-8s %-9s %-22s %-14s %s\n", time.Since(p.start).Seconds(),
			strings.ToUpper(a.State), detect.SeverityName(a.Severity), a.Detector, a.Behavior, a.Device, oneLine(a.Message))
	}
	for i := range out.Quarantine {
		q := &out.Quarantine[i]
		if p.seen[q.ID] {
			continue
		}
		p.seen[q.ID] = true
		p.quarantine++
		fmt.Fprintf(p.w, "[%5.1fs] %-7s %-8s %-9s %-22s %-14s %s\n", time.Since(p.start).Seconds(),
			strings.ToUpper(q.Action), detect.SeverityName(q.Severity), "policy", q.Mode, q.Device, oneLine(q.Message))
	}
	return nil
}

func (p *alertPrinter) Close() error { return nil }

func oneLine(s string) string {
	if len(s) > 110 {
		s = s[:107] + "..."
	}
	return strings.ReplaceAll(s, "\n", " ")
}

func (p *alertPrinter) summary(inst *instance, produced int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := inst.engine.Stats()
	fmt.Fprintf(p.w, "\nSummary after %s\n", time.Since(p.start).Round(100*time.Millisecond))
	fmt.Fprintf(p.w, "  records produced %d, consumed %d; rows judged %d\n", produced, inst.consumer.Consumed(), st.Rows)
	total := 0
	var dets []string
	for d, n := range p.byDetector {
		dets = append(dets, d)
		total += n
	}
	sort.Strings(dets)
	fmt.Fprintf(p.w, "  alarms %d:", total)
	for _, d := range dets {
		fmt.Fprintf(p.w, " %s %d", d, p.byDetector[d])
	}
	fmt.Fprintln(p.w)
	fmt.Fprintf(p.w, "  by severity: critical %d, high %d, medium %d, low %d; quarantine events %d\n",
		p.bySeverity["critical"], p.bySeverity["high"], p.bySeverity["medium"], p.bySeverity["low"], p.quarantine)
	fmt.Fprintf(p.w, "  groups %d, devices with state %d\n", inst.reg.NumGroups(), inst.pipe.Store.NumDevices())
}
