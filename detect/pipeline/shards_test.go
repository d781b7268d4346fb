package pipeline_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/detect/pipeline"
	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/sinks"
)

// writesSink is the JSON sink of vigil replay, with each Write's end
// marked.
type writesSink struct {
	buf bytes.Buffer
	detect.Sink
}

func newWritesSink() *writesSink {
	s := &writesSink{}
	s.Sink = sinks.NewWriterSink("test", &s.buf, sinks.FormatJSON)
	return s
}

func (s *writesSink) Write(ctx context.Context, out *detect.Output) error {
	if err := s.Sink.Write(ctx, out); err != nil {
		return err
	}
	s.buf.WriteString("--\n")
	return nil
}

// crossShardFleet writes eight hours of one report a minute from six
// devices in each of six sites (a group per site), with what crosses
// groups, so crosses shards: two certificates each shared by devices of
// two sites, taken up in the same minute (identity alarms that quarantine
// automatically, the second of the minute stopped by the per-minute
// rail); a spike (self alarms, with a baseline version); a device gone
// silent; alarm storms in two sites at the end of the input (rate limit,
// summarized at Flush); and a record dated a year ahead (the clock).
func crossShardFleet(t *testing.T) string {
	t.Helper()
	rnd := rand.New(rand.NewSource(7))
	start := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	shared := map[string]string{"d-s0-1": "shared-a", "d-s3-2": "shared-a", "d-s1-0": "shared-b", "d-s4-0": "shared-b"}
	var buf bytes.Buffer
	line := func(dev, site string, ts time.Time, bytesOut float64, cert string) {
		fmt.Fprintf(&buf, `{"device":%q,"ts":%d,"attrs":{"site":%q},"metrics":{"bytes_out":%.3f,"msgs_sent":%.3f},"conn":{"cert":%q}}`+"\n",
			dev, ts.UnixMilli(), site, bytesOut, 10+rnd.NormFloat64(), cert)
	}
	for m := 0; m < 480; m++ {
		for d := 0; d < 6; d++ {
			for s := 0; s < 6; s++ {
				dev, site := fmt.Sprintf("d-s%d-%d", s, d), fmt.Sprintf("s%d", s)
				ts := start.Add(time.Duration(m)*time.Minute + time.Duration(d*6+s)*time.Second)
				if dev == "d-s5-4" && m >= 400 {
					continue
				}
				bytesOut := 1000 + 50*rnd.NormFloat64()
				if dev == "d-s2-3" && m >= 360 && m < 365 || (site == "s1" || site == "s4") && m >= 470 && m < 474 {
					bytesOut *= 40
				}
				cert := "cert-" + dev
				if c, ok := shared[dev]; ok && m >= 300 {
					cert = c
				}
				line(dev, site, ts, bytesOut, cert)
				if dev == "d-s2-0" && m == 200 {
					line(dev, site, ts.AddDate(1, 0, 0), bytesOut, cert)
				}
			}
		}
	}
	path := filepath.Join(t.TempDir(), "fleet.jsonl")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func crossShardConfig(batchRows int) pipeline.Config {
	inv := ingest.DefaultInventoryConfig()
	inv.GroupBy = []string{"site"}
	cfg := pipeline.Config{Inventory: inv, Telemetry: ingest.DefaultTelemetryConfig(), Packets: ingest.DefaultPacketConfig(),
		Baseline: baseline.DefaultConfig(), Detect: detect.DefaultConfig()}
	cfg.Telemetry.BatchRows = batchRows
	cfg.Baseline.MinSamples, cfg.Baseline.MinDuration, cfg.Baseline.DeviceMinSamples = 300, time.Hour, 20
	d := &cfg.Detect
	d.Identity.Enabled, d.Identity.Window, d.Identity.MaxDevicesPerCert = true, 10*time.Minute, 1
	d.Quarantine.Enabled, d.Quarantine.Detectors = true, []string{detect.DetectorIdentity}
	d.Quarantine.MinSeverity, d.Quarantine.MaxGroupFraction, d.Quarantine.MaxPerMinute = 1, 1, 1
	d.RateLimit.Enabled, d.RateLimit.Burst, d.RateLimit.Refill = true, 2, 10*time.Minute
	return cfg
}

// replayShards replays path with shards engines in batches of batchRows
// and returns what the sink wrote and the engines' counters.
func replayShards(t *testing.T, path string, shards, batchRows int) ([]byte, detect.Stats) {
	t.Helper()
	sink := newWritesSink()
	p := runShards(t, path, crossShardConfig(batchRows), pipeline.Deps{Sink: sink, NoNetwork: true, Shards: shards})
	return sink.buf.Bytes(), p.Judge.Stats()
}

// runShards replays path through a pipeline of cfg and deps, which asks
// for deps.Shards engines, and returns it.
func runShards(t *testing.T, path string, cfg pipeline.Config, deps pipeline.Deps) *pipeline.Pipeline {
	t.Helper()
	p, err := pipeline.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if p.Shards() != max(deps.Shards, 1) {
		t.Fatalf("%d shards asked, %d engines", deps.Shards, p.Shards())
	}
	files, err := p.OpenFiles(cfg, []string{path}, nil, pipeline.FileOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer files.Close()
	if err := p.Run(context.Background(), files.Merged); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestShardsRaiseOneEnginesAlerts: 2, 3 and 4 engine shards deliver byte
// for byte what one engine delivers, in the same Writes, with batches of
// 4096, 7 and 1 rows, on input whose alerts depend on what crosses groups.
func TestShardsRaiseOneEnginesAlerts(t *testing.T) {
	path := crossShardFleet(t)
	want, wantStats := replayShards(t, path, 1, 4096)
	for _, must := range []string{
		`"behavior":"shared_certificate"`, "devices a minute may be quarantined", `"action":"quarantine"`,
		`"detector":"silence"`, "alarm storm in s1 is over", "alarm storm in s4 is over", `"detector":"self"`,
	} {
		if !bytes.Contains(want, []byte(must)) {
			t.Fatalf("one engine's output has no %s: the input no longer exercises what crosses shards", must)
		}
	}
	if !regexp.MustCompile(`"baseline":[1-9]`).Match(want) || wantStats.FutureRows != 1 {
		t.Fatalf("one engine's output has no alert with a baseline version, or %d rows ahead (want 1)", wantStats.FutureRows)
	}
	for _, batchRows := range []int{4096, 7, 1} {
		if batchRows != 4096 {
			want, _ = replayShards(t, path, 1, batchRows) // Writes follow batches
		}
		for _, shards := range []int{2, 3, 4} {
			if batchRows == 1 && shards != 4 {
				continue // one row at a time is slow; once is enough
			}
			got, st := replayShards(t, path, shards, batchRows)
			if !bytes.Equal(got, want) {
				t.Errorf("%d shards, batches of %d rows: output differs from one engine's: %s", shards, batchRows, firstDiff(got, want))
			}
			if st.Rows != wantStats.Rows || st.NotLearned != wantStats.NotLearned || st.FutureRows != wantStats.FutureRows ||
				st.Cleared != wantStats.Cleared || st.RateLimited != wantStats.RateLimited || st.ShardMoves != 0 {
				t.Errorf("%d shards, batches of %d rows: counters %+v, one engine's %+v", shards, batchRows, st, wantStats)
			}
		}
	}
}

// firstDiff describes the first line where got and want differ.
func firstDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < max(len(g), len(w)); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:\n got  %s\n want %s", i+1, gl, wl)
		}
	}
	return "no line differs"
}

