package detect

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/ingest"
)

// collectSink is a real Sink that keeps what it accepts in memory, and can
// be told to refuse.
type collectSink struct {
	alerts     []Alert
	quarantine []QuarantineEvent
	order      []string // ids of what was accepted, Writes apart by "|"
	fail       error
	writes     int
}

func (s *collectSink) Write(_ context.Context, out *Output) error {
	s.writes++
	if s.fail != nil {
		return s.fail
	}
	s.alerts = append(s.alerts, out.Alerts...)
	s.quarantine = append(s.quarantine, out.Quarantine...)
	if len(s.order) > 0 {
		s.order = append(s.order, "|")
	}
	for i := range out.Alerts {
		s.order = append(s.order, out.Alerts[i].ID)
	}
	for i := range out.Quarantine {
		s.order = append(s.order, out.Quarantine[i].ID)
	}
	return nil
}

func (s *collectSink) Close() error { return nil }

// find returns the alerts matching detector, behavior, device and state
// ("" matches anything).
func (s *collectSink) find(detector, behavior, device, state string) []Alert {
	var r []Alert
	for _, a := range s.alerts {
		if (detector == "" || a.Detector == detector) && (behavior == "" || a.Behavior == behavior) &&
			(device == "" || a.Device == device) && (state == "" || a.State == state) {
			r = append(r, a)
		}
	}
	return r
}

func (s *collectSink) dump() string {
	var b strings.Builder
	for _, a := range s.alerts {
		fmt.Fprintf(&b, "%s %s %s/%s %s sev=%d: %s\n", a.EventTime.Format(time.RFC3339), a.State, a.Detector, a.Behavior, a.Device, a.Severity, a.Message)
	}
	for _, q := range s.quarantine {
		fmt.Fprintf(&b, "%s quarantine %s %s %s: %s\n", q.Time.Format(time.RFC3339), q.Action, q.Mode, q.Device, q.Message)
	}
	return b.String()
}

// assetMap is an inventory in memory.
type assetMap map[string]ingest.Asset

func (m assetMap) Asset(device string) (ingest.Asset, bool) {
	a, ok := m[device]
	return a, ok
}

// testBaselineConfig protects groups after an hour of data so tests need
// only a few hours of simulated fleet.
func testBaselineConfig() baseline.Config {
	c := baseline.DefaultConfig()
	c.MinSamples = 200
	c.MinDuration = time.Hour
	return c
}

// sim is a small simulated fleet: devices report once a minute (at a fixed
// second of their own, with a little jitter) five metrics around their own
// levels with deterministic noise.
type sim struct {
	t       testing.TB
	reg     *ingest.Registry
	store   *baseline.Store
	builder *ingest.ObservationBuilder
	sink    *collectSink
	eng     *Engine
	row     ingest.Row
	rng     *rand.Rand

	devices []simDevice
	start   time.Time
	// batchMinutes is how many minutes of reports go into one batch.
	batchMinutes int
	offset       int64
	// partition of device i; nil: -1 (files)
	partition func(i int) int32
	// source is the Source of the batches flushed (a Kafka topic)
	source string
	sets   []string // stable storage for set member strings
	// rejected collects the Batch.Rejected of the batches flushed.
	rejected []ingest.RejectedRow
}

type simDevice struct {
	name, group string
	second      int
	bytes       float64
	cpu         float64
}

// simEpoch is a Monday, so maintenance and seasonal tests know the weekday.
var simEpoch = time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC)

func newSim(t testing.TB, cfg Config, groups []string, perGroup int, assets ingest.AssetLookup) *sim {
	t.Helper()
	reg := ingest.NewRegistry()
	s := &sim{
		t: t, reg: reg, store: baseline.NewStore(testBaselineConfig(), reg),
		builder: ingest.NewObservationBuilder(nil, reg, nil), sink: &collectSink{},
		rng: rand.New(rand.NewPCG(1, 2)), start: simEpoch, batchMinutes: 1,
	}
	for _, g := range groups {
		for i := 0; i < perGroup; i++ {
			s.devices = append(s.devices, simDevice{
				name: fmt.Sprintf("%s-dev-%02d", strings.ReplaceAll(g, "/", "-"), i), group: g,
				second: 5 + (i*7)%50, bytes: 80_000 + float64(i%5)*5_000, cpu: 30,
			})
		}
	}
	eng, err := NewEngine(cfg, Deps{Registry: reg, Baseline: s.store, Assets: assets, Sink: s.sink})
	if err != nil {
		t.Fatal(err)
	}
	s.eng = eng
	return s
}

