package baseline

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/ingest"
)

// coldStartWorstZ feeds a fleet with a day/night rhythm (ten times the
// volume from 08:00 to 18:00, 1 % noise) from its very first row, for
// eight days and a half, and returns the largest |value - SeasonalMean| /
// SeasonalStd of any row judged seasonally in the second week: every row
// is clean, so a good profile never strays far.
func coldStartWorstZ(t *testing.T, level []float64, warmup time.Duration) (worst float64, judged int, at time.Time) {
	t.Helper()
	reg := ingest.NewRegistry()
	s := NewStore(coldStartConfig(warmup), reg)
	noise := uint64(1)
	for hour := 0; hour < 8*24+12; hour++ {
		rows := coldStartRows(level, hour, &noise)
		rec := buildRecord(t, reg, []string{"bytes_out"}, rows)
		exp := feed(s, rec)
		rec.Release()
		for i, e := range exp {
			if !e[0].Seasonal || rows[i].t < t0+int64(7*24*time.Hour) {
				continue
			}
			judged++
			// the spread a detector would use: never below 1 % of the level
			z := math.Abs(e[0].Value-e[0].SeasonalMean) / math.Max(e[0].SeasonalStd, 0.01*math.Abs(e[0].SeasonalMean))
			if z > worst {
				worst, at = z, time.Unix(0, rows[i].t).UTC()
			}
		}
	}
	return worst, judged, at
}

func coldStartConfig(warmup time.Duration) Config {
	cfg := testConfig()
	cfg.SeasonalMinHistory = 7 * 24 * time.Hour
	cfg.SeasonalMinSamples = 5
	cfg.SeasonalWarmup = warmup
	return cfg
}

// coldStartRows returns the reports of hour: one per device every 10
// minutes, ten times the volume from 08:00 to 18:00, 1 % noise.
func coldStartRows(level []float64, hour int, noise *uint64) []obs {
	var rows []obs
	for k := 0; k < 6; k++ {
		tm := t0 + int64(hour)*int64(time.Hour) + int64(k)*int64(10*time.Minute)
		for d, l := range level {
			*noise = *noise*6364136223846793005 + 1442695040888963407
			v := l * (1 + 0.01*(float64(*noise>>11)/(1<<53)*2-1))
			if h := hour % 24; h < 8 || h >= 18 {
				v /= 10
			}
			rows = append(rows, obs{t: tm + int64(d)*int64(time.Second), dev: fmt.Sprintf("d%d", d), grp: "g", vals: []float64{v}})
		}
	}
	return rows
}

// The first-week fields of the seasonal buckets survive a checkpoint and a
// group summary: a store restored on the third day expects exactly what
// the original does in the second week, and a store absorbing the summary
// holds the same buckets.
func TestSeasonalFirstWeekSurvivesCheckpointAndSummary(t *testing.T) {
	level := []float64{20_000, 100_000, 100_000, 200_000}
	cfg := coldStartConfig(DefaultConfig().SeasonalWarmup)
	regA := ingest.NewRegistry()
	a := NewStore(cfg, regA)
	noise := uint64(1)
	for hour := 0; hour < 50; hour++ {
		rec := buildRecord(t, regA, []string{"bytes_out"}, coldStartRows(level, hour, &noise))
		feed(a, rec)
		rec.Release()
	}
	var buf bytes.Buffer
	if err := a.Checkpoint(&buf, nil); err != nil {
		t.Fatal(err)
	}
	regB := ingest.NewRegistry()
	b := NewStore(cfg, regB)
	if _, err := b.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	summary, err := a.MarshalGroup(nil, "g")
	if err != nil {
		t.Fatal(err)
	}
	young := 0
	for _, c := range a.groups[regA.GroupID("g")].metrics[0].season {
		if c.yw > 0 {
			young++
		}
	}
	if young < 20 {
		t.Fatalf("%d buckets with first-week residuals on the third day, want the day's hours", young)
	}
	regC := ingest.NewRegistry()
	c := NewStore(cfg, regC)
	if err := c.AbsorbGroup("g", summary); err != nil {
		t.Fatal(err)
	}
	ca, cc := a.groups[regA.GroupID("g")].metrics[0].season, c.groups[regC.GroupID("g")].metrics[0].season
	for i := range ca {
		x, y := ca[i], cc[i]
		if !near(x.w, y.w, 1e-12) || !near(x.mean, y.mean, 1e-9) || !near(x.yw, y.yw, 1e-12) || !near(x.yref, y.yref, 1e-12) {
			t.Fatalf("bucket %d absorbed as %+v, want %+v", i, y, x)
		}
	}
	seasonal := 0
	for hour := 50; hour < 8*24+12; hour++ {
		rows := coldStartRows(level, hour, &noise)
		want := expectAll(t, a, regA, rows)
		got := expectAll(t, b, regB, rows)
		sameExpectations(t, fmt.Sprintf("restored store, hour %d", hour), got, want)
		for i := range want {
			if want[i][0].Seasonal {
				seasonal++
			}
		}
	}
	if seasonal == 0 {
		t.Fatal("no seasonal expectation in the second week")
	}
}

