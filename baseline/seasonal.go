package baseline

// The seasonal profile: per group and metric, decayed moments of the
// residuals of its devices' values against their own levels, by hour of
// the week (Expectation.SeasonalMean, SeasonalStd).

import (
	"math"
	"time"
)

// hoursPerWeek is the number of hour-of-week seasonal buckets.
const hoursPerWeek = 168

// seasonCell is one hour-of-week bucket of a group metric: decayed
// moments of the residuals x - device level.
//
// A residual is only as good as the level it was taken against. In a
// group's first week the levels (decayed means over everything seen so
// far) still move as each new hour of the weekly cycle comes in: after a
// night of data the level is the night's, a week later it is the week's
// average, so a bucket learned in the first night holds an offset of about
// zero that would expect the night to look like the average a week later.
// The buckets therefore remember, for the residuals they learned in the
// group's first week, their weight yw and the mean group level yref they
// were taken against. When a bucket is next visited after that week, at
// the same hour of the week, the group level has seen the whole cycle, and
// the residuals are corrected by how far the level moved (yref → now):
// Expect applies the correction, Learn folds it in and forgets yw and
// yref, so later changes of the group's level (devices joining) do not
// move the profile.
type seasonCell struct{ w, mean, m2, yw, yref float64 }

// week is the time a group's level needs to see a whole seasonal cycle.
const week = int64(7 * 24 * time.Hour)

// seasonalMean returns the bucket's mean residual, corrected for the
// movement of the group level since its first-week residuals (level: the
// group's longest-half-life mean now).
func (c *seasonCell) seasonalMean(level float64) float64 {
	if c.yw <= 0 || c.w <= 0 {
		return c.mean
	}
	return c.mean - min(c.yw/c.w, 1)*(level-c.yref)
}

// hourOfWeek returns the bucket of event time t: 0 is Monday 00:00 local.
// Expect and Learn ask for every row, and rows come hours at a time, so
// the hour last computed is remembered (a division and two remainders
// less per call, and a test small enough to inline).
func (s *Store) hourOfWeek(t int64) int {
	if t >= s.howFrom && t < s.howTo { // an empty range until the first call
		return s.how
	}
	return s.newHourOfWeek(t)
}

// hourPosition returns where t lies in its hour, from -0.5 at its start to
// 0.5 at its end (0 for times hourOfWeek does not remember). Call it after
// hourOfWeek(t).
func (s *Store) hourPosition(t int64) float64 {
	if t < s.howFrom || t >= s.howTo {
		return 0
	}
	return float64(t-s.howFrom)/float64(time.Hour) - 0.5
}

// seasonOffset returns the profile's offset for position u (hourPosition)
// in hour-of-week bucket how: the bucket's mean residual, plus, where the
// profile is a slope rather than a step, the slope through the buckets
// either side (slopeOffset). level is the group's long-run mean, for
// seasonalMean.
func (gm *groupMetric) seasonOffset(how int, u, need, level float64) float64 {
	c := &gm.season[how]
	cur := profileCell{c.w, c.seasonalMean(level), c.m2}
	if u == 0 {
		return cur.mean
	}
	prev, next := &gm.season[(how+hoursPerWeek-1)%hoursPerWeek], &gm.season[(how+1)%hoursPerWeek]
	return slopeOffset(profileCell{prev.w, prev.seasonalMean(level), prev.m2}, cur,
		profileCell{next.w, next.seasonalMean(level), next.m2}, u, need)
}

// profileCell is a bucket of a profile as the expectation reads it: its
// weight, mean residual (corrected, seasonalMean) and second moment.
type profileCell struct{ w, mean, m2 float64 }

// slopeOffset returns the offset at position u of bucket cur, between
// buckets prev and next. A bucket holds an hour's average, so a daily
// swing read from buckets alone is a staircase, off by a saw-tooth at
// every ramp (±0.3 °C on a ±2 °C day, where the noise is 0.1 °C); a slope
// keeps the bucket's average and follows the ramp. A step (a shift change
// at the hour) is not smoothed: the slope is used only while the profile's
// curvature there (prev − 2·cur + next) lies within the bucket's spread,
// and both neighbours hold at least need of weight.
func slopeOffset(prev, cur, next profileCell, u, need float64) float64 {
	if u == 0 || prev.w < need || next.w < need {
		return cur.mean
	}
	if !(math.Abs(prev.mean-2*cur.mean+next.mean) <= stdOf(cur.m2, cur.w)) {
		return cur.mean
	}
	return cur.mean + u*(next.mean-prev.mean)/2
}

