package fleetgen

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"time"
)

// Rollout variants: what the new firmware does to the devices that run it.
const (
	// RolloutBad: upgraded devices fail to authenticate 1-4 times a
	// report, send 40% fewer messages, and the first two of the first
	// wave go silent after their first report on the new version.
	RolloutBad = "bad"
	// RolloutHealthy: upgraded devices send 10% more messages and bytes
	// (a benign change of behavior the release notes announce).
	RolloutHealthy = "healthy"
)

// RolloutConfig describes a staged firmware rollout through one group
// (plant-a/s7-1500 of the fleet): a clean learning day, then on the
// second day three waves that bring 10 %, 50 % and 100 % of the group to
// the hardware's Next firmware.
type RolloutConfig struct {
	Seed    uint64
	Start   time.Time     // first report, UTC; the first day is clean
	Step    time.Duration // report interval
	Devices int           // devices in the group, 20 to 999
	Variant string        // RolloutBad or RolloutHealthy
	// WaveGap is the time between waves; the first starts at 08:00 of the
	// second day, and the data ends a day after the first wave.
	WaveGap time.Duration
}

// DefaultRolloutConfig is a group of 100 devices reporting every minute,
// waves two hours apart.
func DefaultRolloutConfig(variant string) RolloutConfig {
	return RolloutConfig{Seed: 1, Start: DefaultConfig().Start, Step: time.Minute, Devices: 100, Variant: variant, WaveGap: 2 * time.Hour}
}

// RolloutWave is one wave: from Start on, devices with index below
// Devices (the first 10 %, 50 %, 100 % of the group) upgrade, one per
// step in index order from the previous wave's last.
type RolloutWave struct {
	Start   time.Time
	Devices int
}

// Waves returns c's waves.
func (c RolloutConfig) Waves() []RolloutWave {
	first := c.Start.Add(32 * time.Hour) // 08:00 on the second day
	return []RolloutWave{
		{Start: first, Devices: c.Devices / 10},
		{Start: first.Add(c.WaveGap), Devices: c.Devices / 2},
		{Start: first.Add(2 * c.WaveGap), Devices: c.Devices},
	}
}

// UpgradeTime returns when device j (index within the group) reports the
// new firmware first: its wave's start, one device a step after another,
// plus one step of reboot in which it does not report.
func (c RolloutConfig) UpgradeTime(j int) time.Time {
	prev := 0
	for _, w := range c.Waves() {
		if j < w.Devices {
			return w.Start.Add(time.Duration(j-prev+1) * c.Step)
		}
		prev = w.Devices
	}
	panic("BUG: device index beyond the group")
}

// SilentDevices returns the devices that go silent after upgrading in the
// bad variant.
func (c RolloutConfig) SilentDevices() []string {
	if c.Variant != RolloutBad {
		return nil
	}
	return []string{DeviceName(Sites[0], 0), DeviceName(Sites[0], 1)}
}

// GroupName is the group key of the rollout's group.
func (c RolloutConfig) GroupName() string { return Sites[0].Name + "/" + Hardware[0].Name }

// From and To are the versions the rollout moves between.
func (c RolloutConfig) From() string { return Hardware[0].Firmware }
func (c RolloutConfig) To() string   { return Hardware[0].Next }

func (c RolloutConfig) validate() error {
	switch {
	case c.Variant != RolloutBad && c.Variant != RolloutHealthy:
		return fmt.Errorf("cannot generate rollout variant %q: use %s or %s", c.Variant, RolloutBad, RolloutHealthy)
	case c.Step < time.Second:
		return fmt.Errorf("cannot generate with step %s: use at least 1s", c.Step)
	case c.Devices < 20 || c.Devices > 999:
		return fmt.Errorf("cannot generate a group of %d devices: use 20 to 999 (the first wave needs at least 2)", c.Devices)
	case c.WaveGap <= time.Duration(c.Devices/2)*c.Step || 2*c.WaveGap > 12*time.Hour:
		return fmt.Errorf("cannot space waves %s apart: a wave upgrades one device a step, so use more than %d steps, and at most 6h", c.WaveGap, c.Devices/2)
	}
	return nil
}

// GenerateRollout writes c's telemetry as JSON lines in event-time order
// to w, in the fleet sample's format (Generate).
func GenerateRollout(c RolloutConfig, w io.Writer) (Stats, error) {
	if err := c.validate(); err != nil {
		return Stats{}, err
	}
	devs := Fleet(Config{Seed: c.Seed, Step: c.Step, DevicesPerGroup: c.Devices})[:c.Devices]
	upAt := make([]time.Time, len(devs))
	rngs := make([]*rand2, len(devs))
	for j, d := range devs {
		upAt[j] = c.UpgradeTime(j)
		rngs[j] = &rand2{series: deviceRand(c.Seed, d.Name, "series"), rollout: deviceRand(c.Seed, d.Name, "rollout")}
	}
	silent := map[string]bool{}
	for _, name := range c.SilentDevices() {
		silent[name] = true
	}
	var rows []timedLine
	st := Stats{Devices: len(devs)}
	end := c.Waves()[0].Start.Add(24 * time.Hour)
	for t0 := c.Start; t0.Before(end); t0 = t0.Add(c.Step) {
		rows = rows[:0]
		for j, d := range devs {
			r := rngs[j]
			rep := sample(d, r.series, t0, Config{Step: c.Step})
			ts := t0.Add(d.offset).Add(time.Duration(r.series.Uint64()%1000) * time.Millisecond)
			switch {
			case t0.Before(upAt[j].Add(-c.Step)):
			case t0.Before(upAt[j]):
				continue // rebooting into the new firmware
			case silent[d.Name] && t0.After(upAt[j]):
				continue // bricked after its first report on the new version
			default:
				rep.fw = d.HW.Next
				upgradedReport(&rep, c.Variant, r)
			}
			rows = append(rows, timedLine{ts.UnixNano(), appendLine(nil, d, ts, &rep)})
		}
		if err := writeStep(w, rows, &st); err != nil {
			return st, err
		}
	}
	return st, nil
}

// rand2 are a device's random streams: its normal series, and the
// rollout's own, so the variants differ only in what the upgrade does.
type rand2 struct{ series, rollout *rand.Rand }

func upgradedReport(rep *report, variant string, r *rand2) {
	switch variant {
	case RolloutBad:
		rep.authFail = float64(1 + r.rollout.Uint64()%4)
		rep.msgs = math.Round(rep.msgs * 0.6)
		rep.bytesOut = math.Round(rep.bytesOut * 0.6)
	case RolloutHealthy:
		rep.msgs = math.Round(rep.msgs * 1.1)
		rep.bytesOut = math.Round(rep.bytesOut * 1.1)
	}
}