func TestSeasonalColdStartDoesNotBiasBuckets(t *testing.T) {
	alike := []float64{100_000, 100_000, 100_000, 100_000}
	apart := []float64{20_000, 100_000, 100_000, 200_000}
	// Without a warm-up the buckets of the first hours learn night values
	// against levels made of night values only (residual ≈ 0); a week
	// later the levels also hold the day shifts. The group-level
	// correction (seasonCell) repairs the group's average, but devices far
	// apart move by their own scale, so the first night stayed wrong
	// (|z| ≥ 10) until each device's profile scale (profileScale) followed
	// its own swing: now it holds without a warm-up too.
	if worst, judged, at := coldStartWorstZ(t, apart, 0); worst > 4 {
		t.Fatalf("without a warm-up the worst |z| is %.1f at %s over %d rows; the devices' profile scales should follow their own swings", worst, at, judged)
	}
	// After a day's warm-up the levels still move by ~40 % of the night
	// value during the first week; without the first-week correction,
	// devices alike reach |z| ≈ 27 at the second Tuesday's 07:00.
	for _, level := range [][]float64{alike, apart} {
		worst, judged, at := coldStartWorstZ(t, level, DefaultConfig().SeasonalWarmup)
		if judged < 24*6*4 {
			t.Fatalf("levels %v: only %d rows judged seasonally in the second week", level, judged)
		}
		if worst > 4 {
			t.Fatalf("levels %v: with the default warm-up the worst |z| of a clean row is %.1f at %s", level, worst, at)
		}
		t.Logf("levels %v: worst |z| of %d clean rows in week 2: %.2f", level, judged, worst)
	}
}

// A device reporting every 30 minutes puts two rows a week in each
// hour-of-week bucket: its profile is trusted once the group has the
// history (two weeks), not once a bucket holds seasonal_min_samples (20)
// rows, which would take ten weeks.
func TestSeasonalProfileForSlowSeries(t *testing.T) {
	reg := ingest.NewRegistry()
	s := NewStore(testConfig(), reg)
	noise := uint64(3)
	judged := 0
	for hour := 0; hour < 16*24; hour++ {
		var rows []obs
		for k := 0; k < 2; k++ {
			noise = noise*6364136223846793005 + 1442695040888963407
			v := 100 * (1 + 0.01*(float64(noise>>11)/(1<<53)*2-1))
			if h := hour % 24; h < 8 || h >= 18 {
				v /= 10
			}
			rows = append(rows, obs{t: t0 + int64(hour)*int64(time.Hour) + int64(k)*int64(30*time.Minute), dev: "slow", grp: "g", vals: []float64{v}})
		}
		rec := buildRecord(t, reg, []string{"level"}, rows)
		for _, e := range feed(s, rec) {
			if e[0].Seasonal {
				judged++
				if z := math.Abs(e[0].Value-e[0].SeasonalMean) / math.Max(e[0].SeasonalStd, 1); z > 6 {
					t.Errorf("seasonal expectation %.1f ± %.1f for a clean %.1f", e[0].SeasonalMean, e[0].SeasonalStd, e[0].Value)
				}
			}
		}
		rec.Release()
	}
	if judged < 24*2 {
		t.Fatalf("%d rows judged against the hour-of-week profile in the third week, want its first day's at least", judged)
	}
}