// dailyCell pools the hour-of-week buckets of hour of day hod (0–23, of
// the same local time as the buckets): every weekday's residuals at that
// hour, their spread including how the weekdays differ. The hour-of-day
// profile is a step per hour, without seasonOffset's slope: the slope
// would pool the neighbouring hours too, three times the cost per value
// (BenchmarkEngineProcess +10–25 % over a run with 40 % of its rows in
// the daily profile's days, +2 % without), for the twelve days before the
// hour-of-week profile takes over.
func (gm *groupMetric) dailyCell(hod int, level float64) profileCell {
	var p profileCell
	for k := hod; k < hoursPerWeek; k += hoursPerDay {
		c := &gm.season[k]
		if !(c.w > 0) {
			continue
		}
		m, w := c.seasonalMean(level), p.w+c.w
		d := m - p.mean
		p.mean += d * c.w / w
		p.m2 += c.m2 + d*d*p.w*c.w/w
		p.w = w
	}
	return p
}

// hoursPerDay is the number of hour-of-day buckets.
const hoursPerDay = 24

func (s *Store) newHourOfWeek(t int64) int {
	// The Unix epoch was a Thursday: 72 hours after Monday 00:00.
	hours := floorDiv(t+s.seasonOf, int64(time.Hour))
	h := (hours + 72) % hoursPerWeek
	if h < 0 {
		h += hoursPerWeek
	}
	// Remembered within ±146 years of 1970, where the range cannot overflow.
	const near = int64(1) << 62
	if -near < t && t < near {
		from := hours*int64(time.Hour) - s.seasonOf
		s.howFrom, s.howTo, s.how = from, from+int64(time.Hour), int(h)
	}
	return int(h)
}

// seasonWeights returns the decay that brings hour-of-week bucket how of
// the group up to t, and the weight of a sample at t; buckets share one
// time per group, so all of a group's metrics decay together.
func (s *Store) seasonWeights(gs *groupState, t int64, how int) (dec, a float64) {
	last := gs.seasonLast[how]
	switch dt := t - last; {
	case last == 0:
		gs.seasonLast[how] = t
	case dt > 0:
		gs.seasonLast[how] = t
		if dt != s.seasonGap.dt {
			s.seasonGap.dt, s.seasonGap.decay[0] = dt, decayFactor(dt, s.seasonHL)
		}
		return s.seasonGap.decay[0], 1
	case dt < 0:
		return 1, s.seasonAge.exp2(dt, float64(s.seasonHL)) // decayFactor(-dt, s.seasonHL)
	}
	return 1, 1
}

// learn adds residual r of weight a to the bucket; groupLevel is the
// group's longest-half-life mean the residual's device level stands for
// in the group's first week (see seasonCell).
func (c *seasonCell) learn(r, a, groupLevel float64, firstWeek bool) {
	if !firstWeek && c.yw > 0 {
		c.mean = c.seasonalMean(groupLevel)
		c.yw, c.yref = 0, 0
	}
	c.w, c.mean, c.m2 = welford(c.w, c.mean, c.m2, r, a)
	if firstWeek {
		c.yw += a
		c.yref += a / c.yw * (groupLevel - c.yref)
	}
}

