package detect

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/vigil-ot/vigil/baseline"
)

// DetectorJoint judges how a device's metrics move together.
const DetectorJoint = "joint"

// jointClip bounds a standardized residual: one metric far outside its
// band is the self detector's finding, and a single value of 300σ (a burst
// of errors) must neither dominate the learned covariance nor be the only
// thing the joint detector reports.
const jointClip = 10

// JointConfig configures the joint detector: a device whose metrics stop
// moving together alarms, even while each stays inside its own band.
//
// It learns, per group, the decayed mean and covariance of each row's
// standardized residuals (value minus the self expectation — the
// hour-of-week one once trusted — over its spread), so daily patterns and
// each device's level cancel, at the baseline's primary half-life. Every
// recompute_every learned rows it refits a principal-component model
// (baseline.Joint.Fit) and judges each row by Q, the squared prediction
// error off the principal components: the part of the row its usual
// relations do not explain. With t2 it also judges Hotelling's T² on the
// components, a joint level deviation that the self detector mostly
// reports already.
type JointConfig struct {
	Enabled bool `yaml:"enabled"`
	// Threshold: a row breaches when Q (or T²) exceeds threshold times its
	// control limit at alpha.
	Threshold float64 `yaml:"threshold"`
	Alpha     float64 `yaml:"alpha"`
	// Variance is the share of the residuals' variance the principal
	// components keep (0.9–0.95); the rest is Q's.
	Variance float64 `yaml:"variance"`
	T2       bool    `yaml:"t2"`
	// MinSamples: rows the group learns before judging (at least ten per
	// metric related).
	MinSamples     int64 `yaml:"min_samples"`
	RecomputeEvery int   `yaml:"recompute_every"`
	// Metrics to relate; empty: every metric of the group's first
	// judgeable row, up to 16, but the packet extractor's net_* features:
	// a group of hosts (an unmanaged subnet of HMIs, PLCs, printers) has
	// no relation between their traffic counters for a model to learn, and
	// on a clean day of real OT traffic their "broken relations" were all
	// noise. List them here to relate them anyway.
	Metrics []string `yaml:"metrics"`
	ToAlarm int      `yaml:"datapoints_to_alarm"`
	ToClear int      `yaml:"datapoints_to_clear"`
}

// packetMetricPrefix starts the names of the packet extractor's features
// (net_bytes_in_10s, …).
const packetMetricPrefix = "net_"

// DefaultJointConfig returns the defaults of detect.joint.
func DefaultJointConfig() JointConfig {
	return JointConfig{
		Enabled: true, Threshold: 4, Alpha: 0.001, Variance: 0.95, MinSamples: 1000,
		RecomputeEvery: 256, ToAlarm: 2, ToClear: 3,
	}
}

func (c *JointConfig) validate() error {
	switch {
	case c.Threshold <= 0:
		return fmt.Errorf("joint.threshold is %v: set a positive multiple of the control limit such as 4", c.Threshold)
	case !(c.Alpha > 0 && c.Alpha < 0.5):
		return fmt.Errorf("joint.alpha is %v: set a false-alarm probability per row such as 0.001", c.Alpha)
	case !(c.Variance > 0 && c.Variance < 1):
		return fmt.Errorf("joint.variance is %v: set the share of variance the components keep, such as 0.95", c.Variance)
	case c.MinSamples < 0 || c.RecomputeEvery < 1:
		return fmt.Errorf("joint.min_samples must not be negative and joint.recompute_every must be at least 1")
	case c.ToAlarm < 1 || c.ToClear < 1:
		return fmt.Errorf("joint.datapoints_to_alarm and joint.datapoints_to_clear must be at least 1")
	case len(c.Metrics) == 1 || len(c.Metrics) > baseline.MaxJointDims:
		return fmt.Errorf("joint.metrics lists %d metrics: list 2 to %d, or none for all", len(c.Metrics), baseline.MaxJointDims)
	}
	return nil
}

// jointState is the joint detector's state: a model per group, and an
// alarm state per device that has breached.
type jointState struct {
	groups  []*jointGroup // by group index; nil until the group's first judgeable row
	alarms  map[int32]*jointAlarm
	fitter  baseline.JointFitter
	z       [baseline.MaxJointDims]float64
	contrib [baseline.MaxJointDims]float64
}

