package baseline

import (
	"bytes"
	"testing"

	"github.com/vigil-ot/vigil/ingest"
)

// fuzzStore returns a store that has learned a little, and its registry.
func fuzzStore(t testing.TB) (*Store, *ingest.Registry) {
	reg := ingest.NewRegistry()
	cfg := testConfig()
	cfg.SeasonalWarmup = 0 // so the seeds hold seasonal cells, with their first-week fields
	s := NewStore(cfg, reg)
	rec := buildRecord(t, reg, stateMetrics, fleetRows(1, 0, 200, 10, 4))
	defer rec.Release()
	feed(s, rec)
	s.CommSet("edges", 0).Observe(reg.GroupID("grp-1"), 42, t0)
	return s, reg
}

// exercise runs a batch and the inspection paths over whatever state a
// decoder accepted: accepted state must be usable, not only parseable.
func exercise(t *testing.T, s *Store, reg *ingest.Registry) {
	rec := buildRecord(t, reg, stateMetrics, fleetRows(2, 200, 50, 12, 4))
	defer rec.Release()
	feed(s, rec)
	s.GroupInfos()
	var buf bytes.Buffer
	if err := s.Checkpoint(&buf, nil); err != nil {
		t.Fatalf("cannot checkpoint accepted state: %v", err)
	}
	if _, err := NewStore(s.cfg, ingest.NewRegistry()).Restore(&buf); err != nil {
		t.Fatalf("cannot restore a checkpoint of accepted state: %v", err)
	}
}

func FuzzRestore(f *testing.F) {
	s, _ := fuzzStore(f)
	var buf bytes.Buffer
	if err := s.Checkpoint(&buf, map[string]int64{"p/0": 7}); err != nil {
		f.Fatal(err)
	}
	valid := buf.Bytes()
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add([]byte("ARROW1\x00\x00"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		reg := ingest.NewRegistry()
		s := NewStore(testConfig(), reg)
		if _, err := s.Restore(bytes.NewReader(data)); err != nil {
			return
		}
		exercise(t, s, reg)
	})
}

func FuzzInspect(f *testing.F) {
	s, _ := fuzzStore(f)
	var buf bytes.Buffer
	if err := s.Checkpoint(&buf, nil); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		_ = Inspect(&out, bytes.NewReader(data))
	})
}

func FuzzUnmarshalDevice(f *testing.F) {
	s, _ := fuzzStore(f)
	for _, d := range []string{"dev-001", "dev-007", "unknown"} {
		data, err := s.MarshalDevice(nil, d)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("VBD1"))
	// Regression: a record whose first metric has an empty name was
	// accepted, and the next checkpoint then could not be restored.
	data, err := s.MarshalDevice(nil, "dev-001")
	if err != nil {
		f.Fatal(err)
	}
	named := append([]byte{byte(len(stateMetrics[0]))}, stateMetrics[0]...)
	if !bytes.Contains(data, named) {
		f.Fatalf("BUG: the record does not hold %q", stateMetrics[0])
	}
	f.Add(bytes.Replace(data, named, []byte{0}, 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		reg := ingest.NewRegistry()
		s := NewStore(testConfig(), reg)
		if err := s.UnmarshalDevice("dev-003", data); err != nil {
			return
		}
		exercise(t, s, reg)
	})
}

func FuzzMergeGroup(f *testing.F) {
	s, _ := fuzzStore(f)
	for _, g := range []string{"grp-0", "grp-2", "none"} {
		data, err := s.MarshalGroup(nil, g)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("VBG1"))
	// The same regression as FuzzUnmarshalDevice's, in a group summary.
	data, err := s.MarshalGroup(nil, "grp-0")
	if err != nil {
		f.Fatal(err)
	}
	named := append([]byte{byte(len(stateMetrics[0]))}, stateMetrics[0]...)
	if !bytes.Contains(data, named) {
		f.Fatalf("BUG: the summary does not hold %q", stateMetrics[0])
	}
	f.Add(bytes.Replace(data, named, []byte{0}, 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		reg := ingest.NewRegistry()
		s := NewStore(testConfig(), reg)
		if err := s.MergeGroup("peer", "grp-1", data); err != nil {
			return
		}
		if err := s.AbsorbGroup("grp-0", data); err != nil {
			t.Fatalf("MergeGroup accepted what AbsorbGroup refuses: %v", err)
		}
		exercise(t, s, reg)
	})
}

func FuzzUnmarshalHLL(f *testing.F) {
	h := NewHLL(8)
	h.AddString("x")
	f.Add(h.AppendBinary(nil))
	f.Add([]byte{4})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := UnmarshalHLL(data)
		if err != nil {
			return
		}
		h.AddString("y")
		_ = h.Estimate()
		if !bytes.Equal(h.AppendBinary(nil)[:1], data[:1]) {
			t.Fatal("precision changed")
		}
	})
}

func FuzzCommSetMergeGroup(f *testing.F) {
	c := NewCommSet(0)
	c.Observe(0, 1, 5)
	c.Observe(0, 2, 6)
	f.Add(c.AppendGroup(nil, 0))
	f.Add([]byte("VBC1"))
	f.Add([]byte("VBC1\x01\x00\x02\x01\x2a\x00\x00\x00\x00\x00\x00\x00")) // a version-1 group: first time 1, key 42
	f.Fuzz(func(t *testing.T, data []byte) {
		c := NewCommSet(0)
		if err := c.MergeGroup(3, data); err != nil {
			return
		}
		c.Observe(3, 9, 0)
		if _, err := UnmarshalHLL(nil); err == nil {
			t.Fatal("unreachable")
		}
	})
}
