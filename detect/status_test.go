package detect

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/ingest"
)

// statusRecorder is a StatusSink that keeps copies of what it is sent.
type statusRecorder struct {
	updates int
	devices map[string]DeviceStatus // latest of each device
	recent  *RecentValues
	groups  []GroupStatus
	rollout map[string]RolloutStatus // latest of each group, its windows copied
	evicted []string                 // every update's, in order
}

func (r *statusRecorder) PublishStatus(u *StatusUpdate) {
	r.updates++
	if r.devices == nil {
		r.devices = map[string]DeviceStatus{}
	}
	for _, d := range u.Devices {
		r.devices[d.Device] = d
	}
	r.recent = u.Recent
	r.groups = append(r.groups[:0], u.Groups...)
	r.evicted = append(r.evicted, u.Evicted...)
	for _, ro := range u.Rollouts {
		if r.rollout == nil {
			r.rollout = map[string]RolloutStatus{}
		}
		ro.KPIs = slices.Clone(ro.KPIs)
		for k := range ro.KPIs {
			ro.KPIs[k].Windows = slices.Clone(ro.KPIs[k].Windows)
		}
		r.rollout[ro.Group] = ro
	}
}

// TestPublishStatus: the console sees every judged value with its band
// (the last 100 of each metric of each device), each changed device's
// alarms and quarantine episode, and the groups' learning state; a
// device's alarm and recommendation show while they last.
func TestPublishStatus(t *testing.T) {
	cfg := quarantineConfig()
	cfg.Quarantine.Mode = ModeApprovalRequired
	cfg.Self.Enabled = true
	s := newSim(t, cfg, twoGroups, 3, nil)
	rec := &statusRecorder{}
	s.eng.PublishStatus(rec, 0, 100, 0) // every batch
	s.run(0, 90, func(m, i int, d *simDevice, r *ingest.Row) bool {
		r.SrcIP = "10.0.0." + string(rune('1'+i))
		r.Firmware = "2.9.4"
		if i == 0 && m >= 80 {
			r.Metrics[3].Value = 99 // the spike rule: temp > 90
		}
		return true
	})
	if rec.updates != 90 {
		t.Fatalf("%d updates for 90 batches, want one each", rec.updates)
	}
	dev := s.devices[0].name
	st := rec.devices[dev]
	series := rec.recent.Device(st.ID)
	if len(series) != 5 {
		t.Fatalf("%d metrics of recent values, want 5", len(series))
	}
	for _, rs := range series {
		if !minutes(rs.Values, 0, 90) {
			t.Fatalf("%s: %d values, want the 90 minutes in order", rs.Metric, len(rs.Values))
		}
		if first := rs.Values[0]; !math.IsNaN(float64(first.Expected)) {
			t.Fatalf("%s: the first value has a band before anything was learned: %+v", rs.Metric, first)
		}
		if rs.Metric != "bytes_out" {
			continue
		}
		last := rs.Values[89]
		if math.IsNaN(float64(last.Expected)) || !(last.Lower < last.Expected && last.Expected < last.Upper) || rs.Samples < 60 {
			t.Fatalf("a protected device's value has no band: %+v, %d samples", last, rs.Samples)
		}
	}
	if st.Alarms < 1 || st.Quarantine != ActionRecommend || len(s.sink.quarantine) != 1 || st.QuarantineID != s.sink.quarantine[0].ID {
		t.Fatalf("device in alarm with a recommendation: status %+v, events %+v", st, s.sink.quarantine)
	}
	if st.Group != twoGroups[0] || st.Firmware != "2.9.4" || strings.Join(st.SourceIPs, ",") != "10.0.0.1" || st.Learning ||
		!st.LastSeen.After(at(89)) {
		t.Fatalf("device status %+v", st)
	}
	if other := rec.devices[s.devices[1].name]; other.Alarms != 0 || other.Quarantine != "" {
		t.Fatalf("a clean device: %+v", other)
	}
	if len(rec.groups) != 2 || rec.groups[0].Name != twoGroups[0] || rec.groups[0].Learning || rec.groups[0].MinSamples != 200 ||
		rec.groups[0].Devices != 3 || len(rec.groups[0].Metrics) != 5 {
		t.Fatalf("groups %+v", rec.groups)
	}
	s.run(90, 100, nil) // clean: the alarms clear, the recommendation ends
	if st := rec.devices[dev]; st.Alarms != 0 || st.Quarantine != "" {
		t.Fatalf("after the alarm cleared: %+v", st)
	}
}

