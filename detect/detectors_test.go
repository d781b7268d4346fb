package detect

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/ingest"
)

var twoGroups = []string{"plant-a/s7-1500", "plant-b/s7-1200"}

func TestCleanFleetStaysQuiet(t *testing.T) {
	s := newSim(t, DefaultConfig(), twoGroups, 20, nil)
	s.run(0, 12*60, nil)
	if n := len(s.sink.alerts); n != 0 {
		t.Fatalf("clean fleet raised %d alerts:\n%s", n, s.sink.dump())
	}
	st := s.eng.Stats()
	if st.Rows != 40*12*60 || st.UnclockedRows+st.FutureRows+st.LateRows != 0 {
		t.Fatalf("rows %d, unclocked %d, future %d, late %d; want %d, 0, 0, 0", st.Rows, st.UnclockedRows, st.FutureRows, st.LateRows, 40*12*60)
	}
	if st.NotLearned > st.Rows/1000 {
		t.Fatalf("%d of %d clean rows not learned", st.NotLearned, st.Rows)
	}
}

func TestSelfDeviationFiresAndClears(t *testing.T) {
	s := newSim(t, DefaultConfig(), twoGroups, 20, nil)
	s.warm(180)
	victim := s.devices[3].name
	s.run(180, 240, func(m, i int, d *simDevice, r *ingest.Row) bool {
		if i == 3 && m >= 190 && m < 200 {
			r.Metrics[0].Value *= 12
		}
		return true
	})
	self := s.sink.find(DetectorSelf, "bytes_out", victim, StateAlarm)
	if len(self) != 1 {
		t.Fatalf("want one self alarm on %s, got %d:\n%s", victim, len(self), s.sink.dump())
	}
	a := self[0]
	// 12× is far beyond twice the threshold (immediate_factor): the spike
	// alarms on its first datapoint.
	if !a.AlarmStart.Equal(a.EventTime) || a.AlarmStart.Before(at(190)) || a.EventTime.After(at(191)) {
		t.Fatalf("alarm start %v event %v, want both in minute 190", a.AlarmStart, a.EventTime)
	}
	if !strings.Contains(a.Message, "; spike: score ") {
		t.Fatalf("message %q does not say the spike test fired", a.Message)
	}
	if a.ID != AlertID(DetectorSelf, victim, "bytes_out", a.AlarmStart) {
		t.Fatalf("alert id %s is not AlertID of its alarm", a.ID)
	}
	if a.Score < 6 || a.Observed < 10*a.Expected || a.Upper >= a.Observed || a.SampleCount < 30 || a.Baseline == 0 {
		t.Fatalf("unexplained alert: %+v", a)
	}
	if !strings.Contains(a.Message, victim+" (plant-a/s7-1500) bytes_out") || !strings.Contains(a.Message, "× its usual") || !strings.Contains(a.Message, "of peers") {
		t.Fatalf("message %q does not explain", a.Message)
	}
	if a.Severity < 5 {
		t.Fatalf("12× deviation has severity %d", a.Severity)
	}
	cl := s.sink.find(DetectorSelf, "bytes_out", victim, StateCleared)
	if len(cl) != 1 || cl[0].EventTime.Before(at(202)) || cl[0].ID == a.ID {
		t.Fatalf("want one clear after 3 clean datapoints with its own id, got %+v", cl)
	}
	// The peer detector sees it too; nobody else alarms.
	if len(s.sink.find(DetectorPeer, "bytes_out", victim, StateAlarm)) != 1 {
		t.Fatalf("peer alarm missing:\n%s", s.sink.dump())
	}
	for _, a := range s.sink.alerts {
		if a.Device != victim {
			t.Fatalf("clean device alerted: %+v", a)
		}
	}
}

func TestSelfDeviationDirection(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Peer.Enabled = false
	cfg.Metrics = map[string]MetricConfig{"msgs_sent": {Direction: DirectionUp}, "cpu": {Direction: DirectionDown}}
	s := newSim(t, cfg, twoGroups[:1], 20, nil)
	s.warm(180)
	s.run(180, 200, func(m, i int, d *simDevice, r *ingest.Row) bool {
		if i == 1 && m >= 185 {
			r.Metrics[1].Value = 0 // msgs_sent drops: direction up ignores it
		}
		if i == 2 && m >= 185 {
			r.Metrics[2].Value = 95 // cpu rises: direction down ignores it
		}
		if i == 4 && m >= 185 {
			r.Metrics[2].Value = 0 // cpu drops: alarm
		}
		return true
	})
	if n := len(s.sink.find("", "", s.devices[1].name, "")) + len(s.sink.find("", "", s.devices[2].name, "")); n != 0 {
		t.Fatalf("deviation against the configured direction alerted:\n%s", s.sink.dump())
	}
	down := s.sink.find(DetectorSelf, "cpu", s.devices[4].name, StateAlarm)
	if len(down) != 1 || !strings.Contains(down[0].Message, "down from its usual") {
		t.Fatalf("cpu drop: %v\n%s", down, s.sink.dump())
	}
}

