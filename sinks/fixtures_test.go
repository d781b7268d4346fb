package sinks

import (
	"math"
	"time"

	"github.com/vigil-ot/vigil/detect"
)

// hostileName is a device name that tries to end the event and forge a new
// one in every format at once.
const hostileName = "x|y\nCEF:0|evil|evil|1|1|forged|10|src=6.6.6.6\r\n<13>1 - - - - - LEEF:2.0|evil|\t sev=10 \"},{\"device\":\"forged\\=\u2028"

func fixtureAlerts() []detect.Alert {
	t0 := time.Date(2026, 11, 21, 17, 30, 5, 123456789, time.UTC)
	start := t0.Add(-90 * time.Second)
	telemetry := detect.Alert{
		EventTime: t0, ProcessingTime: t0, AlarmStart: start, State: detect.StateAlarm,
		Device: "plc-07", Group: "plant-a/s7-1500/fw2.9", Criticality: "high",
		Detector: detect.DetectorSelf, Behavior: "bytes_out",
		Observed: 18250.5, Expected: 1200, Lower: 800, Upper: 1600, Score: 14.25,
		Severity: 8, SampleCount: 20160, Baseline: 42, Technique: "T0882",
		Message: "plc-07 sends 15x its usual bytes_out", Partition: 3, Offset: 991234,
	}
	telemetry.ID = detect.AlertID(telemetry.Detector, telemetry.Device, telemetry.Behavior, start)
	network := detect.Alert{
		EventTime: t0.Add(time.Second), ProcessingTime: t0.Add(time.Second), AlarmStart: t0.Add(time.Second),
		State: detect.StateAlarm, Device: "hmi-2", Group: "plant-a/hmi", Criticality: "medium",
		Detector: detect.DetectorNovelty, Behavior: "modbus_write",
		Observed: math.NaN(), ObservedText: "fc=16 unit=1 addr=40001", Expected: math.NaN(),
		Lower: math.Inf(-1), Upper: math.Inf(1), Score: math.Inf(1),
		Severity: 9, SampleCount: 0, Baseline: 42, Technique: "T0836",
		Message: "new Modbus write from hmi-2 to plc-07",
		SrcIP:   "10.1.2.3", DstIP: "10.1.2.7", SrcPort: 50123, DstPort: 502,
		Transport: "tcp", Protocol: "modbus", SrcMAC: "00:1b:1b:aa:bb:01", DstMAC: "00:1b:1b:aa:bb:07",
	}
	network.ID = detect.AlertID(network.Detector, network.Device, network.Behavior, network.AlarmStart)
	cleared := telemetry
	cleared.State = detect.StateCleared
	cleared.EventTime = t0.Add(10 * time.Minute)
	cleared.ProcessingTime = cleared.EventTime
	cleared.Observed = 1210
	cleared.Score = 0.1
	cleared.Severity = 0
	cleared.Message = ""
	hostile := detect.Alert{
		ID: "0123456789abcdef01234567", EventTime: t0, ProcessingTime: t0, AlarmStart: t0,
		State: detect.StateAlarm, Device: hostileName, Group: hostileName, Criticality: "low=1",
		Detector: detect.DetectorRule, Behavior: "name|with=specials\\",
		Observed: 1e-9, Expected: 1e22, Lower: -3, Upper: 3, Score: 2.5,
		Severity: 12, Technique: "T0000\n", Message: "device " + hostileName + " \xff\xfe invalid utf8",
		SrcIP: "10.0.0.1\nsrc=1.1.1.1", Transport: "udp", Protocol: "mqtt", ObservedText: hostileName,
	}
	rollout := detect.Alert{
		EventTime: t0, ProcessingTime: t0, AlarmStart: start, State: detect.StateAlarm,
		Device: "plant-a/s7-1500", Group: "plant-a/s7-1500", Detector: detect.DetectorRollout, Behavior: detect.BehaviorKPIRegression,
		Observed: 32.93, ObservedText: "msgs_sent", Expected: 58.5, Lower: math.NaN(), Upper: 20, Score: -42.1,
		Severity: 7,
		Message:  "rollout 2.9.4 -> 3.0.1 in plant-a/s7-1500: msgs_sent -42% on the 8 upgraded devices against the 90 not upgraded",
		Rollout:  &detect.RolloutInfo{From: "2.9.4", To: "3.0.1", KPI: "msgs_sent", EffectPercent: -42.1, PValue: 1.8e-06, Upgraded: 8, NotUpgraded: 90},
	}
	rollout.ID = detect.AlertID(rollout.Detector, rollout.Device, rollout.Behavior+":msgs_sent:3.0.1", start)
	return []detect.Alert{telemetry, network, cleared, hostile, rollout}
}

func fixtureQuarantine() []detect.QuarantineEvent {
	t0 := time.Date(2026, 11, 21, 17, 31, 0, 0, time.UTC)
	a := fixtureAlerts()
	return []detect.QuarantineEvent{
		{
			ID: "q-" + a[0].ID, Time: t0, Action: detect.ActionQuarantine, Mode: detect.ModeAutomatic,
			Device: "plc-07", Group: "plant-a/s7-1500/fw2.9", TargetGroup: "quarantine-plant-a",
			Reasons: []string{a[0].ID, a[1].ID}, Severity: 8, Expiry: t0.Add(4 * time.Hour),
			Message: "plc-07 quarantined: bytes_out 15x baseline",
		},
		{
			ID: "q-hostile", Time: t0, Action: detect.ActionRecommend, Mode: detect.ModeApprovalRequired,
			Device: hostileName, Group: hostileName, TargetGroup: "q|x\ny",
			Reasons: []string{"r1", "r2\nr3"}, Severity: -1, Message: hostileName,
		},
	}
}
