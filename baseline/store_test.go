package baseline

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"

	"github.com/vigil-ot/vigil/ingest"
)

func TestStoreLearnsDeviceMoments(t *testing.T) {
	reg := ingest.NewRegistry()
	s := NewStore(testConfig(), reg)
	metrics := []string{"bytes_out", "msgs"}
	rng := rand.New(rand.NewPCG(1, 2))
	var rows []obs
	for i := 0; i < 500; i++ {
		rows = append(rows, obs{t: t0 + int64(i)*int64(time.Second), dev: "plc-1", grp: "a", vals: []float64{1000 + rng.NormFloat64()*10, 5}})
	}
	rec := buildRecord(t, reg, metrics, rows[:400])
	exp := feed(s, rec)
	rec.Release()
	if q := exp[0][0].GroupQuantiles[QP50]; !math.IsNaN(q) {
		t.Errorf("group p50 before any batch was learned is %g, want NaN", q)
	}
	rec = buildRecord(t, reg, metrics, rows[400:])
	exp = append(exp, feed(s, rec)...)
	rec.Release()
	last := exp[len(exp)-1]
	if last[0].FromGroup || last[0].Samples != 499 {
		t.Fatalf("device expectation from group %v with %d samples, want own with 499", last[0].FromGroup, last[0].Samples)
	}
	if !near(last[0].Mean, 1000, 0.01) || last[0].Std < 7 || last[0].Std > 13 {
		t.Errorf("mean %g std %g, want about 1000 and 10", last[0].Mean, last[0].Std)
	}
	if last[1].Mean != 5 || last[1].Std != 0 {
		t.Errorf("constant metric: mean %g std %g, want 5 and 0", last[1].Mean, last[1].Std)
	}
	if exp[0][0].Samples != 0 || !exp[0][0].Learning {
		t.Errorf("first row: %d samples, learning %v; want 0 and learning", exp[0][0].Samples, exp[0][0].Learning)
	}
	if q := last[0].GroupQuantiles; !(q[QP05] < q[QP50] && q[QP50] < q[QP95]) || !near(q[QP50], 1000, 0.01) {
		t.Errorf("group quantiles %v, want ordered around 1000", q)
	}
	if math.IsNaN(last[0].GroupMean) || !near(last[0].GroupMean, 1000, 0.01) {
		t.Errorf("group mean %g", last[0].GroupMean)
	}
}