func TestConstantMetricSpreadFloor(t *testing.T) {
	// auth_failures is always 0, so its std is 0: one failure must not be
	// an infinite score (min_spread 1 → score 1), ten are an alarm.
	cfg := DefaultConfig()
	cfg.Peer.Enabled = false
	s := newSim(t, cfg, twoGroups[:1], 20, nil)
	s.warm(180)
	s.run(180, 190, func(m, i int, d *simDevice, r *ingest.Row) bool {
		if i == 1 {
			r.Metrics[4].Value = 1
		}
		if i == 2 && m >= 185 {
			r.Metrics[4].Value = 10
		}
		return true
	})
	if n := len(s.sink.find("", "", s.devices[1].name, "")); n != 0 {
		t.Fatalf("one auth failure alerted:\n%s", s.sink.dump())
	}
	a := s.sink.find(DetectorSelf, "auth_failures", s.devices[2].name, StateAlarm)
	if len(a) != 1 || a[0].Technique != TechniqueBruteForce {
		t.Fatalf("ten auth failures: %v\n%s", a, s.sink.dump())
	}
}

func TestPeerOutlier(t *testing.T) {
	// Device 5 has always run at 90% cpu: its own baseline calls that
	// normal, its 50 peers at 30% do not.
	cfg := DefaultConfig()
	cfg.Metrics = map[string]MetricConfig{"cpu": {Statistic: "p95"}}
	s := newSim(t, cfg, twoGroups[:1], 50, nil)
	s.devices[5].cpu = 90
	s.run(0, 180, nil)
	p := s.sink.find(DetectorPeer, "cpu", s.devices[5].name, StateAlarm)
	if len(p) != 1 {
		t.Fatalf("want one peer alarm, got:\n%s", s.sink.dump())
	}
	if !strings.Contains(p[0].Message, "above the p95 of its peers") || p[0].Upper > 40 || p[0].Expected > 35 {
		t.Fatalf("peer alarm does not explain: %+v", p[0])
	}
	if n := len(s.sink.find(DetectorSelf, "", "", "")); n != 0 {
		t.Fatalf("self deviation fired on a steady device:\n%s", s.sink.dump())
	}
	if n := len(s.sink.alerts); n != 1 {
		t.Fatalf("want exactly the one peer alarm, got:\n%s", s.sink.dump())
	}
}

func TestPeerPercentilesWithinTheirBucket(t *testing.T) {
	// A temperature of 78.4 ± 0.1 fits in one or two of the quantile
	// sketch's buckets (1 °C wide at 78), so the group's median and p99.9
	// are the same number: a reading of 78.6 is beyond the p99.9 read from
	// the sketch, but not beyond what the sketch can tell apart.
	s := newSim(t, DefaultConfig(), twoGroups[:1], 20, nil)
	s.run(0, 300, func(m, i int, d *simDevice, r *ingest.Row) bool {
		r.Metrics[3].Value = 78.4 + 0.1*s.rng.NormFloat64()
		return true
	})
	if n := len(s.sink.find(DetectorPeer, "", "", "")); n != 0 {
		t.Fatalf("peer alarms on readings inside the sketch's resolution:\n%s", s.sink.dump())
	}
	// A device 3 °C below them all is still an outlier.
	s.run(300, 320, func(m, i int, d *simDevice, r *ingest.Row) bool {
		r.Metrics[3].Value = 78.4 + 0.1*s.rng.NormFloat64()
		if i == 3 {
			r.Metrics[3].Value -= 3
		}
		return true
	})
	if n := len(s.sink.find(DetectorPeer, "temp", s.devices[3].name, StateAlarm)); n != 1 {
		t.Fatalf("a device 3 °C below its peers: want one peer alarm, got:\n%s", s.sink.dump())
	}
}

