package console

import (
	"math"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/detect"
)

// TestRolloutsAPI: the rollouts the engine published are listed, the one
// to abort first, with its progress and its newest rollout alert; a
// rollout's page has per KPI its windows, oldest first, with the latest
// apart and a p-value that was not computed as null; a later update
// replaces a group's rollout.
func TestRolloutsAPI(t *testing.T) {
	c, assets := testFleet(3)
	tee := c.Attach(&memSink{}, assets)
	win := func(m int, up, notUp float64, breach bool) detect.RolloutWindow {
		return detect.RolloutWindow{End: epoch.Add(time.Duration(m) * 15 * time.Minute), UpgradedMean: up, NotUpgradedMean: notUp,
			UpgradedMedian: up, NotUpgradedMedian: notUp, EffectPercent: 100 * (up - notUp) / notUp, PValue: 0.001, Upgraded: 10, NotUpgraded: 90, Breach: breach}
	}
	bad := detect.RolloutStatus{Group: "plant-b/s7-1500", From: "2.9.4", To: "3.0.0", Upgraded: 10, NotUpgraded: 90, UpgradedLastHour: 4, Silent: 2,
		FirstUpgrade: epoch, LastUpgrade: epoch.Add(9 * time.Minute), State: detect.RolloutAborted, ThresholdPercent: 20,
		KPIs: []detect.RolloutKPIStatus{
			{RolloutKPI: detect.RolloutKPI{Metric: "auth_failures", Bad: detect.DirectionUp}, Windows: []detect.RolloutWindow{win(1, 1, 1, false), win(2, 3, 1, true)}},
			{RolloutKPI: detect.RolloutKPI{Metric: "msgs_sent", Bad: detect.DirectionDown}}}}
	bad.KPIs[0].Windows[0].PValue = math.NaN()
	good := detect.RolloutStatus{Group: "plant-a/s7-1500", From: "2.9.4", To: "3.0.0", Upgraded: 3, NotUpgraded: 1, State: detect.RolloutInProgress}
	c.PublishStatus(&detect.StatusUpdate{Rollouts: []detect.RolloutStatus{good, bad}})
	tee.Write(t.Context(), &detect.Output{Alerts: []detect.Alert{
		{ID: "r1", Detector: detect.DetectorRollout, Behavior: detect.BehaviorKPIRegression, Device: bad.Group, Group: bad.Group, State: detect.StateAlarm, EventTime: epoch},
		{ID: "r2", Detector: detect.DetectorRollout, Behavior: detect.BehaviorAbortRecommended, Device: bad.Group, Group: bad.Group, State: detect.StateAlarm, EventTime: epoch},
		{ID: "x", Detector: "self", Behavior: "cpu", Device: "plc-00001", Group: bad.Group, State: detect.StateAlarm, EventTime: epoch}}})
	h := c.Handler(nil)

	code, body := do(t, h, "GET", "/api/v1/rollouts", "")
	list, _ := body["rollouts"].([]any)
	if code != 200 || len(list) != 2 {
		t.Fatalf("%d %v", code, body)
	}
	first, second := list[0].(map[string]any), list[1].(map[string]any)
	if first["group"] != bad.Group || first["state"] != "abort_recommended" || first["progress"] != 0.1 || first["from_version"] != "2.9.4" ||
		first["to_version"] != "3.0.0" || first["upgraded_last_hour"] != 4.0 || first["silent"] != 2.0 {
		t.Fatalf("the rollout to abort, first: %v", first)
	}
	if last, _ := first["last_alert"].(map[string]any); last["id"] != "r2" || last["behavior"] != "abort_recommended" {
		t.Fatalf("its last alert: %v", first["last_alert"])
	}
	if second["group"] != good.Group || second["progress"] != 0.75 || second["last_alert"] != nil {
		t.Fatalf("the rollout in progress: %v", second)
	}

	code, story := do(t, h, "GET", "/api/v1/rollouts/plant-b/s7-1500", "")
	kpis, _ := story["kpis"].([]any)
	if code != 200 || story["threshold_percent"] != 20.0 || len(kpis) != 2 {
		t.Fatalf("%d %v", code, story)
	}
	auth := kpis[0].(map[string]any)
	windows := auth["windows"].([]any)
	latest := auth["latest"].(map[string]any)
	if auth["metric"] != "auth_failures" || auth["bad"] != "up" || len(windows) != 2 || latest["breach"] != true ||
		latest["upgraded_mean"] != 3.0 || latest["not_upgraded_mean"] != 1.0 || latest["effect_percent"] != 200.0 || latest["upgraded"] != 10.0 ||
		windows[0].(map[string]any)["p_value"] != nil || latest["end"] != "2026-11-03T12:30:00Z" {
		t.Fatalf("auth_failures: %v", auth)
	}
	if msgs := kpis[1].(map[string]any); msgs["latest"] != nil || len(msgs["windows"].([]any)) != 0 {
		t.Fatalf("a KPI without a window: %v", msgs)
	}

	good.State, good.Upgraded, good.NotUpgraded = detect.RolloutHealthy, 4, 0
	c.PublishStatus(&detect.StatusUpdate{Rollouts: []detect.RolloutStatus{good}})
	if _, s := do(t, h, "GET", "/api/v1/rollouts/plant-a/s7-1500", ""); s["state"] != "healthy" || s["progress"] != 1.0 {
		t.Fatalf("after the update: %v", s)
	}
	if code, _ := do(t, h, "GET", "/api/v1/rollouts/plant-c/s7-1500", ""); code != 404 {
		t.Fatalf("a group without a rollout: %d", code)
	}
}
