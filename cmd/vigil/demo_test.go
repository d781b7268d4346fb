//go:build !nodemo

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/ingest/simulate/attackgen"
	"github.com/vigil-ot/vigil/ingest/simulate/fleetgen"
)

// The demo runs the whole pipeline through the embedded broker and stops
// by itself, with alerts printed and a summary.
func TestDemoIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs the embedded demo")
	}
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	done := make(chan error, 1)
	start := time.Now()
	seen := &collectSink{}
	go func() { done <- demo(context.Background(), &out, 12*time.Second, 0, "", false, log, seen) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo failed: %v\n%s", err, out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("demo did not stop by itself")
	}
	t.Logf("demo took %s:\n%s", time.Since(start), out.String())
	s := out.String()
	for _, want := range []string{"broker on 127.0.0.1:", "ALARM", "Summary after", "alarms "} {
		if !strings.Contains(s, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	// Three partitions per topic: devices of a partition read behind the
	// others must not look silent. The fleet injects one silence.
	if m := regexp.MustCompile(`alarms (\d+):.*`).FindStringSubmatch(s); m == nil {
		t.Errorf("demo summary lacks the alarm count")
	} else if n, _ := strconv.Atoi(m[1]); n > 40 {
		t.Errorf("demo raised %d alarms on a fleet with about 20 incidents: %s", n, m[0])
	}
	if m := regexp.MustCompile(`\bsilence (\d+)`).FindStringSubmatch(s); m != nil {
		if n, _ := strconv.Atoi(m[1]); n > 2 {
			t.Errorf("demo raised %d silence alarms; the fleet injects one", n)
		}
	}
	checkDemoNetworkAlerts(t, seen.alerts)
}

// checkDemoNetworkAlerts holds the demo to what it says of its network
// alerts (demoPacketNote): those of one conversation are the replay's of
// the same capture under the same config, alarm for alarm, and the flood
// alarm comes with a share of the replay's rate.
func checkDemoNetworkAlerts(t *testing.T, alerts []detect.Alert) {
	t.Helper()
	cfg, err := ParseConfig([]byte(demoConfig))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg.Input.Inventory.Path = filepath.Join(dir, "inventory.csv")
	if err := writeFile(cfg.Input.Inventory.Path, func(w io.Writer) error { return fleetgen.WriteInventory(fleetgen.SampleConfig(), w) }); err != nil {
		t.Fatal(err)
	}
	capture := filepath.Join(dir, "attack.pcap")
	if err := writeFile(capture, func(w io.Writer) error { _, err := attackgen.Generate(w, attackgen.DefaultScenario()); return err }); err != nil {
		t.Fatal(err)
	}
	replayed := &collectSink{}
	job, err := openReplay(cfg, []string{capture}, replayed, slog.New(slog.NewTextHandler(io.Discard, nil)), replaySetup{})
	if err != nil {
		t.Fatal(err)
	}
	defer job.close()
	if err := job.run(context.Background()); err != nil {
		t.Fatal(err)
	}

	type alarm struct{ ID, Detector, Behavior, Device, Message string }
	conversation := func(alerts []detect.Alert) (map[alarm]time.Time, []detect.Alert) {
		out := map[alarm]time.Time{}
		var floods []detect.Alert
		for _, a := range alerts {
			switch {
			case a.State != detect.StateAlarm:
			case a.Detector == detect.DetectorFlood:
				floods = append(floods, a)
			case a.Detector == detect.DetectorScan, a.Detector == detect.DetectorNovelty && a.Behavior != detect.BehaviorUnknownAsset:
				out[alarm{a.ID, a.Detector, a.Behavior, a.Device, a.Message}] = a.EventTime
			}
		}
		return out, floods
	}
	want, wantFloods := conversation(replayed.alerts)
	got, gotFloods := conversation(alerts)
	// The new Modbus writer's edge and write, the S7 stop, the port scan.
	if len(want) < 4 || len(wantFloods) == 0 {
		t.Fatalf("the replay of the capture raised %d conversation alarms and %d floods; the test no longer exercises the demo's claim", len(want), len(wantFloods))
	}
	for a, at := range want {
		if got[a].IsZero() {
			t.Errorf("replay raises %s/%s on %s at %s, the demo does not: %s", a.Detector, a.Behavior, a.Device, at.Format(time.RFC3339Nano), a.Message)
		} else if !got[a].Equal(at) {
			t.Errorf("%s/%s on %s at %s in the demo, at %s in the replay", a.Detector, a.Behavior, a.Device, got[a].Format(time.RFC3339Nano), at.Format(time.RFC3339Nano))
		}
	}
	for a := range got {
		if _, ok := want[a]; !ok {
			t.Errorf("the demo raises %s/%s on %s, replay does not: %s", a.Detector, a.Behavior, a.Device, a.Message)
		}
	}
	if len(gotFloods) == 0 || gotFloods[0].Device != wantFloods[0].Device || gotFloods[0].Observed >= wantFloods[0].Observed {
		t.Errorf("demo floods %+v; want an alarm on %s below the replay's rate %.0f", gotFloods, wantFloods[0].Device, wantFloods[0].Observed)
	}
}

// An interrupt is a clean stop: no error, and the summary printed, whether
// it comes as the demo starts producing (before Vigil joined its group) or
// while it produces.
func TestDemoInterruptedIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs the embedded demo")
	}
	for _, after := range []time.Duration{0, 2 * time.Second} {
		t.Run(after.String(), func(t *testing.T) {
			producing := make(chan struct{}) // out.seen is set to nil by Write: select on a copy
			out := &watchWriter{watch: "Producing", seen: producing}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			httpAddr := ln.Addr().String()
			ln.Close()
			go func() {
				done <- demo(ctx, out, 20*time.Second, 0, httpAddr, false, slog.New(slog.NewTextHandler(io.Discard, nil)))
			}()
			select {
			case <-producing:
			case err := <-done:
				t.Fatalf("demo ended before producing: %v\n%s", err, out)
			case <-time.After(30 * time.Second):
				t.Fatal("demo did not start producing in 30s")
			}
			time.Sleep(after) // it produces for 15 s
			if after > 0 {
				// The demo serves the metrics vigil run serves.
				resp, err := http.Get("http://" + httpAddr + "/metrics")
				if err != nil {
					t.Fatalf("demo serves no /metrics: %v", err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if !strings.Contains(string(body), "# HELP vigil_kafka_records_total") {
					t.Errorf("demo's /metrics lacks vigil_kafka_records_total:\n%.500s", body)
				}
				// and the operator console, with the devices that reported
				devicesSeen(t, "http://"+httpAddr+"/api/v1/devices")
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("interrupted demo: %v; want a clean stop\n%s", err, out)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("interrupted demo did not stop in 30s")
			}
			if !strings.Contains(out.String(), "Summary after") {
				t.Errorf("interrupted demo printed no summary:\n%s", out)
			}
		})
	}
}

// An interrupt in the middle of a write is no error either.
func TestDemoProduceInterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the embedded broker")
	}
	broker, err := startDemoBroker(0)
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	scenario, err := newDemoScenario(fleetgen.SampleConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // every write sees the end of its context
	if n, err := scenario.produce(ctx, broker.ListenAddrs()[0], time.Second); err != nil {
		t.Fatalf("produce after an interrupt: %d records, %v; want a clean stop", n, err)
	}
}

