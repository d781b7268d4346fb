package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/vigil-ot/vigil/sinks"
)

// TestRunScaleOutMatchesReplay runs 1, 2 and 3 vigil run instances of one
// consumer group, with kafka.repartition_by_group, over the fleet sample
// (testdata/config/fleet.yaml: groups by site and hardware, fleet KPIs,
// automatic quarantine with its max_group_fraction rail) produced to six
// partitions keyed by device, and checks that together they raise the
// alerts and quarantine events `vigil replay` raises on the same records,
// fleet and rail included, whatever the partition assignment. Without
// repartitioning (scaleOutRun with repartition false) each instance counts
// only the members of a group in its own partitions, and fleet alarms,
// quarantines and the rail's alarms differ from the replay's for 1, 2 and
// 3 instances alike.
//
// The cut of the sample keeps the test short: the plant-c devices (two
// groups, with the sample's fleet alarm, brute force, shared certificate
// and rail alarm) until 19:15 of day 2.
func TestRunScaleOutMatchesReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("a cut of the fleet sample through 1, 2 and 3 instances against kfake")
	}
	t.Chdir(repoRoot)
	records, path := fleetCut(t)
	out, _ := runReplayTest(t, "--config", "testdata/config/fleet.yaml", path)
	want := outputKeys(t, out)
	for _, kind := range []string{"fleet message_rate", "fleet quarantine_rail", "quarantine quarantine"} {
		if !slices.ContainsFunc(want, func(k string) bool {
			f := strings.Fields(k)
			return f[0]+" "+f[len(f)-1] == kind || f[0]+" "+f[2] == kind
		}) {
			t.Fatalf("the replay of the cut raised no %s; the test needs one: %v", kind, want)
		}
	}
	for _, n := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("%d instances", n), func(t *testing.T) {
			got := scaleOutRun(t, records, n, true)
			if extra, lost := diffKeys(got, want); len(extra)+len(lost) > 0 {
				t.Errorf("%d instances: %d alerts and quarantine events, replay %d; not in replay: %v; missing: %v", n, len(got), len(want), extra, lost)
			}
		})
	}
}

