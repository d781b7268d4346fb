package kafka_test

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/vigil-ot/vigil/detect"
)

// identityFleet is fleet's telemetry with a source address per device:
// from minute 30 to 50 every device with an even number also reports from
// a second address every other minute (an identity alarm, open until ten
// minutes after the last switch and three clean reports more); dev-005
// stops reporting from minute 35 to 50 (a silence alarm, open until it is
// back).
func identityFleet(devices, minutes int) []kafkago.Message {
	rnd := rand.New(rand.NewSource(2))
	start := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	var out []kafkago.Message
	for m := 0; m < minutes; m++ {
		for d := 0; d < devices; d++ {
			dev := fmt.Sprintf("dev-%03d", d)
			if dev == "dev-005" && m >= 35 && m < 50 {
				continue
			}
			ts := start.Add(time.Duration(m)*time.Minute + time.Duration(d)*time.Second)
			src := fmt.Sprintf("10.0.0.%d", d)
			if d%2 == 0 && m >= 30 && m < 50 && m%2 == 1 {
				src = "10.9.9.9"
			}
			v := fmt.Sprintf(`{"device":%q,"ts":%d,"attrs":{"site":"a"},"conn":{"src_ip":%q},"metrics":{"bytes_out":%.3f,"msgs_sent":%.3f}}`,
				dev, ts.UnixMilli(), src, 1000+100*rnd.NormFloat64(), 10+rnd.NormFloat64())
			out = append(out, kafkago.Message{Key: []byte(dev), Value: []byte(v), Time: ts})
		}
	}
	return out
}

// alarmIDs checks the replay's alerts (every alarm is raised once and
// cleared once) and returns the set of their ids.
func alarmIDs(t *testing.T, alerts []detect.Alert) map[string]bool {
	t.Helper()
	raised, clears := map[string]int{}, map[string]int{}
	ids := map[string]bool{}
	for _, a := range alerts {
		ids[a.ID] = true
		key := a.Detector + "/" + a.Behavior + " " + a.Device + " from " + a.AlarmStart.Format(time.RFC3339Nano)
		if a.State == detect.StateCleared {
			clears[key]++
		} else {
			raised[key]++
		}
	}
	for k, n := range raised {
		if n != 1 || clears[k] != 1 {
			t.Fatalf("replay: %s raised %d times, cleared %d times; the test data should open and close every alarm once", k, n, clears[k])
		}
	}
	return ids
}

// checkLedger checks the alerts instances delivered against replay's ids
// (want, from alarmIDs): the same set, so every alarm is raised under
// replay's id and cleared once under its clear's id (a redelivered alert
// may come twice, with its id).
func checkLedger(t *testing.T, want map[string]bool, alerts []detect.Alert) {
	t.Helper()
	got := map[string]bool{}
	for _, a := range alerts {
		got[a.ID] = true
	}
	var extra, lost []string
	for id := range got {
		if !want[id] {
			extra = append(extra, id)
		}
	}
	for id := range want {
		if !got[id] {
			lost = append(lost, id)
		}
	}
	if len(extra)+len(lost) > 0 {
		slices.Sort(extra)
		slices.Sort(lost)
		t.Errorf("alert ids differ from replay's: %d not in replay %v, %d of replay's missing %v; delivered:%s", len(extra), extra, len(lost), lost, describeAlerts(alerts))
	}
}

func describeAlerts(alerts []detect.Alert) string {
	var b strings.Builder
	for _, a := range alerts {
		fmt.Fprintf(&b, "\n  %s %s %s/%s %s at %s from %s", a.ID, a.State, a.Detector, a.Behavior, a.Device,
			a.EventTime.Format(time.RFC3339), a.AlarmStart.Format(time.RFC3339Nano))
	}
	return b.String()
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stableGroup reports whether group is stable with n members.
func (k *cluster) stableGroup(group string, n int) bool {
	cl := &kafkago.Client{Addr: kafkago.TCP(k.addrs...), Timeout: 5 * time.Second}
	resp, err := cl.DescribeGroups(context.Background(), &kafkago.DescribeGroupsRequest{GroupIDs: []string{group}})
	return err == nil && len(resp.Groups) == 1 && resp.Groups[0].GroupState == "Stable" && len(resp.Groups[0].Members) == n
}

func (s *collectSink) snapshot() []detect.Alert {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.alerts)
}

