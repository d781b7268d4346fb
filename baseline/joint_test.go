package baseline

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// jointSample draws n values: 0 and 1 follow one factor tightly, 2 and 3
// another, the rest are independent.
func jointSample(rng *rand.Rand, z []float64) {
	a, b := rng.NormFloat64(), rng.NormFloat64()
	for i := range z {
		z[i] = rng.NormFloat64()
	}
	z[0], z[1] = 300+30*a+0.5*z[0], 15+1.2*a+0.05*z[1]
	z[2], z[3] = 5*b+0.3*z[2], -2*b+0.2*z[3]
}

// TestJointMatchesReference checks Learn, Fit and Judge against a plain
// computation with gonum's mat: the covariance of the vectors, the
// eigen-decomposition of their correlation matrix, T² and Q.
func TestJointMatchesReference(t *testing.T) {
	const n, rows = 6, 2000
	rng := rand.New(rand.NewPCG(7, 8))
	j := NewJoint(n, int64(3600e9))
	data := make([][]float64, rows)
	for r := range data {
		data[r] = make([]float64, n)
		jointSample(rng, data[r])
		j.Learn(1e9, data[r]) // one event time: no decay, every vector weighs 1
	}
	var ft JointFitter
	j.Fit(&ft, 0.95, 0.001)
	if !j.Ready() {
		t.Fatal("no model")
	}

	// The reference.
	mean := make([]float64, n)
	for _, z := range data {
		for i := range z {
			mean[i] += z[i] / rows
		}
	}
	cov := mat.NewSymDense(n, nil)
	for a := 0; a < n; a++ {
		for b := a; b < n; b++ {
			s := 0.0
			for _, z := range data {
				s += (z[a] - mean[a]) * (z[b] - mean[b])
			}
			cov.SetSym(a, b, s/rows)
		}
	}
	sd := make([]float64, n)
	for a := range sd {
		sd[a] = math.Sqrt(cov.At(a, a))
	}
	corr := mat.NewSymDense(n, nil)
	for a := 0; a < n; a++ {
		for b := a; b < n; b++ {
			corr.SetSym(a, b, cov.At(a, b)/(sd[a]*sd[b]))
		}
	}
	var es mat.EigenSym
	if !es.Factorize(corr, true) {
		t.Fatal("reference eigen-decomposition failed")
	}
	vals := es.Values(nil)
	var vecs mat.Dense
	es.VectorsTo(&vecs)
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(x, y int) bool { return vals[order[x]] > vals[order[y]] })
	k, cum, total := 0, 0.0, 0.0
	for _, v := range vals {
		total += v
	}
	for k < n && (cum < 0.95*total || vals[order[k]] > JointMaxResidual) {
		cum += vals[order[k]]
		k++
	}
	if k != j.Components() {
		t.Fatalf("components: %d, reference %d (eigenvalues %v)", j.Components(), k, vals)
	}

	contrib := make([]float64, n)
	for _, broken := range []bool{false, true} {
		z := make([]float64, n)
		jointSample(rng, z)
		if broken {
			z[0] -= 60 // flow 2σ low, current as usual
		}
		t2, q := j.Judge(z, contrib)
		u := make([]float64, n)
		for a := range u {
			u[a] = (z[a] - mean[a]) / sd[a]
		}
		wantT2, wantQ := 0.0, 0.0
		proj := make([]float64, n)
		for c := 0; c < k; c++ {
			s := 0.0
			for a := range u {
				s += vecs.At(a, order[c]) * u[a]
			}
			wantT2 += s * s / vals[order[c]]
			for a := range u {
				proj[a] += vecs.At(a, order[c]) * s
			}
		}
		for a := range u {
			wantQ += (u[a] - proj[a]) * (u[a] - proj[a])
		}
		if math.Abs(t2-wantT2) > 1e-6*(1+wantT2) || math.Abs(q-wantQ) > 1e-6*(1+wantQ) {
			t.Errorf("broken %v: T² %v Q %v, reference %v %v", broken, t2, q, wantT2, wantQ)
		}
		qLim, _, _ := j.Limits()
		if broken != (q > 4*qLim) {
			t.Errorf("broken %v: Q %v against 4 × limit %v", broken, q, qLim)
		}
		if broken && (math.Abs(contrib[0]) < 3 || math.Abs(contrib[1]) < 3 || math.Abs(contrib[4]) > 3) {
			t.Errorf("contributions %v: want flow and current to stand out", contrib)
		}
	}
}

// TestJointIgnoresUnrelatedValues: with no relation among the values
// there is nothing for Q to judge.
func TestJointIgnoresUnrelatedValues(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	j := NewJoint(4, int64(3600e9))
	z := make([]float64, 4)
	for r := 0; r < 2000; r++ {
		for i := range z {
			z[i] = rng.NormFloat64()
		}
		j.Learn(int64(r)*1e9, z)
	}
	var ft JointFitter
	j.Fit(&ft, 0.95, 0.001)
	if j.Ready() {
		t.Fatalf("a model of unrelated values: %d components", j.Components())
	}
}

func BenchmarkJointLearnJudge(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	j := NewJoint(10, int64(3600e9))
	z := make([]float64, 10)
	contrib := make([]float64, 10)
	var ft JointFitter
	for r := 0; r < 1000; r++ {
		jointSample(rng, z)
		j.Learn(int64(r)*1e9, z)
	}
	j.Fit(&ft, 0.95, 0.001)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j.Learn(int64(1000+i)*1e9, z)
		j.Judge(z, contrib)
	}
}

func BenchmarkJointFit(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	j := NewJoint(10, int64(3600e9))
	z := make([]float64, 10)
	for r := 0; r < 1000; r++ {
		jointSample(rng, z)
		j.Learn(int64(r)*1e9, z)
	}
	var ft JointFitter
	j.Fit(&ft, 0.95, 0.001)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j.Fit(&ft, 0.95, 0.001)
	}
}
