package fleetgen

import (
	"bufio"
	"bytes"
	"encoding/json"
	"slices"
	"testing"
	"time"
)

// TestGenerateRolloutWaves decodes both variants with encoding/json and
// checks the waves: each device reports the old firmware until its
// upgrade, skips one report, then reports the new one; 10 %, 50 % and
// 100 % of the group run it after each wave; the bad variant's upgraded
// devices fail to authenticate and two go silent, the healthy variant's
// send more, and the variants agree on everything before the upgrade.
func TestGenerateRolloutWaves(t *testing.T) {
	before := map[string][]string{} // each variant's lines before the first wave
	for _, v := range []string{RolloutBad, RolloutHealthy} {
		c := DefaultRolloutConfig(v)
		c.Devices, c.WaveGap = 20, 30*time.Minute
		var buf bytes.Buffer
		if _, err := GenerateRollout(c, &buf); err != nil {
			t.Fatal(err)
		}
		type rec struct {
			Device  string             `json:"device"`
			TS      time.Time          `json:"ts"`
			Attrs   map[string]string  `json:"attrs"`
			Metrics map[string]float64 `json:"metrics"`
		}
		index := map[string]int{}
		for j, d := range Fleet(Config{Seed: c.Seed, Step: c.Step, DevicesPerGroup: c.Devices})[:c.Devices] {
			index[d.Name] = j
		}
		silent := map[string]bool{}
		for _, d := range c.SilentDevices() {
			silent[d] = true
		}
		after := map[string]int{} // reports on the new firmware
		upgradedBy := make([]map[string]bool, len(c.Waves()))
		for i := range upgradedBy {
			upgradedBy[i] = map[string]bool{}
		}
		var last time.Time
		sc := bufio.NewScanner(&buf)
		for sc.Scan() {
			var r rec
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			if r.TS.Before(last) {
				t.Fatalf("%s: out of order at %v", v, r.TS)
			}
			last = r.TS
			up := c.UpgradeTime(index[r.Device])
			step := r.TS.Truncate(c.Step)
			newFW := r.Attrs["fw"] == c.To()
			switch {
			case step.Before(up.Add(-c.Step)) && r.Attrs["fw"] != c.From():
				t.Fatalf("%s: %s reports %s before its upgrade at %v", v, r.Device, r.Attrs["fw"], up)
			case step.Equal(up.Add(-c.Step)):
				t.Fatalf("%s: %s reports while rebooting at %v", v, r.Device, r.TS)
			case !step.Before(up) && !newFW:
				t.Fatalf("%s: %s still on %s after its upgrade", v, r.Device, r.Attrs["fw"])
			}
			if newFW {
				after[r.Device]++
				for w, wave := range c.Waves() {
					if r.TS.Before(wave.Start.Add(c.WaveGap)) && w < len(c.Waves())-1 || w == len(c.Waves())-1 {
						upgradedBy[w][r.Device] = true
					}
				}
				if v == RolloutBad && r.Metrics["auth_failures"] < 1 {
					t.Fatalf("bad: %s upgraded without auth failures", r.Device)
				}
			}
			if step.Before(c.Waves()[0].Start) {
				before[v] = append(before[v], sc.Text())
			}
		}
		for w, wave := range c.Waves() {
			if len(upgradedBy[w]) != wave.Devices {
				t.Errorf("%s: %d devices on %s by wave %d, want %d", v, len(upgradedBy[w]), c.To(), w+1, wave.Devices)
			}
		}
		for d, n := range after {
			if silent[d] != (n == 1) {
				t.Errorf("%s: %s reported %d times on the new firmware (silent: %t)", v, d, n, silent[d])
			}
		}
		if v == RolloutBad && len(silent) != 2 {
			t.Errorf("bad: %d silent devices, want 2", len(silent))
		}
	}
	if len(before[RolloutBad]) == 0 || !slices.Equal(before[RolloutBad], before[RolloutHealthy]) {
		t.Fatal("the variants differ before the rollout")
	}
}
