// Package drill runs incident-response drills: it writes canary incidents
// (synthetic drill devices, their records tagged with the drill key) into
// a live telemetry topic and waits for the alerts they must raise to come
// out of the alerts topic, flagged as drills.
//
// A drill is self-contained: its devices are new (named after the run),
// in a drill group of their own, so the group learns its baseline from the
// drill's own records, backdated one second apart, and no earlier drill's
// devices can be judged silent by a later one. Each drill adds its few
// devices and one group to the engine's state.
package drill

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/ingest/kafka"
)

// Canary shapes: how many drill devices report, for how long, and how.
const (
	devices  = 5   // enough for a group baseline and the peers of a silence
	reports  = 400 // per device, one a second, backdated: the group learns before the spike
	quietFor = 60  // the silent canary's last seconds without a report
	spikeFor = 3   // the spike canary's last reports, far above its level
	metric   = "drill_level"
)

// Canary is one incident a drill injects and the alert it must raise.
type Canary struct {
	Name     string // "spike", "silence"
	Device   string
	Detector string
}

// Result is what became of one canary.
type Result struct {
	Canary
	Delivered bool
	Latency   time.Duration // from the start of injection to the alert's arrival
}

// SinkResult is how many drill alerts one sink of vigil run accepted
// during the drill (vigil_drill_alerts_delivered_total).
type SinkResult struct {
	Sink     string
	Accepted int64
}

// Report is one drill's outcome.
type Report struct {
	Run      string
	Injected time.Time // when injection started
	Records  int
	Results  []Result
	Sinks    []SinkResult  // with Config.MetricsURL only
	Duration time.Duration // from injection start to the drill's end (every alert in, or the deadline)
}

// OK reports whether every canary's alert was delivered, and each sink
// accepted at least as many drill alerts as there are canaries.
func (r *Report) OK() bool {
	for _, c := range r.Results {
		if !c.Delivered {
			return false
		}
	}
	for _, s := range r.Sinks {
		if s.Accepted < int64(len(r.Results)) {
			return false
		}
	}
	return len(r.Results) > 0
}

// WriteText writes r for an operator: one line per canary.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "drill %s: %d records injected at %s\n", r.Run, r.Records, r.Injected.UTC().Format(time.RFC3339))
	for _, c := range r.Results {
		if c.Delivered {
			fmt.Fprintf(w, "  %-8s %-8s %-28s delivered in %s\n", c.Name, c.Detector, c.Device, c.Latency.Round(time.Millisecond))
		} else {
			fmt.Fprintf(w, "  %-8s %-8s %-28s NOT delivered within %s\n", c.Name, c.Detector, c.Device, r.Duration.Round(time.Millisecond))
		}
	}
	for _, s := range r.Sinks {
		verdict := "ok"
		if s.Accepted < int64(len(r.Results)) {
			verdict = "MISSING"
		}
		fmt.Fprintf(w, "  sink %-20s accepted %d drill alerts: %s\n", s.Sink, s.Accepted, verdict)
	}
	if r.OK() {
		fmt.Fprintln(w, "drill passed")
	} else {
		fmt.Fprintln(w, "drill FAILED")
	}
}

// Target is a Kafka topic and how to reach it.
type Target struct {
	Brokers []string
	Dialer  *kafkago.Dialer // TLS and SASL; nil: plaintext
	Topic   string
}

// Config is what a drill needs.
type Config struct {
	Telemetry    Target // where canary records go (a telemetry topic of vigil run)
	Alerts       Target // where vigil run's Kafka sink writes alerts (JSON or ECS)
	Key          []byte // the drill key; the consumer refuses records tagged with another
	DevicePrefix string // drill.device_prefix
	// GroupAttr is the attribute whose value names the drill's group (the
	// first of input.inventory.group_by), so each drill has its own group.
	GroupAttr string
	Deadline  time.Duration
	// MetricsURL is vigil run's /metrics; when set, the drill also waits
	// for each of Sinks (vigil run's sink names) to count the drill's
	// alerts as accepted.
	MetricsURL string
	Sinks      []string
}