// jointAlarm is a device's joint hysteresis and the two dimensions its
// alarm named, so its clear names them too.
type jointAlarm struct {
	alarmState
	first, second int
}

// jointGroup relates the metric slots of a group.
type jointGroup struct {
	slots []int // metric slot of each dimension
	// seasonal: the residuals are against the hour-of-week expectation.
	// When the group's profile becomes trusted, residuals change in kind
	// (from deviations including the daily swing to noise around it) and
	// the model starts again rather than judge one by the other.
	seasonal bool
	model    baseline.Joint
}

// dim returns the dimension of metric slot s, or -1.
func (jg *jointGroup) dim(s int) int {
	for i, x := range jg.slots {
		if x == s {
			return i
		}
	}
	return -1
}

// judgeJoint judges the current row's metrics together and learns them
// into the group's model unless the row is late, anomalous or breached or
// its device is in alarm. It reports whether the row breached.
func (e *Engine) judgeJoint(d int32, ds *deviceState, g int32, t int64, late, anomalous bool) bool {
	jc := &e.cfg.Joint
	if !jc.Enabled {
		return false
	}
	js := &e.joint
	for int(g) >= len(js.groups) {
		js.groups = append(js.groups, nil)
	}
	jg := js.groups[g]
	if jg == nil {
		if jg = e.newJointGroup(); jg == nil {
			return false
		}
		js.groups[g] = jg
	}
	seasonal, ok := e.jointResiduals(jg, js.z[:])
	if !ok {
		return false
	}
	if seasonal != jg.seasonal {
		jg.seasonal = seasonal
		jg.model = baseline.NewJoint(len(jg.slots), int64(e.jointHalfLife()))
	}
	m := &jg.model
	breach := false
	var t2, q float64
	if m.Ready() && m.Count() >= max(jc.MinSamples, int64(10*m.Dims())) {
		t2, q = m.Judge(js.z[:], js.contrib[:])
		qLim, t2Lim, _ := m.Limits()
		breach = q > jc.Threshold*qLim || jc.T2 && t2 > jc.Threshold*t2Lim
	}
	st := js.alarms[d]
	if breach || st != nil {
		if st == nil {
			if js.alarms == nil {
				js.alarms = make(map[int32]*jointAlarm)
			}
			st = &jointAlarm{}
			js.alarms[d] = st
		}
		switch st.step(t, breach, jc.ToAlarm, jc.ToClear) {
		case raised:
			st.first, st.second = jg.topContributors(js.contrib[:])
			a := e.jointAlert(jg, st, d, g, t, t2, q, true)
			e.raise(a, &st.alarmState, d, g, a.Score/jc.Threshold, 0)
		case cleared:
			e.clear(e.jointAlert(jg, st, d, g, t, t2, q, false), &st.alarmState, d)
		}
		if !st.active() && st.breaches == 0 {
			delete(js.alarms, d)
		}
	}
	if !late && !anomalous && !breach && ds.alarms == 0 {
		m.Learn(t, js.z[:])
		// Refits come every quarter of the rows learned while the model
		// is young, then every recompute_every rows: an eigen-decomposition
		// costs about as much as a few hundred rows.
		n := m.Count()
		if n >= max(jc.MinSamples/4, int64(10*m.Dims())) && m.SinceFit() >= int(min(int64(jc.RecomputeEvery), max(32, n/4))) {
			m.Fit(&js.fitter, jc.Variance, jc.Alpha)
		}
	}
	return breach
}

// newJointGroup returns the model of a group whose current row has every
// related metric judgeable, or nil.
func (e *Engine) newJointGroup() *jointGroup {
	jc := &e.cfg.Joint
	var slots []int
	for j, slot := range e.colSlot {
		if slot < 0 || len(slots) == baseline.MaxJointDims {
			continue
		}
		if name := e.metrics[slot].name; len(jc.Metrics) > 0 && !slices.Contains(jc.Metrics, name) ||
			len(jc.Metrics) == 0 && strings.HasPrefix(name, packetMetricPrefix) {
			continue
		}
		if _, _, ok := jointResidual(&e.cfg.Self, &e.exp[j]); !ok {
			return nil
		}
		slots = append(slots, slot)
	}
	if len(slots) < 2 {
		return nil
	}
	return &jointGroup{slots: slots, model: baseline.NewJoint(len(slots), int64(e.jointHalfLife()))}
}

