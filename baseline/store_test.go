package baseline

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

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