// watchWriter keeps what is written and closes seen once watch was.
type watchWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	watch string
	seen  chan struct{}
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.seen != nil && strings.Contains(w.buf.String(), w.watch) {
		close(w.seen)
		w.seen = nil
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestDemoConfigFollowsFleetConfig keeps the demo's embedded configuration
// in step with testdata/config/fleet.yaml, the one tuned on the fleet sample:
// the demo may add the packet side and scale partition_idle to its compressed
// time, but baselines, rules and telemetry detectors must be the same.
func TestDemoConfigFollowsFleetConfig(t *testing.T) {
	fleet, err := LoadConfig("../../testdata/config/fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	demo, err := ParseConfig([]byte(demoConfig))
	if err != nil {
		t.Fatal(err)
	}
	same := []struct {
		name        string
		fleet, demo any
	}{
		{"baseline", fleet.Baseline, demo.Baseline},
		{"detect.self", fleet.Detect.Self, demo.Detect.Self},
		{"detect.peer", fleet.Detect.Peer, demo.Detect.Peer},
		{"detect.metrics", fleet.Detect.Metrics, demo.Detect.Metrics},
		{"detect.rules", fleet.Detect.Rules, demo.Detect.Rules},
		{"detect.identity", fleet.Detect.Identity, demo.Detect.Identity},
		{"detect.fleet", fleet.Detect.Fleet, demo.Detect.Fleet},
		{"detect.silence.missed_reports", fleet.Detect.Silence.MissedReports, demo.Detect.Silence.MissedReports},
		{"detect.quarantine", fleet.Detect.Quarantine, demo.Detect.Quarantine},
	}
	for _, s := range same {
		if !reflect.DeepEqual(s.fleet, s.demo) {
			t.Errorf("%s differs between testdata/config/fleet.yaml and the demo config:\nfleet: %+v\ndemo:  %+v", s.name, s.fleet, s.demo)
		}
	}
}

// devicesSeen waits up to 20 s until the console at url lists a device.
func devicesSeen(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatalf("demo serves no console: %v", err)
		}
		var res struct {
			Total int `json:"total"`
		}
		err = json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("console: %v", err)
		}
		if res.Total > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the demo's console lists no device after 20 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDemoHTTPAddrFallsBack: the demo's default console address, when
// another program holds it, gives way to a free loopback port, so `make
// demo` works beside it; an address given with --http does not.
func TestDemoHTTPAddrFallsBack(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	taken := held.Addr().String()
	got, err := demoHTTPAddr(taken, false)
	if err != nil || got == taken {
		t.Fatalf("default address taken: got %q, %v; want another free address", got, err)
	}
	ln, err := net.Listen("tcp", got)
	if err != nil {
		t.Fatalf("the fallback %s is not free: %v", got, err)
	}
	ln.Close()
	if _, err := demoHTTPAddr(taken, true); err == nil || !strings.Contains(err.Error(), "--http") {
		t.Fatalf("an explicit --http that is taken: %v; want an error naming --http", err)
	}
	if got, err := demoHTTPAddr("", false); got != "" || err != nil {
		t.Fatalf("--http \"\": %q, %v", got, err)
	}
	if portFree(held.Addr().(*net.TCPAddr).Port) {
		t.Fatal("a held port reported free")
	}
}

// TestDemoConsoleInBrowser: the demo's console, in headless chromium, as
// an analyst would use it once the demo has run (--stay): the whole fleet
// in the table, a search, the exfiltrating device's page with its charts
// and alerts, and the quarantine page with what the policy sent. (Its
// recommendations last seconds of a demo: approving one is
// TestConsoleInBrowser's, on a replay cut while one waits.)
func TestDemoConsoleInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the embedded demo and starts chromium")
	}
	p := &page{t: t, ctx: browser(t), shots: t.TempDir()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	out, done := &syncBuffer{}, make(chan error, 1)
	go func() {
		done <- demo(ctx, out, 12*time.Second, 0, addr, true, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo: %v", err)
		}
	})
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(out.String(), "The console stays up at") {
		select {
		case err := <-done:
			t.Fatalf("the demo stopped: %v\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo did not finish in 90 s:\n%s", out.String())
		}
	}
	base := "http://" + addr + "/"

	p.open(base, "#/fleet")
	if count := p.text("#count"); !regexp.MustCompile(`^1–50 of 6\d devices$`).MatchString(count) {
		t.Errorf("the demo's fleet: %q", count)
	}
	p.do(chromedp.SetValue(chromedp.CSS("#q"), "site:plant-a AND hw:s7-1500"), chromedp.Click(chromedp.CSS("form.search button")),
		chromedp.WaitVisible(chromedp.CSS(`body[data-ready^="#/fleet?q=site"]`)))
	if count := p.text("#count"); count != "1–10 of 10 devices" {
		t.Errorf("plant-a's S7-1500s: %q", count)
	}
	p.open(base, "#/device/plc-a-002")
	charts, err := chromedp.Run(p.ctx, chromedp.Evaluate[int](`document.querySelectorAll("svg.plot").length`))
	if err != nil || charts != 5 {
		t.Errorf("plc-a-002's page has %d charts (%v), want its 5 metrics", charts, err)
	}
	if alerts := p.text("table.alerts"); !strings.Contains(alerts, "bytes_out") {
		t.Errorf("plc-a-002's alerts lack its exfiltration:\n%s", alerts)
	}
	p.open(base, "#/quarantine")
	if q := p.text("main"); !strings.Contains(q, "approval_required") || !strings.Contains(q, "automatic") {
		t.Errorf("the demo's quarantine page:\n%.1500s", q)
	}
}
