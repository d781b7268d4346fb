package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/detect"
)

// TestReplaySummaryCountsDeviceCap: 30 devices under detect.max_devices
// 10; the summary counts the rows of the 20 refused, and the baseline
// holds 10 devices.
func TestReplaySummaryCountsDeviceCap(t *testing.T) {
	dir := t.TempDir()
	var lines strings.Builder
	for m := range 3 {
		for d := range 30 {
			fmt.Fprintf(&lines, `{"device":"plc-%02d","ts":"2026-11-02T00:%02d:00Z","metrics":{"bytes_out":%d}}`+"\n", d, m, 100+d)
		}
	}
	data, cfg := filepath.Join(dir, "flood.jsonl"), filepath.Join(dir, "cap.yaml")
	must(t, os.WriteFile(data, []byte(lines.String()), 0o644), os.WriteFile(cfg, []byte("detect:\n  max_devices: 10\n"), 0o644))
	_, stderr := runReplayTest(t, "--config", cfg, data)
	for _, want := range []string{
		"rows judged: 30 ",
		"  devices: 60 rows of new devices refused past detect.max_devices (not judged, not learned)\n",
		"baseline: version 30, 10 devices",
	} {
		if !bytes.Contains(stderr, []byte(want)) {
			t.Errorf("summary lacks %q:\n%s", want, stderr)
		}
	}
}

// TestDeviceCapOnMetrics: rows refused past the device cap reach
// /metrics as vigil_engine_rejected_total{reason="device_cap"}.
func TestDeviceCapOnMetrics(t *testing.T) {
	set := metrics.NewSet()
	im := newInstanceMetrics(set)
	im.publish(detect.Stats{DeviceCapRows: 7}, baseline.Stats{})
	var b bytes.Buffer
	set.WritePrometheus(&b)
	if want := `vigil_engine_rejected_total{reason="device_cap"} 7`; !strings.Contains(b.String(), want) {
		t.Errorf("metrics lack %q:\n%s", want, b.String())
	}
}

// TestReplaySummaryCountsEvictions: 30 devices, each reporting for three
// minutes, ten at a time, under detect.max_devices 10 with when_full
// evict_idle: every device is judged, the summary counts the 20 evicted
// to make room, and the baseline holds 10 devices; the counter reaches
// /metrics.
func TestReplaySummaryCountsEvictions(t *testing.T) {
	dir := t.TempDir()
	var lines strings.Builder
	for m := range 9 {
		for d := m / 3 * 10; d < m/3*10+10; d++ {
			fmt.Fprintf(&lines, `{"device":"plc-%02d","ts":"2026-11-02T00:%02d:00Z","metrics":{"bytes_out":%d}}`+"\n", d, m, 100+d)
		}
	}
	data, cfg := filepath.Join(dir, "churn.jsonl"), filepath.Join(dir, "evict.yaml")
	must(t, os.WriteFile(data, []byte(lines.String()), 0o644), os.WriteFile(cfg, []byte("detect:\n  max_devices: 10\n  when_full: evict_idle\n"), 0o644))
	_, stderr := runReplayTest(t, "--config", cfg, data)
	for _, want := range []string{
		"rows judged: 90 ",
		"  devices: 20 evicted past detect.max_devices to make room for new ones (the longest idle; detect.when_full evict_idle)\n",
		"baseline: version 90, 10 devices",
	} {
		if !bytes.Contains(stderr, []byte(want)) {
			t.Errorf("summary lacks %q:\n%s", want, stderr)
		}
	}
	if bytes.Contains(stderr, []byte("refused past")) {
		t.Errorf("rows refused:\n%s", stderr)
	}
	set := metrics.NewSet()
	newInstanceMetrics(set).publish(detect.Stats{DevicesEvicted: 20}, baseline.Stats{})
	var b bytes.Buffer
	set.WritePrometheus(&b)
	if want := "vigil_engine_devices_evicted_total 20"; !strings.Contains(b.String(), want) {
		t.Errorf("metrics lack %q:\n%s", want, b.String())
	}
}