// mutator changes device i's report of minute m; returning false drops it.
type mutator func(m int, i int, d *simDevice, r *ingest.Row) bool

// run simulates minutes [from, to). With partitions, each partition's
// reports go into batches of their own, as a Kafka consumer delivers them
// (a batch never spans partitions): partition by partition, batchMinutes
// at a time.
func (s *sim) run(from, to int, mut mutator) {
	s.t.Helper()
	if s.partition == nil {
		s.runPartition(from, to, mut, nil)
		return
	}
	var parts []int32
	for i := range s.devices {
		if p := s.partition(i); !slices.Contains(parts, p) {
			parts = append(parts, p)
		}
	}
	for m := from; m < to; m += s.batchMinutes {
		for _, p := range parts {
			s.runPartition(m, min(m+s.batchMinutes, to), mut, func(i int) bool { return s.partition(i) == p })
		}
	}
}

// runPartition simulates minutes [from, to) of the devices i for which
// in(i) holds (all when in is nil).
func (s *sim) runPartition(from, to int, mut mutator, in func(i int) bool) {
	s.t.Helper()
	for m := from; m < to; m++ {
		for i := range s.devices {
			if in != nil && !in(i) {
				continue
			}
			d := &s.devices[i]
			r := &s.row
			r.Reset()
			jitter := time.Duration(s.rng.IntN(5)) * time.Second
			r.TimeNanos = s.start.Add(time.Duration(m)*time.Minute + time.Duration(d.second)*time.Second + jitter).UnixNano()
			r.Device, r.Group, r.Partition = d.name, d.group, -1
			if s.partition != nil {
				r.Partition = s.partition(i)
			}
			s.offset++
			r.Offset = s.offset
			r.Metrics = append(r.Metrics,
				ingest.Metric{Name: "bytes_out", Value: d.bytes * (1 + 0.05*s.rng.NormFloat64())},
				ingest.Metric{Name: "msgs_sent", Value: math.Round(60 + 3*s.rng.NormFloat64())},
				ingest.Metric{Name: "cpu", Value: d.cpu + 2*s.rng.NormFloat64()},
				ingest.Metric{Name: "temp", Value: 45 + s.rng.NormFloat64()},
				ingest.Metric{Name: "auth_failures", Value: 0},
			)
			if mut != nil && !mut(m, i, d, r) {
				continue
			}
			s.builder.Append(r)
		}
		if (m+1-from)%s.batchMinutes == 0 || m == to-1 {
			s.flush()
		}
	}
}

func (s *sim) flush() {
	s.t.Helper()
	if s.builder.Len() == 0 {
		return
	}
	rec, sets := s.builder.NewRecord()
	b := ingest.NewBatch(rec, nil)
	b.Sets, b.Source = sets, s.source
	if err := s.eng.Process(context.Background(), b); err != nil {
		s.t.Fatal(err)
	}
	s.rejected = append(s.rejected, b.Rejected...)
}

// stable returns a copy of v that outlives the row (set members are kept
// by reference).
func (s *sim) stable(v string) string {
	s.sets = append(s.sets, v)
	return s.sets[len(s.sets)-1]
}

// warm runs the clean fleet long enough for baselines to protect.
func (s *sim) warm(minutes int) {
	s.t.Helper()
	s.run(0, minutes, nil)
	if n := len(s.sink.alerts); n != 0 {
		s.t.Fatalf("clean warm-up raised %d alerts:\n%s", n, s.sink.dump())
	}
}

func at(m int) time.Time { return simEpoch.Add(time.Duration(m) * time.Minute) }