// TestSeasonalSlopeFollowsRampNotStep: a group of devices whose value
// swings ±2 on a daily sine (noise 0.1) and steps by +10 from 17:00 to
// 19:00. Within an hour the sine moves by up to 0.5, five times the noise:
// the expectation follows it by the slope through the neighbouring hour
// buckets, so the residuals of the ramp stay near the noise, while the
// step's hour is not smoothed into its neighbours (the first reading after
// 17:00 is expected at the step's level, not half-way).
func TestSeasonalSlopeFollowsRampNotStep(t *testing.T) {
	reg := ingest.NewRegistry()
	cfg := testConfig()
	cfg.SeasonalMinHistory = 14 * 24 * time.Hour
	cfg.DailyMinHistory = 0 // the hour-of-week profile's slope (the daily one has none)
	s := NewStore(cfg, reg)
	rng := rand.New(rand.NewPCG(7, 7))
	value := func(ts int64) float64 {
		h := float64(ts-t0) / float64(time.Hour)
		v := 50 + 2*math.Sin(2*math.Pi*(h-9)/24)
		if hd := math.Mod(h, 24); hd >= 17 && hd < 19 {
			v += 10
		}
		return v
	}
	var rampWorst, stepFirst float64
	rampJudged := 0
	for step := 0; step < 16*24*6; step++ { // 16 days of 10-minute reports
		var rows []obs
		for d := 0; d < 6; d++ {
			ts := t0 + int64(step)*int64(10*time.Minute) + int64(d)*int64(37*time.Second)
			rows = append(rows, obs{t: ts, dev: fmt.Sprintf("d%d", d), grp: "g", vals: []float64{value(ts) + 0.1*rng.NormFloat64()}})
		}
		rec := buildRecord(t, reg, []string{"temp"}, rows)
		exp := feed(s, rec)
		rec.Release()
		for i, e := range exp {
			if !e[0].Seasonal {
				continue
			}
			hd := math.Mod(float64(rows[i].t-t0)/float64(time.Hour), 24)
			noiseFree := value(rows[i].t)
			switch {
			case hd >= 17 && hd < 17+1.0/6 && rows[i].dev == "d0":
				stepFirst = max(stepFirst, math.Abs(e[0].SeasonalMean-noiseFree))
			case (hd >= 7 && hd < 11) || (hd >= 20 && hd < 23): // the steepest ramps (at 9:00 and 21:00)
				rampWorst = max(rampWorst, math.Abs(e[0].SeasonalMean-noiseFree))
				rampJudged++
			}
		}
	}
	if rampJudged == 0 {
		t.Fatal("no seasonal expectation on the ramps")
	}
	// A staircase is off by up to half an hour's movement of the sine,
	// 2·sin(π/48)·… ≈ 0.26; with the slope, the noise of the buckets.
	if rampWorst > 0.12 {
		t.Errorf("on the daily ramps the expectation is up to %.3f off the noise-free value; the slope should keep it near the noise", rampWorst)
	}
	if stepFirst > 1 {
		t.Errorf("the first reading after the 17:00 step is expected %.2f off (the step is 10): the step was smoothed", stepFirst)
	}
	t.Logf("worst |expected − noise-free| on ramps %.3f over %d rows; first reading after the step %.3f", rampWorst, rampJudged, stepFirst)
}