func TestNothingJudgedWhileLearning(t *testing.T) {
	s := newSim(t, DefaultConfig(), twoGroups[:1], 20, nil)
	s.run(0, 30, func(m, i int, d *simDevice, r *ingest.Row) bool {
		if i == 0 && m > 20 {
			r.Metrics[0].Value *= 50
		}
		return true
	})
	if n := len(s.sink.alerts); n != 0 {
		t.Fatalf("a learning group was judged:\n%s", s.sink.dump())
	}
}

func fptr(v float64) *float64 { return &v }

func TestRuleDurationSum(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Self.Enabled, cfg.Peer.Enabled = false, false
	cfg.Rules = []RuleConfig{{
		Name: "auth-bruteforce", Metric: "auth_failures", ComparisonOperator: OpGreaterThan, Value: fptr(10),
		Duration: 5 * 60e9, ToClear: 2,
	}}
	s := newSim(t, cfg, twoGroups[:1], 10, nil)
	s.run(0, 60, func(m, i int, d *simDevice, r *ingest.Row) bool {
		if i == 0 && m >= 20 && m < 30 {
			r.Metrics[4].Value = 4 // 4 a minute: 12 by the third minute of a 5-minute window
		}
		if i == 1 && m >= 20 && m < 30 {
			r.Metrics[4].Value = 2 // 10 per window: not greater than 10
		}
		return true
	})
	a := s.sink.find(DetectorRule, "auth-bruteforce", s.devices[0].name, StateAlarm)
	if len(a) != 1 {
		t.Fatalf("want one rule alarm:\n%s", s.sink.dump())
	}
	if a[0].EventTime.Before(at(22)) || a[0].EventTime.After(at(23)) || a[0].Observed != 12 || a[0].Technique != TechniqueBruteForce {
		t.Fatalf("alarm should be raised early, in the window's third minute, with sum 12: %+v", a[0])
	}
	if !strings.Contains(a[0].Message, "auth_failures (sum over 5m0s) 12 > 10") {
		t.Fatalf("message %q", a[0].Message)
	}
	cl := s.sink.find(DetectorRule, "auth-bruteforce", s.devices[0].name, StateCleared)
	// windows [30,35) and [35,40) are clean; the second closes at minute 40
	if len(cl) != 1 || cl[0].EventTime.Before(at(40)) || cl[0].EventTime.After(at(41)) {
		t.Fatalf("want a clear when the second clean window closes (minute 40): %v", cl)
	}
	if n := len(s.sink.find("", "", s.devices[1].name, "")); n != 0 {
		t.Fatalf("sum equal to the value alarmed:\n%s", s.sink.dump())
	}
}

func TestRuleConsecutiveDatapoints(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Self.Enabled, cfg.Peer.Enabled = false, false
	cfg.Rules = []RuleConfig{{Name: "hot", Metric: "temp", ComparisonOperator: OpGreaterThanEquals, Value: fptr(80), ToAlarm: 3, ToClear: 2}}
	s := newSim(t, cfg, twoGroups[:1], 10, nil)
	spikes := map[int]bool{10: true, 11: true, 20: true, 21: true, 22: true, 24: true, 25: true, 26: true}
	s.run(0, 40, func(m, i int, d *simDevice, r *ingest.Row) bool {
		if i == 0 && spikes[m] {
			r.Metrics[3].Value = 80
		}
		return true
	})
	// 10,11: two breaches, no alarm. 20-22: alarm at 22. 23: one clean,
	// 24: breach again (no clear), 27-28 clean: clear at 28.
	al := s.sink.find(DetectorRule, "hot", "", StateAlarm)
	cl := s.sink.find(DetectorRule, "hot", "", StateCleared)
	if len(al) != 1 || len(cl) != 1 {
		t.Fatalf("want one alarm and one clear:\n%s", s.sink.dump())
	}
	if !al[0].AlarmStart.Equal(at(20).Add(5e9)) && (al[0].AlarmStart.Before(at(20)) || al[0].AlarmStart.After(at(21))) {
		t.Fatalf("alarm start %v, want minute 20", al[0].AlarmStart)
	}
	if al[0].EventTime.Before(at(22)) || al[0].EventTime.After(at(23)) {
		t.Fatalf("alarm at %v, want minute 22", al[0].EventTime)
	}
	if cl[0].EventTime.Before(at(28)) || cl[0].EventTime.After(at(29)) || !cl[0].AlarmStart.Equal(al[0].AlarmStart) {
		t.Fatalf("clear at %v (start %v), want minute 28 with the alarm's start", cl[0].EventTime, cl[0].AlarmStart)
	}
}

