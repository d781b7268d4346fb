package baseline

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/ingest"
)

func TestCommSetLearnsThenReportsNovelty(t *testing.T) {
	c := NewCommSet(time.Hour)
	edge := HashCombine(HashString("10.0.0.5"), HashUint64(502))
	if got := c.Observe(1, edge, t0); got != Learned {
		t.Fatalf("first edge while learning: %v, want Learned", got)
	}
	if got := c.Observe(1, edge, t0+int64(2*time.Hour)); got != Known {
		t.Fatalf("learned edge: %v, want Known", got)
	}
	other := HashCombine(HashString("10.0.0.9"), HashUint64(102))
	if got := c.Observe(1, other, t0+int64(2*time.Hour)); got != Novel {
		t.Fatalf("new edge after learning: %v, want Novel", got)
	}
	if got := c.Observe(1, other, t0+int64(3*time.Hour)); got != Known {
		t.Fatalf("reported edge again: %v, want Known (report once)", got)
	}
	// another group has its own allowlist and its own learning period
	if got := c.Observe(2, other, t0+int64(3*time.Hour)); got != Learned {
		t.Fatalf("group 2's first edge: %v, want Learned", got)
	}
	c.SetLearning(1, true)
	if got := c.Observe(1, HashString("x"), t0+int64(5*time.Hour)); got != Learned {
		t.Fatalf("forced learning: %v, want Learned", got)
	}
}

func TestCommSetMerge(t *testing.T) {
	a, b := NewCommSet(time.Hour), NewCommSet(time.Hour)
	a.Observe(0, 1, t0)
	b.Observe(0, 2, t0-int64(time.Minute))
	if err := a.MergeGroup(0, b.AppendGroup(nil, 0)); err != nil {
		t.Fatal(err)
	}
	if !a.Contains(0, 1) || !a.Contains(0, 2) || a.Len(0) != 2 {
		t.Fatalf("merged set has %d keys", a.Len(0))
	}
	if a.Learning(0, t0+int64(time.Hour)-int64(time.Minute)) {
		t.Fatal("merge did not keep the earlier first time")
	}
	if err := a.MergeGroup(0, []byte("VBC1\x00\x00\x00\x05")); err == nil {
		t.Fatal("truncated keys accepted")
	}
}

func TestCommSetCheckpointedWithStore(t *testing.T) {
	reg := ingest.NewRegistry()
	s := NewStore(testConfig(), reg)
	edges := s.CommSet("edges", time.Hour)
	g := reg.GroupID("plant-a/plc")
	edges.Observe(g, HashString("10.0.0.1>10.0.0.2:502/modbus/write"), t0)
	edges.Observe(g, HashString("10.0.0.1>10.0.0.3:102/s7comm/read"), t0+1)
	var buf bytes.Buffer
	if err := s.Checkpoint(&buf, nil); err != nil {
		t.Fatal(err)
	}
	reg2 := ingest.NewRegistry()
	reg2.GroupID("other")
	s2 := NewStore(testConfig(), reg2)
	held := s2.CommSet("edges", 2*time.Hour) // a detector holds it before the restore
	if _, err := s2.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	g2 := reg2.GroupID("plant-a/plc")
	if held.Len(g2) != 2 || !held.Contains(g2, HashString("10.0.0.1>10.0.0.2:502/modbus/write")) {
		t.Fatalf("restored set has %d keys in its group", held.Len(g2))
	}
	// The group started learning under a 1h period: it keeps the end of
	// learning it started with, not the 2h now configured.
	if !held.Learning(g2, t0+int64(50*time.Minute)) || held.Learning(g2, t0+int64(61*time.Minute)) {
		t.Fatal("the restored group did not keep its own end of learning (t0+1h)")
	}
	if held.AnyProtecting(t0 + int64(50*time.Minute)) {
		t.Error("AnyProtecting while the only group learns")
	}
	if got := held.Observe(g2, HashString("new edge"), t0+int64(3*time.Hour)); got != Novel {
		t.Fatalf("new edge after learning: %v", got)
	}
	// A group that starts after the restore learns for the period in force.
	g3 := reg2.GroupID("plant-b")
	held.Observe(g3, 1, t0+int64(4*time.Hour))
	if !held.Learning(g3, t0+int64(5*time.Hour)+int64(time.Minute)) || held.Learning(g3, t0+int64(6*time.Hour)) {
		t.Fatal("a group started after the restore does not learn for the configured 2h")
	}
}

