//go:build !nodemo

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/pcap"
	"github.com/vigil-ot/vigil/ingest/simulate/attackgen"
	"github.com/vigil-ot/vigil/sinks"
)

// metricsTestConfig is a consumer with a rule that alarms on the first
// report over its value, so one batch moves the alarm counters.
const metricsTestConfig = `
input:
  telemetry: {format: native}
detect:
  rules:
    - name: too-hot
      metric: temp
      comparison_operator: greater-than
      value: 100
      consecutive_datapoints_to_alarm: 1
      consecutive_datapoints_to_clear: 1
kafka:
  group_id: vigil-metrics-test
  instance_id: metrics-test
  telemetry_topics: [` + demoTelemetry + `]
  packet_topics: [` + demoPackets + `]
  dead_letter_topic: ` + demoDeadLetter + `
  changelog_topic: ` + demoChangelog + `
  group_state_topic: ` + demoGroupState + `
  session_timeout: 3s
  heartbeat_interval: 500ms
  rebalance_timeout: 5s
  shutdown_timeout: 10s
  http_listen: ""
`

// TestMetricsIntegration runs a consumer against the embedded broker,
// scrapes /metrics before and after one batch, then after a capture on the
// packet topic, and checks what Prometheus and an operator rely on: HELP
// and TYPE lines, le buckets, counters that move, the packet path's and
// the network detectors' families, and every metric the dashboard and the
// alert rules query.
func TestMetricsIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs a consumer against the embedded broker")
	}
	broker, err := startDemoBroker(0)
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	addr := broker.ListenAddrs()[0]
	cfg, err := ParseConfig([]byte(metricsTestConfig))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Kafka.Brokers = []string{addr}
	// A syslog sink too, for its queue depth: UDP to a socket that reads
	// nothing needs no receiver.
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	cfg.Sinks = sinks.Config{{Name: "siem", Kind: sinks.KindSyslog, Syslog: sinks.SyslogConfig{Address: udp.LocalAddr().String(), Transport: "udp"}}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sink, err := sinks.Build(cfg.Sinks, log)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan *instance, 1)
	runDone := make(chan error, 1)
	go func() {
		runDone <- runInstance(ctx, cfg, sink, log, nil, func(inst *instance) {
			publishInstanceMetrics(inst)
			started <- inst
		})
	}()
	var inst *instance
	select {
	case inst = <-started:
	case err := <-runDone:
		t.Fatal(err)
	}
	defer func() {
		cancel()
		if err := <-runDone; err != nil {
			t.Errorf("consumer stopped with %v", err)
		}
	}()
	obs, err := startObservability("127.0.0.1:0", inst.consumer.Ready, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	scrapeURL := "http://" + obs.Addr() + "/metrics"
	waitFor(t, 20*time.Second, "the consumer to join its group", func() bool { return inst.consumer.Ready() })
	before := scrape(t, scrapeURL)

	produced := produceTelemetry(t, addr)
	waitFor(t, 20*time.Second, "the alarms on /metrics", func() bool {
		return inst.consumer.Consumed() >= produced && scrape(t, scrapeURL).sum("vigil_alarms_total") >= 3
	})
	after := scrape(t, scrapeURL)

	for _, name := range []string{
		"vigil_kafka_records_total", "vigil_kafka_bytes_total", "vigil_engine_rows_total",
		"vigil_alarms_total", "vigil_alarms_by_severity_total", "vigil_kafka_decode_errors_total",
		"vigil_kafka_dead_letters_total", "vigil_sink_delivered_total", "vigil_kafka_batch_latency_seconds_count",
	} {
		if b, a := before.sum(name), after.sum(name); a <= b {
			t.Errorf("%s did not move after a batch: %g before, %g after", name, b, a)
		}
	}
	if n := after.sum("vigil_state_devices"); n != 3 {
		t.Errorf("vigil_state_devices = %g after reports of 3 devices", n)
	}
	if n := after.values[`vigil_alarms_total{detector="rule"}`]; n != 3 {
		t.Errorf(`vigil_alarms_total{detector="rule"} = %g, want 3 (one per hot device)`, n)
	}
	if after.sum("vigil_kafka_lag") < 0 {
		t.Error("vigil_kafka_lag is negative")
	}

	decoded := `vigil_packets_total{source="` + demoPackets + `",outcome="decoded"}`
	packets := producePackets(t, addr)
	waitFor(t, 20*time.Second, "the packets on /metrics", func() bool { return scrape(t, scrapeURL).values[decoded] > 0 })
	final := scrape(t, scrapeURL)
	// The counters are published when a window closes: the packets of the
	// last one, still open, are not in them yet.
	if n := final.values[decoded]; n > float64(packets) {
		t.Errorf("%s = %g after %d packets", decoded, n, packets)
	}
	for _, series := range []string{
		`vigil_packet_tcp_half_open_flows_total{source="` + demoPackets + `"}`,
		`vigil_packet_scan_states_evicted_total{source="` + demoPackets + `"}`,
		"vigil_network_flood_incidents_total", "vigil_network_scanners_refused_total",
	} {
		if _, ok := final.values[series]; !ok {
			t.Errorf("%s is not exported by a consumer of a packet topic", series)
		}
	}

	checkExposition(t, final)
	checkDeployReferences(t, final)
	checkDocsListMetrics(t, final)
	promtoolCheckMetrics(t, final.text)
}