// LearnSeason teaches row to its group's hour-of-week profile only, not
// to the device's or the group's baselines. The engine calls it for the
// rows its poisoning guard keeps from the baselines (a row that breached,
// a device in alarm): a burst every Monday night on most of a group's
// devices breaches each time, so, learned by nothing, it would be new
// every week; learned here, it becomes what the profile expects of that
// hour once the profile is trusted. One device's anomaly moves its
// group's bucket by its share of the bucket's weight, and its own level
// not at all.
func (f *Frame) LearnSeason(row int) {
	s := f.s
	d, g := f.dev[row], f.grp[row]
	if d < 0 || g < 0 {
		return
	}
	gs := s.groups[g]
	if !gs.started {
		return
	}
	t := int64(f.ts[row])
	judged := gs.judged()
	if t-judged.first < int64(s.cfg.SeasonalWarmup) {
		return
	}
	firstWeek := t-judged.first < week
	how := s.hourOfWeek(t)
	sdec, sa := s.seasonWeights(gs, t, how)
	if sdec != 1 {
		for m := range gs.metrics {
			if season := gs.metrics[m].season; season != nil {
				c := &season[how]
				c.w *= sdec
				c.m2 *= sdec
				c.yw *= sdec
			}
		}
	}
	l, nh := s.longest, s.nh
	minN := uint32(s.cfg.DeviceMinSamples)
	pg, i := f.device(row, d)
	devBase := i * s.stride
	for j := range f.cols {
		c := &f.cols[j]
		x, ok := c.value(row)
		if !ok || !(x >= -MaxLearnedValue && x <= MaxLearnedValue) {
			continue
		}
		m := int(c.id)
		slot := devBase + m
		jm := &judged.metrics[m]
		level := jm.mean[l]
		if pg.n[slot] >= minN {
			level = pg.mean[slot*nh+l]
		}
		gm := &gs.metrics[m]
		if gm.season == nil {
			gm.season = new([hoursPerWeek]seasonCell)
		}
		gm.season[how].learn(x-level, sa, jm.mean[l], firstWeek)
	}
}

// seasonNeed returns the weight an hour-of-week bucket of group gs needs
// before it is trusted: seasonal_min_samples, or, when less, what one
// visit of the bucket brings at the group's own pace (its learned rows per
// hour of event time), but at least two. A bucket is visited one hour a
// week, so a device reporting every 30 minutes puts two rows a week in
// it, never twenty: a count of samples would keep its profile untrusted
// forever, while the time the buckets cover is what makes them
// trustworthy.
func (s *Store) seasonNeed(gs *groupState) float64 {
	need := s.cfg.SeasonalMinSamples
	if span := gs.last - gs.first; span >= int64(time.Hour) && gs.rows > 0 {
		perHour := float64(gs.rows) / (float64(span) / float64(time.Hour))
		need = min(need, max(2, perHour))
	}
	return need
}

// A device's daily swing need not be its group's: a pump in the sun swings
// more than one in the shade. The hour-of-week profile is the group's
// offset o of each hour from the devices' levels; a device's own residual r
// at that hour is about β·o, with β its profile scale. profileScale is
// the least-squares β = mean(r·o) / mean(o²) over the device's learned
// rows (a running mean over the last profileScaleRows of them), so the
// expectation follows each device's own swing, and what is left is its
// noise: a shift of three times that noise is then a shift, not a ripple
// of the daily pattern. 1 until the device has learned any.
func (pg *devicePage) profileScale(slot int, own bool) float64 {
	ro, oo := pg.prof[2*slot], pg.prof[2*slot+1]
	if !own || !(oo > 0) {
		return 1
	}
	return min(max(float64(ro/oo), 0), maxProfileScale)
}

// profileScaleRows is how many of its latest rows a device's profile scale
// follows; maxProfileScale bounds the scale, so a profile that is nearly
// flat (o ≈ 0: no daily pattern) cannot turn noise into a large factor.
const (
	profileScaleRows = 2016 // two weeks of 10-minute reports
	maxProfileScale  = 4
)

// learnProfileScale folds a learned row's residual r (value − the device's
// level) and its hour's group offset o into the device's profile scale;
// n is the device's count of values before the row.
func (pg *devicePage) learnProfileScale(slot int, n uint32, r, o float64) {
	a := 1 / float32(min(n+1, profileScaleRows))
	p := pg.prof[2*slot : 2*slot+2]
	p[0] += a * (float32(r*o) - p[0])
	p[1] += a * (float32(o*o) - p[1])
}

// appendProfileScale appends a device metric's profile-scale sums (the
// changelog record's trailer, a checkpoint row's state): two float32.
func (pg *devicePage) appendProfileScale(dst []byte, slot int) []byte {
	dst = appendF32(dst, pg.prof[2*slot])
	return appendF32(dst, pg.prof[2*slot+1])
}

// decodeProfileScale reads what appendProfileScale wrote: finite, the
// mean of squares not negative.
func (d *decoder) profileScale() (ro, oo float32) {
	ro, oo = d.f32("profile scale residual×offset"), d.f32("profile scale offset²")
	if oo < 0 {
		d.fail("profile scale offset² %g is negative", oo)
	}
	return ro, oo
}

// profileScaleBytes is the size appendProfileScale appends.
const profileScaleBytes = 8