// partitionedFleet is four hours of one report a minute from 12 devices in
// four sites, read from three partitions of a topic that do not follow the
// sites: partition 2 falls 40 minutes behind the others for an hour and
// catches up, while a device of partition 0 stops reporting. Each shard
// judges absence against the watermark of every partition, its own
// devices' and the others' alike. Batches hold up to 64 rows of one
// partition, as Kafka batches do. With revoke, partition 2 moves to
// another instance at minute 148: nothing of it is read after, and the
// batches up to then are revokedAt.
func partitionedFleet(revoke bool) (batches [][]ingest.Row, revokedAt int) {
	start := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	rnd := rand.New(rand.NewSource(3))
	var byPart [3][][]ingest.Row // partition -> minute -> rows
	for p := range byPart {
		byPart[p] = make([][]ingest.Row, 240)
	}
	var offsets [3]int64
	for m := 0; m < 240; m++ {
		for d := 0; d < 12; d++ {
			dev := fmt.Sprintf("d%02d", d)
			if dev == "d03" && m >= 150 {
				continue
			}
			p := int32(d % 3)
			byPart[p][m] = append(byPart[p][m], ingest.Row{
				TimeNanos: start.Add(time.Duration(m)*time.Minute + time.Duration(d)*time.Second).UnixNano(),
				Device:    dev, Group: fmt.Sprintf("site-%d", d/3), Partition: p, Offset: offsets[p],
				Metrics: []ingest.Metric{{Name: "bytes_out", Value: 1000 + 50*rnd.NormFloat64()}},
			})
			offsets[p]++
		}
	}
	deliver := func(p, from, to int) { // minutes [from, to) of partition p
		if revoke && p == 2 && from >= 148 {
			return
		}
		var b []ingest.Row
		for m := from; m < to; m++ {
			for _, r := range byPart[p][m] {
				if b = append(b, r); len(b) == 64 {
					batches, b = append(batches, b), nil
				}
			}
		}
		if len(b) > 0 {
			batches = append(batches, b)
		}
	}
	for m := 0; m < 240; m++ {
		if m == 148 {
			revokedAt = len(batches)
		}
		deliver(0, m, m+1)
		deliver(1, m, m+1)
		switch {
		case m < 140 || m >= 200:
			deliver(2, m, m+1)
		case m >= 180: // catching up: two minutes a minute
			deliver(2, 2*m-220, 2*m-218)
		}
	}
	return batches, revokedAt
}