// producePackets writes two minutes of Modbus polling as one pcap chunk
// on the packet topic, from the time of produceTelemetry's reports, and
// returns the number of packets.
func producePackets(t *testing.T, addr string) int {
	t.Helper()
	var capture bytes.Buffer
	if err := attackgen.GenerateModbusOnOTPorts(&capture, time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC), 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	r, err := pcap.NewReader(bytes.NewReader(capture.Bytes()), "capture")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for p := (pcap.Packet{}); r.Next(&p) == nil; {
		n++
	}
	r.Close()
	w := &kafkago.Writer{Addr: kafkago.TCP(addr), Topic: demoPackets, BatchTimeout: 5 * time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(context.Background(), kafkago.Message{Key: []byte("sensor-1"), Value: capture.Bytes()}); err != nil {
		t.Fatal(err)
	}
	return n
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// produceTelemetry writes reports of three devices, each over the rule's
// value once, and two records no decoder accepts.
func produceTelemetry(t *testing.T, addr string) int64 {
	t.Helper()
	w := &kafkago.Writer{Addr: kafkago.TCP(addr), Topic: demoTelemetry, Balancer: &kafkago.Hash{}, BatchTimeout: 5 * time.Millisecond}
	defer w.Close()
	var msgs []kafkago.Message
	start := time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)
	for i := range 10 {
		for d := range 3 {
			temp := 20 + d
			if i == 9 {
				temp = 150
			}
			dev := fmt.Sprintf("plc-%d", d)
			line := fmt.Sprintf(`{"device":%q,"ts":%q,"metrics":{"temp":%d}}`, dev, start.Add(time.Duration(i)*time.Minute).Format(time.RFC3339), temp)
			msgs = append(msgs, kafkago.Message{Key: []byte(dev), Value: []byte(line)})
		}
	}
	msgs = append(msgs, kafkago.Message{Key: []byte("plc-0"), Value: []byte("not json")}, kafkago.Message{Key: []byte("plc-1"), Value: []byte(`{"device":"plc-1","ts":`)})
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	return int64(len(msgs))
}

// exposition is one scrape of /metrics.
type exposition struct {
	text   string
	values map[string]float64 // by series: name{labels}
	help   map[string]string  // by family
	types  map[string]string  // by family
}

func scrape(t *testing.T, url string) *exposition {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d, %v", resp.StatusCode, err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("/metrics Content-Type %q, want the Prometheus text format's", ct)
	}
	e := &exposition{text: string(b), values: map[string]float64{}, help: map[string]string{}, types: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# HELP "); ok {
			name, text, _ := strings.Cut(rest, " ")
			e.help[name] = text
			continue
		}
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			e.types[name] = typ
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("cannot parse the /metrics line %q", line)
		}
		e.values[line[:i]] = v
	}
	return e
}

// sum adds the series of one metric name, whatever their labels.
func (e *exposition) sum(name string) float64 {
	var s float64
	for series, v := range e.values {
		if seriesName(series) == name {
			s += v
		}
	}
	return s
}

func seriesName(series string) string {
	name, _, _ := strings.Cut(series, "{")
	return name
}