func TestRuleLessThan(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Self.Enabled, cfg.Peer.Enabled = false, false
	cfg.Rules = []RuleConfig{{Name: "too-quiet", Metric: "msgs_sent", ComparisonOperator: OpLessThan, Value: fptr(30), Duration: 2 * 60e9, Aggregation: "avg"}}
	s := newSim(t, cfg, twoGroups[:1], 5, nil)
	s.run(0, 20, func(m, i int, d *simDevice, r *ingest.Row) bool {
		if i == 2 && m >= 10 && m < 12 {
			r.Metrics[1].Value = 5
		}
		return true
	})
	a := s.sink.find(DetectorRule, "too-quiet", s.devices[2].name, StateAlarm)
	// avg is judged when the window [10,12) closes, on the report of minute 12
	if len(a) != 1 || a[0].Observed != 5 || a[0].EventTime.Before(at(12)) {
		t.Fatalf("want the avg window judged at its close:\n%s", s.sink.dump())
	}
}

func TestSetRules(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Self.Enabled, cfg.Peer.Enabled = false, false
	cfg.Rules = []RuleConfig{
		{Name: "allowed-ports", Metric: "listening_tcp_ports", ComparisonOperator: OpNotInPortSet, Ports: []int{22, 502}},
		{Name: "no-test-net", Metric: "remote_addrs", ComparisonOperator: OpInCIDRSet, CIDRs: []string{"203.0.113.0/24"}},
		{Name: "other-plant-only", Metric: "remote_addrs", ComparisonOperator: OpNotInCIDRSet, CIDRs: []string{"10.0.0.0/8"}, Groups: []string{"plant-b/*"}},
	}
	s := newSim(t, cfg, twoGroups, 5, nil)
	p22, p502, p23 := s.stable("22"), s.stable("502"), s.stable("23")
	ok, bad := s.stable("10.1.2.3"), s.stable("203.0.113.9")
	s.run(0, 20, func(m, i int, d *simDevice, r *ingest.Row) bool {
		r.Sets = append(r.Sets, ingest.SetMember{Set: "listening_tcp_ports", Value: p22}, ingest.SetMember{Set: "listening_tcp_ports", Value: p502})
		if i == 1 && m >= 10 && m < 13 {
			r.Sets = append(r.Sets, ingest.SetMember{Set: "listening_tcp_ports", Value: p23})
		}
		r.Sets = append(r.Sets, ingest.SetMember{Set: "remote_addrs", Value: ok})
		if i == 2 && m == 15 {
			r.Sets = append(r.Sets, ingest.SetMember{Set: "remote_addrs", Value: bad})
		}
		return true
	})
	port := s.sink.find(DetectorRule, "allowed-ports", "", StateAlarm)
	if len(port) != 1 || port[0].Device != s.devices[1].name || port[0].ObservedText != "23" || !strings.Contains(port[0].Message, "has 23, which is not in the allowed set [22 502]") {
		t.Fatalf("port rule:\n%s", s.sink.dump())
	}
	if cl := s.sink.find(DetectorRule, "allowed-ports", "", StateCleared); len(cl) != 1 || cl[0].EventTime.Before(at(13)) {
		t.Fatalf("port rule should clear on the first compliant report (minute 13):\n%s", s.sink.dump())
	}
	cidr := s.sink.find(DetectorRule, "no-test-net", "", StateAlarm)
	if len(cidr) != 1 || cidr[0].Device != s.devices[2].name || cidr[0].ObservedText != "203.0.113.9" {
		t.Fatalf("cidr rule:\n%s", s.sink.dump())
	}
	// plant-a devices are not judged by the plant-b rule, and plant-b
	// devices (indices 5-9) only talk to 10/8.
	if n := len(s.sink.find(DetectorRule, "other-plant-only", "", "")); n != 0 {
		t.Fatalf("group-scoped rule fired outside its group:\n%s", s.sink.dump())
	}
}