// restoreInto checkpoints s and restores it into a new store whose set
// "network" learns for learnFor, as `vigil replay --restore` does.
func restoreInto(t *testing.T, s *Store, reg *ingest.Registry, learnFor time.Duration) (*CommSet, *ingest.Registry) {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Checkpoint(&buf, nil); err != nil {
		t.Fatal(err)
	}
	reg2 := ingest.NewRegistry()
	s2 := NewStore(testConfig(), reg2)
	held := s2.CommSet("network", learnFor)
	if _, err := s2.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	return held, reg2
}

// A checkpoint learned with a 200 s period, restored under a 1 h one: the
// group that finished learning protects at once, the one still learning
// learns for the time it had left (issue 11, item 5).
func TestCommSetRestoreKeepsLearningState(t *testing.T) {
	reg := ingest.NewRegistry()
	s := NewStore(testConfig(), reg)
	c := s.CommSet("network", 200*time.Second)
	done, learning := reg.GroupID("done"), reg.GroupID("learning")
	c.Observe(done, 1, t0)
	c.Observe(done, 2, t0+int64(300*time.Second))     // after its 200 s: protecting
	c.Observe(learning, 1, t0+int64(250*time.Second)) // learns until t0+450s
	if got := c.Observe(learning, 2, t0+int64(300*time.Second)); got != Learned {
		t.Fatalf("setup: %v", got)
	}
	held, reg2 := restoreInto(t, s, reg, time.Hour)
	done2, learning2 := reg2.GroupID("done"), reg2.GroupID("learning")
	at := t0 + int64(400*time.Second)
	if got := held.Observe(done2, 3, at); got != Novel {
		t.Errorf("group that had finished learning, new key after restore: %v, want Novel", got)
	}
	if got := held.Observe(learning2, 3, at); got != Learned {
		t.Errorf("group still learning, new key within its remaining time: %v, want Learned", got)
	}
	if got := held.Observe(learning2, 4, t0+int64(460*time.Second)); got != Novel {
		t.Errorf("group still learning, new key after its own end (t0+450s): %v, want Novel", got)
	}
	if !held.AnyProtecting(at) {
		t.Error("AnyProtecting: the group that finished learning protects")
	}
	wantUntil := []GroupLearning{{Group: learning2, Until: t0 + int64(450*time.Second)}}
	if got := held.LearningUntil(at); !slices.Equal(got, wantUntil) {
		t.Errorf("LearningUntil: %+v, want %+v", got, wantUntil)
	}
	if got := held.LearningUntil(t0 + int64(460*time.Second)); len(got) != 0 {
		t.Errorf("LearningUntil after every group finished: %+v", got)
	}
}

// vigil baseline inspect says per group of a communication set whether it
// learns or protects, and until or since when.
func TestInspectPrintsCommSetLearning(t *testing.T) {
	reg := ingest.NewRegistry()
	s := NewStore(testConfig(), reg)
	c := s.CommSet("network", 200*time.Second)
	c.Observe(reg.GroupID("done"), 1, t0)
	c.Observe(reg.GroupID("done"), 2, t0+int64(300*time.Second))
	c.Observe(reg.GroupID("learning"), 1, t0+int64(250*time.Second))
	var buf bytes.Buffer
	if err := s.Checkpoint(&buf, nil); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := Inspect(&out, &buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"communication set network:",
		"group done: protecting since 2026-11-02T00:03:20Z; 2 keys, first 2026-11-02T00:00:00Z, newest 2026-11-02T00:05:00Z",
		"group learning: learning until 2026-11-02T00:07:30Z; 1 keys",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out.String())
		}
	}
}

