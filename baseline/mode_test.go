package baseline

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"

	"github.com/vigil-ot/vigil/ingest"
)

func minute(i int) int64 { return t0 + int64(i)*int64(time.Minute) }

func TestGroupLearningThenProtecting(t *testing.T) {
	reg := ingest.NewRegistry()
	cfg := testConfig() // min_samples 100, min_duration 1h
	s := NewStore(cfg, reg)
	metrics := []string{"m"}
	// 200 rows within 20 minutes: enough samples, not enough time
	var rows []obs
	for i := 0; i < 200; i++ {
		rows = append(rows, obs{t: t0 + int64(i)*int64(6*time.Second), dev: fmt.Sprintf("d%d", i%10), grp: "g", vals: []float64{1}})
	}
	rec := buildRecord(t, reg, metrics, rows)
	exp := feed(s, rec)
	rec.Release()
	g := reg.GroupID("g")
	learning, n, since := s.GroupMode(g)
	if !learning || n != 200 || since != 199*6*time.Second {
		t.Fatalf("after 200 rows in 20m: learning %v, %d samples, %s; want learning, 200, 19m54s", learning, n, since)
	}
	if !exp[199][0].Learning {
		t.Fatal("expectation not marked learning")
	}
	// one more row at 1h: both conditions met
	rec = buildRecord(t, reg, metrics, []obs{{t: t0 + int64(time.Hour), dev: "d0", grp: "g", vals: []float64{1}}, {t: t0 + int64(time.Hour) + 1, dev: "d1", grp: "g", vals: []float64{1}}})
	exp = feed(s, rec)
	rec.Release()
	if !exp[0][0].Learning || exp[1][0].Learning {
		t.Fatalf("row at 1h judged learning=%v, the next learning=%v; want true then false", exp[0][0].Learning, exp[1][0].Learning)
	}
	if learning, _, _ := s.GroupMode(g); learning {
		t.Fatal("group still learning after min_samples and min_duration")
	}
	// time alone is not enough either
	rec = buildRecord(t, reg, metrics, []obs{{t: t0, dev: "x", grp: "sparse", vals: []float64{1}}, {t: t0 + int64(3*time.Hour), dev: "x", grp: "sparse", vals: []float64{1}}})
	feed(s, rec)
	rec.Release()
	if learning, n, _ := s.GroupMode(reg.GroupID("sparse")); !learning || n != 2 {
		t.Fatalf("sparse group: learning %v with %d samples; want learning", learning, n)
	}
	if learning, n, _ := s.GroupMode(12345); !learning || n != 0 {
		t.Fatal("unknown group is not learning with no samples")
	}
}

func TestNewDeviceStartsFromGroup(t *testing.T) {
	reg := ingest.NewRegistry()
	cfg := testConfig()
	cfg.DeviceMinSamples = 20
	s := NewStore(cfg, reg)
	rng := rand.New(rand.NewPCG(9, 9))
	var rows []obs
	for i := 0; i < 1000; i++ {
		rows = append(rows, obs{t: minute(i / 10), dev: fmt.Sprintf("old-%d", i%10), grp: "g", vals: []float64{100 + 5*rng.NormFloat64()}})
	}
	rec := buildRecord(t, reg, []string{"m"}, rows)
	feed(s, rec)
	rec.Release()

	rows = rows[:0]
	for i := 0; i < 30; i++ {
		rows = append(rows, obs{t: minute(100 + i), dev: "new", grp: "g", vals: []float64{80}})
	}
	rec = buildRecord(t, reg, []string{"m"}, rows)
	exp := feed(s, rec)
	rec.Release()
	first := exp[0][0]
	if !first.FromGroup || first.Samples != 0 || first.Mean != first.GroupMean || first.Std != first.GroupStd {
		t.Fatalf("new device's first expectation %+v: want the group's mean and spread", first)
	}
	if !near(first.Mean, 100, 0.02) || first.Std < 3 || first.Std > 7 {
		t.Fatalf("group baseline %g ± %g, want about 100 ± 5", first.Mean, first.Std)
	}
	if e := exp[19][0]; !e.FromGroup || e.Samples != 19 {
		t.Fatalf("row 19: FromGroup %v, %d samples; want from group with 19", e.FromGroup, e.Samples)
	}
	e := exp[20][0]
	if e.FromGroup || e.Samples != 20 {
		t.Fatalf("row 20: FromGroup %v, %d samples; want the device's own with 20", e.FromGroup, e.Samples)
	}
	// seeded with the group's prior (5 samples of 100 ± 5), then 20 of 80:
	// the mean is pulled to 80 but keeps a spread instead of collapsing to 0
	if e.Mean < 80 || e.Mean > 86 || e.Std <= 0 {
		t.Fatalf("own baseline after 20 values of 80: %g ± %g", e.Mean, e.Std)
	}
}

