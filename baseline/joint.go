package baseline

import (
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack"
	"gonum.org/v1/gonum/lapack/lapack64"
	"gonum.org/v1/gonum/stat/distuv"
)

// MaxJointDims is the most values one Joint relates.
const MaxJointDims = 16

// JointMaxResidual is the largest eigenvalue of the correlation matrix
// that Q may watch: along such a direction the values vary at most 0.3 of
// a lone value's variance (two values correlated at 0.7 or more).
const JointMaxResidual = 0.3

// Joint is how a set of values moves together: their decayed mean and
// covariance, and a principal-component model of them (refitted by Fit,
// not per row) that judges a new vector with Hotelling's T² on the
// principal components and the squared prediction error Q (SPE) on the
// rest, as T²/Q charts do in process monitoring. A vector whose values
// each look normal but no longer keep their usual relation has a large Q.
//
// The model works on correlations: each value is centred and scaled by its
// standard deviation at the last fit, so values of any unit weigh alike.
// A value whose variance is (nearly) zero takes no part.
//
// It is a fixed-size value (about 6.6 KiB) with no pointers: the detector
// keeps one per group, not per device. Learn and Judge allocate nothing;
// Fit allocates nothing given a JointFitter it reuses.
type Joint struct {
	n        int
	halfLife float64 // ns
	w        float64 // decayed weight
	count    int64   // vectors learned
	sinceFit int     // vectors learned since the last Fit
	last     int64   // newest event time learned
	mean     [MaxJointDims]float64
	m2       [MaxJointDims * MaxJointDims]float64 // decayed co-moments, upper triangle, stride MaxJointDims

	// The model of the last Fit.
	ready           bool
	na, k           int                // active values, principal components kept
	act             [MaxJointDims]int8 // active value → its index in the vector
	center, scale   [MaxJointDims]float64
	load            [MaxJointDims * MaxJointDims]float64 // loadings: active value a, component i at a*MaxJointDims+i
	invLam          [MaxJointDims]float64                // 1/eigenvalue of each kept component
	resSD           [MaxJointDims]float64                // standard deviation of each active value's residual
	qMean           float64                              // expected Q: the variance the components leave
	qLimit, t2Limit float64
}

// JointFitter is the scratch space of Joint.Fit, reused across fits.
type JointFitter struct {
	a    [MaxJointDims * MaxJointDims]float64
	eig  [MaxJointDims]float64
	work []float64
}

// NewJoint returns a Joint of n values (2 to MaxJointDims) whose moments
// halve in weight every halfLife nanoseconds of event time.
func NewJoint(n int, halfLife int64) Joint {
	return Joint{n: n, halfLife: float64(halfLife)}
}

// Dims is the number of values the Joint relates.
func (j *Joint) Dims() int { return j.n }

// Count is the number of vectors learned.
func (j *Joint) Count() int64 { return j.count }

// SinceFit is the number of vectors learned since the last Fit.
func (j *Joint) SinceFit() int { return j.sinceFit }

// Ready reports whether a Fit found a model that can judge.
func (j *Joint) Ready() bool { return j.ready }

// Limits are the model's control limits of Q and T² and the Q it expects.
func (j *Joint) Limits() (q, t2, qMean float64) { return j.qLimit, j.t2Limit, j.qMean }

// Components is the number of principal components the model keeps.
func (j *Joint) Components() int { return j.k }

// Learn folds vector z (j.Dims() values) observed at event time t into the
// decayed mean and co-moments (West's weighted update). A vector older
// than the newest one learned is weighted by its age instead.
func (j *Joint) Learn(t int64, z []float64) {
	f, w := 1.0, 1.0
	if j.count > 0 {
		if t > j.last {
			f = exp2(-float64(t-j.last) / j.halfLife)
		} else if t < j.last {
			w = exp2(-float64(j.last-t) / j.halfLife)
		}
	}
	if t > j.last || j.count == 0 {
		j.last = t
	}
	j.w = f*j.w + w
	r := w / j.w
	c := w * (1 - r)
	n := j.n
	var d [MaxJointDims]float64
	for a := 0; a < n; a++ {
		d[a] = z[a] - j.mean[a]
		j.mean[a] += r * d[a]
	}
	for a := 0; a < n; a++ {
		row := j.m2[a*MaxJointDims : a*MaxJointDims+n]
		cd := c * d[a]
		for b := a; b < n; b++ {
			row[b] = f*row[b] + cd*d[b]
		}
	}
	j.count++
	j.sinceFit++
}