// An older capture replayed onto a restored baseline is judged (its new
// keys are Novel, even in a group still learning), never learned, and
// counted.
func TestCommSetOlderCommunicationJudgedNotLearned(t *testing.T) {
	reg := ingest.NewRegistry()
	s := NewStore(testConfig(), reg)
	c := s.CommSet("network", time.Hour)
	g := reg.GroupID("plant-a")
	c.Observe(g, 1, t0)
	c.Observe(g, 2, t0+int64(10*time.Minute)) // newest time of the checkpoint
	held, reg2 := restoreInto(t, s, reg, time.Hour)
	g2 := reg2.GroupID("plant-a")
	old := t0 + int64(5*time.Minute) // still inside the learning hour
	if held.Admit(g2, old) {
		t.Fatal("a communication older than the restored baseline was admitted for learning")
	}
	if got := held.Observe(g2, 1, old); got != Known {
		t.Errorf("known key in an older communication: %v, want Known", got)
	}
	if got := held.Observe(g2, 99, old); got != Novel {
		t.Errorf("new key in an older communication: %v, want Novel (judged, not learned)", got)
	}
	if held.Stale() != 1 {
		t.Errorf("Stale() = %d, want 1", held.Stale())
	}
	// Newer traffic goes on learning for the group's remaining time.
	newer := t0 + int64(20*time.Minute)
	if !held.Admit(g2, newer) {
		t.Fatal("a newer communication was refused")
	}
	if got := held.Observe(g2, 100, newer); got != Learned {
		t.Errorf("new key after the baseline's newest time, group learning: %v, want Learned", got)
	}
	// The floor survives a second checkpoint: it is the newest time seen.
	again, reg3 := restoreInto(t, storeWith(reg2, held), reg2, time.Hour)
	if !again.Older(reg3.GroupID("plant-a"), t0+int64(15*time.Minute)) {
		t.Error("the newest time (t0+20m) was not carried by the next checkpoint")
	}
}

// storeWith returns a store over reg holding c as its set "network".
func storeWith(reg *ingest.Registry, c *CommSet) *Store {
	s := NewStore(testConfig(), reg)
	*s.CommSet("network", 0) = *c
	return s
}

// A VBC1 record (before the end of learning and the newest time were
// kept) still loads: its group learns for the period in force, and it
// sets no floor.
func TestCommSetReadsVersion1(t *testing.T) {
	rec := []byte("VBC1\x01\x00")
	rec = binary.AppendVarint(rec, t0)
	rec = binary.AppendUvarint(rec, 1)
	rec = binary.LittleEndian.AppendUint64(rec, 42)
	c := NewCommSet(time.Hour)
	if err := c.MergeGroup(0, rec); err != nil {
		t.Fatal(err)
	}
	if !c.Contains(0, 42) || !c.Learning(0, t0+int64(59*time.Minute)) || c.Learning(0, t0+int64(time.Hour)) {
		t.Fatal("a VBC1 group does not learn for the period in force from its first time")
	}
	if c.Older(0, 0) {
		t.Fatal("a VBC1 group has a floor")
	}
	if err := c.MergeGroup(0, []byte("VBC9\x01\x00")); err == nil || !strings.Contains(err.Error(), "another version") {
		t.Fatalf("unknown version: %v", err)
	}
}

// The same set always encodes to the same bytes (keys in order), so a
// checkpoint of the same state is the same file.
func TestCommSetEncodingIsDeterministic(t *testing.T) {
	c := NewCommSet(time.Hour)
	for k := uint64(0); k < 64; k++ {
		c.Observe(0, k*0x9e3779b97f4a7c15, t0)
	}
	first := c.AppendGroup(nil, 0)
	for i := 0; i < 5; i++ {
		if !bytes.Equal(first, c.AppendGroup(nil, 0)) {
			t.Fatal("the same set gave different bytes")
		}
	}
}