func TestNullsAndPoisoningGuard(t *testing.T) {
	reg := ingest.NewRegistry()
	s := NewStore(testConfig(), reg)
	rec := buildRecord(t, reg, []string{"a", "b"}, []obs{
		{t: minute(0), dev: "d", grp: "g", vals: []float64{1, math.NaN()}},
		{t: minute(1), dev: "d", grp: "g", vals: []float64{1, 2}},
		{t: minute(2), dev: "d", grp: "g", vals: []float64{1e9, 1e9}}, // in alarm: not learned
		{t: minute(3), dev: "d", grp: "g", vals: []float64{1, 2}},
	})
	defer rec.Release()
	f := s.Bind(rec)
	if f.Err() != nil || f.NumMetrics() != 2 || f.MetricName(1) != "b" {
		t.Fatalf("bind: %v, %d metrics", f.Err(), f.NumMetrics())
	}
	exp := make([]Expectation, 2)
	var got [4][2]Expectation
	for i := 0; i < 4; i++ {
		f.Expect(i, exp)
		copy(got[i][:], exp)
		if i != 2 {
			f.Learn(i)
		}
	}
	if got[0][1].Present || !got[0][0].Present {
		t.Fatal("null not reported as absent")
	}
	if got[1][1].Samples != 0 || got[2][1].Samples != 1 {
		t.Fatalf("metric b samples %d then %d, want 0 then 1: nulls are not learned", got[1][1].Samples, got[2][1].Samples)
	}
	if got[3][0].Samples != 2 || got[3][0].Mean != 1 || got[3][0].GroupSamples != 2 {
		t.Fatalf("row in alarm was learned: %+v", got[3][0])
	}
	// The version counts learned rows: rows 0 and 1 before row 3, not row 2.
	if got[1][0].Version != 1 || got[3][0].Version != 2 || s.Version() != 3 {
		t.Fatalf("versions %d and %d reported, %d after, want 1, 2 and 3", got[1][0].Version, got[3][0].Version, s.Version())
	}
	s.Bind(rec)
	if s.Version() != 3 {
		t.Fatal("Bind bumped the version: it counts rows, not batches")
	}
}

func TestBindRejectsBrokenRecord(t *testing.T) {
	reg := ingest.NewRegistry()
	s := NewStore(testConfig(), reg)
	rec := buildRecord(t, reg, []string{"a"}, []obs{{t: t0, dev: "d", grp: "g", vals: []float64{1}}})
	defer rec.Release()
	broken := rec.NewSlice(0, 1)
	defer broken.Release()
	// drop the device_id column: wrong types at the fixed positions
	cols := append([]arrow.Array{}, broken.Columns()[:2]...)
	cols = append(cols, broken.Columns()[3:]...)
	fields := append([]arrow.Field{}, broken.Schema().Fields()[:2]...)
	fields = append(fields, broken.Schema().Fields()[3:]...)
	bad := arrowRecord(fields, cols)
	defer bad.Release()
	f := s.Bind(bad)
	if f.Err() == nil || f.NumRows() != 0 {
		t.Fatal("record without device_id was bound")
	}
	if f := s.Bind(nil); f.Err() == nil {
		t.Fatal("nil record was bound")
	}
}

