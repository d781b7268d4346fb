package packet

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

// notOnMetrics are the counters of Stats that /metrics does not carry:
// Packets is the sum of vigil_packets_total's outcomes, and the other two
// count what the replay summary's tables could not hold.
var notOnMetrics = map[string]bool{"Packets": true, "EdgesDropped": true, "AssetsDropped": true}

// TestMetricsCoverStats: every counter of Stats reaches the metrics, so
// what the extractor evicts or refuses is seen on /metrics, not only in a
// replay's summary. Each counter gets its own value; a series must carry it.
func TestMetricsCoverStats(t *testing.T) {
	set := metrics.NewSet()
	x := newTestExtractor(t, nil)
	x.RegisterMetrics(set, "test")
	next := int64(1000)
	var fields []string
	var fill func(v reflect.Value)
	fill = func(v reflect.Value) {
		for i := range v.NumField() {
			f, sf := v.Field(i), v.Type().Field(i)
			switch {
			case sf.Anonymous && f.Kind() == reflect.Struct:
				fill(f)
			case f.Kind() == reflect.Int64 && !notOnMetrics[sf.Name]:
				f.SetInt(next)
				next += 7
				fields = append(fields, sf.Name)
			}
		}
	}
	fill(reflect.ValueOf(&x.stats).Elem())
	// Stats reads these from the tables that count them.
	x.flows.evicted, x.hosts.evicted, x.frags.reassembled, x.frags.evicted = 2001, 2003, 2005, 2007
	x.publishMetrics()

	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	st := reflect.ValueOf(x.Stats())
	for _, name := range fields {
		v := st.FieldByName(name).Int()
		if !hasSeriesWithValue(buf.String(), "vigil_packet_", v) {
			t.Errorf("Stats.%s (%d) is on no vigil_packet_* series: add it to RegisterMetrics and publishMetrics, or to notOnMetrics with the reason", name, v)
		}
	}
	if t.Failed() {
		t.Log(buf.String())
	}
}

func hasSeriesWithValue(text, prefix string, v int64) bool {
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, prefix) && strings.HasSuffix(line, fmt.Sprintf(" %d\n", v)) {
			return true
		}
	}
	return false
}

// TestScanMetrics: a flood of spoofed sources, each with one unanswered
// SYN, evicts reconnaissance state, and the count reaches the metrics.
func TestScanMetrics(t *testing.T) {
	set := metrics.NewSet()
	r := newScanRun(t, nil)
	r.x.RegisterMetrics(set, "ot-packets")
	for i := range 5000 {
		r.add(t0+int64(i)*20e6, ipTCP(t, fmt.Sprintf("172.16.%d.%d", i/250, i%250+1), "10.0.0.2", 40000, 80, 1, "S", nil))
	}
	r.finish()
	st := r.x.Stats()
	if st.ScanStatesEvicted == 0 {
		t.Fatal("no scan state evicted")
	}
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	want := fmt.Sprintf("vigil_packet_scan_states_evicted_total{source=\"ot-packets\"} %d\n", st.ScanStatesEvicted)
	if !strings.Contains(buf.String(), want) {
		t.Errorf("metrics lack %q:\n%s", want, buf.String())
	}
}
