package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// consoleReplay is `vigil replay --serve` over the fleet sample cut at
// 2026-11-03T10:20Z, twenty minutes into the exfiltration incident:
// plc-a-002's bytes_out is ten times its usual, in alarm against its own
// baseline and its peers, and the joint alarm's recommendation to
// quarantine it waits for a decision (the fleet config quarantines only
// identity and rule alarms automatically).
type consoleReplay struct {
	addr   string // host:port of the console
	out    string // the replay's --out file
	stderr *syncBuffer
	cancel context.CancelFunc
	done   chan struct{} // closed when the replay returned r.err
	err    error
}

func startConsoleReplay(t *testing.T) *consoleReplay {
	t.Helper()
	t.Chdir(repoRoot) // the config names its files from the repository root
	input := filepath.Join(t.TempDir(), "telemetry.jsonl")
	cutTelemetry(t, "testdata/fleet/telemetry.jsonl.gz", input, "2026-11-03T10:20")
	return serveReplay(t, "testdata/config/fleet.yaml", input, 2)
}

// serveReplay runs `vigil replay --serve 127.0.0.1:0 --shards shards
// --config config input` (from the repository root) until the replay is
// done and its console serves what it learned.
func serveReplay(t *testing.T, config, input string, shards int) *consoleReplay {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &consoleReplay{out: filepath.Join(t.TempDir(), "alerts.jsonl"), stderr: &syncBuffer{}, cancel: cancel, done: make(chan struct{})}
	opts := replayOptions{config: config, out: r.out, shards: shards, serve: "127.0.0.1:0", inputs: []string{input}}
	go func() { r.err = replay(ctx, opts, &syncBuffer{}, r.stderr); close(r.done) }()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	learned := regexp.MustCompile(`console: http://(\S+)/ shows what the replay learned`)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := learned.FindStringSubmatch(r.stderr.String()); m != nil {
			r.addr = m[1]
			return r
		}
		select {
		case <-r.done:
			t.Fatalf("replay ended: %v\n%s", r.err, r.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replay did not finish in 60 s:\n%s", r.stderr.String())
		}
	}
}

// cutTelemetry copies the lines of a gzipped JSONL file before the time
// prefix until (its "ts" fields are RFC 3339 UTC, in order).
func cutTelemetry(t *testing.T, from, to, until string) {
	t.Helper()
	f, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	w := bufio.NewWriter(out)
	sc := bufio.NewScanner(gz)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, `"ts":"`); i >= 0 && line[i+6:i+6+len(until)] >= until {
			break
		}
		w.WriteString(line + "\n")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

func (r *consoleReplay) get(t *testing.T, path string, v any) int {
	t.Helper()
	resp, err := http.Get("http://" + r.addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return resp.StatusCode
}

// TestConsoleWithShards: a replay judged by two engine shards shows the
// console what one engine shows: every device's row and story (status,
// identity, open alarms, each metric's recent values and band), the
// groups' learning state and the quarantine queue.
func TestConsoleWithShards(t *testing.T) {
	if testing.Short() {
		t.Skip("replays a day and a half of the fleet sample twice")
	}
	t.Chdir(repoRoot)
	input := filepath.Join(t.TempDir(), "telemetry.jsonl")
	cutTelemetry(t, "testdata/fleet/telemetry.jsonl.gz", input, "2026-11-03T10:20")
	one, two := serveReplay(t, "testdata/config/fleet.yaml", input, 1), serveReplay(t, "testdata/config/fleet.yaml", input, 2)
	if !strings.Contains(two.stderr.String(), "engine shards: 2") || !strings.Contains(one.stderr.String(), "engine shards: 1") {
		t.Fatalf("the replays did not run on 1 and 2 engines:\n%s\n%s", one.stderr.String(), two.stderr.String())
	}
	var fleet struct {
		Devices []struct {
			Device string `json:"device"`
		} `json:"devices"`
	}
	one.get(t, "/api/v1/devices?limit=1000", &fleet)
	if len(fleet.Devices) != 60 {
		t.Fatalf("%d devices, want the fleet's 60", len(fleet.Devices))
	}
	paths := []string{"/api/v1/devices?limit=1000", "/api/v1/groups", "/api/v1/quarantine", "/api/v1/groups/plant-b%2Fs7-1200"}
	for _, d := range fleet.Devices {
		paths = append(paths, "/api/v1/devices/"+d.Device)
	}
	for _, p := range paths {
		var a, b any
		one.get(t, p, &a)
		two.get(t, p, &b)
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if string(ja) != string(jb) {
			t.Errorf("%s differs with two shards:\none engine: %.2000s\ntwo shards: %.2000s", p, ja, jb)
		}
	}
	var story struct {
		Metrics []struct {
			Points []any `json:"points"`
		} `json:"metrics"`
	}
	if two.get(t, "/api/v1/devices/plc-b-010", &story); len(story.Metrics) != 5 || len(story.Metrics[0].Points) == 0 {
		t.Errorf("a device's story shows %d metrics with two shards, want 5 with their values", len(story.Metrics))
	}
}

// TestReplayServesConsole: `vigil replay --serve` keeps the console up
// after the replay with what it learned, and a decision taken there goes
// to the replay's output as a quarantine event.
func TestReplayServesConsole(t *testing.T) {
	if testing.Short() {
		t.Skip("replays a day and a half of the fleet sample")
	}
	r := startConsoleReplay(t)
	var all struct {
		Total int `json:"total"`
	}
	if r.get(t, "/api/v1/devices?q=site:plant-*", &all); all.Total != 60 {
		t.Fatalf("%d devices, want the fleet's 60", all.Total)
	}
	var q struct {
		Queue []struct {
			Device  string `json:"device"`
			State   string `json:"state"`
			EventID string `json:"event_id"`
		} `json:"queue"`
	}
	r.get(t, "/api/v1/quarantine", &q)
	var rec string
	for _, item := range q.Queue {
		if item.Device == "plc-a-002" && item.State == "recommended" {
			rec = item.EventID
		}
	}
	if rec == "" {
		t.Fatalf("no recommendation for plc-a-002 in the queue: %+v", q.Queue)
	}
	resp, err := http.Post("http://"+r.addr+"/api/v1/quarantine/"+rec+"/approve", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("approve: %d", resp.StatusCode)
	}
	r.cancel()
	if <-r.done; r.err != nil {
		t.Fatal(r.err)
	}
	out, err := os.ReadFile(r.out)
	if err != nil {
		t.Fatal(err)
	}
	last := strings.Split(strings.TrimSpace(string(out)), "\n")
	ev := last[len(last)-1]
	if !strings.Contains(ev, `"action":"quarantine","mode":"approval_required","device":"plc-a-002"`) || !strings.Contains(ev, "approved by local") {
		t.Fatalf("the decision is not the output's last line:\n%s", ev)
	}
}
