package console

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/sinks"
)

// RolloutSummary is a rollout in GET /api/v1/rollouts.
type RolloutSummary struct {
	Group            string    `json:"group"`
	From             string    `json:"from_version"`
	To               string    `json:"to_version"`
	Upgraded         int       `json:"upgraded"`     // devices on to_version
	NotUpgraded      int       `json:"not_upgraded"` // devices still on from_version
	UpgradedLastHour int       `json:"upgraded_last_hour"`
	Silent           int       `json:"silent"`   // upgraded devices silent for silent_after
	Progress         float64   `json:"progress"` // 0 to 1: upgraded of upgraded and not upgraded
	FirstUpgrade     time.Time `json:"first_upgrade"`
	LastUpgrade      time.Time `json:"last_upgrade"`
	// State is in_progress, regressed (alarmed, with action alarm),
	// abort_recommended or healthy.
	State string `json:"state"`
	// LastAlert is the group's newest rollout alert the console keeps,
	// in the alert schema, or null.
	LastAlert json.RawMessage `json:"last_alert"`
}

// RolloutStory is GET /api/v1/rollouts/{group}.
type RolloutStory struct {
	RolloutSummary
	ThresholdPercent float64      `json:"threshold_percent"`
	KPIs             []RolloutKPI `json:"kpis"`
}

// RolloutKPI is one KPI's cohort comparison over the latest windows.
type RolloutKPI struct {
	Metric  string          `json:"metric"`
	Bad     string          `json:"bad"`     // up or down: the direction of a regression
	Latest  *RolloutWindow  `json:"latest"`  // the newest window compared, or null
	Windows []RolloutWindow `json:"windows"` // oldest first
}

// RolloutWindow is one window's comparison of the cohorts: each one's
// mean and median of its devices' means per report, the effect in percent
// of the not-upgraded mean, the one-sided Mann-Whitney p-value and the
// cohort sizes; breach when it regressed beyond the threshold,
// significantly.
type RolloutWindow struct {
	End               time.Time `json:"end"`
	UpgradedMean      *float64  `json:"upgraded_mean"`
	NotUpgradedMean   *float64  `json:"not_upgraded_mean"`
	UpgradedMedian    *float64  `json:"upgraded_median"`
	NotUpgradedMedian *float64  `json:"not_upgraded_median"`
	EffectPercent     *float64  `json:"effect_percent"`
	PValue            *float64  `json:"p_value"`
	Upgraded          int       `json:"upgraded"`
	NotUpgraded       int       `json:"not_upgraded"`
	Breach            bool      `json:"breach"`
}

// rolloutOrder puts the rollouts that need a decision first.
var rolloutOrder = map[string]int{detect.RolloutAborted: 0, detect.RolloutRegressed: 1, detect.RolloutInProgress: 2, detect.RolloutHealthy: 3}

func (c *Console) handleRollouts(w http.ResponseWriter, r *http.Request, _ string) {
	c.readLock()
	defer c.mu.RUnlock()
	out := []RolloutSummary{}
	for _, ro := range c.rollouts {
		out = append(out, c.rolloutSummary(ro))
	}
	slices.SortFunc(out, func(a, b RolloutSummary) int {
		if d := rolloutOrder[a.State] - rolloutOrder[b.State]; d != 0 {
			return d
		}
		return strings.Compare(a.Group, b.Group)
	})
	writeJSON(w, http.StatusOK, map[string]any{"rollouts": out})
}

func (c *Console) handleRollout(w http.ResponseWriter, r *http.Request, _ string) {
	c.readLock()
	defer c.mu.RUnlock()
	group := r.PathValue("group")
	ro, ok := c.rollouts[group]
	if !ok {
		writeError(w, http.StatusNotFound, "no rollout in group "+strconv.Quote(group))
		return
	}
	s := RolloutStory{RolloutSummary: c.rolloutSummary(ro), ThresholdPercent: ro.ThresholdPercent, KPIs: []RolloutKPI{}}
	for _, k := range ro.KPIs {
		kpi := RolloutKPI{Metric: k.Metric, Bad: k.Bad, Windows: make([]RolloutWindow, len(k.Windows))}
		for i, win := range k.Windows {
			kpi.Windows[i] = RolloutWindow{End: win.End, UpgradedMean: num(win.UpgradedMean), NotUpgradedMean: num(win.NotUpgradedMean),
				UpgradedMedian: num(win.UpgradedMedian), NotUpgradedMedian: num(win.NotUpgradedMedian),
				EffectPercent: num(win.EffectPercent), PValue: num(win.PValue), Upgraded: win.Upgraded, NotUpgraded: win.NotUpgraded, Breach: win.Breach}
		}
		if n := len(kpi.Windows); n > 0 {
			kpi.Latest = &kpi.Windows[n-1]
		}
		s.KPIs = append(s.KPIs, kpi)
	}
	writeJSON(w, http.StatusOK, s)
}

func (c *Console) rolloutSummary(ro *detect.RolloutStatus) RolloutSummary {
	s := RolloutSummary{Group: ro.Group, From: ro.From, To: ro.To, Upgraded: ro.Upgraded, NotUpgraded: ro.NotUpgraded,
		UpgradedLastHour: ro.UpgradedLastHour, Silent: ro.Silent, FirstUpgrade: ro.FirstUpgrade, LastUpgrade: ro.LastUpgrade, State: ro.State}
	if n := ro.Upgraded + ro.NotUpgraded; n > 0 {
		s.Progress = float64(ro.Upgraded) / float64(n)
	}
	c.eachAlert(func(a *detect.Alert) bool {
		if a.Detector == detect.DetectorRollout && a.Group == ro.Group {
			s.LastAlert = sinks.AppendAlertJSON(nil, a)
			return false
		}
		return true
	})
	return s
}