// Fit refits the model from the current moments: the eigen-decomposition
// of the values' correlation matrix; the fewest components that explain
// the share variance (0.9–0.95) of it, and at least one left for Q.
//
// The control limits are the classic approximations, computed from the
// eigenvalues alone, so a streaming detector needs no history of past
// statistics: T² against χ²(k) at 1−alpha (the F form tends to it with the
// thousands of decayed samples the detector waits for), Q against Box's
// g·χ²(h) with g = θ₂/θ₁, h = θ₁²/θ₂ from the left-out eigenvalues θᵢ = Σλᵢ
// — unlike Jackson–Mudholkar it stays defined when those few eigenvalues
// are uneven. The detector scales both by its threshold, which absorbs
// tails heavier than the Gaussian that the approximations assume.
func (j *Joint) Fit(ft *JointFitter, variance, alpha float64) {
	j.sinceFit = 0
	j.ready = false
	if j.w <= 0 {
		return
	}
	na := 0
	for a := 0; a < j.n; a++ {
		v := j.m2[a*MaxJointDims+a] / j.w
		if !(v > 1e-12*(1+j.mean[a]*j.mean[a])) {
			continue
		}
		j.act[na] = int8(a)
		j.center[na] = j.mean[a]
		j.scale[na] = math.Sqrt(v)
		na++
	}
	j.na = na
	if na < 2 {
		return
	}
	// The correlation matrix of the active values, upper triangle, stride na.
	a := ft.a[:na*na]
	for x := 0; x < na; x++ {
		ax := int(j.act[x])
		for y := x; y < na; y++ {
			ay := int(j.act[y])
			a[x*na+y] = j.m2[ax*MaxJointDims+ay] / j.w / (j.scale[x] * j.scale[y])
		}
	}
	sym := blas64.Symmetric{Uplo: blas.Upper, N: na, Stride: na, Data: a}
	eig := ft.eig[:na]
	if ft.work == nil {
		var q [1]float64
		lapack64.Syev(lapack.EVCompute, blas64.Symmetric{Uplo: blas.Upper, N: MaxJointDims, Stride: MaxJointDims, Data: make([]float64, MaxJointDims*MaxJointDims)},
			make([]float64, MaxJointDims), q[:], -1)
		ft.work = make([]float64, int(q[0]))
	}
	if !lapack64.Syev(lapack.EVCompute, sym, eig, ft.work, len(ft.work)) {
		return
	}
	// Eigenvalues ascend: the components are taken from the top.
	total := 0.0
	for _, l := range eig {
		total += max(l, 0)
	}
	// Q watches only directions the values hardly vary along, their
	// relations: a component of variance above JointMaxResidual (a lone
	// value's is 1) is kept with the principal ones whatever its share, so
	// that values unrelated to the others are not judged by Q (a value
	// that leaves its own band is the self detector's finding). With no
	// such direction there is no relation to break: Q judges nothing.
	k, cum := 0, 0.0
	for k < na && (cum < variance*total || eig[na-1-k] > JointMaxResidual) {
		l := eig[na-1-k]
		if l <= 1e-9*total {
			break
		}
		cum += l
		k++
	}
	if k == na {
		return
	}
	j.k = k
	for x := 0; x < na; x++ {
		for i := 0; i < k; i++ {
			j.load[x*MaxJointDims+i] = a[x*na+(na-1-i)]
		}
	}
	for i := 0; i < k; i++ {
		j.invLam[i] = 1 / eig[na-1-i]
	}
	// What the kept components leave: Q's moments and each value's share.
	th1, th2 := 0.0, 0.0
	for i := k; i < na; i++ {
		l := max(eig[na-1-i], 0)
		th1 += l
		th2 += l * l
	}
	floor := 1e-6 * total
	for x := 0; x < na; x++ {
		v := 0.0
		for i := k; i < na; i++ {
			e := a[x*na+(na-1-i)]
			v += max(eig[na-1-i], 0) * e * e
		}
		j.resSD[x] = math.Sqrt(max(v, floor))
	}
	th1 = max(th1, floor)
	th2 = max(th2, floor*floor)
	g, h := th2/th1, th1*th1/th2
	j.qMean = th1
	j.qLimit = g * distuv.ChiSquared{K: h}.Quantile(1-alpha)
	j.t2Limit = distuv.ChiSquared{K: float64(max(k, 1))}.Quantile(1 - alpha)
	j.ready = true
}

// Judge returns vector z's T² on the model's principal components and its
// Q on the rest. contrib (j.Dims() long) receives each value's residual
// in standard deviations of its usual residual: how far, and which way,
// it left its usual relation to the others (0 for inactive values).
// Call it only when Ready.
func (j *Joint) Judge(z, contrib []float64) (t2, q float64) {
	var u, t [MaxJointDims]float64
	na, k := j.na, j.k
	for x := 0; x < na; x++ {
		u[x] = (z[j.act[x]] - j.center[x]) / j.scale[x]
	}
	for x := 0; x < na; x++ {
		row := j.load[x*MaxJointDims : x*MaxJointDims+k]
		for i, l := range row {
			t[i] += l * u[x]
		}
	}
	for i := 0; i < k; i++ {
		t2 += t[i] * t[i] * j.invLam[i]
	}
	for a := range contrib[:j.n] {
		contrib[a] = 0
	}
	for x := 0; x < na; x++ {
		e := u[x]
		row := j.load[x*MaxJointDims : x*MaxJointDims+k]
		for i, l := range row {
			e -= l * t[i]
		}
		q += e * e
		contrib[j.act[x]] = e / j.resSD[x]
	}
	return t2, q
}