func TestSeasonalProfileTrustedAfterHistory(t *testing.T) {
	reg := ingest.NewRegistry()
	cfg := testConfig()
	cfg.SeasonalMinHistory = 14 * 24 * time.Hour
	cfg.SeasonalMinSamples = 5
	cfg.DailyMinHistory = 0 // the hour-of-week profile alone (TestDailyProfileFromDayTwo: the daily one)
	s := NewStore(cfg, reg)
	// day shift: +50 from 08:00 to 16:00, every day, three devices at
	// different levels, one report each per 20 minutes, for 3 weeks
	level := []float64{100, 1000, 5000}
	value := func(tm int64, d int) float64 {
		h := time.Unix(0, tm).UTC().Hour()
		if h >= 8 && h < 16 {
			return level[d] + 50
		}
		return level[d]
	}
	var seasonalBefore, seasonalAfter int
	var dayExp, nightExp Expectation
	for day := 0; day < 21; day++ {
		var rows []obs
		for k := 0; k < 72; k++ {
			tm := t0 + int64(day)*int64(24*time.Hour) + int64(k)*int64(20*time.Minute)
			for d := 0; d < 3; d++ {
				rows = append(rows, obs{t: tm, dev: fmt.Sprintf("d%d", d), grp: "g", vals: []float64{value(tm, d)}})
			}
		}
		rec := buildRecord(t, reg, []string{"m"}, rows)
		exp := feed(s, rec)
		rec.Release()
		for i, e := range exp {
			if e[0].Seasonal {
				if day < 14 {
					seasonalBefore++
				} else {
					seasonalAfter++
				}
			}
			if day == 20 && rows[i].dev == "d1" {
				switch time.Unix(0, rows[i].t).UTC().Hour() {
				case 10:
					dayExp = e[0]
				case 2:
					nightExp = e[0]
				}
			}
		}
	}
	if seasonalBefore != 0 || seasonalAfter == 0 {
		t.Fatalf("seasonal expectations: %d before 14 days of history, %d after; want 0 and many", seasonalBefore, seasonalAfter)
	}
	if !dayExp.Seasonal || !nightExp.Seasonal {
		t.Fatal("no seasonal expectation on day 20")
	}
	// device d1 sits at 1000 (1050 by day): the profile is the group's
	// shape on top of the device's own level
	if math.Abs(dayExp.SeasonalMean-1050) > 10 || math.Abs(nightExp.SeasonalMean-1000) > 10 {
		t.Fatalf("seasonal mean at 10:00 %g, at 02:00 %g; want about 1050 and 1000", dayExp.SeasonalMean, nightExp.SeasonalMean)
	}
	if dayExp.SeasonalStd > 10 {
		t.Fatalf("seasonal spread %g, want small: devices share the shape", dayExp.SeasonalStd)
	}
}

func TestInspectPrintsGroups(t *testing.T) {
	reg := ingest.NewRegistry()
	s := NewStore(testConfig(), reg)
	recs := fleetRecords(t, reg, 2, 2000, 60, 6, 3)
	for _, rec := range recs {
		feed(s, rec)
		rec.Release()
	}
	var buf bytes.Buffer
	if err := s.Checkpoint(&buf, map[string]int64{"telemetry/0": 4000}); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := Inspect(&out, &buf); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"position telemetry/0 = 4000", "group site-0/hw-0: protecting", "metric_02", "60 devices"} {
		if !strings.Contains(text, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, text)
		}
	}
	if err := Inspect(&out, strings.NewReader("not arrow")); err == nil {
		t.Fatal("garbage inspected")
	}
}

func TestSteadyStateAllocatesNothing(t *testing.T) {
	reg := ingest.NewRegistry()
	s := NewStore(DefaultConfig(), reg)
	recs := fleetRecords(t, reg, 3, 1000, 300, 6, 10)
	feed(s, recs[0])
	feed(s, recs[1])
	exp := make([]Expectation, 10)
	allocs := testing.AllocsPerRun(5, func() {
		f := s.Bind(recs[2])
		for i := 0; i < f.NumRows(); i++ {
			f.Expect(i, exp)
			f.Learn(i)
		}
	})
	if allocs != 0 {
		t.Fatalf("%g allocations per batch in steady state", allocs)
	}
}

func TestBytesPerDeviceWithinBudget(t *testing.T) {
	reg := ingest.NewRegistry()
	s := NewStore(DefaultConfig(), reg)
	for _, rec := range fleetRecords(t, reg, 1, 3000, 3000, 6, 10) {
		feed(s, rec)
		rec.Release()
	}
	per := float64(s.StateBytes()) / float64(s.NumDevices())
	t.Logf("%.0f bytes per device with 10 metrics and %d half-lives", per, len(DefaultConfig().HalfLives))
	if per > 2048 {
		t.Fatalf("%.0f bytes per device, budget 2048", per)
	}
}

func TestStats(t *testing.T) {
	reg := ingest.NewRegistry()
	s := NewStore(testConfig(), reg)
	rec := buildRecord(t, reg, []string{"a", "b"}, []obs{
		{t: minute(0), dev: "d1", grp: "g1", vals: []float64{1, math.Inf(1)}},
		{t: minute(0), dev: "d2", grp: "g2", vals: []float64{2e200, 1}},
	})
	defer rec.Release()
	feed(s, rec)
	s.CommSet("edges", time.Hour).Observe(0, 1, minute(0))
	st := s.Stats()
	if st.Devices != 2 || st.Groups != 2 || st.LearningGroups != 2 || st.Metrics != 2 || st.Unlearnable != 2 || st.CommSetKeys != 1 || st.DeviceBytes == 0 {
		t.Fatalf("stats %+v", st)
	}
	if allocs := testing.AllocsPerRun(10, func() { s.Stats() }); allocs != 0 {
		t.Fatalf("Stats allocates %g times", allocs)
	}
}