// checkExposition checks the HELP and TYPE lines and the histograms.
func checkExposition(t *testing.T, e *exposition) {
	t.Helper()
	families := map[string]bool{}
	for series := range e.values {
		name := seriesName(series)
		if !strings.HasPrefix(name, "vigil_") {
			continue
		}
		fam := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && e.types[base] == "histogram" {
				fam = base
			}
		}
		families[fam] = true
	}
	for fam := range families {
		if e.help[fam] == "" {
			t.Errorf("%s has no HELP text; add it to metricHelp", fam)
		}
		want := "gauge"
		if strings.HasSuffix(fam, "_total") {
			want = "counter"
		}
		// A duration is a histogram, except the last drill's: one
		// value, as Prometheus' own process_start_time_seconds is.
		if strings.HasSuffix(fam, "_seconds") && fam != "vigil_drill_last_duration_seconds" {
			want = "histogram"
		}
		if e.types[fam] != want {
			t.Errorf("# TYPE %s is %q, want %q", fam, e.types[fam], want)
		}
	}
	for _, h := range []string{"vigil_kafka_batch_latency_seconds", "vigil_kafka_changelog_restore_seconds"} {
		if strings.Contains(e.text, h+`_bucket{vmrange=`) {
			t.Errorf("%s has vmrange buckets, which Prometheus cannot use", h)
		}
		inf := e.values[h+`_bucket{le="+Inf"}`]
		if inf != e.values[h+"_count"] {
			t.Errorf("%s: the +Inf bucket holds %g, _count %g", h, inf, e.values[h+"_count"])
		}
		if !strings.Contains(e.text, h+`_bucket{le="1"}`) || !strings.Contains(e.text, h+"_sum ") {
			t.Errorf("%s lacks le buckets or _sum:\n%s", h, e.text)
		}
	}
	if !strings.Contains(e.text, "# TYPE go_goroutines gauge") {
		t.Error("the process metrics lost their TYPE lines")
	}
}

// promQLMetricName finds the metric names in a PromQL expression: Vigil's
// own and the process metrics the library exports. "up" is Prometheus'.
var promQLMetricName = regexp.MustCompile(`\b(?:vigil|process|go)_[a-z0-9_]+`)

// checkDeployReferences checks that every metric the Grafana dashboard
// and the Prometheus rules query is in the scrape.
func checkDeployReferences(t *testing.T, e *exposition) {
	t.Helper()
	exported := map[string]bool{}
	for series := range e.values {
		exported[seriesName(series)] = true
	}
	for fam, typ := range e.types {
		exported[fam] = exported[fam] || typ == "histogram"
	}
	rules, err := os.ReadFile("../../deploy/prometheus/vigil-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(rules, []byte("- alert:")); n < 6 {
		t.Errorf("deploy/prometheus/vigil-rules.yml has %d alerts", n)
	}
	dashboard, err := os.ReadFile("../../deploy/grafana/vigil.json")
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(dashboard) {
		t.Fatal("deploy/grafana/vigil.json is not JSON")
	}
	// Whole files, not only the queries: a metric named in a description
	// or an annotation must exist too.
	exprs := []string{string(rules), string(dashboard)}
	reported := map[string]bool{}
	for _, text := range exprs {
		for _, name := range promQLMetricName.FindAllString(text, -1) {
			if !exported[name] && !reported[name] {
				reported[name] = true
				t.Errorf("%s is named in the dashboard or the rules but not exported", name)
			}
		}
	}
}

// checkDocsListMetrics keeps docs/operations.md, metricHelp and the scrape
// in step: every family documented, none documented that does not exist.
func checkDocsListMetrics(t *testing.T, e *exposition) {
	t.Helper()
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for fam := range metricHelp {
		if !bytes.Contains(doc, []byte("`"+fam+"`")) {
			t.Errorf("docs/operations.md does not list %s", fam)
		}
		if strings.ContainsAny(metricHelp[fam], "\\\n") {
			t.Errorf("the HELP text of %s has a backslash or newline, which need escaping", fam)
		}
	}
	for _, m := range regexp.MustCompile("`(vigil_[a-z0-9_]+)`").FindAllSubmatch(doc, -1) {
		if fam := string(m[1]); metricHelp[fam] == "" {
			t.Errorf("docs/operations.md lists %s, which metricHelp does not know", fam)
		}
	}
	for fam := range metricHelp {
		if _, ok := e.types[fam]; !ok {
			t.Errorf("%s has HELP text but is not exported", fam)
		}
	}
}

// lookPromtool returns promtool's path, or "" when it is not installed;
// CI installs it (.ci/install-deps) and sets VIGIL_REQUIRE_PROMTOOL, so
// there a missing promtool fails instead of skipping.
func lookPromtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil && os.Getenv("VIGIL_REQUIRE_PROMTOOL") != "" {
		t.Fatal("promtool is not installed but VIGIL_REQUIRE_PROMTOOL is set: run .ci/install-deps")
	}
	return p
}

// promtoolCheckMetrics lints the scrape with promtool when it is
// installed (Debian: apt-get install prometheus).
func promtoolCheckMetrics(t *testing.T, text string) {
	t.Helper()
	promtool := lookPromtool(t)
	if promtool == "" {
		t.Log("promtool not installed: the exposition is not linted")
		return
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, _ := cmd.CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		// The Go runtime's and the process's families come from the
		// library, without HELP text.
		if strings.Contains(line, "vigil_") {
			t.Errorf("promtool check metrics: %s", line)
		}
	}
}

