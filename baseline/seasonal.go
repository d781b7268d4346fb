package baseline

// The seasonal profile: per group and metric, decayed moments of the
// residuals of its devices' values against their own levels, by hour of
// the week (Expectation.SeasonalMean, SeasonalStd).

import "time"

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
