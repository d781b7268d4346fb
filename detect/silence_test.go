package detect

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/ingest"
)

// TestSilenceHeapKeys drives silence with report intervals that lengthen
// and shrink (a shrinking interval moves a deadline earlier) and checks,
// after every batch, what the lazily sifted deadline heaps rely on: each
// group's heap is ordered by (key, device), every entry knows its place,
// and no key is later than its device's deadline, so the top of the heap
// is always the device with the earliest deadline. A device that then
// stops must still be declared silent.
func TestSilenceHeapKeys(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Silence.MissedReports = 20 // long deadlines: a shrinking interval moves them earlier
	s := newSim(t, cfg, twoGroups, 10, nil)
	check := func(m int) {
		t.Helper()
		e := s.eng
		for g := range e.groups {
			gs := &e.groups[g]
			for i, ent := range gs.heap {
				ds := e.devices.At(ent.dev)
				if ds.sil.heapIdx != int32(i) {
					t.Fatalf("minute %d: device %d at heap index %d thinks it is at %d", m, ent.dev, i, ds.sil.heapIdx)
				}
				if ent.key > ds.sil.deadline {
					t.Fatalf("minute %d: device %d keyed at %d, after its deadline %d", m, ent.dev, ent.key, ds.sil.deadline)
				}
				if i > 0 && e.heapLess(gs, int32(i), int32((i-1)/2)) {
					t.Fatalf("minute %d: heap of group %d out of order at %d", m, g, i)
				}
			}
		}
	}
	// Devices 0-4 of each group report every 3 minutes until minute 200,
	// then every minute; the others every minute until 200, then every 2.
	// Device 13 stops at minute 300.
	s.run(0, 400, func(m, i int, d *simDevice, r *ingest.Row) bool {
		defer check(m)
		switch {
		case i == 13 && m >= 300:
			return false
		case i%10 < 5:
			return m >= 200 || m%3 == 0
		default:
			return m < 200 || m%2 == 0
		}
	})
	check(400)
	al := s.sink.find(DetectorSilence, behaviorSilence, "", StateAlarm)
	if len(al) != 1 || al[0].Device != s.devices[13].name {
		t.Fatalf("want one silence alarm, on %s:\n%s", s.devices[13].name, s.sink.dump())
	}
}

// cadenceSchedule is a device's report times, as offsets from simEpoch,
// ascending.
type cadenceSchedule []time.Duration

// logUniformGaps: reports from from to to with gaps log-uniform between lo
// and hi, as a host seen only when it broadcasts.
func logUniformGaps(rng *rand.Rand, from, to, lo, hi time.Duration) cadenceSchedule {
	var r cadenceSchedule
	a, b := math.Log(float64(lo)), math.Log(float64(hi))
	for t := from; t < to; t += time.Duration(math.Exp(a + (b-a)*rng.Float64())) {
		r = append(r, t)
	}
	return r
}

// jitteredPeriod: a report every period from from to to, each off its slot
// by up to ±jitter.
func jitteredPeriod(rng *rand.Rand, from, to, period, jitter time.Duration) cadenceSchedule {
	var r cadenceSchedule
	for t := from; t < to; t += period {
		r = append(r, t+time.Duration((2*rng.Float64()-1)*float64(jitter)))
	}
	return r
}

// runCadences runs s's fleet for minutes [from, to): device i of cadences
// reports at its schedule's times instead of once a minute (several rows
// in a minute, or none).
func runCadences(s *sim, from, to int, cadences map[int]cadenceSchedule) {
	s.t.Helper()
	next := map[int]int{}
	s.run(from, to, func(m, i int, d *simDevice, r *ingest.Row) bool {
		ts, ok := cadences[i]
		if !ok {
			return true
		}
		start, end := time.Duration(m)*time.Minute, time.Duration(m+1)*time.Minute
		k := next[i]
		for k < len(ts) && ts[k] < start {
			k++
		}
		first := k
		for k < len(ts) && ts[k] < end {
			k++
		}
		next[i] = k
		if first == k {
			return false
		}
		for _, at := range ts[first : k-1] {
			r.TimeNanos = simEpoch.Add(at).UnixNano()
			s.builder.Append(r)
		}
		r.TimeNanos = simEpoch.Add(ts[k-1]).UnixNano()
		return true
	})
}

// lastBefore is the last time of ts before end.
func (ts cadenceSchedule) lastBefore(end time.Duration) time.Time {
	i, _ := slices.BinarySearch(ts, end)
	return simEpoch.Add(ts[i-1])
}