// TestHourOfWeekRemembered checks the remembered hour against the
// arithmetic for times that stay within an hour, cross hour and week
// boundaries, go backwards, and lie before 1970, with a UTC offset.
func TestHourOfWeekRemembered(t *testing.T) {
	cfg := testConfig()
	cfg.SeasonalUTCOffset = 30 * time.Minute
	s := NewStore(cfg, ingest.NewRegistry())
	want := func(t int64) int {
		h := (floorDiv(t+int64(cfg.SeasonalUTCOffset), int64(time.Hour)) + 72) % hoursPerWeek
		return int((h + hoursPerWeek) % hoursPerWeek)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	ts := t0
	for i := 0; i < 20000; i++ {
		switch rng.IntN(5) {
		case 0:
			ts += rng.Int64N(int64(time.Minute))
		case 4:
			ts += rng.Int64N(int64(2 * time.Hour))
		case 1:
			ts -= rng.Int64N(int64(2 * time.Hour))
		case 2:
			ts = rng.Int64N(1<<62) - 1<<61 // far from the last, either side of 1970
		case 3:
			ts = ts - ts%int64(time.Hour) - int64(cfg.SeasonalUTCOffset) + rng.Int64N(3) - 1 // at a bucket edge
		}
		if got := s.hourOfWeek(ts); got != want(ts) {
			t.Fatalf("hourOfWeek(%d) = %d, want %d", ts, got, want(ts))
		}
	}
}

// TestExpectSetsEveryField: Expect assigns each field rather than
// zeroing the struct first, so it must leave nothing of what the slice
// held before. Every row is expected into a fresh slice and into one
// filled with junk in every field (by reflection, so a field added later
// is covered), and the two must print the same.
func TestExpectSetsEveryField(t *testing.T) {
	reg := ingest.NewRegistry()
	// 20 devices in 2 groups, hourly for 9 days, some values null: new
	// devices, groups learning then protecting, seasonal expectations.
	cfg := testConfig()
	cfg.SeasonalMinHistory, cfg.SeasonalWarmup, cfg.SeasonalMinSamples = 7*24*time.Hour, 0, 3
	s := NewStore(cfg, reg)
	metrics := []string{"a", "b", "c"}
	rng := rand.New(rand.NewPCG(3, 3))
	var recs []arrow.Record
	var rows []obs
	for h := 0; h < 9*24; h++ {
		for d := 0; d < 20; d++ {
			vals := []float64{100 + rng.NormFloat64(), float64(h % 24), math.NaN()}
			if rng.IntN(3) > 0 {
				vals[2] = rng.Float64()
			}
			rows = append(rows, obs{t: t0 + int64(h)*int64(time.Hour) + int64(d)*int64(time.Second),
				dev: fmt.Sprintf("d%d", d), grp: fmt.Sprintf("g%d", d%2), vals: vals})
		}
		if len(rows) >= 960 {
			recs = append(recs, buildRecord(t, reg, metrics, rows))
			rows = rows[:0]
		}
	}
	junk := func(dst []Expectation) {
		for i := range dst {
			v := reflect.ValueOf(&dst[i]).Elem()
			for k := 0; k < v.NumField(); k++ {
				fillJunk(v.Field(k))
			}
		}
	}
	var seen [4]bool // present, from group, own moments, seasonal
	for _, rec := range recs {
		f := s.Bind(rec)
		for i := 0; i < f.NumRows(); i++ {
			fresh := make([]Expectation, f.NumMetrics())
			reused := make([]Expectation, f.NumMetrics())
			junk(reused)
			f.Expect(i, fresh)
			f.Expect(i, reused)
			if a, b := fmt.Sprintf("%+v", fresh), fmt.Sprintf("%+v", reused); a != b {
				t.Fatalf("row %d: Expect into a used slice differs from a fresh one:\n%s\n%s", i, b, a)
			}
			for _, e := range fresh {
				seen[0] = seen[0] || e.Present
				seen[1] = seen[1] || e.FromGroup
				seen[2] = seen[2] || !e.FromGroup && e.Samples > 0
				seen[3] = seen[3] || e.Seasonal
			}
			f.Learn(i)
		}
	}
	if seen != [4]bool{true, true, true, true} {
		t.Fatalf("the records did not reach every kind of expectation (present, from group, own, seasonal): %v", seen)
	}
}

func fillJunk(v reflect.Value) {
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Float64:
		v.SetFloat(-12345.5)
	case reflect.Int64, reflect.Int:
		v.SetInt(-777)
	case reflect.Uint64:
		v.SetUint(777)
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			fillJunk(v.Index(i))
		}
	default:
		panic("BUG: fillJunk does not know " + v.Kind().String())
	}
}

