package baseline

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/vigil-ot/vigil/ingest"
)

// TestMutatedStateIsRejectedOrUsable flips random bytes in valid group
// summaries, device states and checkpoints: each must be rejected with an
// error, or accepted and then survive a batch, a checkpoint and a restore.
// (The fuzz targets explore further; this runs on every test.)
func TestMutatedStateIsRejectedOrUsable(t *testing.T) {
	s, _ := fuzzStore(t)
	seed, _ := s.MarshalGroup(nil, "grp-0")
	var ck bytes.Buffer
	s.Checkpoint(&ck, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200; i++ {
		data := bytes.Clone(seed)
		for k := 0; k < 1+rng.IntN(4); k++ {
			data[rng.IntN(len(data))] = byte(rng.IntN(256))
		}
		reg := ingest.NewRegistry()
		s := NewStore(testConfig(), reg)
		if err := s.MergeGroup("peer", "grp-1", data); err == nil {
			s.AbsorbGroup("grp-0", data)
			exercise(t, s, reg)
		}
	}
	dev, _ := s.MarshalDevice(nil, "dev-002")
	for i := 0; i < 200; i++ {
		data := bytes.Clone(dev)
		for k := 0; k < 1+rng.IntN(4); k++ {
			data[rng.IntN(len(data))] = byte(rng.IntN(256))
		}
		reg := ingest.NewRegistry()
		st := NewStore(testConfig(), reg)
		if err := st.UnmarshalDevice("dev-002", data); err == nil {
			exercise(t, st, reg)
		}
	}
	for i := 0; i < 100; i++ {
		data := bytes.Clone(ck.Bytes())
		for k := 0; k < 1+rng.IntN(4); k++ {
			data[rng.IntN(len(data))] = byte(rng.IntN(256))
		}
		var out bytes.Buffer
		Inspect(&out, bytes.NewReader(data))
		reg := ingest.NewRegistry()
		st := NewStore(testConfig(), reg)
		if _, err := st.Restore(bytes.NewReader(data)); err == nil {
			exercise(t, st, reg)
		}
	}
}
