package kafka

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

// The buckets are what Prometheus' histogram_quantile expects: cumulative,
// le inclusive, +Inf equal to _count, checked against a plain count of
// the values at most each bound.
func TestHistogramMatchesPlainCount(t *testing.T) {
	set := metrics.NewSet()
	bounds := []float64{.001, .01, .1, 1, 10}
	h := newHistogram(set, "test_seconds", bounds)
	rng := rand.New(rand.NewPCG(1, 2))
	values := []float64{0, .001, 1, 10, 10.5} // on the bounds and past the last
	for range 1000 {
		values = append(values, rng.ExpFloat64())
	}
	var sum float64
	for _, v := range values {
		h.Update(v)
		sum += v
	}
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		got[line[:i]] = line[i+1:]
	}
	for _, b := range append(bounds, 1e300) {
		le := strconv.FormatFloat(b, 'g', -1, 64)
		if b == 1e300 {
			le = "+Inf"
		}
		n := 0
		for _, v := range values {
			if v <= b {
				n++
			}
		}
		series := fmt.Sprintf(`test_seconds_bucket{le=%q}`, le)
		if got[series] != strconv.Itoa(n) {
			t.Errorf("%s = %s, want %d", series, got[series], n)
		}
	}
	if got["test_seconds_count"] != strconv.Itoa(len(values)) {
		t.Errorf("test_seconds_count = %s, want %d", got["test_seconds_count"], len(values))
	}
	if s, _ := strconv.ParseFloat(got["test_seconds_sum"], 64); s < sum*(1-1e-12) || s > sum*(1+1e-12) {
		t.Errorf("test_seconds_sum = %s, want %g", got["test_seconds_sum"], sum)
	}
	if strings.Contains(buf.String(), "vmrange") {
		t.Errorf("vmrange buckets in:\n%s", buf.String())
	}
}

func BenchmarkHistogramUpdate(b *testing.B) {
	h := newHistogram(metrics.NewSet(), "bench_seconds", batchLatencyBounds)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.Update(float64(i%1000) / 100)
	}
}