// TestSilenceOnlyWithACadence: over a simulated day beside nine devices
// that report every minute, a device whose gaps are log-uniform between
// 5 s and 1 h (a Windows host seen only when it broadcasts) is never
// declared silent; a device reporting every 60 s ± 2 s that stops is,
// within missed_reports periods, and the alert says the period; a device
// irregular for half a day that then reports every minute is judged from
// then on.
func TestSilenceOnlyWithACadence(t *testing.T) {
	cfg := DefaultConfig()
	s := newSim(t, cfg, twoGroups[:1], 10, nil)
	rng := rand.New(rand.NewPCG(11, 12))
	const day = 24 * time.Hour
	stop1, stop2 := 20*time.Hour, 23*time.Hour
	irregular := logUniformGaps(rng, 0, day, 5*time.Second, time.Hour)
	regular := jitteredPeriod(rng, 30*time.Second, stop1, time.Minute, 2*time.Second)
	later := append(logUniformGaps(rng, 0, 12*time.Hour, 5*time.Second, time.Hour),
		jitteredPeriod(rng, 12*time.Hour+30*time.Second, stop2, time.Minute, 2*time.Second)...)
	runCadences(s, 0, int(day/time.Minute), map[int]cadenceSchedule{0: irregular, 1: regular, 2: later})

	if al := s.sink.find(DetectorSilence, behaviorSilence, s.devices[0].name, StateAlarm); len(al) != 0 {
		t.Errorf("the device without a cadence (%d reports in a day) was declared silent %d times:\n%s", len(irregular), len(al), s.sink.dump())
	}
	for _, c := range []struct {
		dev   int
		sched cadenceSchedule
		stop  time.Duration
	}{{1, regular, stop1}, {2, later, stop2}} {
		name := s.devices[c.dev].name
		al := s.sink.find(DetectorSilence, behaviorSilence, name, StateAlarm)
		if len(al) != 1 {
			t.Errorf("%s: want one silence alarm, after it stopped at %s:\n%s", name, simEpoch.Add(c.stop).Format(time.RFC3339), s.sink.dump())
			continue
		}
		a := al[0]
		last := c.sched.lastBefore(c.stop)
		if wait := a.EventTime.Sub(last); wait < 5*58*time.Second || wait > 5*62*time.Second {
			t.Errorf("%s: declared silent %s after its last report, want missed_reports (5) periods of 60 s", name, wait)
		}
		if a.Expected < 58 || a.Expected > 62 || a.Upper < 5*a.Expected-1e-9 || a.Upper > 5*a.Expected+1e-9 {
			t.Errorf("%s: expected %g s, upper %g s: want the 60 s period and 5 of them", name, a.Expected, a.Upper)
		}
		if !strings.Contains(a.Message, "5 expected reports (every 1m0s ± ") {
			t.Errorf("%s: message does not give the period and its spread: %s", name, a.Message)
		}
	}
}

// TestSilenceJudgedAgainAfterAnOutage: one outage is not the device's
// cadence. A device silent for half an hour, back for a quarter of an
// hour, then silent again is declared silent twice, both times after
// missed_reports of its unchanged period.
func TestSilenceJudgedAgainAfterAnOutage(t *testing.T) {
	s := newSim(t, DefaultConfig(), twoGroups[:1], 10, nil)
	s.warm(120)
	victim := s.devices[4]
	s.run(120, 240, func(m, i int, d *simDevice, r *ingest.Row) bool {
		return i != 4 || m < 130 || m >= 160 && m < 175
	})
	al := s.sink.find(DetectorSilence, behaviorSilence, victim.name, StateAlarm)
	if len(al) != 2 {
		t.Fatalf("want two silence alarms on %s:\n%s", victim.name, s.sink.dump())
	}
	// last reports in minutes 129 and 174; five missed one-minute reports
	for k, lastMinute := range []int{129, 174} {
		if a := al[k]; a.EventTime.Before(at(lastMinute+5)) || a.EventTime.After(at(lastMinute+6)) || a.Expected < 55 || a.Expected > 65 {
			t.Errorf("silence %d at %v with period %g s, want in minute %d with 60 s", k+1, a.EventTime, a.Expected, lastMinute+5)
		}
	}
}

// TestSilenceIrregularityIsScaleFree: the same gaps in seconds and in
// hours are equally (ir)regular.
func TestSilenceIrregularityIsScaleFree(t *testing.T) {
	cfg := DefaultConfig().Silence
	rng := rand.New(rand.NewPCG(3, 4))
	for _, spread := range []float64{0.03, 0.3, 1.5} {
		var sec, hour silenceState
		for range 500 {
			g := math.Exp(spread * rng.NormFloat64())
			sec.learnGap(g*1e9, &cfg)
			hour.learnGap(g*3600e9, &cfg)
		}
		if a, b := math.Sqrt(sec.spread2), math.Sqrt(hour.spread2); math.Abs(a-b) > 1e-9*a || sec.judged(&cfg) != hour.judged(&cfg) {
			t.Errorf("log-gap spread %g: irregularity %g in seconds, %g in hours", spread, a, b)
		}
	}
}

func TestSilenceMaxIrregularityConfig(t *testing.T) {
	for _, v := range []string{"0", "-0.5", "2.5", ".nan"} {
		if _, err := parseDetect(t, "silence: {max_irregularity: "+v+"}"); err == nil || !strings.Contains(err.Error(), "silence: max_irregularity") {
			t.Errorf("max_irregularity %s: error %v", v, err)
		}
	}
	if cfg, err := parseDetect(t, "silence: {max_irregularity: 0.8}"); err != nil || cfg.Silence.MaxIrregularity != 0.8 {
		t.Errorf("max_irregularity 0.8: %v, %v", cfg.Silence.MaxIrregularity, err)
	}
}