// TestStoreHoldsOnlyDevicesItJudges: a store holds state for the devices
// whose rows it judges or learns, in pages filled as they arrive, however
// high their registry ids (an engine shard judges a few of the devices of
// a registry it shares with the other shards). A slot for every id below
// the highest would hold 100,000 devices' state here (about 30 MB).
func TestStoreHoldsOnlyDevicesItJudges(t *testing.T) {
	reg := ingest.NewRegistry()
	for d := range 100_000 {
		reg.DeviceID(fmt.Sprintf("dev-%06d", d))
	}
	s := NewStore(testConfig(), reg)
	var rows []obs
	for i := range 30 {
		rows = append(rows, obs{t: t0 + int64(i)*int64(time.Minute), dev: fmt.Sprintf("dev-%06d", 99_997+i%3), grp: "g", vals: []float64{1, 2, 3, 4}})
	}
	expectAll(t, s, reg, rows)
	if n := s.NumDevices(); n != 3 {
		t.Errorf("the store holds %d devices, want 3", n)
	}
	if b := s.StateBytes(); b > 1<<20 {
		t.Errorf("3 devices of 4 metrics take %d bytes of device state, want one page (under 1 MiB)", b)
	}
	for i := range 3 {
		rec, err := s.MarshalDevice(nil, fmt.Sprintf("dev-%06d", 99_997+i))
		if err != nil {
			t.Fatal(err)
		}
		b := NewStore(testConfig(), ingest.NewRegistry())
		if err := b.UnmarshalDevice("x", rec); err != nil {
			t.Fatal(err)
		}
		if got, _ := b.MarshalDevice(nil, "x"); !bytes.Equal(got, rec) {
			t.Errorf("device %d: state does not round-trip", i)
		}
	}
}

// A capture's few hosts learn their metrics one after another, each new
// metric widening every device's state (relayout): the state must stay
// the size of the devices there are, not of a page of
// ingest.DevicePage devices per new metric.
func TestStoreFewDevicesManyMetricsStaySmall(t *testing.T) {
	reg := ingest.NewRegistry()
	s := NewStore(testConfig(), reg)
	var metrics []string
	for k := range 30 {
		metrics = append(metrics, fmt.Sprintf("m%02d", k))
		var rows []obs
		for d := range 20 {
			vals := make([]float64, len(metrics))
			for j := range vals {
				vals[j] = float64(d + j)
			}
			rows = append(rows, obs{t: t0 + int64(k)*int64(time.Minute), dev: fmt.Sprintf("host-%02d", d), grp: "g", vals: vals})
		}
		rec := buildRecord(t, reg, metrics, rows)
		feed(s, rec)
		rec.Release()
	}
	if n := s.NumDevices(); n != 20 {
		t.Fatalf("the store holds %d devices, want 20", n)
	}
	// 20 devices × 30 metrics, in a first page with room for 32 devices:
	// about 100 KB with the page's fixed columns; a page of 1024 devices
	// would be 30 times that.
	if b := s.StateBytes(); b > 256<<10 {
		t.Errorf("20 devices of 30 metrics take %d bytes of device state, want under 256 KiB", b)
	}
}

// A record that brings many new metrics grows every device's state once,
// not once per metric: binding a record of 40 new metrics allocates about
// 40/2 times what binding a record of one does (the state of each device
// is twice and 41 times one metric's), where growing it per metric
// allocated the sum over 2 to 41 metrics, some 400 times.
func TestBindNewMetricsGrowStateOnce(t *testing.T) {
	bound := func(newMetrics int) uint64 {
		reg := ingest.NewRegistry()
		s := NewStore(testConfig(), reg)
		var rows []obs
		for d := range 200 {
			rows = append(rows, obs{t: t0, dev: fmt.Sprint("plc-", d), grp: "a", vals: []float64{1}})
		}
		rec := buildRecord(t, reg, []string{"m0"}, rows)
		feed(s, rec)
		rec.Release()
		metrics := []string{"m0"}
		vals := []float64{2}
		for k := 1; k <= newMetrics; k++ {
			metrics = append(metrics, fmt.Sprint("m", k))
			vals = append(vals, float64(k))
		}
		rec = buildRecord(t, reg, metrics, []obs{{t: t0 + 1, dev: "plc-0", grp: "a", vals: vals}})
		defer rec.Release()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s.Bind(rec)
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	one, forty := bound(1), bound(40)
	if forty > 40*one {
		t.Fatalf("binding 40 new metrics allocated %d bytes, one new metric %d: more than 40 times as much", forty, one)
	}
}
