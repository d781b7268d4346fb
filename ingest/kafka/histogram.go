package kafka

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// histogram is a Prometheus histogram with fixed upper bounds: cumulative
// _bucket series with `le` labels, _sum and _count, which Prometheus'
// histogram_quantile reads. The library's Histogram (v1.35) exposes
// `vmrange` buckets instead, which only VictoriaMetrics understands.
//
// Update takes a mutex: it is called once per batch, not per record.
type histogram struct {
	name   string
	bounds []float64 // ascending upper bounds; +Inf is implicit
	les    []string  // bounds formatted for the le label

	mu     sync.Mutex
	counts []uint64 // per bucket, not cumulative; the last is (bounds[n-1], +Inf]
	sum    float64
}

// newHistogram registers a histogram named name (no labels) in set.
func newHistogram(set *metrics.Set, name string, bounds []float64) *histogram {
	if len(bounds) == 0 || !slices.IsSorted(bounds) {
		panic(fmt.Sprintf("BUG: histogram %s needs ascending bounds, got %v", name, bounds))
	}
	h := &histogram{name: name, bounds: bounds, counts: make([]uint64, len(bounds)+1)}
	for _, b := range bounds {
		h.les = append(h.les, strconv.FormatFloat(b, 'g', -1, 64))
	}
	set.RegisterMetricsWriter(h.writeTo)
	return h
}

// Update counts v in the first bucket whose bound is at least v.
func (h *histogram) Update(v float64) {
	i, _ := slices.BinarySearch(h.bounds, v)
	h.mu.Lock()
	h.counts[i]++
	h.sum += v
	h.mu.Unlock()
}

// UpdateDuration counts the seconds since start.
func (h *histogram) UpdateDuration(start time.Time) {
	h.Update(time.Since(start).Seconds())
}

func (h *histogram) writeTo(w io.Writer) {
	h.mu.Lock()
	counts := slices.Clone(h.counts)
	sum := h.sum
	h.mu.Unlock()
	metrics.WriteMetadataIfNeeded(w, h.name, "histogram")
	var cum uint64
	for i, le := range h.les {
		cum += counts[i]
		fmt.Fprintf(w, "%s_bucket{le=%q} %d\n", h.name, le, cum)
	}
	cum += counts[len(h.les)]
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n", h.name, cum)
	fmt.Fprintf(w, "%s_sum %s\n", h.name, strconv.FormatFloat(sum, 'g', -1, 64))
	fmt.Fprintf(w, "%s_count %d\n", h.name, cum)
}