// TestDailyProfileFromDayTwo: a fleet with a day/night rhythm (ten times
// the volume from 08:00 to 18:00) is expected to follow it from its third
// day, its hour-of-week buckets of each hour pooled, long before the
// hour-of-week profile's two weeks; with daily_min_history 0 it is not.
func TestDailyProfileFromDayTwo(t *testing.T) {
	for _, daily := range []time.Duration{48 * time.Hour, 0} {
		reg := ingest.NewRegistry()
		cfg := testConfig()
		cfg.DailyMinHistory = daily
		s := NewStore(cfg, reg)
		noise := uint64(5)
		level := []float64{100, 120, 90, 110}
		early, judged := 0, 0
		worst := 0.0
		for hour := 0; hour < 4*24; hour++ {
			rows := coldStartRows(level, hour, &noise)
			rec := buildRecord(t, reg, []string{"bytes_out"}, rows)
			exp := feed(s, rec)
			rec.Release()
			for i, e := range exp {
				if !e[0].Seasonal {
					continue
				}
				if rows[i].t < t0+int64(48*time.Hour) {
					early++
					continue
				}
				judged++
				z := math.Abs(e[0].Value-e[0].SeasonalMean) / math.Max(e[0].SeasonalStd, 0.01*math.Abs(e[0].SeasonalMean))
				worst = max(worst, z)
			}
		}
		if early != 0 {
			t.Errorf("daily_min_history %s: %d rows judged seasonally before 48 h of history", daily, early)
		}
		if daily == 0 {
			if judged != 0 {
				t.Errorf("daily_min_history 0: %d rows judged against an hour-of-day profile", judged)
			}
			continue
		}
		// days three and four: 48 hours × 6 reports × 4 devices
		if judged < 48*6*len(level)*9/10 {
			t.Errorf("%d rows of days three and four judged against the hour-of-day profile, want nearly all of %d", judged, 48*6*len(level))
		}
		// Day against night is a factor of ten: a profile that did not
		// follow it would be off by hundreds of its spreads.
		if worst > 6 {
			t.Errorf("worst clean row %.1f spreads off the hour-of-day expectation", worst)
		}
		t.Logf("daily_min_history %s: %d rows judged, worst %.2f spreads", daily, judged, worst)
	}
}

// TestGroupInfoProfile: a group's summary shows the profile its devices
// are expected to follow: none on day one, by hour of day from
// daily_min_history (the day above its level, the night below), by hour
// of week from seasonal_min_history.
func TestGroupInfoProfile(t *testing.T) {
	reg := ingest.NewRegistry()
	cfg := coldStartConfig(0)
	cfg.DailyMinHistory = 48 * time.Hour
	s := NewStore(cfg, reg)
	noise := uint64(3)
	level := []float64{100, 120, 90, 110}
	profileAt := func() (string, []float64) {
		gi := s.GroupInfos()
		if len(gi) != 1 || len(gi[0].Metrics) != 1 {
			t.Fatalf("group summaries %+v", gi)
		}
		return gi[0].Metrics[0].ProfileKind, gi[0].Metrics[0].Profile
	}
	for hour := 0; hour < 8*24+1; hour++ {
		rec := buildRecord(t, reg, []string{"bytes_out"}, coldStartRows(level, hour, &noise))
		feed(s, rec)
		rec.Release()
		kind, p := profileAt()
		switch {
		case hour < 48: // the rows span less than 48 h
			if kind != "" || p != nil {
				t.Fatalf("hour %d: a %q profile before daily_min_history", hour, kind)
			}
		case hour == 72:
			if kind != ProfileHourOfDay || len(p) != 24 {
				t.Fatalf("hour %d: profile %q of %d values, want the hour of day's 24", hour, kind, len(p))
			}
			for h, o := range p {
				if day := h >= 8 && h < 18; math.IsNaN(o) || day != (o > 0) {
					t.Errorf("%02d:00: offset %.1f from the level, want %s", h, o, map[bool]string{true: "above", false: "below"}[day])
				}
			}
		case hour == 8*24:
			if kind != ProfileHourOfWeek || len(p) != 168 {
				t.Fatalf("hour %d: profile %q of %d values, want the hour of week's 168", hour, kind, len(p))
			}
			if learned := len(p) - countNaN(p); learned < 160 {
				t.Errorf("%d of 168 hours of the week learned after 8 days", learned)
			}
			if !(p[10] > 0 && p[2] < 0 && p[24+10] > 0) { // Monday 10:00 and 02:00, Tuesday 10:00
				t.Errorf("hour of week offsets Monday 10:00 %.1f, 02:00 %.1f, Tuesday 10:00 %.1f", p[10], p[2], p[34])
			}
		}
	}
}

// countNaN returns how many of xs are NaN.
func countNaN(xs []float64) (n int) {
	for _, x := range xs {
		if math.IsNaN(x) {
			n++
		}
	}
	return n
}