// jointResiduals fills z with the current row's standardized residual of
// each of the group's metrics, and reports false when one is missing or
// not judgeable yet: then the row is neither judged nor learned.
func (e *Engine) jointResiduals(jg *jointGroup, z []float64) (seasonal, ok bool) {
	found := 0
	for j, slot := range e.colSlot {
		if slot < 0 {
			continue
		}
		k := jg.dim(slot)
		if k < 0 {
			continue
		}
		v, _, ok := jointResidual(&e.cfg.Self, &e.exp[j])
		if !ok {
			return false, false
		}
		z[k] = v
		seasonal = seasonal || e.exp[j].Seasonal
		found++
	}
	return seasonal, found == len(jg.slots)
}

// jointResidual returns ex's value less the self expectation over its
// standard deviation, clipped to ±jointClip (0 for a metric that never
// varied), and its spread; false until the device's own baseline can
// judge it (a device still judged by its group's moments would bring its
// offset from the group into the residuals).
func jointResidual(sc *SelfConfig, ex *baseline.Expectation) (z, std float64, ok bool) {
	if !ex.Present || ex.Learning || ex.FromGroup || ex.Samples < sc.MinSamples {
		return 0, 0, false
	}
	mean, std := ex.Mean, ex.Std
	if ex.Seasonal {
		mean, std = ex.SeasonalMean, ex.SeasonalStd
	}
	if !(std > 0) || math.IsNaN(ex.Value) || math.IsInf(ex.Value, 0) {
		return 0, std, true
	}
	return max(-jointClip, min(jointClip, (ex.Value-mean)/std)), std, true
}

// topContributors returns the two dimensions whose residuals left their
// usual relation the most.
func (jg *jointGroup) topContributors(contrib []float64) (first, second int) {
	first, second = -1, -1
	for k := range jg.slots {
		c := math.Abs(contrib[k])
		if first < 0 || c > math.Abs(contrib[first]) {
			first, second = k, first
		} else if second < 0 || c > math.Abs(contrib[second]) {
			second = k
		}
	}
	return first, second
}

// jointHalfLife is the baseline's primary half-life, which the joint
// model shares.
func (e *Engine) jointHalfLife() float64 {
	if h := e.deps.Baseline.Config().PrimaryHalfLife; h > 0 {
		return float64(h)
	}
	return float64(24 * 3600 * 1e9)
}

// jointAlert builds the alert of a joint transition: Q against its limit,
// naming the two metrics that left their usual relation the most.
func (e *Engine) jointAlert(jg *jointGroup, st *jointAlarm, d, g int32, t int64, t2, q float64, alarm bool) *Alert {
	js := &e.joint
	jc := &e.cfg.Joint
	m := &jg.model
	qLim, t2Lim, qMean := m.Limits()
	a := e.newAlert(DetectorJoint, DetectorJoint, d, g, t)
	a.Observed, a.Expected, a.Upper, a.Score = q, qMean, jc.Threshold*qLim, q/qLim
	stat, v, lim := "Q", q, qLim
	if jc.T2 && t2/t2Lim > q/qLim {
		a.Observed, a.Expected, a.Upper, a.Score = t2, float64(m.Components()), jc.Threshold*t2Lim, t2/t2Lim
		stat, v, lim = "T²", t2, t2Lim
	}
	a.SampleCount = m.Count()
	if len(e.exp) > 0 {
		a.Baseline = e.exp[0].Version
	}
	first, second := st.first, st.second
	n1, n2 := e.metrics[jg.slots[first]].name, e.metrics[jg.slots[second]].name
	var b strings.Builder
	b.WriteString(who(a.Device, a.Group) + ": ")
	if alarm {
		fmt.Fprintf(&b, "%s and %s no longer move together: %s %.1f > limit %.1f", n1, n2, stat, v, jc.Threshold*lim)
	} else {
		fmt.Fprintf(&b, "%s and %s move together again: %s %.1f ≤ limit %.1f", n1, n2, stat, v, jc.Threshold*lim)
	}
	fmt.Fprintf(&b, "; %s %+.1fσ of its usual relation, %s %+.1fσ", n1, js.contrib[first], n2, js.contrib[second])
	a.Message = b.String()
	return a
}
