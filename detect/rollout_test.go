package detect

import (
	"encoding/json"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/ingest"
)

// TestUpgradeIsNotAnAnomaly: a device that upgrades and then runs its CPU
// 15 points higher (the new firmware's expected change) raises no self
// alarm with the rollout guard on, and does with it off; a device that
// downgrades with the same change still raises its self alarm and the
// identity downgrade alarm.
func TestUpgradeIsNotAnAnomaly(t *testing.T) {
	const up, down = 3, 5
	for _, guard := range []bool{true, false} {
		cfg := DefaultConfig()
		cfg.Rollout.Enabled = guard
		cfg.Peer.Enabled = false // the step is the group's outlier too: this test is about the device's own baseline
		s := newSim(t, cfg, []string{"site/hw"}, 10, nil)
		fw := func(m, i int, d *simDevice, r *ingest.Row) bool {
			r.Firmware = "2.9.4"
			if m >= 180 && (i == up || i == down) {
				r.Firmware = map[int]string{up: "3.0.0", down: "2.8.1"}[i]
				for k := range r.Metrics {
					if r.Metrics[k].Name == "cpu" {
						r.Metrics[k].Value += 15
					}
				}
			}
			return true
		}
		s.run(0, 180, fw)
		if n := len(s.sink.alerts); n != 0 {
			t.Fatalf("clean warm-up raised %d alerts:\n%s", n, s.sink.dump())
		}
		s.run(180, 360, fw)
		upSelf := s.sink.find(DetectorSelf, "", s.devices[up].name, StateAlarm)
		if guard && len(upSelf) != 0 || !guard && len(upSelf) == 0 {
			t.Errorf("guard %t: %d self alarms on the upgraded device:\n%s", guard, len(upSelf), s.sink.dump())
		}
		if len(s.sink.find(DetectorSelf, "cpu", s.devices[down].name, StateAlarm)) == 0 {
			t.Errorf("guard %t: no self alarm on the downgraded device:\n%s", guard, s.sink.dump())
		}
		if len(s.sink.find(DetectorIdentity, behaviorFirmwareDowngrade, s.devices[down].name, StateAlarm)) != 1 {
			t.Errorf("guard %t: no downgrade alarm:\n%s", guard, s.sink.dump())
		}
		for _, a := range s.sink.alerts {
			if a.Device == s.devices[up].name {
				t.Logf("guard %t: %s %s/%s: %s", guard, a.State, a.Detector, a.Behavior, a.Message)
			}
		}
	}
}

// exactMannWhitneyP is the reference of mannWhitneyP: the exact one-sided
// p-value of x lying above y, from every split of the pooled values into
// groups of len(x) and len(y) (ties share the split's values as they are).
func exactMannWhitneyP(x, y []float64) float64 {
	pool := append(slices.Clone(x), y...)
	u := func(in []bool) float64 {
		s := 0.0
		for i := range pool {
			if !in[i] {
				continue
			}
			for j := range pool {
				switch {
				case in[j]:
				case pool[i] > pool[j]:
					s++
				case pool[i] == pool[j]:
					s += 0.5
				}
			}
		}
		return s
	}
	in := make([]bool, len(pool))
	for i := range x {
		in[i] = true
	}
	observed := u(in)
	total, atLeast := 0, 0
	var rec func(i, left int)
	rec = func(i, left int) {
		if left == 0 {
			total++
			if u(in) >= observed-1e-9 {
				atLeast++
			}
			return
		}
		if len(pool)-i < left {
			return
		}
		in[i] = true
		rec(i+1, left-1)
		in[i] = false
		rec(i+1, left)
	}
	clear(in)
	rec(0, len(x))
	return float64(atLeast) / float64(total)
}

// TestMannWhitneyAgreesWithExact checks the normal approximation against
// the exact permutation p-value on small cohorts with ties, as the guard
// sees them (counts per report), in both directions.
func TestMannWhitneyAgreesWithExact(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	worst, tail := 0.0, 0.0
	for trial := 0; trial < 200; trial++ {
		n1, n2 := 5+r.IntN(3), 6+r.IntN(5)
		shift := float64(r.IntN(4))
		x, y := make([]float64, n1), make([]float64, n2)
		for i := range x {
			x[i] = float64(r.IntN(6)) + shift
		}
		for i := range y {
			y[i] = float64(r.IntN(6))
		}
		exact := exactMannWhitneyP(x, y)
		got := mannWhitneyP(x, y, true)
		// The tail decides (alpha is 0.01 by default): there the
		// approximation must be close; in the body, roughly right.
		limit := 0.05
		if exact <= 0.05 {
			limit = 0.01
			tail = math.Max(tail, math.Abs(got-exact))
		}
		worst = math.Max(worst, math.Abs(got-exact))
		if math.Abs(got-exact) > limit {
			t.Errorf("x %v y %v: p %.4f, exact %.4f", x, y, got, exact)
		}
		neg := func(v []float64) []float64 {
			w := make([]float64, len(v))
			for i := range v {
				w[i] = -v[i]
			}
			return w
		}
		if down := mannWhitneyP(neg(x), neg(y), false); math.Abs(down-got) > 1e-12 {
			t.Errorf("x %v y %v: down %.6f, up on the mirrored values %.6f", x, y, down, got)
		}
	}
	t.Logf("largest difference from the exact p-value: %.4f, where it is at most 0.05: %.4f", worst, tail)
}