func TestSilence(t *testing.T) {
	cfg := DefaultConfig()
	s := newSim(t, cfg, twoGroups, 10, nil)
	s.warm(120)
	victim := s.devices[4]
	s.run(120, 200, func(m, i int, d *simDevice, r *ingest.Row) bool {
		if i == 4 && m >= 130 && m < 160 {
			return false // device 4 is silent for 30 minutes
		}
		if d.group == twoGroups[1] && m >= 140 && m < 170 {
			return false // all of plant-b stops: no one keeps reporting, no silence alarm
		}
		return true
	})
	al := s.sink.find(DetectorSilence, behaviorSilence, "", StateAlarm)
	if len(al) != 1 || al[0].Device != victim.name {
		t.Fatalf("want one silence alarm on %s:\n%s", victim.name, s.sink.dump())
	}
	// last report in minute 129; five missed one-minute reports → ~minute 134
	if al[0].EventTime.Before(at(134)) || al[0].EventTime.After(at(135)) || al[0].Technique != TechniqueDenialOfView {
		t.Fatalf("silence at %v: %+v", al[0].EventTime, al[0])
	}
	if !strings.Contains(al[0].Message, "stopped reporting") || al[0].Expected < 55 || al[0].Expected > 65 {
		t.Fatalf("silence alert does not explain: %+v", al[0])
	}
	cl := s.sink.find(DetectorSilence, behaviorSilence, victim.name, StateCleared)
	if len(cl) != 1 || cl[0].EventTime.Before(at(160)) {
		t.Fatalf("silence should clear when the device reports again:\n%s", s.sink.dump())
	}
}

func TestIdentity(t *testing.T) {
	cfg := DefaultConfig()
	s := newSim(t, cfg, twoGroups[:1], 16, nil)
	s.run(0, 60, func(m, i int, d *simDevice, r *ingest.Row) bool {
		r.SrcIP = "10.0.0." + itoa(i)
		r.ClientID = d.name
		r.Cert = "sha256:" + d.name
		r.Firmware = "2.9.4"
		switch {
		case i == 7 && m >= 30 && m%2 == 1:
			r.SrcIP = "10.9.9.9" // reports alternate between two hosts
		case i == 8 && m >= 30:
			r.SrcIP = "10.0.1.8" // one address change (DHCP): fine
		case i == 9 && m >= 30 && m < 34:
			r.ClientID = "intruder" // a second client id interleaved
			if m%2 == 0 {
				r.ClientID = d.name
			}
		case i == 10 && m >= 40:
			r.Cert = "sha256:" + s.devices[11].name // device 10 uses device 11's certificate
		case i == 12 && m >= 45:
			r.Firmware = "2.7.1" // downgrade
		case i == 13 && m >= 45:
			r.Firmware = "2.10.0" // upgrade: 2.10 is newer than 2.9
		}
		return true
	})
	check := func(behavior string, dev int, technique string) []Alert {
		t.Helper()
		a := s.sink.find(DetectorIdentity, behavior, s.devices[dev].name, StateAlarm)
		if len(a) != 1 || a[0].Technique != technique {
			t.Fatalf("%s on %s: got %v\n%s", behavior, s.devices[dev].name, a, s.sink.dump())
		}
		return a
	}
	src := check(behaviorMultiSrcIP, 7, TechniqueSpoofReporting)
	if !strings.Contains(src[0].ObservedText, "10.9.9.9") || !strings.Contains(src[0].ObservedText, "10.0.0.7") {
		t.Fatalf("src alert text %q", src[0].ObservedText)
	}
	check(behaviorMultiClientID, 9, TechniqueValidAccounts)
	check(behaviorSharedCert, 10, TechniqueValidAccounts)
	check(behaviorSharedCert, 11, TechniqueValidAccounts)
	fw := check(behaviorFirmwareDowngrade, 12, TechniqueSystemFirmware)
	if fw[0].ObservedText != "2.9.4 -> 2.7.1" || !strings.Contains(fw[0].Message, "firmware went back from 2.9.4 to 2.7.1") {
		t.Fatalf("downgrade alert %+v", fw[0])
	}
	for _, quiet := range []int{8, 13, 0} {
		if a := s.sink.find(DetectorIdentity, "", s.devices[quiet].name, ""); len(a) != 0 {
			t.Fatalf("identity alert on clean device %d:\n%s", quiet, s.sink.dump())
		}
	}
	// the downgrade is one event: cleared after datapoints_to_clear reports
	if cl := s.sink.find(DetectorIdentity, behaviorFirmwareDowngrade, s.devices[12].name, StateCleared); len(cl) != 1 {
		t.Fatalf("downgrade should clear:\n%s", s.sink.dump())
	}
}

func itoa(i int) string { return formatValue("", float64(i)) }

