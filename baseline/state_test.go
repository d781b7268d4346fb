package baseline

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/ingest"
)

// fleetRows makes n rows of a fleet: devices in 3 groups, metrics
// metrics, one report per device per minute from minute start on, some
// nulls.
func fleetRows(seed uint64, start, n, devices, metrics int) []obs {
	rng := rand.New(rand.NewPCG(seed, 1))
	var rows []obs
	for i := 0; i < n; i++ {
		d := (start + i) % devices
		vals := make([]float64, metrics)
		for j := range vals {
			vals[j] = float64(10*(j+1)*(d%3+1)) + rng.NormFloat64()*float64(j+1)
			if rng.IntN(40) == 0 {
				vals[j] = math.NaN()
			}
		}
		rows = append(rows, obs{
			t:    minute((start+i)/devices) + int64(d)*int64(time.Millisecond),
			dev:  fmt.Sprintf("dev-%03d", d),
			grp:  fmt.Sprintf("grp-%d", d%3),
			vals: vals,
		})
	}
	return rows
}

var stateMetrics = []string{"bytes_out", "msgs_sent", "auth_failures", "cpu"}

// expectAll builds rows on reg and returns every row's expectations.
func expectAll(t *testing.T, s *Store, reg *ingest.Registry, rows []obs) [][]Expectation {
	t.Helper()
	rec := buildRecord(t, reg, stateMetrics, rows)
	defer rec.Release()
	return feed(s, rec)
}

func sameExpectations(t *testing.T, what string, got, want [][]Expectation) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d", what, len(got), len(want))
	}
	for i := range got {
		for j := range got[i] {
			if !reflect.DeepEqual(nanToSentinel(got[i][j]), nanToSentinel(want[i][j])) {
				t.Fatalf("%s: row %d metric %d:\n got %+v\nwant %+v", what, i, j, got[i][j], want[i][j])
			}
		}
	}
}

// nanToSentinel lets DeepEqual treat NaN quantiles and peaks as equal.
func nanToSentinel(e Expectation) Expectation {
	if math.IsNaN(e.GroupPeak) {
		e.GroupPeak = -12345
	}
	for i, q := range e.GroupQuantiles {
		if math.IsNaN(q) {
			e.GroupQuantiles[i] = -12345
		}
	}
	return e
}

func TestCheckpointRestoreGivesIdenticalExpectations(t *testing.T) {
	cfg := testConfig()
	cfg.SeasonalMinHistory = 7 * 24 * time.Hour
	regA := ingest.NewRegistry()
	a := NewStore(cfg, regA)
	for k := 0; k < 3; k++ {
		expectAll(t, a, regA, fleetRows(uint64(k), k*1500, 1500, 30, 4))
	}
	var buf bytes.Buffer
	positions := map[string]int64{"telemetry/0": 4500, "replay/fleet.jsonl": 77}
	if err := a.Checkpoint(&buf, positions); err != nil {
		t.Fatal(err)
	}

	// a restarted process: different id order, metrics seen in another order
	regB := ingest.NewRegistry()
	regB.DeviceID("someone-else")
	regB.GroupID("grp-2")
	b := NewStore(cfg, regB)
	b.metricID("cpu")
	got, err := b.Restore(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, positions) {
		t.Fatalf("positions %v, want %v", got, positions)
	}
	if b.Version() != a.Version() {
		t.Fatalf("version %d, want %d", b.Version(), a.Version())
	}
	next := fleetRows(9, 4500, 1500, 31, 4) // includes a device never seen
	wantExp := expectAll(t, a, regA, next)
	gotExp := expectAll(t, b, regB, next)
	sameExpectations(t, "restored store", gotExp, wantExp)

	// a restore with other half-lives is refused, naming the remedy
	other := cfg
	other.HalfLives = []time.Duration{time.Hour}
	other.PrimaryHalfLife = time.Hour
	if _, err := NewStore(other, ingest.NewRegistry()).Restore(bytes.NewReader(buf.Bytes())); err == nil {
		t.Fatal("restore with other half-lives accepted")
	}
}