// fleetCut returns the test's cut of the fleet sample as records keyed by
// device, as a producer keyed by device writes them, and as a JSONL file
// for the replay.
func fleetCut(t *testing.T) ([]kafkago.Message, string) {
	t.Helper()
	f, err := os.Open("testdata/fleet/telemetry.jsonl.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []kafkago.Message
	var file []byte
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r struct {
			Device string    `json:"device"`
			TS     time.Time `json:"ts"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(r.Device, "plc-c-") || !r.TS.Before(time.Date(2026, 11, 3, 19, 15, 0, 0, time.UTC)) {
			continue
		}
		out = append(out, kafkago.Message{Key: []byte(r.Device), Value: slices.Clone(sc.Bytes())})
		file = append(append(file, sc.Bytes()...), '\n')
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "fleet-cut.jsonl")
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	return out, path
}

// scaleOutRun starts n instances of one consumer group on a fresh kfake
// cluster, waits until they all joined, produces records, waits until the
// group committed the end of its input, and returns the keys of what the
// instances' sinks received (outputKeys).
func scaleOutRun(t *testing.T, records []kafkago.Message, n int, repartition bool) []string {
	t.Helper()
	const group = "vigil-scale"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.SeedTopics(6, "telemetry", group+"-by-group", "changelog"),
		kfake.SeedTopics(1, "dead-letter", "group-state"),
		kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	broker := cluster.ListenAddrs()[0]
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	t.Cleanup(func() {
		if t.Failed() && testing.Verbose() {
			t.Logf("logs:\n%s", logs.String())
		}
	})

	outs := make([]*syncBuffer, n)
	insts := make([]chan *instance, n)
	var running sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	for i := range n {
		cfg, err := LoadConfig("testdata/config/fleet.yaml")
		if err != nil {
			t.Fatal(err)
		}
		k := &cfg.Kafka
		k.Brokers, k.GroupID, k.InstanceID = []string{broker}, group, fmt.Sprintf("vigil-%d", i)
		k.TelemetryTopics, k.RepartitionByGroup = []string{"telemetry"}, repartition
		k.DeadLetterTopic, k.ChangelogTopic, k.GroupStateTopic = "dead-letter", "changelog", "group-state"
		k.HTTPListen = ""
		k.CommitInterval, k.CheckpointInterval = 100*time.Millisecond, 200*time.Millisecond
		k.SessionTimeout, k.HeartbeatInterval, k.RebalanceTimeout = 2*time.Second, 200*time.Millisecond, 2*time.Second
		k.ShutdownTimeout = 10 * time.Second
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		outs[i], insts[i] = &syncBuffer{}, make(chan *instance, 1)
		running.Add(1)
		go func() {
			defer running.Done()
			err := runInstance(ctx, cfg, sinks.NewWriterSink("test", outs[i], sinks.FormatJSON), log, nil, func(inst *instance) { insts[i] <- inst })
			if err != nil {
				t.Errorf("instance %d stopped: %v", i, err)
			}
		}()
	}
	defer func() { cancel(); running.Wait() }()
	var members []*instance
	for i := range insts {
		select {
		case inst := <-insts[i]:
			members = append(members, inst)
		case <-time.After(30 * time.Second):
			t.Fatalf("instance %d did not start:\n%s", i, logs.String())
		}
	}
	waitFor(t, 30*time.Second, "every instance joined and is ready", func() bool {
		for _, m := range members {
			if !m.consumer.Ready() {
				return false
			}
		}
		return groupStable(broker, group, n) && (!repartition || groupStable(broker, group+"-repartition", n))
	})

	w := &kafkago.Writer{Addr: kafkago.TCP(broker), Topic: "telemetry", Balancer: &kafkago.Hash{},
		BatchTimeout: time.Millisecond, BatchSize: 1000, RequiredAcks: kafkago.RequireAll}
	for rest := records; len(rest) > 0; {
		m := min(len(rest), 5000)
		if err := w.WriteMessages(context.Background(), rest[:m]...); err != nil {
			t.Fatalf("cannot produce: %v", err)
		}
		rest = rest[m:]
	}
	w.Close()

	input := "telemetry"
	if repartition {
		waitCommitted(t, broker, group+"-repartition", "telemetry")
		input = group + "-by-group"
	}
	waitCommitted(t, broker, group, input)
	cancel()
	running.Wait()
	var all []byte
	for _, o := range outs {
		all = append(all, o.String()...)
	}
	return outputKeys(t, all)
}

// groupStable reports whether consumer group has n members and is
// stable.
func groupStable(broker, group string, n int) bool {
	cl := &kafkago.Client{Addr: kafkago.TCP(broker), Timeout: 5 * time.Second}
	resp, err := cl.DescribeGroups(context.Background(), &kafkago.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil || len(resp.Groups) != 1 {
		return false
	}
	g := resp.Groups[0]
	return g.Error == nil && g.GroupState == "Stable" && len(g.Members) == n
}

// waitCommitted waits until group committed, on every partition of
// topic, the end the partition had when the wait began.
func waitCommitted(t *testing.T, broker, group, topic string) {
	t.Helper()
	conn, err := kafkago.Dial("tcp", broker)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	ends := map[int]int64{}
	var ids []int
	for _, p := range parts {
		c, err := kafkago.DialLeader(context.Background(), "tcp", broker, topic, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		ends[p.ID], err = c.ReadLastOffset()
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.ID)
	}
	cl := &kafkago.Client{Addr: kafkago.TCP(broker), Timeout: 5 * time.Second}
	var last map[int]int64
	waitFor(t, 60*time.Second, fmt.Sprintf("group %s commits the end of %s %v (last seen %v)", group, topic, ends, last), func() bool {
		resp, err := cl.OffsetFetch(context.Background(), &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ids}})
		if err != nil || resp.Error != nil {
			return false
		}
		last = map[int]int64{}
		done := true
		for _, p := range resp.Topics[topic] {
			last[p.Partition] = p.CommittedOffset
			if p.CommittedOffset < ends[p.Partition] {
				done = false
			}
		}
		return done
	})
}

// outputKeys returns what must be equal between two runs over the same
// records: each alert's id, state and detector, each quarantine event's
// id, action and device, sorted.
func outputKeys(t *testing.T, data []byte) []string {
	t.Helper()
	var keys []string
	for _, a := range parseAlerts(t, data) {
		keys = append(keys, fmt.Sprintf("%s %s %s %s %s", a.Detector, a.ID, a.State, a.Device, a.Behavior))
	}
	for _, q := range parseQuarantine(t, data) {
		keys = append(keys, fmt.Sprintf("quarantine %s %s %s", q.ID, q.Action, q.Device))
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// diffKeys returns the keys of got that want lacks and those of want that
// got lacks.
func diffKeys(got, want []string) (extra, lost []string) {
	for _, k := range got {
		if _, ok := slices.BinarySearch(want, k); !ok {
			extra = append(extra, k)
		}
	}
	for _, k := range want {
		if _, ok := slices.BinarySearch(got, k); !ok {
			lost = append(lost, k)
		}
	}
	return extra, lost
}