func TestFleetReportingFraction(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Silence.Enabled = false
	s := newSim(t, cfg, twoGroups, 20, nil)
	s.warm(120)
	s.run(120, 180, func(m, i int, d *simDevice, r *ingest.Row) bool {
		// half of plant-a stops for 20 minutes
		return !(d.group == twoGroups[0] && i%2 == 0 && m >= 140 && m < 160)
	})
	fr := s.sink.find(DetectorFleet, behaviorReportingFraction, twoGroups[0], StateAlarm)
	if len(fr) != 1 {
		t.Fatalf("want one reporting_fraction alarm:\n%s", s.sink.dump())
	}
	// period 5m of one-minute windows: the fifth broken window ends at 145;
	// the first began at 140
	if !fr[0].EventTime.Equal(at(145)) || !fr[0].AlarmStart.Equal(at(140)) || fr[0].Observed != 0.5 {
		t.Fatalf("fraction alarm %+v", fr[0])
	}
	if !strings.Contains(fr[0].Message, "10 of 20 active devices reported") {
		t.Fatalf("message %q", fr[0].Message)
	}
	rate := s.sink.find(DetectorFleet, behaviorMessageRate, twoGroups[0], StateAlarm)
	if len(rate) != 1 || rate[0].Observed != 10 {
		t.Fatalf("want one message_rate alarm at 10 messages:\n%s", s.sink.dump())
	}
	if cl := s.sink.find(DetectorFleet, behaviorReportingFraction, twoGroups[0], StateCleared); len(cl) != 1 || cl[0].EventTime.Before(at(162)) {
		t.Fatalf("fraction alarm should clear after 3 good windows:\n%s", s.sink.dump())
	}
	if n := len(s.sink.find("", "", twoGroups[1], "")); n != 0 {
		t.Fatalf("plant-b alerted:\n%s", s.sink.dump())
	}
}

func TestRelearnAfterLastingChange(t *testing.T) {
	for _, relearn := range []time.Duration{0, time.Hour} {
		cfg := DefaultConfig()
		cfg.Peer.Enabled = false
		cfg.Alarm.RelearnAfter = relearn
		s := newSim(t, cfg, twoGroups[:1], 10, nil)
		s.warm(180)
		s.run(180, 600, func(m, i int, d *simDevice, r *ingest.Row) bool {
			if i == 2 && m >= 200 {
				r.Metrics[0].Value *= 5 // a lasting new normal
			}
			return true
		})
		dev := s.devices[2].name
		if n := len(s.sink.find(DetectorSelf, "bytes_out", dev, StateAlarm)); n != 1 {
			t.Fatalf("relearn %v: %d alarms:\n%s", relearn, n, s.sink.dump())
		}
		cl := s.sink.find(DetectorSelf, "bytes_out", dev, StateCleared)
		if relearn == 0 && len(cl) != 0 {
			t.Fatalf("without relearning the alarm cleared:\n%s", s.sink.dump())
		}
		if relearn > 0 && (len(cl) != 1 || cl[0].EventTime.Before(at(260))) {
			t.Fatalf("with relearn_after 1h the alarm should clear after the device is learned again:\n%s", s.sink.dump())
		}
	}
}

func TestSelfUsesSeasonalProfile(t *testing.T) {
	// Reports every 10 minutes for 8 days; bytes_out is high from 08:00 to
	// 18:00 and low at night. On day 8 one device sends its day-time volume
	// at 03:00: normal for the day, an outlier for that hour of the week.
	cfg := DefaultConfig()
	cfg.Peer.Enabled = false
	s := newSim(t, cfg, twoGroups[:1], 10, nil)
	bcfg := testBaselineConfig()
	bcfg.MinDuration = 24 * time.Hour // judge nothing in the first day
	bcfg.SeasonalMinHistory = 7 * 24 * time.Hour
	s.store = baseline.NewStore(bcfg, s.reg)
	eng, err := NewEngine(cfg, Deps{Registry: s.reg, Baseline: s.store, Sink: s.sink})
	if err != nil {
		t.Fatal(err)
	}
	s.eng = eng
	s.batchMinutes = 60
	const day = 24 * 60
	s.run(0, 8*day+6*60, func(m, i int, d *simDevice, r *ingest.Row) bool {
		if m%10 != 0 {
			return false
		}
		if h := (m % day) / 60; h < 8 || h >= 18 {
			r.Metrics[0].Value /= 10
		}
		if i == 6 && m >= 8*day+3*60 && m < 8*day+3*60+40 {
			r.Metrics[0].Value *= 10 // day-time volume at 03:00
		}
		return true
	})
	var a []Alert
	for _, x := range s.sink.find(DetectorSelf, "bytes_out", s.devices[6].name, StateAlarm) {
		if !x.EventTime.Before(at(8*day + 3*60)) {
			a = append(a, x)
		}
	}
	if len(a) != 1 || a[0].EventTime.After(at(8*day+3*60+20)) {
		t.Fatalf("want the night-time burst judged against the hour's profile:\n%s", s.sink.dump())
	}
	if a[0].Expected > 20_000 {
		t.Fatalf("expected %v is not the night-time level", a[0].Expected)
	}
	// The day/night rhythm must not alarm anyone.
	for _, x := range s.sink.find("", "", "", StateAlarm) {
		if x.Device != s.devices[6].name {
			t.Fatalf("day/night rhythm alarmed a clean device:\n%s", s.sink.dump())
		}
	}
}

