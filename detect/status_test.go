package detect

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/ingest"
)

// statusRecorder is a StatusSink that keeps copies of what it is sent.
type statusRecorder struct {
	updates int
	devices map[string]DeviceStatus // latest of each device
	points  []StatusPoint
	groups  []GroupStatus
	rollout map[string]RolloutStatus // latest of each group, its windows copied
}

func (r *statusRecorder) PublishStatus(u *StatusUpdate) {
	r.updates++
	if r.devices == nil {
		r.devices = map[string]DeviceStatus{}
	}
	for _, d := range u.Devices {
		r.devices[d.Device] = d
	}
	r.points = append(r.points, u.Points...)
	r.groups = append(r.groups[:0], u.Groups...)
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

// TestPublishStatus: the console sees every judged value with its band,
// each changed device's alarms and quarantine episode, and the groups'
// learning state; a device's alarm and recommendation show while they last.
func TestPublishStatus(t *testing.T) {
	cfg := quarantineConfig()
	cfg.Quarantine.Mode = ModeApprovalRequired
	cfg.Self.Enabled = true
	s := newSim(t, cfg, twoGroups, 3, nil)
	rec := &statusRecorder{}
	s.eng.PublishStatus(rec, 0, true) // every batch
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
	if want := 90 * 6 * 5; len(rec.points) != want {
		t.Fatalf("%d points, want %d (90 minutes × 6 devices × 5 metrics)", len(rec.points), want)
	}
	last := rec.points[len(rec.points)-5] // the last row's bytes_out
	if s.eng.metrics[last.Metric].name != "bytes_out" {
		t.Fatalf("points out of order: %+v", last)
	}
	if math.IsNaN(float64(last.Expected)) || !(last.Lower < last.Expected && last.Expected < last.Upper) || last.Samples < 60 {
		t.Fatalf("a protected device's point has no band: %+v", last)
	}
	if first := rec.points[0]; !math.IsNaN(float64(first.Expected)) {
		t.Fatalf("the first point has a band before anything was learned: %+v", first)
	}
	dev := s.devices[0].name
	st := rec.devices[dev]
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

// TestPublishStatusInterval: with an interval, batches in between publish
// nothing, and Flush publishes what is pending.
func TestPublishStatusInterval(t *testing.T) {
	s := newSim(t, DefaultConfig(), twoGroups, 2, nil)
	rec := &statusRecorder{}
	s.eng.PublishStatus(rec, time.Hour, true)
	s.run(0, 10, nil)
	if rec.updates != 1 || len(rec.points) != 4*5 {
		t.Fatalf("%d updates, %d points: want only the first batch's", rec.updates, len(rec.points))
	}
	s.eng.Flush(t.Context())
	if rec.updates != 2 || len(rec.points) != 10*4*5 || len(rec.devices) != 4 {
		t.Fatalf("after Flush: %d updates, %d points, %d devices", rec.updates, len(rec.points), len(rec.devices))
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
	s.eng.PublishStatus(rec, 0, false)
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