// restores returns how many partitions p restored from the changelog.
func restores(t *testing.T, p *pipeline) int {
	t.Helper()
	var b strings.Builder
	p.metrics.Set.WritePrometheus(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "vigil_kafka_changelog_restore_seconds_count "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no vigil_kafka_changelog_restore_seconds_count")
	return 0
}

func countState(alerts []detect.Alert, detector, state string) int {
	n := 0
	for _, a := range alerts {
		if a.Detector == detector && a.State == state {
			n++
		}
	}
	return n
}

// A second instance joins the group while identity alarms are open on
// every partition: the partitions the first instance keeps go on from its
// memory (no alarm raised again, each cleared once, by it), the ones that
// move go on from the changelog (cleared by the new owner under the same
// ids, nothing raised again), and the ids are replay's.
//
// Eight devices: after the split each instance counts fewer than
// fleet.min_devices of the group, so the group's message rate is not
// judged. Each instance counts that rate over its own partitions only,
// and the count halves when a partition moves: a fleet alarm the issue
// reports and this change does not address (fleet state is per group,
// not per device, and does not travel with partitions).
func TestKafkaRebalanceKeepsOpenAlarmsIntegration(t *testing.T) {
	skipShort(t)
	// The second half is produced in one go after the rebalance, and the
	// broker serves the partitions in any order: one partition's records
	// may all come after the others have run far more than
	// silence.partition_idle ahead in event time. Its devices are not
	// silent: the partition has a backlog (aligner, Engine.SetPartitionBacklog).
	// Judged by event time alone, this failed one run in four.
	msgs := identityFleet(8, 75)
	ref, _, _ := replay(t, msgs)
	want := alarmIDs(t, ref.alerts)
	if n := countState(ref.alerts, detect.DetectorIdentity, detect.StateAlarm); n != 4 {
		t.Fatalf("replay raised %d identity alarms, want one per even device:%s", n, describeAlerts(ref.alerts))
	}
	const split = 8 * 40 // minute 40: the alarms are open and still breaching

	k := newCluster(t, 4)
	k.produce(msgs[:split])
	sinkA := &collectSink{}
	a := startPipeline(t, k.kafkaConfig("g-rebalance", "a"), sinkA)
	k.waitCommitted("g-rebalance", 20*time.Second)
	waitFor(t, 10*time.Second, "identity alarms raised by the first instance", func() bool {
		return countState(sinkA.snapshot(), detect.DetectorIdentity, detect.StateAlarm) == 4
	})
	before := len(sinkA.snapshot())
	restoredA := restores(t, a)

	sinkB := &collectSink{}
	b := startPipeline(t, k.kafkaConfig("g-rebalance", "b"), sinkB)
	waitFor(t, 20*time.Second, "two instances in a stable group, both reading", func() bool {
		return k.stableGroup("g-rebalance", 2) && a.consumer.Ready() && b.consumer.Ready()
	})
	k.produce(msgs[split:])
	k.waitCommitted("g-rebalance", 20*time.Second)
	a.stop(t)
	b.stop(t)

	if n := restores(t, a); n != restoredA {
		t.Errorf("the first instance restored %d partitions from the changelog at the rebalance; the ones it keeps should go on from memory", n-restoredA)
	}
	afterA, all := sinkA.snapshot()[before:], append(sinkA.snapshot(), sinkB.snapshot()...)
	checkLedger(t, want, all)
	for name, alerts := range map[string][]detect.Alert{"first instance after the rebalance": afterA, "second instance": sinkB.snapshot()} {
		if n := countState(alerts, detect.DetectorIdentity, detect.StateAlarm); n != 0 {
			t.Errorf("%s raised %d identity alarms again:%s", name, n, describeAlerts(alerts))
		}
		if countState(alerts, detect.DetectorIdentity, detect.StateCleared) == 0 {
			t.Errorf("%s cleared no identity alarm: the test wants partitions that stay and partitions that move:%s", name, describeAlerts(alerts))
		}
	}
}

// An instance killed while identity and silence alarms are open, then
// started again: the identity alarms open at its last checkpoint come back
// from the changelog, the silence alarm raised after it is raised again by
// the redelivered records under the same id (the same start), and what
// comes after clears each once: the ids are replay's.
func TestKafkaKillDuringOpenAlarmsIntegration(t *testing.T) {
	skipShort(t)
	msgs := identityFleet(8, 75)
	ref, _, _ := replay(t, msgs)
	want := alarmIDs(t, ref.alerts)
	if countState(ref.alerts, detect.DetectorSilence, detect.StateAlarm) != 1 {
		t.Fatalf("replay raised no silence alarm for dev-005:%s", describeAlerts(ref.alerts))
	}
	// minute 36: identity alarms open, silence not yet; minute 42: both
	const checkpointed, killed = 8 * 36, 8 * 42

	k := newCluster(t, 4)
	out := filepath.Join(t.TempDir(), "killed.jsonl")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKafkaInstanceProcess$")
	// Checkpoints 2 s apart: the kill lands after the one that covers
	// minute 36 and before the next.
	cmd.Env = append(os.Environ(), "VIGIL_TEST_BROKER="+k.addrs[0], "VIGIL_TEST_GROUP=g-kill",
		"VIGIL_TEST_INSTANCE=a", "VIGIL_TEST_OUT="+out, "VIGIL_TEST_CHECKPOINT_INTERVAL=2s")
	if testing.Verbose() {
		cmd.Args = append(cmd.Args, "-test.v")
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	alarmsOut := func() (identity, silence int) {
		got := map[alertKey]int{}
		if _, err := os.Stat(out); err == nil {
			readAlertFile(t, out, got)
		}
		for key := range got {
			if key.State == detect.StateAlarm {
				switch key.Detector {
				case detect.DetectorIdentity:
					identity++
				case detect.DetectorSilence:
					silence++
				}
			}
		}
		return identity, silence
	}
	k.produce(msgs[:checkpointed])
	// Commits stop at the changelog: committed means checkpointed.
	k.waitCommitted("g-kill", 30*time.Second)
	if identity, _ := alarmsOut(); identity != 4 {
		t.Fatalf("%d identity alarms open at the checkpoint, want 4", identity)
	}
	checkpointAt := time.Now()
	k.produce(msgs[checkpointed:killed])
	waitFor(t, 10*time.Second, "the silence alarm of the first instance", func() bool {
		_, silence := alarmsOut()
		return silence == 1
	})
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if time.Since(checkpointAt) >= 2*time.Second {
		t.Log("the kill came after the next checkpoint: nothing was redelivered")
	}
	killedKeys := map[alertKey]int{}
	readAlertFile(t, out, killedKeys)

	sink := &collectSink{}
	p := startPipeline(t, k.kafkaConfig("g-kill", "a"), sink)
	k.produce(msgs[killed:])
	k.waitCommitted("g-kill", 30*time.Second)
	p.stop(t)

	// The killed instance's file has keys, not whole alerts: its ids join
	// the ledger as alerts of their own.
	all := sink.snapshot()
	for key := range killedKeys {
		all = append(all, detect.Alert{ID: key.ID, State: key.State, Detector: key.Detector, Behavior: key.Behavior, Device: key.Device})
	}
	checkLedger(t, want, all)
	if n := countState(sink.snapshot(), detect.DetectorIdentity, detect.StateAlarm); n != 0 {
		t.Errorf("the restarted instance raised %d identity alarms that were open at its checkpoint:%s", n, describeAlerts(sink.snapshot()))
	}
}