func TestSetRulesOtherOperators(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Self.Enabled, cfg.Peer.Enabled = false, false
	cfg.Rules = []RuleConfig{
		{Name: "no-telnet", Metric: "listening_tcp_ports", ComparisonOperator: OpInPortSet, Ports: []int{23}},
		{Name: "plant-only", Metric: "remote_addrs", ComparisonOperator: OpNotInCIDRSet, CIDRs: []string{"10.0.0.0/8", "fd00::/8"}},
	}
	s := newSim(t, cfg, twoGroups[:1], 4, nil)
	p502, p23, junk := s.stable("502"), s.stable("23"), s.stable("port-x")
	local, local6, remote := s.stable("10.1.1.1"), s.stable("fd00::1"), s.stable("8.8.8.8")
	s.run(0, 10, func(m, i int, d *simDevice, r *ingest.Row) bool {
		r.Sets = append(r.Sets, ingest.SetMember{Set: "listening_tcp_ports", Value: p502},
			ingest.SetMember{Set: "remote_addrs", Value: local}, ingest.SetMember{Set: "remote_addrs", Value: local6})
		if i == 0 && m == 5 {
			r.Sets = append(r.Sets, ingest.SetMember{Set: "listening_tcp_ports", Value: p23})
		}
		if i == 1 && m == 6 {
			r.Sets = append(r.Sets, ingest.SetMember{Set: "remote_addrs", Value: remote})
		}
		if i == 2 && m == 7 {
			r.Sets = append(r.Sets, ingest.SetMember{Set: "listening_tcp_ports", Value: junk})
		}
		return true
	})
	got := map[string]string{}
	for _, a := range s.sink.find(DetectorRule, "", "", StateAlarm) {
		got[a.Behavior] = a.Device + " " + a.ObservedText
	}
	want := map[string]string{"no-telnet": s.devices[0].name + " 23", "plant-only": s.devices[1].name + " 8.8.8.8"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v\n%s", got, want, s.sink.dump())
	}
	if st := s.eng.Stats(); st.BadSetMembers != 1 {
		t.Fatalf("bad set members %d, want 1 (port-x)", st.BadSetMembers)
	}
}

func TestNewDeviceStartsFromGroup(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Peer.Enabled = false
	s := newSim(t, cfg, twoGroups[:1], 20, nil)
	s.warm(180)
	// Two devices join late: one behaves like its peers, one sends ten
	// times their volume from its first report.
	s.devices = append(s.devices,
		simDevice{name: "late-normal", group: twoGroups[0], second: 11, bytes: 90_000, cpu: 30},
		simDevice{name: "late-loud", group: twoGroups[0], second: 13, bytes: 900_000, cpu: 30})
	s.run(180, 200, nil)
	if n := len(s.sink.find("", "", "late-normal", "")); n != 0 {
		t.Fatalf("a new device like its peers alarmed:\n%s", s.sink.dump())
	}
	a := s.sink.find(DetectorSelf, "bytes_out", "late-loud", StateAlarm)
	if len(a) != 1 || a[0].AlarmStart.After(at(181)) || a[0].Expected > 120_000 {
		t.Fatalf("a new device should be judged against its group's baseline from its first report:\n%s", s.sink.dump())
	}
}