// TestPublishStatusStep: with a step, the engine keeps a value of each
// metric a step, the step's first, and, of a step's later values, the one
// that lay outside its band: the engine tells it from what it judged
// (settle drops the row otherwise), at that value's time.
func TestPublishStatusStep(t *testing.T) {
	cfg := quarantineConfig()
	cfg.Self.Enabled = true
	s := newSim(t, cfg, twoGroups, 3, nil)
	rec := &statusRecorder{}
	s.eng.PublishStatus(rec, 0, 100, 5*time.Minute)
	s.run(0, 100, func(m, i int, d *simDevice, r *ingest.Row) bool {
		if i == 0 && m == 82 {
			r.Metrics[3].Value = 99 // temp, two minutes into its step
		}
		return true
	})
	for _, rs := range rec.recent.Device(rec.devices[s.devices[0].name].ID) {
		if len(rs.Values) != 20 {
			t.Fatalf("%s: %d values of 100 minutes, want one a 5-minute step", rs.Metric, len(rs.Values))
		}
		for k, v := range rs.Values {
			want := at(5 * k)
			if k == 16 { // the row of a block's metrics moved to the value outside
				want = at(82)
			}
			if got := time.Unix(0, v.Time).Truncate(time.Minute); !got.Equal(want) {
				t.Fatalf("%s value %d at %s, want %s", rs.Metric, k, got, want)
			}
		}
		if spike := rs.Values[16]; rs.Metric == "temp" && (spike.Value != 99 || !(spike.Upper < 99)) {
			t.Fatalf("the step's value outside its band: %+v", spike)
		}
	}
}

// minutes reports whether vs are one value per minute of the simulation
// from minute from to minute to (excluded), in order.
func minutes(vs []RecentValue, from, to int) bool {
	if len(vs) != to-from {
		return false
	}
	for k, v := range vs {
		if !time.Unix(0, v.Time).Truncate(time.Minute).Equal(at(from + k)) {
			return false
		}
	}
	return true
}

// TestPublishStatusInterval: with an interval, batches in between publish
// nothing, and Flush publishes what is pending; the recent values do not
// wait for a publication.
func TestPublishStatusInterval(t *testing.T) {
	s := newSim(t, DefaultConfig(), twoGroups, 2, nil)
	rec := &statusRecorder{}
	s.eng.PublishStatus(rec, time.Hour, 8, 0)
	s.run(0, 10, nil)
	if rec.updates != 1 || len(rec.devices) != 4 {
		t.Fatalf("%d updates, %d devices: want only the first batch's", rec.updates, len(rec.devices))
	}
	for _, rs := range rec.recent.Device(rec.devices[s.devices[3].name].ID) {
		if !minutes(rs.Values, 2, 10) {
			t.Fatalf("%s: %d values: want the last 8 minutes in order, before any publication", rs.Metric, len(rs.Values))
		}
	}
	s.eng.Flush(t.Context())
	if rec.updates != 2 {
		t.Fatalf("after Flush: %d updates", rec.updates)
	}
}