// TestShardsKeepEveryPartitionsWatermark: with three partitions, one of
// them lagging, or taken away (its devices forgotten:
// kafka.DeviceForgetter), 2 and 3 engine shards deliver what one engine
// delivers.
func TestShardsKeepEveryPartitionsWatermark(t *testing.T) {
	for _, revoke := range []bool{false, true} {
		batches, revokedAt := partitionedFleet(revoke)
		judge := func(shards int) []byte {
			cfg := crossShardConfig(4096)
			sink := newWritesSink()
			p, err := pipeline.New(cfg, pipeline.Deps{Sink: sink, NoNetwork: true, Shards: shards})
			if err != nil {
				t.Fatal(err)
			}
			b := ingest.NewObservationBuilder(nil, p.Registry, nil)
			for k, rows := range batches {
				if revoke && k == revokedAt {
					for _, dev := range []string{"d02", "d05", "d08", "d11"} { // partition 2's
						p.Judge.(interface{ ForgetDevice(string) }).ForgetDevice(dev)
					}
				}
				for i := range rows {
					b.Append(&rows[i])
				}
				rec, _ := b.NewRecord()
				batch := ingest.NewBatch(rec, nil)
				batch.Source = "telemetry"
				if err := p.Judge.Process(context.Background(), batch); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.Judge.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			return sink.buf.Bytes()
		}
		want := judge(1)
		if !bytes.Contains(want, []byte(`"device":"d03","group":"site-1","criticality":"unknown","detector":"silence"`)) {
			t.Fatalf("revoke %v: one engine did not find d03 silent: the input no longer exercises the watermark:\n%s", revoke, want)
		}
		for _, shards := range []int{2, 3} {
			if got := judge(shards); !bytes.Equal(got, want) {
				t.Errorf("revoke %v, %d shards: output differs from one engine's: %s", revoke, shards, firstDiff(got, want))
			}
		}
	}
}

// TestShardsCountDevicesMovingAcross: a device that moves to a group of
// another shard starts afresh there, so the shards are not one engine for
// it; the move is counted, once (the replay summary says so). On one engine
// nothing is counted.
func TestShardsCountDevicesMovingAcross(t *testing.T) {
	start := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	var rows []ingest.Row
	for m := 0; m < 20; m++ {
		for d := 0; d < 4; d++ {
			group := fmt.Sprintf("site-%d", d%2)
			if d == 0 && m >= 10 {
				group = "site-1" // site-0 is shard 0's of 2, site-1 shard 1's
			}
			rows = append(rows, ingest.Row{TimeNanos: start.Add(time.Duration(m)*time.Minute + time.Duration(d)*time.Second).UnixNano(),
				Device: fmt.Sprintf("d%d", d), Group: group, Partition: -1, Offset: -1,
				Metrics: []ingest.Metric{{Name: "bytes_out", Value: 1000}}})
		}
	}
	for _, c := range []struct {
		shards int
		moves  int64
	}{{1, 0}, {2, 1}} {
		p, err := pipeline.New(crossShardConfig(4096), pipeline.Deps{Sink: newWritesSink(), NoNetwork: true, Shards: c.shards})
		if err != nil {
			t.Fatal(err)
		}
		b := ingest.NewObservationBuilder(nil, p.Registry, nil)
		for i := range rows {
			b.Append(&rows[i])
		}
		rec, _ := b.NewRecord()
		if err := p.Judge.Process(context.Background(), ingest.NewBatch(rec, nil)); err != nil {
			t.Fatal(err)
		}
		if st := p.Judge.Stats(); st.ShardMoves != c.moves || st.Rows != int64(len(rows)) {
			t.Errorf("%d shards: %d moves across shards, %d rows judged; want %d and %d", c.shards, st.ShardMoves, st.Rows, c.moves, len(rows))
		}
	}
}

// TestShardsNotWithEvictIdle: under detect.when_full evict_idle the
// pipeline judges on one engine, whatever Shards asks: one engine evicts
// and reuses the registry's device ids, and shards would each hold
// state of an id another evicted.
func TestShardsNotWithEvictIdle(t *testing.T) {
	cfg := crossShardConfig(4096)
	cfg.Detect.WhenFull = detect.WhenFullEvictIdle
	p, err := pipeline.New(cfg, pipeline.Deps{Sink: newWritesSink(), NoNetwork: true, Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	if p.Sharded != nil || p.Shards() != 1 {
		t.Fatalf("evict_idle with 4 shards asked: %d engines", p.Shards())
	}
}

// TestShardsHoldOnlyTheirDevices: each shard's baseline store holds the
// state of the devices of its own groups only, so the stores together
// hold each device once, as one engine's store does, not every shard a
// slot for every device of the input.
func TestShardsHoldOnlyTheirDevices(t *testing.T) {
	path := crossShardFleet(t)
	for _, shards := range []int{1, 3} {
		cfg := crossShardConfig(4096)
		p, err := pipeline.New(cfg, pipeline.Deps{Sink: newWritesSink(), NoNetwork: true, Shards: shards})
		if err != nil {
			t.Fatal(err)
		}
		files, err := p.OpenFiles(cfg, []string{path}, nil, pipeline.FileOptions{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Run(context.Background(), files.Merged); err != nil {
			t.Fatal(err)
		}
		files.Close()
		if n := p.StoreStats().Devices; n != 36 {
			t.Errorf("%d shards hold the state of %d devices, want the input's 36", shards, n)
		}
	}
}

// TestShardsJudgeAhead: with Sharded.JudgeAhead(n), Process returns with
// the last n batches still judging and acknowledges the earlier ones, in
// order, once delivered; Flush delivers the rest. Though shards judge a
// batch after later ones were handed out, each judges it against the
// wall clock of its own hand-out: what 2 and 3 shards deliver, in which
// Writes, and the rows the clock refused in each batch are one engine's.
func TestShardsJudgeAhead(t *testing.T) {
	batches, _ := partitionedFleet(false)
	const ahead = 5
	judge := func(shards int) (out []byte, rejected []int) {
		cfg := crossShardConfig(4096)
		cfg.Detect.Clock.MaxSkew = 5 * time.Second
		var wall time.Time
		sink := newWritesSink()
		p, err := pipeline.New(cfg, pipeline.Deps{Sink: sink, NoNetwork: true, Shards: shards, Clock: func() time.Time { return wall }})
		if err != nil {
			t.Fatal(err)
		}
		judging := 0 // batches Process may leave unacknowledged
		if p.Sharded != nil {
			p.Sharded.JudgeAhead(ahead)
			judging = ahead
		}
		b := ingest.NewObservationBuilder(nil, p.Registry, nil)
		var acked []int
		rejected = make([]int, len(batches))
		for k, rows := range batches {
			for i := range rows {
				b.Append(&rows[i])
			}
			rec, _ := b.NewRecord()
			var batch *ingest.Batch
			batch = ingest.NewBatch(rec, func(_ context.Context, err error) {
				if err != nil {
					t.Errorf("batch %d acknowledged with %v", k, err)
				}
				acked = append(acked, k)
				rejected[k] = len(batch.Rejected)
			})
			batch.Source = "telemetry"
			wall = time.Unix(0, rows[0].TimeNanos) // the batch's later rows are ahead of it
			if err := p.Judge.Process(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
			if want := max(0, k+1-judging); len(acked) != want {
				t.Fatalf("%d shards: after batch %d, %d batches acknowledged, want %d", shards, k, len(acked), want)
			}
		}
		if err := p.Judge.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(acked) != len(batches) || !slices.IsSorted(acked) {
			t.Fatalf("%d shards: %d of %d batches acknowledged, in order: %v", shards, len(acked), len(batches), slices.IsSorted(acked))
		}
		return sink.buf.Bytes(), rejected
	}
	want, wantRejected := judge(1)
	if n := slices.Max(wantRejected); n == 0 || !bytes.Contains(want, []byte(`"detector":"silence"`)) {
		t.Fatalf("one engine refused at most %d rows of a batch, or found no device silent: the input no longer exercises the clock", n)
	}
	for _, shards := range []int{2, 3} {
		got, rejected := judge(shards)
		if !bytes.Equal(got, want) {
			t.Errorf("%d shards: output differs from one engine's: %s", shards, firstDiff(got, want))
		}
		if !slices.Equal(rejected, wantRejected) {
			t.Errorf("%d shards refused other rows than one engine", shards)
		}
	}
}

// TestShardsReadBacklogAsHandedOut: the consumer's backlog
// (kafka.BacklogReader) may be read only on the goroutine that feeds the
// shards, between its own calls; shards judging ahead get, for each batch,
// every partition's backlog as it was when the batch was handed out, and
// deliver what one engine delivers reading it while it judges. Here
// partition 2 has a backlog while it lags (so its devices are late, not
// silent) and none once it has caught up.
func TestShardsReadBacklogAsHandedOut(t *testing.T) {
	batches, _ := partitionedFleet(false)
	judge := func(shards int) []byte {
		sink := newWritesSink()
		p, err := pipeline.New(crossShardConfig(4096), pipeline.Deps{Sink: sink, NoNetwork: true, Shards: shards})
		if err != nil {
			t.Fatal(err)
		}
		lagging, feeding := false, false
		p.Judge.(interface {
			SetPartitionBacklog(func(string, int32) bool)
		}).SetPartitionBacklog(func(source string, partition int32) bool {
			if !feeding {
				t.Errorf("%d shards: the backlog of %s/%d read outside the feeder's calls", shards, source, partition)
			}
			return lagging && partition == 2
		})
		if p.Sharded != nil {
			p.Sharded.JudgeAhead(5)
		}
		b := ingest.NewObservationBuilder(nil, p.Registry, nil)
		for _, rows := range batches {
			for i := range rows {
				b.Append(&rows[i])
			}
			rec, _ := b.NewRecord()
			batch := ingest.NewBatch(rec, nil)
			batch.Source = "telemetry"
			m := time.Unix(0, rows[0].TimeNanos).UTC().Sub(time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)) / time.Minute
			lagging = rows[0].Partition != 2 && m >= 140 && m < 200
			feeding = true
			err := p.Judge.Process(context.Background(), batch)
			feeding = false
			if err != nil {
				t.Fatal(err)
			}
		}
		feeding = true
		if err := p.Judge.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		return sink.buf.Bytes()
	}
	want := judge(1)
	if !bytes.Contains(want, []byte(`"device":"d03","group":"site-1","criticality":"unknown","detector":"silence"`)) ||
		bytes.Contains(want, []byte(`"device":"d02","group":"site-0","criticality":"unknown","detector":"silence"`)) {
		t.Fatalf("one engine did not find d03 silent, or found d02 of the lagging partition silent: the input no longer exercises the backlog:\n%s", want)
	}
	for _, shards := range []int{2, 3} {
		if got := judge(shards); !bytes.Equal(got, want) {
			t.Errorf("%d shards: output differs from one engine's: %s", shards, firstDiff(got, want))
		}
	}
}

// statusLog is a pipeline.Console that logs, in order, the alerts the
// engine delivers and each device's status as it is published.
type statusLog struct {
	sink      detect.Sink
	log       []string            // "alert DEVICE STATE" or "status DEVICE ALARMS"
	perDevice map[string][]string // each device's statuses, in order
	groups    map[string]detect.GroupStatus
	recent    map[*detect.RecentValues]bool
}

func (l *statusLog) Attach(sink detect.Sink, _ ingest.AssetLookup) detect.Sink {
	l.sink = sink
	return statusLogSink{l}
}
func (l *statusLog) PublishInterval() time.Duration { return 0 }
func (l *statusLog) RecentValues() int              { return 8 }
func (l *statusLog) RecentStep() time.Duration      { return 0 }

func (l *statusLog) PublishStatus(u *detect.StatusUpdate) {
	for _, st := range u.Devices {
		l.log = append(l.log, fmt.Sprintf("status %s %d", st.Device, st.Alarms))
		l.perDevice[st.Device] = append(l.perDevice[st.Device], fmt.Sprintf("%s alarms %d %s %s %s", st.LastSeen.Format(time.RFC3339),
			st.Alarms, st.Quarantine, st.Cert, st.Group))
		if vs := u.Recent.Device(st.ID); len(vs) != 2 {
			l.log = append(l.log, fmt.Sprintf("recent values of %s: %d metrics", st.Device, len(vs)))
		}
	}
	for _, g := range u.Groups {
		l.groups[g.Name] = g
	}
	l.recent[u.Recent] = true
}

type statusLogSink struct{ l *statusLog }

func (s statusLogSink) Write(ctx context.Context, out *detect.Output) error {
	for _, a := range out.Alerts {
		s.l.log = append(s.l.log, "alert "+a.Device+" "+a.State)
	}
	return s.l.sink.Write(ctx, out)
}
func (s statusLogSink) Close() error { return s.l.sink.Close() }

// TestShardsPublishStatus: with the console, three shards publish each
// device's status as one engine does (the same statuses of each device,
// in the same order, with its recent values; every group from the shard
// that learns it), each after the alerts delivered with it: a status
// counting an alarm never reaches the console before the alarm's alert.
func TestShardsPublishStatus(t *testing.T) {
	path := crossShardFleet(t)
	replay := func(shards int) *statusLog {
		l := &statusLog{perDevice: map[string][]string{}, groups: map[string]detect.GroupStatus{}, recent: map[*detect.RecentValues]bool{}}
		p := runShards(t, path, crossShardConfig(4096), pipeline.Deps{Sink: newWritesSink(), NoNetwork: true, Shards: shards, Console: l})
		n := len(l.log)
		if p.Sharded != nil {
			p.Sharded.PublishPending() // nothing changed since Flush
		}
		if len(l.log) != n {
			t.Errorf("%d shards: PublishPending after Flush published %v", shards, l.log[n:])
		}
		return l
	}
	one, three := replay(1), replay(3)
	if len(three.recent) != 3 || len(one.groups) != 6 {
		t.Fatalf("recent values of %d engines with three shards, %d groups: want 3 and the fleet's 6", len(three.recent), len(one.groups))
	}
	for dev, want := range one.perDevice {
		if got := three.perDevice[dev]; !slices.Equal(got, want) {
			t.Errorf("%s: %d statuses with three shards, %d with one engine; first difference %s", dev, len(got), len(want), firstDiff(
				[]byte(strings.Join(got, "\n")), []byte(strings.Join(want, "\n"))))
		}
	}
	for name, g := range one.groups {
		if got := three.groups[name]; got.Rows != g.Rows || got.Learning != g.Learning || got.Devices != g.Devices {
			t.Errorf("group %s with three shards: %+v, one engine: %+v", name, got.GroupInfo, g.GroupInfo)
		}
	}
	for shards, l := range map[int]*statusLog{1: one, 3: three} {
		raised := map[string]bool{} // devices with an alarm's alert
		for _, e := range l.log {
			if f := strings.Fields(e); f[0] == "alert" && len(f) == 3 && f[2] == detect.StateAlarm {
				raised[f[1]] = true
			}
		}
		seen, counted, checked := map[string]bool{}, map[string]bool{}, 0
		for _, e := range l.log {
			f := strings.Fields(e)
			switch {
			case f[0] == "alert" && len(f) == 3:
				seen[f[1]] = seen[f[1]] || f[2] == detect.StateAlarm
			case f[0] == "status" && f[2] != "0" && raised[f[1]] && !counted[f[1]]:
				counted[f[1]], checked = true, checked+1
				if !seen[f[1]] {
					t.Errorf("%d engines: %s's status counts an alarm before its alert reached the console", shards, f[1])
				}
			case f[0] != "alert" && f[0] != "status":
				t.Errorf("%d engines: %s", shards, e)
			}
		}
		if checked < 4 {
			t.Errorf("%d engines: %d devices with an alarm's alert and a status counting it: the input no longer tests the order", shards, checked)
		}
	}
}