// Run injects the canaries and waits for their alerts until every one
// arrived or the deadline passed. It fails only when it cannot inject or
// read; undelivered alerts are in the report (see Report.OK).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if len(cfg.Key) == 0 {
		return nil, errors.New("no drill key: set the environment variable named by drill.key_env, the same as vigil run's")
	}
	start := time.Now()
	run := strconv.FormatInt(start.UnixMilli(), 36)
	msgs, canaries := records(cfg, run, start)
	rep := &Report{Run: run, Records: len(msgs)}

	ctx, cancel := context.WithTimeout(ctx, cfg.Deadline)
	defer cancel()
	var before map[string]int64
	if cfg.MetricsURL != "" {
		var err error
		if before, err = sinkDrills(ctx, cfg.MetricsURL); err != nil {
			return nil, err
		}
	}
	// Read from the end offsets as they are before the canaries go in,
	// so no alert of this drill is missed and none of an earlier one seen.
	readers, err := openAlertReaders(ctx, cfg.Alerts)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, r := range readers {
			r.Close()
		}
	}()
	alerts := make(chan wireAlert, 64)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			readAlerts(ctx, r, alerts)
		}()
	}

	rep.Injected = time.Now()
	w := &kafkago.Writer{
		Addr: kafkago.TCP(cfg.Telemetry.Brokers...), Topic: cfg.Telemetry.Topic, RequiredAcks: kafkago.RequireAll,
		// One partition keeps the canaries in event-time order: the silence
		// is judged by the reports of its peers that follow it.
		Balancer:     kafkago.BalancerFunc(func(_ kafkago.Message, partitions ...int) int { return partitions[0] }),
		BatchSize:    500,
		BatchTimeout: 5 * time.Millisecond,
	}
	if d := cfg.Telemetry.Dialer; d != nil {
		w.Transport = &kafkago.Transport{TLS: d.TLS, SASL: d.SASLMechanism, DialTimeout: d.Timeout, ClientID: d.ClientID}
	}
	err = w.WriteMessages(ctx, msgs...)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("cannot write the drill's records to %s: %w", cfg.Telemetry.Topic, err)
	}

	rep.Results = make([]Result, len(canaries))
	for i, c := range canaries {
		rep.Results[i].Canary = c
	}
	defer func() { rep.Duration = time.Since(rep.Injected) }()
	for left := len(canaries); left > 0; {
		select {
		case <-ctx.Done():
			return rep, nil
		case a := <-alerts:
			for i := range rep.Results {
				r := &rep.Results[i]
				if !r.Delivered && a.matches(&r.Canary) {
					r.Delivered, r.Latency = true, time.Since(rep.Injected)
					left--
				}
			}
		}
	}
	if cfg.MetricsURL != "" {
		rep.Sinks = waitForSinks(ctx, cfg.MetricsURL, cfg.Sinks, before, int64(len(canaries)))
	}
	return rep, nil
}