// The deploy rules are valid Prometheus rules, their unit tests pass, and
// the dashboard's queries parse (checked as recording rules, with its
// variables filled in).
func TestDeployPromtool(t *testing.T) {
	if testing.Short() {
		t.Skip("runs promtool's rule unit tests (about 20 s)")
	}
	promtool := lookPromtool(t)
	if promtool == "" {
		t.Skip("promtool not installed (Debian: apt-get install prometheus, or run .ci/install-deps)")
	}
	dir := "../../deploy/prometheus"
	dashboardRules := filepath.Join(t.TempDir(), "dashboard.yml")
	writeDashboardAsRules(t, "../../deploy/grafana/vigil.json", dashboardRules)
	for _, args := range [][]string{
		{"check", "rules", filepath.Join(dir, "vigil-rules.yml")},
		{"test", "rules", filepath.Join(dir, "vigil-rules.test.yml")},
		{"check", "rules", dashboardRules},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// writeDashboardAsRules writes every query of the Grafana dashboard as a
// recording rule, so that promtool parses them.
func writeDashboardAsRules(t *testing.T, dashboard, rules string) {
	t.Helper()
	b, err := os.ReadFile(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	vars := strings.NewReplacer("$__rate_interval", "5m", "$job", ".*", "$instance", ".*")
	var out strings.Builder
	out.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			n++
			// A JSON string is a YAML double-quoted scalar.
			expr, _ := json.Marshal(vars.Replace(tg.Expr))
			fmt.Fprintf(&out, "      - record: dashboard_query_%d # %s\n        expr: %s\n", n, p.Title, expr)
		}
	}
	if n == 0 {
		t.Fatal("the dashboard has no queries")
	}
	if err := os.WriteFile(rules, []byte(out.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestNetworkMetricsFollowTheDetector: a flood of new sources folded into
// one incident by the instance's network detectors shows on its metrics.
func TestNetworkMetricsFollowTheDetector(t *testing.T) {
	cfg, err := ParseConfig([]byte(metricsTestConfig + "  brokers: [127.0.0.1:9]\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Detect.Network.Learning = 10 * time.Minute
	inst, err := newInstance(cfg, sinks.NewWriterSink("test", io.Discard, sinks.FormatJSON), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if inst.network == nil {
		t.Fatal("an instance reading a packet topic has no network detectors")
	}
	sample := instanceSampler(inst)
	hmi, plc := netip.MustParseAddr("10.0.0.10"), netip.MustParseAddr("10.0.0.20")
	start := time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC).UnixNano()
	comm := func(at time.Duration, src netip.Addr, port uint16) ingest.Communication {
		return ingest.Communication{FirstNanos: start + int64(at), LastNanos: start + int64(at), Device: src.String(), Group: "plant-a",
			SrcIP: src, DstIP: plc, Transport: 6, SrcPort: port, DstPort: 502, Packets: 1}
	}
	var out detect.Output
	inst.network.DetectBatch(&ingest.Batch{Comms: []ingest.Communication{comm(0, hmi, 40000)}}, &out)
	var flood ingest.Batch
	for i := range 50 {
		flood.Comms = append(flood.Comms, comm(20*time.Minute+time.Duration(i)*time.Millisecond, netip.AddrFrom4([4]byte{10, 0, 0, byte(100 + i)}), uint16(1024+i)))
	}
	inst.network.DetectBatch(&flood, &out)
	sample()

	var buf bytes.Buffer
	inst.metrics.Set.WritePrometheus(&buf)
	for _, want := range []string{"vigil_network_flood_incidents_total 1\n", "vigil_network_folded_sources_total 50\n", "vigil_network_scanners_refused_total 0\n"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, buf.String())
		}
	}
}

// TestClockRejectsOnMetrics: the clock's rejects and late rows reach
// /metrics as vigil_engine_rejected_total{reason="future_time"|"unclocked_time"}
// and vigil_engine_rows_late_total.
func TestClockRejectsOnMetrics(t *testing.T) {
	set := metrics.NewSet()
	im := newInstanceMetrics(set)
	im.publish(detect.Stats{FutureRows: 2, UnclockedRows: 1, LateRows: 3}, baseline.Stats{})
	var b bytes.Buffer
	set.WritePrometheus(&b)
	for _, want := range []string{
		`vigil_engine_rejected_total{reason="future_time"} 2`,
		`vigil_engine_rejected_total{reason="unclocked_time"} 1`,
		`vigil_engine_rows_late_total 3`,
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, b.String())
		}
	}
}
