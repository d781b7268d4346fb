package baseline

import (
	"bytes"
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
	if !held.Learning(g2, t0+int64(90*time.Minute)) {
		t.Fatal("the configured learning period (2h) did not survive the restore")
	}
	if got := held.Observe(g2, HashString("new edge"), t0+int64(3*time.Hour)); got != Novel {
		t.Fatalf("new edge after learning: %v", got)
	}
}