// waitForSinks polls the drill counters of sinks until each has counted
// at least want more than before, or ctx ends, and returns what each
// counted.
func waitForSinks(ctx context.Context, url string, sinks []string, before map[string]int64, want int64) []SinkResult {
	out := make([]SinkResult, len(sinks))
	for i, s := range sinks {
		out[i].Sink = s
	}
	for {
		if now, err := sinkDrills(ctx, url); err == nil {
			done := true
			for i := range out {
				out[i].Accepted = now[out[i].Sink] - before[out[i].Sink]
				done = done && out[i].Accepted >= want
			}
			if done {
				return out
			}
		}
		select {
		case <-ctx.Done():
			return out
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sinkDrills reads vigil_drill_alerts_delivered_total per sink from a
// Prometheus text exposition at url.
func sinkDrills(ctx context.Context, url string) (map[string]int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("cannot read --metrics %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot read --metrics %s: %w; give vigil run's /metrics (kafka.http_listen)", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("cannot read --metrics %s: %s", url, resp.Status)
	}
	const name = `vigil_drill_alerts_delivered_total{sink="`
	out := map[string]int64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name)
		if !ok {
			continue
		}
		sink, value, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(value, 10, 64); err == nil {
			out[sink] = n
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cannot read --metrics %s: %w", url, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--metrics %s has no vigil_drill_alerts_delivered_total: is it vigil run's /metrics?", url)
	}
	return out, nil
}

// records returns the tagged records of drill run, the newest dated now,
// and the canaries they carry: devices report a level once a second for
// reports seconds; the spike device's last spikeFor reports are far above
// it, and the silent device stops quietFor seconds before the end while
// its peers go on.
func records(cfg Config, run string, now time.Time) ([]kafkago.Message, []Canary) {
	dev := func(i int) string { return cfg.DevicePrefix + run + "-" + strconv.Itoa(i) }
	spike, quiet := dev(0), dev(devices-1)
	canaries := []Canary{
		{Name: "spike", Device: spike, Detector: detect.DetectorSelf},
		{Name: "silence", Device: quiet, Detector: detect.DetectorSilence},
	}
	msgs := make([]kafkago.Message, 0, devices*reports)
	group := cfg.DevicePrefix + run
	for k := range reports {
		ts := now.Add(time.Duration(k-reports+1) * time.Second).UTC()
		for i := range devices {
			if i == devices-1 && k >= reports-quietFor {
				continue
			}
			v := 50 + float64((i*7+k*13)%11-5)*0.5
			if i == 0 && k >= reports-spikeFor {
				v = 5000
			}
			value := fmt.Appendf(nil, `{"device":%q,"ts":%q,"attrs":{%q:%q},"metrics":{%q:%g}}`,
				dev(i), ts.Format(time.RFC3339Nano), cfg.GroupAttr, group, metric, v)
			msgs = append(msgs, kafkago.Message{Value: value, Headers: []kafkago.Header{{Key: kafka.HeaderDrill, Value: kafka.DrillTag(cfg.Key, value)}}})
		}
	}
	return msgs, canaries
}

// wireAlert is what a drill reads of an alert, in the JSON or the ECS
// layout of the Kafka sink.
type wireAlert struct {
	Device, Detector, State string
	Drill                   bool
}

func (a *wireAlert) matches(c *Canary) bool {
	return a.Drill && a.State == detect.StateAlarm && a.Device == c.Device && a.Detector == c.Detector
}

// parseAlert reads an alert of either layout; ok is false for anything
// else (a quarantine event, a record of another producer).
func parseAlert(data []byte) (wireAlert, bool) {
	var v struct {
		Device   json.RawMessage `json:"device"`
		Detector string          `json:"detector"`
		State    string          `json:"state"`
		Drill    bool            `json:"drill"`
		Rule     struct {
			Category string `json:"category"`
		} `json:"rule"`
		Vigil struct {
			State string `json:"state"`
			Drill bool   `json:"drill"`
		} `json:"vigil"`
	}
	if json.Unmarshal(data, &v) != nil {
		return wireAlert{}, false
	}
	var a wireAlert
	if json.Unmarshal(v.Device, &a.Device) == nil { // the JSON layout
		a.Detector, a.State, a.Drill = v.Detector, v.State, v.Drill
		return a, a.Detector != ""
	}
	var ecs struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(v.Device, &ecs) != nil {
		return wireAlert{}, false
	}
	a.Device, a.Detector, a.State, a.Drill = ecs.ID, v.Rule.Category, v.Vigil.State, v.Vigil.Drill
	return a, a.Detector != ""
}

// openAlertReaders returns a reader of each partition of the alerts
// topic, at its end offset.
func openAlertReaders(ctx context.Context, t Target) ([]*kafkago.Reader, error) {
	d := t.Dialer
	if d == nil {
		d = &kafkago.Dialer{Timeout: 10 * time.Second}
	}
	var parts []kafkago.Partition
	var err error
	for _, b := range t.Brokers {
		if parts, err = d.LookupPartitions(ctx, "tcp", b, t.Topic); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cannot list the partitions of alerts topic %s: %w", t.Topic, err)
	}
	var readers []*kafkago.Reader
	for _, p := range parts {
		conn, err := d.DialLeader(ctx, "tcp", fmt.Sprintf("%s:%d", p.Leader.Host, p.Leader.Port), t.Topic, p.ID)
		if err != nil {
			return nil, fmt.Errorf("cannot reach the leader of %s partition %d: %w", t.Topic, p.ID, err)
		}
		end, err := conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			return nil, fmt.Errorf("cannot read the end offset of %s partition %d: %w", t.Topic, p.ID, err)
		}
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: t.Brokers, Topic: t.Topic, Partition: p.ID, Dialer: d,
			MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond})
		if err := r.SetOffset(end); err != nil {
			r.Close()
			return nil, err
		}
		readers = append(readers, r)
	}
	return readers, nil
}

// readAlerts sends the alerts r reads to out until ctx ends.
func readAlerts(ctx context.Context, r *kafkago.Reader, out chan<- wireAlert) {
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			return // ctx ended; the reader retries everything else itself
		}
		if a, ok := parseAlert(m.Value); ok && a.Drill {
			select {
			case out <- a:
			case <-ctx.Done():
				return
			}
		}
	}
}