// A clear is explained against the side its alarm was raised on, wherever
// the value that cleared it lies: a high alarm that clears with a value
// just below the median quotes the upper statistic, not p0.1.
func TestClearMessageFollowsAlarmDirection(t *testing.T) {
	s := newSim(t, DefaultConfig(), twoGroups, 20, nil)
	s.warm(180)
	high, low := s.devices[3].name, s.devices[5].name
	s.run(180, 230, func(m, i int, d *simDevice, r *ingest.Row) bool {
		switch {
		case i == 3 && m >= 190 && m < 200:
			r.Metrics[0].Value = d.bytes * 12
		case i == 3 && m >= 200:
			r.Metrics[0].Value = d.bytes * 0.9 // below its usual and the median
		case i == 5 && m >= 190 && m < 200:
			r.Metrics[0].Value = d.bytes * 0.02
		case i == 5 && m >= 200:
			r.Metrics[0].Value = d.bytes * 1.1 // above its usual and the median
		}
		return true
	})
	for _, tc := range []struct {
		device, detector, want, not string
	}{
		{high, DetectorPeer, "below the p99.9 of its peers", "p0.1"},
		{high, DetectorSelf, "(p99.9 of peers", "p0.1"},
		{low, DetectorPeer, "above the p0.1 of its peers", "p99.9"},
		{low, DetectorSelf, "(p0.1 of peers", "p99.9"},
	} {
		if len(s.sink.find(tc.detector, "bytes_out", tc.device, StateAlarm)) != 1 {
			t.Fatalf("want one %s alarm on %s:\n%s", tc.detector, tc.device, s.sink.dump())
		}
		cl := s.sink.find(tc.detector, "bytes_out", tc.device, StateCleared)
		if len(cl) != 1 {
			t.Fatalf("want one %s clear on %s:\n%s", tc.detector, tc.device, s.sink.dump())
		}
		if m := cl[0].Message; !strings.HasPrefix(m, "cleared: "+tc.device) || !strings.Contains(m, tc.want) || strings.Contains(m, tc.not) {
			t.Errorf("%s clear of %s reads %q; want %q and no %q", tc.detector, tc.device, m, tc.want, tc.not)
		}
	}
}

func TestSelfFollowsDailyPatternFromDayThree(t *testing.T) {
	// bytes_out swings ±60 % over the day, highest at noon. Before the
	// group has a profile, its self band holds the whole swing, so a device
	// falling to the night's level at noon is inside it; from the third day
	// the hour-of-day profile (baseline daily_min_history) expects the
	// day's level at noon, and the drop alarms. The peer tests are off:
	// this is the device against its own past.
	cfg := DefaultConfig()
	cfg.Peer.Enabled = false
	s := newSim(t, cfg, twoGroups[:1], 10, nil)
	s.run(0, 3*24*60, func(m, i int, d *simDevice, r *ingest.Row) bool {
		r.Metrics[0].Value *= 1 + 0.6*math.Sin(2*math.Pi*float64(m-6*60)/(24*60))
		if i == 0 && m >= 2*24*60+12*60 && m < 2*24*60+14*60 {
			r.Metrics[0].Value = 0.4 * d.bytes // noon of day three: the night's level
		}
		return true
	})
	var others []Alert
	for _, a := range s.sink.alerts {
		if a.Device != s.devices[0].name {
			others = append(others, a)
		}
	}
	if len(others) != 0 {
		t.Fatalf("%d alerts on clean devices:\n%s", len(others), s.sink.dump())
	}
	a := s.sink.find(DetectorSelf, "bytes_out", s.devices[0].name, StateAlarm)
	if len(a) == 0 || a[0].EventTime.Before(at(2*24*60+12*60)) || a[0].EventTime.After(at(2*24*60+12*60+10)) {
		t.Fatalf("want a self alarm on bytes_out within 10 minutes of the noon drop on day three:\n%s", s.sink.dump())
	}
}

func TestSpreadFloorIsTheMetricsResolution(t *testing.T) {
	// A flow meter reads in ten-thousandths (32.0035, 31.9966, …, σ 0.4).
	// When it reads exactly 29, that value is still a reading in
	// ten-thousandths: the spread's floor is the metric's resolution, not
	// the 1 that "29" alone suggests, so three readings 7.5σ low alarm.
	rng := rand.New(rand.NewPCG(41, 42))
	s := newSensor(t, DefaultConfig(), time.Second)
	rows := noisy(rng, 600, []float64{32, 30}, []float64{0.4, 1})
	for _, r := range rows {
		r[0] = math.Round(r[0]*1e4) / 1e4
	}
	s.feed(rows...)
	if len(s.sink.alerts) != 0 {
		t.Fatalf("clean readings alerted:\n%s", s.sink.dump())
	}
	s.feed([]float64{29, 30}, []float64{29, 30.5}, []float64{29, 29.7})
	if a := s.sink.find(DetectorSelf, "pressure", "bench-1", StateAlarm); len(a) != 1 {
		t.Fatalf("three readings of exactly 29 (7.5σ below 32): want one self alarm, got:\n%s", s.sink.dump())
	}
}
