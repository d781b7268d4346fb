package kafka_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/vigil-ot/vigil/detect"
)

// fileSink appends each accepted alert's key as a JSON line, so a parent
// test can read what a killed instance delivered.
type fileSink struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (s *fileSink) Write(_ context.Context, out *detect.Output) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range out.Alerts {
		if err := s.enc.Encode(keyOf(&out.Alerts[i])); err != nil {
			return err
		}
	}
	return nil
}

func (s *fileSink) Close() error { return nil }

// TestKafkaInstanceProcess is one Vigil instance in a child process of
// TestKafkaGroupKilledInstanceIntegration and
// TestKafkaKillDuringOpenAlarmsIntegration; it does nothing on its own.
func TestKafkaInstanceProcess(t *testing.T) {
	broker := os.Getenv("VIGIL_TEST_BROKER")
	if broker == "" {
		t.Skip("child process of TestKafkaGroupKilledInstanceIntegration")
	}
	f, err := os.OpenFile(os.Getenv("VIGIL_TEST_OUT"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	k := &cluster{t: t, addrs: []string{broker}}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	cfg := k.kafkaConfig(os.Getenv("VIGIL_TEST_GROUP"), os.Getenv("VIGIL_TEST_INSTANCE"))
	if v := os.Getenv("VIGIL_TEST_CHECKPOINT_INTERVAL"); v != "" {
		if cfg.CheckpointInterval, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	p := startPipeline(t, cfg, &fileSink{enc: json.NewEncoder(f)})
	<-ctx.Done()
	p.stop(t)
}

func readAlertFile(t *testing.T, path string, into map[alertKey]int) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var k alertKey
		if err := json.Unmarshal(sc.Bytes(), &k); err != nil {
			continue // the killed instance may have left half a line
		}
		into[k]++
	}
}

// 2. Three instances in one group, one killed mid-stream: every expected
// alert arrives (duplicates allowed, same ids), nothing is lost, committed
// offsets never move backwards.
func TestKafkaGroupKilledInstanceIntegration(t *testing.T) {
	skipShort(t)
	msgs := fleet(20, 240, 180)
	ref, _, _ := replay(t, msgs)
	want := ref.keys()
	requireSpike(t, want)

	k := newCluster(t, 6)
	dir := t.TempDir()
	var procs []*exec.Cmd
	for i, name := range []string{"a", "b", "c"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKafkaInstanceProcess$")
		cmd.Env = append(os.Environ(), "VIGIL_TEST_BROKER="+k.addrs[0], "VIGIL_TEST_GROUP=g2",
			"VIGIL_TEST_INSTANCE="+name, "VIGIL_TEST_OUT="+filepath.Join(dir, name+".jsonl"))
		if testing.Verbose() {
			cmd.Args = append(cmd.Args, "-test.v")
			cmd.Stderr = os.Stderr
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, cmd)
		_ = i
	}
	defer func() {
		for _, p := range procs {
			if p.ProcessState == nil {
				p.Process.Kill()
				p.Wait()
			}
		}
	}()

	// The stream starts once all three are in the group, so the kill lands
	// on an instance that owns partitions and has work in flight.
	cl := &kafkago.Client{Addr: kafkago.TCP(k.addrs...), Timeout: 5 * time.Second}
	joinBy := time.Now().Add(30 * time.Second)
	for {
		resp, err := cl.DescribeGroups(context.Background(), &kafkago.DescribeGroupsRequest{GroupIDs: []string{"g2"}})
		if err == nil && len(resp.Groups) == 1 && resp.Groups[0].GroupState == "Stable" && len(resp.Groups[0].Members) == 3 {
			break
		}
		if time.Now().After(joinBy) {
			t.Fatalf("three instances did not form a stable group in 30s: %+v %v", resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Committed offsets are watched throughout: they may stand still, never
	// move back.
	stopWatch := make(chan struct{})
	watchDone := make(chan error, 1)
	go func() {
		last := map[int]int64{}
		for {
			select {
			case <-stopWatch:
				watchDone <- nil
				return
			case <-time.After(20 * time.Millisecond):
			}
			c, err := k.committed("g2", topicIn)
			if err != nil {
				continue
			}
			for p, off := range c {
				if prev, ok := last[p]; ok && off < prev {
					watchDone <- &backwardsError{p, prev, off}
					return
				}
				last[p] = off
			}
		}
	}()

	// Produce in steps, so the kill lands mid-stream and before the spike.
	const step = 10 * 20
	for i := 0; i < len(msgs); i += step {
		k.produce(msgs[i:min(i+step, len(msgs))])
		time.Sleep(60 * time.Millisecond)
		if i == 10*step {
			if err := procs[0].Process.Kill(); err != nil {
				t.Fatal(err)
			}
			procs[0].Wait()
		}
	}
	k.waitCommitted("g2", 30*time.Second)
	for _, p := range procs[1:] {
		p.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range procs[1:] {
		if err := p.Wait(); err != nil {
			t.Errorf("surviving instance did not stop cleanly: %v", err)
		}
	}
	close(stopWatch)
	if err := <-watchDone; err != nil {
		t.Error(err)
	}

	got := map[alertKey]int{}
	for _, name := range []string{"a", "b", "c"} {
		readAlertFile(t, filepath.Join(dir, name+".jsonl"), got)
	}
	// Every alert of every detector a single pass raises arrives, and
	// nothing else: no silence alarm for the devices of partitions that
	// lag behind or moved to another instance.
	if m := missing(want, got); len(m) > 0 {
		t.Errorf("%d alert(s) lost when an instance was killed:%s", len(m), describe(m))
	}
	if m := missing(got, want); len(m) > 0 {
		t.Errorf("%d alert(s) with ids a single pass does not raise (spurious, state relearned or counted twice):%s", len(m), describe(m))
	}
	t.Logf("%d distinct alerts (%v by detector), as in a single pass", len(got), byDetector(got))
}

func byDetector(m map[alertKey]int) map[string]int {
	out := map[string]int{}
	for k := range m {
		out[k.Detector]++
	}
	return out
}

type backwardsError struct {
	partition int
	from, to  int64
}

func (e *backwardsError) Error() string {
	return fmt.Sprintf("committed offset of partition %d moved backwards from %d to %d", e.partition, e.from, e.to)
}
