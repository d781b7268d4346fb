package baseline

import (
	"math"
	"sort"
	"time"
)

// GroupInfo describes one group's baseline, for `vigil baseline inspect`
// and the learning-state metrics.
type GroupInfo struct {
	ID          int32
	Name        string
	Learning    bool
	Rows        int64         // rows learned
	First, Last time.Time     // event times covered
	Span        time.Duration // Last - First
	Devices     int           // devices whose latest row was in this group
	Metrics     []MetricInfo  // metrics the group has learned, by name
}

// MetricInfo is one group metric's summary.
type MetricInfo struct {
	Name      string
	Samples   int64
	Mean, Std float64 // at the primary half-life
	Quantiles [NumQuantiles]float64
	// SeasonalBuckets is how many hour-of-week buckets have
	// seasonal_min_samples of weight.
	SeasonalBuckets int
	// Profile is the recurring pattern a device's expectation follows once
	// the group has the history for it, as Expect would read it at the
	// group's latest time: by hour of day (ProfileHourOfDay, 24 values,
	// from daily_min_history) or of week (ProfileHourOfWeek, 168, Monday
	// 00:00 first, from seasonal_min_history), at seasonal_utc_offset: the
	// group's offset from a device's level at that hour (each device's
	// swing is scaled to its own), NaN where the hour has too little
	// weight yet. Nil, and ProfileKind "", before.
	Profile     []float64
	ProfileKind string
}

// Kinds of MetricInfo.Profile.
const (
	ProfileHourOfDay  = "hour_of_day"
	ProfileHourOfWeek = "hour_of_week"
)

// profiles reports which profile the rows of group g are expected
// against once it has history of event time: the hour-of-week profile
// from seasonal_min_history, the hour-of-day one from daily_min_history
// until then.
func (s *Store) profiles(g *groupState, history int64) (weekly, daily bool) {
	weekly = g.started && history >= int64(s.cfg.SeasonalMinHistory)
	daily = g.started && !weekly && s.cfg.DailyMinHistory > 0 && history >= int64(s.cfg.DailyMinHistory)
	return weekly, daily
}

// profile returns gm's profile in g, as Expect reads it at g's latest
// time, and its kind ("" and nil: none yet).
func (s *Store) profile(g *groupState, gm *groupMetric) (string, []float64) {
	if gm.season == nil {
		return "", nil
	}
	weekly, daily := s.profiles(g, g.last-g.first)
	level := gm.mean[s.longest]
	need := s.seasonNeed(g)
	switch {
	case weekly:
		out := make([]float64, hoursPerWeek)
		for how := range out {
			out[how] = math.NaN()
			if c := &gm.season[how]; c.w >= need {
				out[how] = c.seasonalMean(level)
			}
		}
		return ProfileHourOfWeek, out
	case daily:
		out := make([]float64, hoursPerDay)
		for hod := range out {
			out[hod] = math.NaN()
			if c := gm.dailyCell(hod, level); c.w >= need {
				out[hod] = c.mean
			}
		}
		return ProfileHourOfDay, out
	}
	return "", nil
}

// GroupInfos returns every group's summary as Expect judges it (local
// state merged with peers' summaries, as of the last rebuild of the merged
// view), sorted by name. It allocates and is meant for inspection between
// batches, not for the hot path.
func (s *Store) GroupInfos() []GroupInfo {
	devices := make([]int, len(s.groups))
	for l := int32(0); l < s.nloc; l++ {
		pg, i := s.device(l)
		if g := pg.group[i]; g >= 0 && int(g) < len(devices) {
			devices[g]++
		}
	}
	var out []GroupInfo
	for id, g := range s.groups {
		if g == nil {
			continue
		}
		// As the next row of the group will be judged; rebuilding the
		// view here would make judgements depend on when someone looked.
		g = g.judged()
		gi := GroupInfo{
			ID:       int32(id),
			Learning: !g.protecting,
			Rows:     g.rows,
			Devices:  devices[id],
		}
		if s.reg != nil && id < s.reg.NumGroups() {
			gi.Name = s.reg.GroupName(int32(id))
		}
		if g.started {
			gi.First, gi.Last = time.Unix(0, g.first).UTC(), time.Unix(0, g.last).UTC()
			gi.Span = time.Duration(g.last - g.first)
		}
		for m := range g.metrics {
			gm := &g.metrics[m]
			if gm.n == 0 {
				continue
			}
			mi := MetricInfo{
				Name:    s.metricNames[m],
				Samples: gm.n,
				Mean:    gm.mean[s.primary],
				Std:     stdOf(gm.m2[s.primary], gm.w[s.primary]),
			}
			if gm.sketch != nil {
				gm.sketch.Quantiles(mi.Quantiles[:], Quantiles[:])
			}
			if gm.season != nil {
				for i := range gm.season {
					if gm.season[i].w >= s.cfg.SeasonalMinSamples {
						mi.SeasonalBuckets++
					}
				}
			}
			mi.ProfileKind, mi.Profile = s.profile(g, gm)
			gi.Metrics = append(gi.Metrics, mi)
		}
		sort.Slice(gi.Metrics, func(i, j int) bool { return gi.Metrics[i].Name < gi.Metrics[j].Name })
		out = append(out, gi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// NumDevices returns how many devices the store holds state of.
func (s *Store) NumDevices() int { return int(s.nloc) }

// StateBytes returns the bytes held by per-device state (the pages and
// the table of local ids, with the rest of the blocks they are carved
// from), from the real slice sizes.
func (s *Store) StateBytes() (deviceBytes int) {
	b := &s.blocks
	n := s.local.Bytes() + cap(s.pages)*8 + b.f64.Spare() + b.f32.Spare() + b.u32.Spare()
	for _, pg := range s.pages {
		n += len(pg.last)*8 + len(pg.group)*4 + cap(pg.mean)*8 + cap(pg.w)*4 + cap(pg.m2)*8 + cap(pg.n)*4 + cap(pg.prof)*4
	}
	return n
}

// Stats are store-wide figures for the /metrics endpoint (state size and
// learning state). Computing them allocates nothing.
type Stats struct {
	Devices        int    // devices whose state is held
	Groups         int    // groups with state
	LearningGroups int    // groups still learning (as judged, with peers)
	Metrics        int    // distinct metric names
	DeviceBytes    int    // bytes of per-device state (StateBytes)
	Unlearnable    uint64 // values refused by Learn (non-finite or out of range)
	Version        uint64
	PeerSummaries  int // latest summaries held from other instances
	CommSetKeys    int // keys in the store's communication sets
}

// Stats returns the store-wide figures.
func (s *Store) Stats() Stats {
	st := Stats{
		Devices:     int(s.nloc),
		Metrics:     len(s.metricNames),
		DeviceBytes: s.StateBytes(),
		Unlearnable: s.unlearnable,
		Version:     s.version,
	}
	for _, g := range s.groups {
		if g == nil {
			continue
		}
		st.Groups++
		st.PeerSummaries += len(g.peers)
		if j := g.judged(); !j.protecting {
			st.LearningGroups++
		}
	}
	for _, c := range s.commSets {
		for g := range c.groups {
			st.CommSetKeys += len(c.groups[g].keys)
		}
	}
	return st
}