func TestMarshalDeviceRoundTrip(t *testing.T) {
	cfg := testConfig()
	regA := ingest.NewRegistry()
	a := NewStore(cfg, regA)
	expectAll(t, a, regA, fleetRows(1, 0, 3000, 30, 4))

	// another instance takes the partition over: group summaries absorbed,
	// devices from the changelog
	regB := ingest.NewRegistry()
	b := NewStore(cfg, regB)
	for _, g := range a.Groups(nil) {
		data, err := a.MarshalGroup(nil, g)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.AbsorbGroup(g, data); err != nil {
			t.Fatal(err)
		}
	}
	for d := 0; d < 30; d++ {
		name := fmt.Sprintf("dev-%03d", d)
		data, err := a.MarshalDevice(nil, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.UnmarshalDevice(name, data); err != nil {
			t.Fatal(err)
		}
		again, _ := b.MarshalDevice(nil, name)
		if !bytes.Equal(again, data) {
			t.Fatalf("%s: re-marshalled state differs", name)
		}
	}
	next := fleetRows(2, 3000, 300, 30, 4)
	wantExp := expectAll(t, a, regA, next)
	gotExp := expectAll(t, b, regB, next)
	for i := range gotExp {
		for j := range gotExp[i] {
			g, w := gotExp[i][j], wantExp[i][j]
			// device fields travel exactly; group fields through Chan's
			// merge into an empty group, to rounding
			if g.Mean != w.Mean || g.Std != w.Std || g.Samples != w.Samples || g.FromGroup != w.FromGroup {
				t.Fatalf("row %d metric %d: device fields %+v, want %+v", i, j, g, w)
			}
			if !near(g.GroupMean, w.GroupMean, 1e-12) || !near(g.GroupStd, w.GroupStd, 1e-9) || g.GroupSamples != w.GroupSamples || g.Learning != w.Learning {
				t.Fatalf("row %d metric %d: group fields %+v, want %+v", i, j, g, w)
			}
		}
	}
	b.ForgetDevice("dev-001")
	empty, _ := NewStore(cfg, ingest.NewRegistry()).MarshalDevice(nil, "dev-001")
	if data, _ := b.MarshalDevice(nil, "dev-001"); !bytes.Equal(data, empty) {
		t.Fatalf("forgotten device still has state: %d bytes, an unknown device %d", len(data), len(empty))
	}
}

func TestMergeGroupFromPeersEqualsWhole(t *testing.T) {
	cfg := testConfig()
	rows := fleetRows(3, 0, 6000, 60, 4)
	next := fleetRows(4, 6000, 60, 60, 4)
	// instance A owns devices 0-29, B 30-59 (their partitions); W sees all
	split := func(rows []obs, mine func(d int) bool) []obs {
		var out []obs
		for _, r := range rows {
			var d int
			fmt.Sscanf(r.dev, "dev-%d", &d)
			if mine(d) {
				out = append(out, r)
			}
		}
		return out
	}
	regA, regB, regW := ingest.NewRegistry(), ingest.NewRegistry(), ingest.NewRegistry()
	a, b, w := NewStore(cfg, regA), NewStore(cfg, regB), NewStore(cfg, regW)
	expectAll(t, a, regA, split(rows, func(d int) bool { return d < 30 }))
	expectAll(t, b, regB, split(rows, func(d int) bool { return d >= 30 }))
	expectAll(t, w, regW, rows)
	for _, g := range b.Groups(nil) {
		data, err := b.MarshalGroup(nil, g)
		if err != nil {
			t.Fatal(err)
		}
		// sent twice: a peer's summary replaces its previous one
		for k := 0; k < 2; k++ {
			if err := a.MergeGroup("instance-b", g, data); err != nil {
				t.Fatal(err)
			}
		}
	}
	mine := split(next, func(d int) bool { return d < 30 })
	gotExp := expectAll(t, a, regA, mine[:1])
	wantExp := expectAll(t, w, regW, mine[:1])
	for j := range gotExp[0] {
		g, e := gotExp[0][j], wantExp[0][j]
		if g.GroupSamples != e.GroupSamples || g.Learning != e.Learning {
			t.Fatalf("metric %d: %d group samples (learning %v), whole %d (%v)", j, g.GroupSamples, g.Learning, e.GroupSamples, e.Learning)
		}
		if !near(g.GroupMean, e.GroupMean, 1e-9) || !near(g.GroupStd, e.GroupStd, 1e-7) {
			t.Fatalf("metric %d: merged group %g ± %g, whole %g ± %g", j, g.GroupMean, g.GroupStd, e.GroupMean, e.GroupStd)
		}
		for q := range g.GroupQuantiles {
			if !near(g.GroupQuantiles[q], e.GroupQuantiles[q], 2*SketchRelativeAccuracy) {
				t.Fatalf("metric %d p%g: merged %g, whole %g", j, Quantiles[q]*100, g.GroupQuantiles[q], e.GroupQuantiles[q])
			}
		}
	}
	// A still shares only what it learned itself
	g0 := a.Groups(nil)[0]
	own, _ := a.MarshalGroup(nil, g0)
	c := NewStore(cfg, ingest.NewRegistry())
	if err := c.AbsorbGroup(g0, own); err != nil {
		t.Fatal(err)
	}
	_, n, _ := c.GroupMode(c.reg.GroupID(g0))
	_, nA, _ := a.GroupMode(regA.GroupID(g0))
	if n >= nA {
		t.Fatalf("A's own summary has %d rows, its merged view %d: peers' rows leaked into what A shares", n, nA)
	}
	a.ForgetPeer("instance-b")
	mine2 := split(fleetRows(5, 6060, 60, 60, 4), func(d int) bool { return d < 30 })
	after := expectAll(t, a, regA, mine2[:1])
	if after[0][0].GroupSamples >= gotExp[0][0].GroupSamples {
		t.Fatal("forgotten peer still counted")
	}
}

func TestDecodersRejectGarbage(t *testing.T) {
	reg := ingest.NewRegistry()
	s := NewStore(testConfig(), reg)
	expectAll(t, s, reg, fleetRows(1, 0, 300, 10, 4))
	dev, _ := s.MarshalDevice(nil, "dev-001")
	grp, _ := s.MarshalGroup(nil, "grp-1")
	for i := 0; i < len(dev); i++ {
		if err := s.UnmarshalDevice("dev-x", dev[:i]); err == nil {
			t.Fatalf("device state truncated to %d bytes accepted", i)
		}
	}
	for i := 0; i < len(grp); i += 7 {
		if err := s.MergeGroup("p", "grp-x", grp[:i]); err == nil {
			t.Fatalf("group summary truncated to %d bytes accepted", i)
		}
	}
	other := testConfig()
	other.QuantileHalfLife = time.Hour
	if err := NewStore(other, ingest.NewRegistry()).MergeGroup("p", "g", grp); err == nil {
		t.Fatal("summary with another quantile half-life accepted")
	}
}

func TestCheckpointChecksumRejectsDamage(t *testing.T) {
	s, _ := fuzzStore(t)
	var buf bytes.Buffer
	if err := s.Checkpoint(&buf, nil); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	for _, i := range []int{8, len(data) / 2, len(data) - 12} {
		bad := bytes.Clone(data)
		bad[i] ^= 0x40
		_, err := NewStore(testConfig(), ingest.NewRegistry()).Restore(bytes.NewReader(bad))
		if err == nil || !strings.Contains(err.Error(), "damaged") {
			t.Errorf("byte %d flipped: %v, want a damaged-file error", i, err)
		}
	}
	if _, err := NewStore(testConfig(), ingest.NewRegistry()).Restore(bytes.NewReader(data[:len(data)-1])); err == nil {
		t.Error("truncated checkpoint restored")
	}
}

func TestCheckpointIsDeterministic(t *testing.T) {
	var files [2][]byte
	for i := range files {
		reg := ingest.NewRegistry()
		s := NewStore(testConfig(), reg)
		expectAll(t, s, reg, fleetRows(1, 0, 2000, 30, 4))
		var buf bytes.Buffer
		if err := s.Checkpoint(&buf, map[string]int64{"a": 1, "b": 2, "c": 3, "d": 4}); err != nil {
			t.Fatal(err)
		}
		files[i] = buf.Bytes()
	}
	if !bytes.Equal(files[0], files[1]) {
		t.Fatal("the same input gave different checkpoint bytes")
	}
}

func TestOutOfOrderRowsLearnTheSame(t *testing.T) {
	rows := fleetRows(8, 0, 3000, 20, 4)
	shuffled := append([]obs(nil), rows...)
	rng := rand.New(rand.NewPCG(8, 8))
	// late arrivals: swap rows up to 30 minutes apart
	for i := range shuffled {
		j := min(len(shuffled)-1, i+rng.IntN(600))
		shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
	}
	cfg := testConfig()
	cfg.DeviceMinSamples = 1
	cfg.DevicePriorWeight = 0 // the prior is the group as of the device's first row: order-dependent by design
	probe := fleetRows(9, 3000, 20, 20, 4)
	var got [2][][]Expectation
	for k, in := range [][]obs{rows, shuffled} {
		reg := ingest.NewRegistry()
		s := NewStore(cfg, reg)
		expectAll(t, s, reg, in)
		got[k] = expectAll(t, s, reg, probe)
	}
	for i := range got[0] {
		for j := range got[0][i] {
			a, b := got[0][i][j], got[1][i][j]
			if a.Samples != b.Samples || a.GroupSamples != b.GroupSamples ||
				!near(a.Mean, b.Mean, 1e-7) || !near(a.Std, b.Std, 1e-5) || // device weights are float32
				!near(a.GroupMean, b.GroupMean, 1e-9) || !near(a.GroupStd, b.GroupStd, 1e-6) {
				t.Fatalf("row %d metric %d: in order %+v\nshuffled %+v", i, j, a, b)
			}
		}
	}
}

func TestReplayingOlderDataAfterRestoreKeepsSketchFinite(t *testing.T) {
	reg := ingest.NewRegistry()
	s := NewStore(testConfig(), reg)
	late := fleetRows(1, 0, 600, 10, 4)
	for i := range late {
		late[i].t += int64(400 * 24 * time.Hour) // a checkpoint from 400 days later
	}
	expectAll(t, s, reg, late)
	var buf bytes.Buffer
	if err := s.Checkpoint(&buf, nil); err != nil {
		t.Fatal(err)
	}
	reg2 := ingest.NewRegistry()
	s2 := NewStore(testConfig(), reg2)
	if _, err := s2.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	expectAll(t, s2, reg2, fleetRows(2, 0, 600, 10, 4)) // then an old file is replayed
	exp := expectAll(t, s2, reg2, fleetRows(3, 600, 10, 10, 4))
	for _, e := range exp {
		for _, q := range e[0].GroupQuantiles {
			if !(q > 0 && q < 100) { // metric 0 is about 10, 20 or 30
				t.Fatalf("quantiles %v after replaying older data", e[0].GroupQuantiles)
			}
		}
	}
	for _, g := range s2.groups {
		for m := range g.metrics {
			if sk := g.metrics[m].sketch; sk != nil && !(sk.Count() > 0 && sk.Count() < 1e30) {
				t.Fatalf("sketch weight %g after replaying older data", sk.Count())
			}
		}
	}
}

// TestDeviceRecordV1StillDecodes: a device record written before profile
// scales existed (magic VBD1, no trailer) restores the same moments, with
// scale 1.
func TestDeviceRecordV1StillDecodes(t *testing.T) {
	reg := ingest.NewRegistry()
	s := NewStore(testConfig(), reg)
	expectAll(t, s, reg, fleetRows(1, 0, 300, 10, 4))
	rec, err := s.MarshalDevice(nil, "dev-001")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(rec, []byte(deviceMagic)) {
		t.Fatalf("record starts %q, want %q", rec[:4], deviceMagic)
	}
	n := 0
	spg, si := s.device(s.localOf(reg.DeviceID("dev-001")))
	for m := range s.stride {
		if spg.n[si*s.stride+m] > 0 {
			n++
		}
	}
	v1 := append([]byte(deviceMagicV1), rec[len(deviceMagic):len(rec)-profileScaleBytes*n]...)
	b := NewStore(testConfig(), ingest.NewRegistry())
	if err := b.UnmarshalDevice("dev-001", v1); err != nil {
		t.Fatalf("a VBD1 record: %v", err)
	}
	bpg, bi := b.device(b.localOf(b.reg.DeviceID("dev-001")))
	slot := bi * b.stride
	if got, want := bpg.n[slot], spg.n[si*s.stride]; got != want {
		t.Errorf("restored count %d, want %d", got, want)
	}
	if got := bpg.profileScale(slot, true); got != 1 {
		t.Errorf("a VBD1 record's profile scale is %g, want 1", got)
	}
	if err := b.UnmarshalDevice("dev-001", append([]byte(deviceMagicV1), rec[len(deviceMagic):]...)); err == nil {
		t.Error("a VBD1 record with a trailer was accepted")
	}
}