// TestStatusFollowsCertificateAndFirmware: a device's status shows the
// certificate and firmware of its latest report that had one, through
// upgrades, a downgrade and a new certificate, and the firmware it ran
// before, each from its first report of it; with the identity detector and
// without it (which then keeps the history for the console and alarms on
// nothing).
func TestStatusFollowsCertificateAndFirmware(t *testing.T) {
	type report struct{ cert, fw string }
	steps := []report{{"cert-a", "2.9.4"}, {"", ""}, {"cert-a", "2.10.0"}, {"cert-b", "2.10.0"}, {"cert-b", "2.9.4"},
		{"cert-a", "2.9.4"}, {"", "2.10.1"}}
	for _, identity := range []bool{true, false} {
		for _, fwCheck := range []bool{true, false} {
			cfg := DefaultConfig()
			cfg.Identity.Enabled, cfg.Identity.FirmwareDowngrade = identity, fwCheck
			s := newSim(t, cfg, twoGroups, 2, nil)
			rec := &statusRecorder{}
			s.eng.PublishStatus(rec, 0, 0, 0)
			want := report{}
			for m, step := range steps {
				s.run(m, m+1, func(_, i int, _ *simDevice, r *ingest.Row) bool {
					if i == 0 {
						r.Cert, r.Firmware = step.cert, step.fw
					}
					return true
				})
				if step.cert != "" {
					want.cert = step.cert
				}
				if step.fw != "" {
					want.fw = step.fw
				}
				if st := rec.devices[s.devices[0].name]; st.Cert != want.cert || st.Firmware != want.fw {
					t.Fatalf("identity %v, firmware check %v, minute %d: status shows %q, %q, want %q, %q", identity, fwCheck, m,
						st.Cert, st.Firmware, want.cert, want.fw)
				}
			}
			st := rec.devices[s.devices[0].name]
			runs := append(slices.Clone(st.EarlierFirmware), FirmwareRun{st.Firmware, st.FirmwareSince})
			wantRuns := []struct {
				fw     string
				minute int
			}{{"2.9.4", 0}, {"2.10.0", 2}, {"2.9.4", 4}, {"2.10.1", 6}}
			ok := len(runs) == len(wantRuns)
			for k := 0; ok && k < len(runs); k++ {
				ok = runs[k].Version == wantRuns[k].fw && runs[k].Since.Truncate(time.Minute).Equal(at(wantRuns[k].minute))
			}
			if !ok {
				t.Fatalf("identity %v, firmware check %v: firmware history %+v, want %+v", identity, fwCheck, runs, wantRuns)
			}
			downgrades := 0
			for _, a := range s.sink.alerts {
				if a.Detector == DetectorIdentity {
					downgrades++
				}
			}
			if want := map[bool]int{true: 1}[identity && fwCheck]; downgrades != want { // raised at 2.10.0 -> 2.9.4, not cleared yet
				t.Fatalf("identity %v, firmware check %v: %d identity alerts, want %d", identity, fwCheck, downgrades, want)
			}
		}
	}
}

// TestFirmwareHistoryBounded: a device that keeps changing firmware keeps
// its latest firmwareHistory versions.
func TestFirmwareHistoryBounded(t *testing.T) {
	s := newSim(t, DefaultConfig(), twoGroups, 1, nil)
	rec := &statusRecorder{}
	s.eng.PublishStatus(rec, 0, 0, 0)
	s.run(0, 20, func(m, i int, _ *simDevice, r *ingest.Row) bool {
		r.Firmware = "1." + strconv.Itoa(m) // an upgrade each minute
		return true
	})
	st := rec.devices[s.devices[0].name]
	if len(st.EarlierFirmware) != firmwareHistory-1 || st.EarlierFirmware[0].Version != "1.12" || st.Firmware != "1.19" {
		t.Fatalf("after 20 firmware versions: %q and before it %+v", st.Firmware, st.EarlierFirmware)
	}
}

