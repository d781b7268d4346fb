package baseline

// Quantiles reported per group and metric, in the order of
// Expectation.GroupQuantiles.
var Quantiles = [...]float64{0.001, 0.01, 0.05, 0.5, 0.95, 0.99, 0.999}

// Indices into Expectation.GroupQuantiles.
const (
	QP001 = iota
	QP01
	QP05
	QP50
	QP95
	QP99
	QP999
	NumQuantiles
)

// Expectation is what the baseline expected of one metric of one row,
// computed from state before that row was learned.
type Expectation struct {
	Present bool    // the row has a value for this metric (not null)
	Value   float64 // the observed value

	// The device's own baseline at the primary half-life.
	Mean, Std float64
	// LongStd is the spread at the longest half-life (the group's while
	// FromGroup): the metric's long-run variability, which the primary
	// spread should not fall far below after a quiet spell.
	LongStd float64
	Samples int64 // samples the device's baseline has learned
	// FromGroup: the device has fewer than device_min_samples values, so
	// Mean and Std are its group's (a new device starts from its group).
	FromGroup bool

	// The hour-of-week expectation, once the group's profile has enough
	// history: the device's long-term level plus the group's offset for
	// this hour of the week, and the group's spread around it.
	Seasonal                  bool
	SeasonalMean, SeasonalStd float64

	// The device's group.
	GroupMean, GroupStd float64
	// GroupQuantiles are the group's percentiles before the row (NaN
	// until the group has learned a value).
	GroupQuantiles [NumQuantiles]float64
	GroupSamples   int64
	// GroupPeak is the largest value the group learned in the last one to
	// two longest half-lives (a week or two by default; NaN: none): a
	// burst the group has as a matter of course is remembered until it
	// comes again (see peakMemory).
	GroupPeak float64
	Learning  bool   // the group is still learning: judge nothing against it
	Version   uint64 // baseline version (Store.Version: counts learned rows)
}