// TestHodgesLehmannAndEffect: the shift of a cohort moved by a constant is
// that constant, whatever its spread; the effect is relative to the other
// cohort's mean and capped when that mean is zero.
func TestHodgesLehmannAndEffect(t *testing.T) {
	y := []float64{50, 55, 60, 65, 70, 58}
	x := make([]float64, len(y))
	for i := range y {
		x[i] = y[i] - 18
	}
	if hl, _ := hodgesLehmann(x, y, nil); hl != -18 {
		t.Errorf("shift %g, want -18", hl)
	}
	if p := relativePercent(-18, mean(y)); math.Abs(p-(-18/59.666666*100)) > 0.01 {
		t.Errorf("effect %g%%", p)
	}
	if p := relativePercent(2, 0); p != maxEffectPercent {
		t.Errorf("effect against a zero mean %g%%, want the cap", p)
	}
	if p := relativePercent(0, 0); p != 0 {
		t.Errorf("no shift: %g%%", p)
	}
}

// TestRolloutAcrossPartitions: half a group upgrades and fails to
// authenticate; read from three partitions, each delivering 20 minutes
// ahead of the next (as a consumer catching up does), the guard raises
// the same rollout alerts as from one stream in event-time order: windows
// wait for the watermark, and a device's reports stay in their window.
func TestRolloutAcrossPartitions(t *testing.T) {
	run := func(partitioned bool) []Alert {
		cfg := DefaultConfig()
		cfg.Rollout.Enabled = true
		s := newSim(t, cfg, []string{"site/hw"}, 20, nil)
		if partitioned {
			s.partition = func(i int) int32 { return int32(i % 3) }
			s.batchMinutes = 20
		}
		s.run(0, 360, badUpgrade)
		return s.sink.find(DetectorRollout, "", "", "")
	}
	one, three := run(false), run(true)
	key := func(a Alert) string {
		return a.ID + " " + a.EventTime.Format(time.RFC3339) + " " + a.Behavior + " " + a.Message
	}
	var want, got []string
	for _, a := range one {
		want = append(want, key(a))
	}
	for _, a := range three {
		got = append(got, key(a))
	}
	if !slices.ContainsFunc(one, func(a Alert) bool { return a.Behavior == BehaviorKPIRegression }) {
		t.Fatalf("one stream raised no regression: %q", want)
	}
	if !slices.Equal(want, got) {
		t.Fatalf("three partitions raised\n%s\none stream\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	t.Logf("%s", strings.Join(want, "\n"))
}

// badUpgrade is a sim's row at minute m of device i: devices 0 to 9
// upgrade from 2.9.4 to 3.0.0 one a minute from minute 200 on, and then
// have 1 to 3 auth failures a report where the others have none.
func badUpgrade(m, i int, d *simDevice, r *ingest.Row) bool {
	r.Firmware = "2.9.4"
	if i < 10 && m >= 200+i {
		r.Firmware = "3.0.0"
		for k := range r.Metrics {
			if r.Metrics[k].Name == "auth_failures" {
				r.Metrics[k].Value = float64(1 + (m+i)%3)
			}
		}
	}
	return true
}

// TestUnseenRolloutKPI: vigil validate --against warns about a rollout KPI
// no input has, only while the guard is on.
func TestUnseenRolloutKPI(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Rollout.KPIs = []RolloutKPI{{Metric: "msgs_sent", Bad: DirectionDown}, {Metric: "auth_failurs", Bad: DirectionUp}}
	seen := func(m string) bool { return m == "msgs_sent" }
	if got := cfg.UnseenMetrics(seen); len(got) != 0 {
		t.Errorf("guard off: %q", got)
	}
	cfg.Rollout.Enabled = true
	got := cfg.UnseenMetrics(seen)
	if len(got) != 1 || !strings.Contains(got[0], `detect.rollout.kpis[1]: no input has a metric "auth_failurs"`) {
		t.Errorf("guard on: %q", got)
	}
}

// TestRolloutProgressLog: while a rollout is under way, every window logs
// its progress: devices on each version, upgraded in the last hour, first
// and last upgrade.
func TestRolloutProgressLog(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Rollout.Enabled = true
	var buf strings.Builder
	s := newSim(t, cfg, []string{"site/hw"}, 10, nil)
	s.eng.log = slog.New(slog.NewJSONHandler(&buf, nil))
	s.run(0, 110, func(m, i int, d *simDevice, r *ingest.Row) bool {
		r.Firmware = "2.9.4"
		if i < 4 && m >= 40+10*i { // upgrades at 00:40, 00:50, 01:00, 01:10
			r.Firmware = "3.0.0"
		}
		return true
	})
	var last map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if rec["msg"] == "rollout" {
			last = rec
		}
	}
	// The last window judged ends at 01:45: the upgrade at 00:40 is more
	// than an hour before.
	want := map[string]any{"group": "site/hw", "from": "2.9.4", "to": "3.0.0", "upgraded": 4.0, "not_upgraded": 6.0,
		"upgraded_last_hour": 3.0, "first_upgrade": "2026-11-16T00:40", "last_upgrade": "2026-11-16T01:10", "window_end": "2026-11-16T01:45"}
	for k, v := range want {
		got := last[k]
		if str, ok := got.(string); ok && len(str) > 16 { // a time: compare to the minute
			got = str[:16]
		}
		if got != v {
			t.Errorf("last progress line %s = %v, want %v (%v)", k, last[k], v, last)
		}
	}
}