// TestPublishRolloutStatus: the console sees a group's rollout with its
// progress, its state once abort_recommended was sent, and per KPI the
// latest windows' cohort comparison, bounded to RolloutHistory windows.
func TestPublishRolloutStatus(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Rollout.Enabled = true
	s := newSim(t, cfg, []string{"site/hw"}, 20, nil)
	rec := &statusRecorder{}
	s.eng.PublishStatus(rec, 0, 0, 0)
	s.run(0, 1000, badUpgrade)
	ro, ok := rec.rollout["site/hw"]
	if !ok {
		t.Fatalf("no rollout published: %v", rec.rollout)
	}
	if ro.From != "2.9.4" || ro.To != "3.0.0" || ro.Upgraded != 10 || ro.NotUpgraded != 10 || ro.UpgradedLastHour != 0 ||
		ro.State != RolloutAborted || ro.ThresholdPercent != 20 || !ro.FirstUpgrade.Truncate(time.Minute).Equal(at(200)) || !ro.LastUpgrade.Truncate(time.Minute).Equal(at(209)) {
		ro.KPIs = nil
		t.Fatalf("rollout %+v", ro)
	}
	if len(ro.KPIs) != 2 || ro.KPIs[0].Metric != "auth_failures" || ro.KPIs[0].Bad != DirectionUp {
		t.Fatalf("KPIs %+v", ro.KPIs)
	}
	auth := ro.KPIs[0].Windows
	if len(auth) != RolloutHistory {
		t.Fatalf("%d auth_failures windows, want the latest %d", len(auth), RolloutHistory)
	}
	last := auth[len(auth)-1]
	if !last.End.Equal(at(990)) || last.Upgraded != 10 || last.NotUpgraded != 10 || !last.Breach || !(last.UpgradedMean >= 1) ||
		last.NotUpgradedMean >= 1 || !(last.EffectPercent >= 20) || !(last.PValue < 0.01) || !(last.UpgradedMedian >= 1) {
		t.Fatalf("latest auth_failures window %+v", last)
	}
	if msgs := ro.KPIs[1].Windows; len(msgs) != RolloutHistory || msgs[len(msgs)-1].Breach {
		t.Fatalf("msgs_sent windows: %d, the latest %+v", len(msgs), msgs[len(msgs)-1])
	}
}

// slowStatus is a StatusSink whose publications take cost a device on
// the engine's clock, and which says applying them costs apply a device on
// a goroutine of its own (StatusCoster).
type slowStatus struct {
	statusRecorder
	now         *time.Time
	cost, apply time.Duration
}

func (s *slowStatus) StatusCost() time.Duration { return s.apply }

func (s *slowStatus) PublishStatus(u *StatusUpdate) {
	s.statusRecorder.PublishStatus(u)
	*s.now = s.now.Add(s.cost * time.Duration(len(u.Devices)))
}

// TestPublishStatusSpacing: publications that take long come less often
// than their interval, so that they take at most 1/statusSpacing of the
// engine's time, counting what the sink says applying them costs it;
// quick ones come every interval; Flush publishes anyway.
func TestPublishStatusSpacing(t *testing.T) {
	for _, c := range []struct {
		cost, apply, every time.Duration // a publication's and the sink's a device (4 every batch), the clock between batches
		want               int           // publications in 60 batches
	}{
		{cost: 5 * time.Millisecond, every: 100 * time.Millisecond, want: 6},  // 20 ms: one every 1 s, 10 batches
		{cost: time.Millisecond / 4, every: 100 * time.Millisecond, want: 30}, // 1 ms: every interval, 200 ms
		{cost: 0, every: 100 * time.Millisecond, want: 30},
		{apply: 5 * time.Millisecond, every: 100 * time.Millisecond, want: 6},                              // as the first, on the sink's goroutine
		{cost: time.Millisecond / 8, apply: time.Millisecond / 8, every: 100 * time.Millisecond, want: 30}, // 1 ms in all
	} {
		s := newSim(t, DefaultConfig(), twoGroups, 2, nil)
		now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
		sink := &slowStatus{now: &now, cost: c.cost, apply: c.apply}
		s.eng.PublishStatus(sink, 200*time.Millisecond, 0, 0)
		s.eng.status.clock = func() time.Time { return now }
		for m := range 60 {
			s.run(m, m+1, nil)
			now = now.Add(c.every)
		}
		if sink.updates != c.want {
			t.Errorf("publications taking %v and %v applying, a batch every %v: %d publications in 60 batches, want %d", c.cost, c.apply, c.every, sink.updates, c.want)
		}
		s.eng.Flush(t.Context())
		if sink.updates != c.want+1 {
			t.Errorf("Flush did not publish: %d", sink.updates)
		}
	}
}
