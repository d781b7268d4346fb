package detect

import (
	"fmt"
	"math"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ot/vigil/baseline"
)

// Config is the "detect" section of the YAML configuration. Defaults are
// set by DefaultConfig, not by YAML; Validate explains what is wrong and how
// to fix it.
type Config struct {
	// MaxDevices bounds the devices tracked: a new device past it is
	// refused (its rows are counted, neither judged nor learned, and its
	// name is not kept), so a flood of new or forged device names costs
	// no memory. There is no "unlimited": the cap is what keeps such a
	// flood from exhausting memory; raise it for a larger fleet.
	MaxDevices int `yaml:"max_devices"`
	// WhenFull is what a new device past MaxDevices gets: WhenFullRefuse
	// (the default) refuses it as above; WhenFullEvictIdle evicts the
	// device idle the longest (by the event time of its last row) that
	// has no open alarm and no quarantine, and tracks the new one in its
	// place (see evict.go).
	WhenFull string `yaml:"when_full"`

	Network NetworkConfig `yaml:"network"`

	Self     SelfConfig              `yaml:"self"`
	Peer     PeerConfig              `yaml:"peer"`
	Metrics  map[string]MetricConfig `yaml:"metrics"` // per-metric overrides, keyed by metric column name
	Rules    []RuleConfig            `yaml:"rules"`
	Silence  SilenceConfig           `yaml:"silence"`
	Identity IdentityConfig          `yaml:"identity"`
	Fleet    FleetConfig             `yaml:"fleet"`
	Joint    JointConfig             `yaml:"joint"`
	Rollout  RolloutConfig           `yaml:"rollout"`
	Clock    ClockConfig             `yaml:"clock"`

	Alarm       AlarmConfig         `yaml:"alarm"`
	Suppress    []SuppressionConfig `yaml:"suppress"`
	Maintenance []MaintenanceConfig `yaml:"maintenance"`
	RateLimit   RateLimitConfig     `yaml:"rate_limit"`
	Severity    SeverityConfig      `yaml:"severity"`
	Quarantine  QuarantineConfig    `yaml:"quarantine"`
}

// Directions a metric may deviate in.
const (
	DirectionUp   = "up"
	DirectionDown = "down"
	DirectionBoth = "both"
)

// SelfConfig configures the self-deviation detector: a device against its
// own decayed baseline.
type SelfConfig struct {
	Enabled bool `yaml:"enabled"`
	// Threshold is the robust score (deviation over spread) beyond which a
	// datapoint breaches.
	Threshold float64 `yaml:"threshold"`
	// MinSamples is how many samples a device's baseline needs before it
	// judges anything.
	MinSamples int64 `yaml:"min_samples"`
	// The spread is max(std, long_spread_ratio×long-run std, resolution,
	// min_spread_ratio×|mean|, min_spread): floored by the metric's own
	// long-run variability (the std at the longest half-life) and by the
	// resolution of the value judged (the coarsest of 1, 0.1, 0.01, … that
	// it is a multiple of: 1 for a count, 0.01 for a reading with two
	// decimals), so a metric that never varied does not make every small
	// change infinite, whatever its units. min_spread and min_spread_ratio
	// are absolute floors in one metric's units: 0 (the default) is off.
	LongSpreadRatio float64 `yaml:"long_spread_ratio"`
	MinSpread       float64 `yaml:"min_spread"`
	MinSpreadRatio  float64 `yaml:"min_spread_ratio"`
	Direction       string  `yaml:"direction"` // default for metrics without an override
	ToAlarm         int     `yaml:"datapoints_to_alarm"`
	ToClear         int     `yaml:"datapoints_to_clear"`
	// ImmediateFactor: a datapoint at least this many thresholds from the
	// expectation (a spike, not a mild breach) alarms at once instead of
	// waiting for datapoints_to_alarm. 0: off.
	ImmediateFactor float64 `yaml:"immediate_factor"`
	// ShiftThreshold judges level shifts and drift that stay inside the
	// band: an EWMA of the metric's self scores (with weight ShiftLambda,
	// each score clipped at half the threshold so one spike cannot move
	// it far) is compared with that EWMA's own mean and spread, learned on
	// quiet rows; beyond ShiftThreshold of its spread, the self alarm is
	// raised. 0: off.
	ShiftThreshold float64 `yaml:"shift_threshold"`
	ShiftLambda    float64 `yaml:"shift_lambda"`
}

// PeerConfig configures the peer-outlier detector: a device against its
// group's percentiles, with AWS IoT Device Defender statistical-threshold
// semantics (statistic "p99" and operator greater-than: a value above the
// group's p99 breaches).
type PeerConfig struct {
	Enabled bool `yaml:"enabled"`
	// Statistic is the upper percentile for direction up ("p95", "p99",
	// "p99.9"); direction down uses its mirror ("p5", "p1", "p0.1").
	Statistic string `yaml:"statistic"`
	// MinScore is how far beyond the statistic a value must be, in units of
	// the statistic's distance from the median (1 = just beyond it).
	MinScore        float64 `yaml:"min_score"`
	MinGroupSamples int64   `yaml:"min_group_samples"`
	ToAlarm         int     `yaml:"datapoints_to_alarm"`
	ToClear         int     `yaml:"datapoints_to_clear"`
	// Now is the "peers now" test, beside the statistic (peer_now.go).
	Now PeerNowConfig `yaml:"now"`
}

// MetricConfig overrides the detectors' defaults for one metric.
type MetricConfig struct {
	Direction   string  `yaml:"direction"`    // up, down or both
	Threshold   float64 `yaml:"threshold"`    // self threshold; 0: self.threshold
	MinSpread   float64 `yaml:"min_spread"`   // 0: self.min_spread
	Statistic   string  `yaml:"statistic"`    // peer statistic; "": peer.statistic
	DisableSelf bool    `yaml:"disable_self"` // do not judge the metric against the device's own baseline
	DisablePeer bool    `yaml:"disable_peer"` // do not judge the metric against the group
	Technique   string  `yaml:"technique"`    // ATT&CK technique for alerts on this metric
}

// Comparison operators of static rules (AWS IoT Device Defender names).
const (
	OpLessThan          = "less-than"
	OpLessThanEquals    = "less-than-equals"
	OpGreaterThan       = "greater-than"
	OpGreaterThanEquals = "greater-than-equals"
	OpInCIDRSet         = "in-cidr-set"
	OpNotInCIDRSet      = "not-in-cidr-set"
	OpInPortSet         = "in-port-set"
	OpNotInPortSet      = "not-in-port-set"
)

// RuleConfig is one static rule with AWS IoT Device Defender Rules Detect
// semantics.
type RuleConfig struct {
	Name   string `yaml:"name"`   // the behavior name in alerts
	Metric string `yaml:"metric"` // metric column, or set name for set operators
	// ComparisonOperator is one of less-than, less-than-equals,
	// greater-than, greater-than-equals (numeric metrics) or in-cidr-set,
	// not-in-cidr-set, in-port-set, not-in-port-set (sets).
	ComparisonOperator string   `yaml:"comparison_operator"`
	Value              *float64 `yaml:"value"` // numeric operators
	CIDRs              []string `yaml:"cidrs"` // cidr operators
	Ports              []int    `yaml:"ports"` // port operators
	// Duration aggregates the metric over tumbling event-time windows of
	// this length (aligned to the epoch); each window is one datapoint.
	// Zero: every report is a datapoint.
	Duration    time.Duration `yaml:"duration"`
	Aggregation string        `yaml:"aggregation"` // sum (default), avg, min, max, last
	ToAlarm     int           `yaml:"consecutive_datapoints_to_alarm"`
	ToClear     int           `yaml:"consecutive_datapoints_to_clear"`
	Groups      []string      `yaml:"groups"`    // group globs the rule applies to; empty: all
	Severity    int           `yaml:"severity"`  // base severity; 0: severity.base.rule
	Technique   string        `yaml:"technique"` // "": from the ATT&CK table by metric
}

// SilenceConfig configures the silence detector: a device with a regular
// cadence misses missed_reports of its learned report interval while its
// group keeps reporting.
type SilenceConfig struct {
	Enabled       bool          `yaml:"enabled"`
	MissedReports float64       `yaml:"missed_reports"`
	MinReports    int           `yaml:"min_reports"`  // intervals learned before judging
	MinInterval   time.Duration `yaml:"min_interval"` // floor of the learned interval
	Severity      int           `yaml:"severity"`     // 0: severity.base.silence
	// MaxIrregularity: a device whose gaps between reports vary by more
	// than this fraction of its period (the root mean square of
	// ln(gap/period), about the gaps' coefficient of variation) has no
	// cadence to miss and is not judged while it stays so. The default 0.5
	// lies far above a jittery reporter (60 s ± 2 s scores 0.02, one
	// that drops every tenth report about 0.2) and far below traffic
	// without a cadence (Poisson arrivals score about 1.0, a host seen
	// only when it broadcasts more): see silenceState.
	MaxIrregularity float64 `yaml:"max_irregularity"`
	// PartitionIdle: a source partition whose newest event time is this
	// far behind the newest of all partitions no longer holds the
	// watermark back (it has no data: caught up, or its devices stopped).
	// Keep it above kafka.max_event_time_skew.
	PartitionIdle time.Duration `yaml:"partition_idle"`
}

// ClockConfig disciplines the event-time clock: the newest event time of
// the rows accepted so far (see Engine.admitAhead and detect/README).
type ClockConfig struct {
	// MaxSkew: a row further ahead of the clock than this is held back,
	// neither judged nor learned, and moves nothing. If confirm_rows rows
	// of its partition in a row agree on the new time (the stream resumed
	// after a gap), they are judged and the clock moves; otherwise they
	// are dropped (Stats.FutureRows). With a wall clock (a live consumer),
	// a row further ahead of the wall clock than this is rejected however
	// many agree. Keep it above kafka.max_event_time_skew.
	MaxSkew time.Duration `yaml:"max_skew"`
	// MaxLateness: a row further behind its partition's newest event time
	// than this is judged but not learned (Stats.LateRows): a device's
	// buffer replayed after an outage, a backfill.
	MaxLateness time.Duration `yaml:"max_lateness"`
	// ConfirmRows is how many consecutive rows of a partition, within
	// max_skew of each other and from as many devices (when the partition
	// carries that many), move the clock past max_skew; the first rows of
	// a stream set the clock the same way, so a lone record cannot.
	ConfirmRows int `yaml:"confirm_rows"`
}

// maxConfirmRows bounds clock.confirm_rows: the devices of a pending run
// are kept in a fixed array.
const maxConfirmRows = 8

// IdentityConfig configures the identity detector.
type IdentityConfig struct {
	Enabled bool          `yaml:"enabled"`
	Window  time.Duration `yaml:"window"`
	// A device "at once" from several sources: more than max_src_ips
	// distinct source addresses (max_client_ids client ids) within the
	// window and at least two switches between them, so a single DHCP
	// renewal does not count.
	MaxSrcIPs         int  `yaml:"max_src_ips"`
	MaxClientIDs      int  `yaml:"max_client_ids"`
	MaxDevicesPerCert int  `yaml:"max_devices_per_cert"`
	FirmwareDowngrade bool `yaml:"firmware_downgrade"`
	ToClear           int  `yaml:"datapoints_to_clear"`
}

// FleetConfig configures the fleet KPI detector: per group and window, the
// message rate and the fraction of active devices reporting, each judged
// against its own decayed mean and variance of earlier windows.
type FleetConfig struct {
	Enabled        bool          `yaml:"enabled"`
	Window         time.Duration `yaml:"window"`
	Threshold      float64       `yaml:"threshold"`        // robust score beyond which a window breaches
	MinSpreadRatio float64       `yaml:"min_spread_ratio"` // spread floor relative to the mean
	Period         time.Duration `yaml:"period"`           // how long the KPI must stay broken
	ToClear        int           `yaml:"datapoints_to_clear"`
	MinWindows     int           `yaml:"min_windows"` // windows learned before judging
	HalfLife       time.Duration `yaml:"half_life"`   // of the KPI baseline
	ActiveFor      time.Duration `yaml:"active_for"`  // a device counts as active this long after its last report
	MinDevices     int           `yaml:"min_devices"` // groups smaller than this are not judged
}

// AlarmConfig configures what all detectors share.
type AlarmConfig struct {
	// RepeatWindow folds repeats of one (detector, device, behavior) from
	// batch detectors (network) into the first alert of the window.
	RepeatWindow time.Duration `yaml:"repeat_window"`
	// RelearnAfter bounds the poisoning guard: a device that has been in
	// alarm (or breaching) this long is learned again, so a lasting change
	// becomes its new normal and its self alarms clear. 0: never.
	RelearnAfter time.Duration `yaml:"relearn_after"`
}

// SuppressionConfig silences matching alarms. Fields are globs (path.Match
// syntax); empty matches anything. The alarm is still tracked (so the
// device's rows are not learned while in alarm) but not sent.
type SuppressionConfig struct {
	Device   string `yaml:"device"`
	Group    string `yaml:"group"`
	Detector string `yaml:"detector"`
	Behavior string `yaml:"behavior"`
	Until    string `yaml:"until"` // RFC 3339; "": forever
	Reason   string `yaml:"reason"`

	until int64
}

// MaintenanceConfig is a maintenance window during which alarms of the
// matching devices are not sent. Either start and end (RFC 3339), or weekly
// ("sat,sun 02:00-04:00", UTC).
type MaintenanceConfig struct {
	Name   string `yaml:"name"`
	Device string `yaml:"device"` // glob; "": any
	Group  string `yaml:"group"`  // glob; "": any
	Start  string `yaml:"start"`
	End    string `yaml:"end"`
	Weekly string `yaml:"weekly"`

	start, end int64
	days       [7]bool
	from, to   int64 // nanoseconds into the day
}

// RateLimitConfig limits alarms per group with a token bucket on event time:
// burst alarms at once, then one per refill. Alarms beyond it are counted
// and folded into one "group incident" alert per group.
//
// Only the per-metric detectors (self, peer, joint, silence, rules) are
// limited: one cause (a scan, a flood, a plant event) moves many metrics
// of many devices at once, and those alarms storm. The other detectors
// report incidents already folded (a scan, a flood, a new writer, an
// identity misuse): an attack that makes a storm of statistical alarms on
// its victims must not use up the tokens its own scan alarm needs.
type RateLimitConfig struct {
	Enabled bool          `yaml:"enabled"`
	Burst   int           `yaml:"burst"`
	Refill  time.Duration `yaml:"refill"`
}

// SeverityConfig maps scores and criticality to the 0-10 severity:
// base[detector] + score bonus (one per doubling of the score over the
// detector's threshold, at most max_score_bonus) + criticality[criticality].
type SeverityConfig struct {
	Base          map[string]int `yaml:"base"`
	Criticality   map[string]int `yaml:"criticality"` // unknown, low, medium, high, safety-critical
	MaxScoreBonus int            `yaml:"max_score_bonus"`
	// Control and Write replace base.novelty for a newly seen OT function
	// (new_function): Control for the control functions that change what
	// a controller does (operating mode T0858, restart T0816, program
	// download T0843, firmware T0857), Write for writes and any other
	// command (T0855).
	Control int `yaml:"control"`
	Write   int `yaml:"write"`
}

// QuarantineConfig is the quarantine policy.
type QuarantineConfig struct {
	Enabled bool `yaml:"enabled"`
	// Detectors whose alarms at min_severity or above quarantine
	// automatically.
	Detectors   []string `yaml:"detectors"`
	MinSeverity int      `yaml:"min_severity"`
	// Alarms of any detector at recommend_min_severity or above that do not
	// quarantine automatically ask a human (action recommend).
	RecommendMinSeverity int `yaml:"recommend_min_severity"`
	// Mode automatic sends quarantine actions; approval_required turns every
	// one into a recommendation.
	Mode        string        `yaml:"mode"`
	TargetGroup string        `yaml:"target_group"` // {group} and {device} are replaced
	Expiry      time.Duration `yaml:"expiry"`       // 0: none
	// Safety rails: at most max_group_fraction of a group's devices and
	// max_per_minute devices a minute (event time) are quarantined; beyond
	// them the policy recommends and raises one fleet alert.
	MaxGroupFraction float64 `yaml:"max_group_fraction"`
	MaxPerMinute     int     `yaml:"max_per_minute"`
	// ReleaseAfter is how many datapoints (reports) the device must stay
	// without any alarm before a release event.
	ReleaseAfter int `yaml:"release_after_clear_datapoints"`
}

// DefaultMaxDevices is max_devices' default: a million devices, about
// 2 GiB of state at the 2 KiB per device budget (ten metrics), beyond any
// one plant's fleet.
const DefaultMaxDevices = 1_000_000

// The values of when_full.
const (
	WhenFullRefuse    = "refuse"
	WhenFullEvictIdle = "evict_idle"
)

// DefaultConfig returns the defaults of the "detect" section.
func DefaultConfig() Config {
	return Config{
		MaxDevices: DefaultMaxDevices,
		WhenFull:   WhenFullRefuse,
		Network:    DefaultNetworkConfig(),
		Self: SelfConfig{
			Enabled: true, Threshold: 6, MinSamples: 30, LongSpreadRatio: 0.5, ImmediateFactor: 2,
			ShiftThreshold: 4.5, ShiftLambda: 0.1,
			Direction: DirectionBoth, ToAlarm: 2, ToClear: 3,
		},
		Peer: PeerConfig{
			Enabled: true, Statistic: "p99.9", MinScore: 2, MinGroupSamples: 200, ToAlarm: 3, ToClear: 3,
			Now: PeerNowConfig{Enabled: true, Window: 30 * time.Minute, Threshold: 6, MinDevices: 5, MinSpread: 0.5},
		},
		Silence: SilenceConfig{
			Enabled: true, MissedReports: 5, MinReports: 10, MinInterval: time.Second, PartitionIdle: 5 * time.Minute,
			MaxIrregularity: 0.5,
		},
		Identity: IdentityConfig{
			Enabled: true, Window: 10 * time.Minute, MaxSrcIPs: 1, MaxClientIDs: 1,
			MaxDevicesPerCert: 1, FirmwareDowngrade: true, ToClear: 3,
		},
		Fleet: FleetConfig{
			Enabled: true, Window: time.Minute, Threshold: 4, MinSpreadRatio: 0.1,
			Period: 5 * time.Minute, ToClear: 3, MinWindows: 30,
			HalfLife: 6 * time.Hour, ActiveFor: time.Hour, MinDevices: 5,
		},
		Joint:     DefaultJointConfig(),
		Rollout:   DefaultRolloutConfig(),
		Clock:     ClockConfig{MaxSkew: 5 * time.Minute, MaxLateness: time.Hour, ConfirmRows: 2},
		Alarm:     AlarmConfig{RepeatWindow: 10 * time.Minute, RelearnAfter: 24 * time.Hour},
		RateLimit: RateLimitConfig{Enabled: true, Burst: 10, Refill: time.Minute},
		Severity: SeverityConfig{
			Base: map[string]int{
				DetectorSelf: 4, DetectorPeer: 4, DetectorRule: 5, DetectorSilence: 4,
				DetectorIdentity: 6, DetectorFleet: 5, DetectorNovelty: 5, DetectorScan: 6,
				DetectorFlood: 6, DetectorMalformed: 5, DetectorJoint: 4, DetectorMITM: 7, DetectorRollout: 6,
			},
			Criticality: map[string]int{
				"unknown": 0, "low": -1, "medium": 0, "high": 1, "safety-critical": 2,
			},
			MaxScoreBonus: 3,
			Control:       8,
			Write:         7,
		},
		Quarantine: QuarantineConfig{
			Enabled: false, Detectors: []string{DetectorIdentity, DetectorRule}, MinSeverity: 8,
			RecommendMinSeverity: 7, Mode: ModeAutomatic, TargetGroup: "quarantine-{group}",
			Expiry: 24 * time.Hour, MaxGroupFraction: 0.1, MaxPerMinute: 5, ReleaseAfter: 5,
		},
	}
}

// Validate checks c and prepares parsed forms of its times and globs.
func (c *Config) Validate() error {
	if c.MaxDevices <= 0 || c.MaxDevices > math.MaxInt32 {
		return fmt.Errorf("max_devices is %d: set how many devices to track, from 1 to %d, such as %d; past it new devices are refused and counted",
			c.MaxDevices, math.MaxInt32, DefaultMaxDevices)
	}
	if c.WhenFull != WhenFullRefuse && c.WhenFull != WhenFullEvictIdle {
		return fmt.Errorf("when_full is %q: use %s (new devices past max_devices are refused) or %s (the device idle the longest is evicted to make room)",
			c.WhenFull, WhenFullRefuse, WhenFullEvictIdle)
	}
	if err := c.Network.Validate(); err != nil {
		return fmt.Errorf("network: %w", err)
	}
	c.Network.scanHorizon = c.Alarm.RepeatWindow
	if err := c.validateStatistical(); err != nil {
		return err
	}
	seen := make(map[string]bool, len(c.Rules))
	if len(c.Rules) > maxRules {
		return fmt.Errorf("rules: %d rules configured; at most %d are supported: merge rules or drop some", len(c.Rules), maxRules)
	}
	for i := range c.Rules {
		r := &c.Rules[i]
		if err := r.validate(); err != nil {
			return fmt.Errorf("rules[%d] %q: %w", i, r.Name, err)
		}
		if seen[r.Name] {
			return fmt.Errorf("rules[%d]: duplicate rule name %q: give every rule its own name", i, r.Name)
		}
		seen[r.Name] = true
	}
	if err := c.validateTemporal(); err != nil {
		return err
	}
	if err := c.Joint.validate(); err != nil {
		return err
	}
	if err := c.Rollout.validate(); err != nil {
		return err
	}
	for i := range c.Suppress {
		if err := c.Suppress[i].validate(); err != nil {
			return fmt.Errorf("suppress[%d]: %w", i, err)
		}
	}
	for i := range c.Maintenance {
		if err := c.Maintenance[i].validate(); err != nil {
			return fmt.Errorf("maintenance[%d] %q: %w", i, c.Maintenance[i].Name, err)
		}
	}
	if err := c.validateSeverity(); err != nil {
		return err
	}
	return c.Quarantine.validate()
}

func (c *Config) validateStatistical() error {
	s := &c.Self
	if s.Threshold <= 0 {
		return fmt.Errorf("self.threshold is %v: set a positive robust score such as 6", s.Threshold)
	}
	if s.ShiftThreshold < 0 || s.ShiftThreshold > 0 && !(s.ShiftLambda > 0 && s.ShiftLambda <= 1) {
		return fmt.Errorf("self.shift_threshold is %v with shift_lambda %v: use 0 (off), or a positive threshold such as 4.5 with a lambda in (0, 1] such as 0.1", s.ShiftThreshold, s.ShiftLambda)
	}
	if s.ImmediateFactor != 0 && s.ImmediateFactor < 1 {
		return fmt.Errorf("self.immediate_factor is %v: use 0 (off) or a factor of the threshold of at least 1, such as 2", s.ImmediateFactor)
	}
	if s.MinSpread < 0 || s.MinSpreadRatio < 0 || s.LongSpreadRatio < 0 {
		return fmt.Errorf("self.min_spread, self.min_spread_ratio and self.long_spread_ratio must not be negative: use 0 to disable a floor")
	}
	if err := checkDirection("self.direction", s.Direction); err != nil {
		return err
	}
	if s.ToAlarm < 1 || s.ToClear < 1 {
		return fmt.Errorf("self.datapoints_to_alarm and self.datapoints_to_clear must be at least 1")
	}
	p := &c.Peer
	if _, _, err := peerQuantiles(p.Statistic); err != nil {
		return fmt.Errorf("peer.statistic: %w", err)
	}
	if p.MinScore < 1 {
		return fmt.Errorf("peer.min_score is %v: it must be at least 1 (1 means just beyond the statistic)", p.MinScore)
	}
	if p.ToAlarm < 1 || p.ToClear < 1 {
		return fmt.Errorf("peer.datapoints_to_alarm and peer.datapoints_to_clear must be at least 1")
	}
	if err := p.Now.validate(); err != nil {
		return err
	}
	for name, m := range c.Metrics {
		if m.Direction != "" {
			if err := checkDirection("metrics."+name+".direction", m.Direction); err != nil {
				return err
			}
		}
		if m.Statistic != "" {
			if _, _, err := peerQuantiles(m.Statistic); err != nil {
				return fmt.Errorf("metrics.%s.statistic: %w", name, err)
			}
		}
		if m.Threshold < 0 || m.MinSpread < 0 {
			return fmt.Errorf("metrics.%s: threshold and min_spread must not be negative (0 means the self default)", name)
		}
		if err := checkTechnique("metrics."+name+".technique", m.Technique); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) validateTemporal() error {
	s := &c.Silence
	if s.Enabled && (s.MissedReports < 1 || s.MinReports < 2 || s.MinInterval <= 0) {
		return fmt.Errorf("silence: missed_reports must be at least 1, min_reports at least 2 and min_interval positive")
	}
	if s.Enabled && s.PartitionIdle <= 0 {
		return fmt.Errorf("silence: partition_idle must be positive (default 5m); keep it above kafka.max_event_time_skew")
	}
	if s.Enabled && !(s.MaxIrregularity > 0 && s.MaxIrregularity <= maxIrregularityLimit) {
		return fmt.Errorf("silence: max_irregularity %g is out of range: set it between 0 (exclusive) and %g (default 0.5); "+
			"raise it to judge devices whose reports come less regularly", s.MaxIrregularity, float64(maxIrregularityLimit))
	}
	id := &c.Identity
	if id.Enabled && (id.Window <= 0 || id.MaxSrcIPs < 1 || id.MaxClientIDs < 1 || id.MaxDevicesPerCert < 1 || id.ToClear < 1) {
		return fmt.Errorf("identity: window must be positive and max_src_ips, max_client_ids, max_devices_per_cert and datapoints_to_clear at least 1")
	}
	if id.Enabled && max(id.MaxSrcIPs, id.MaxClientIDs, id.MaxDevicesPerCert) >= trackSlots {
		return fmt.Errorf("identity: max_src_ips, max_client_ids and max_devices_per_cert must be below %d: the detector remembers %d values per device, so a larger limit could never be exceeded", trackSlots, trackSlots)
	}
	f := &c.Fleet
	if f.Enabled {
		if f.Window <= 0 || f.Period < f.Window {
			return fmt.Errorf("fleet: window must be positive and period at least one window (window %v, period %v)", f.Window, f.Period)
		}
		if f.Threshold <= 0 || f.MinSpreadRatio < 0 || f.ToClear < 1 || f.MinWindows < 1 || f.HalfLife <= 0 || f.ActiveFor < f.Window {
			return fmt.Errorf("fleet: threshold, half_life and min_windows must be positive, datapoints_to_clear at least 1 and active_for at least one window")
		}
	}
	ck := &c.Clock
	if ck.MaxSkew <= 0 {
		return fmt.Errorf("clock.max_skew is %v: set how far ahead of the stream a record may be, e.g. 5m (the default); keep it above kafka.max_event_time_skew", ck.MaxSkew)
	}
	if ck.MaxLateness <= 0 {
		return fmt.Errorf("clock.max_lateness is %v: set how far behind its partition a record may be and still be learned, e.g. 1h (the default)", ck.MaxLateness)
	}
	if ck.ConfirmRows < 2 || ck.ConfirmRows > maxConfirmRows {
		return fmt.Errorf("clock.confirm_rows is %d: use 2 to %d rows that must agree before the clock jumps (default 2); 1 would let a single record move it", ck.ConfirmRows, maxConfirmRows)
	}
	if c.Alarm.RepeatWindow < 0 || c.Alarm.RelearnAfter < 0 {
		return fmt.Errorf("alarm.repeat_window and alarm.relearn_after must not be negative (relearn_after 0: never)")
	}
	if c.RateLimit.Enabled && (c.RateLimit.Burst < 1 || c.RateLimit.Refill <= 0) {
		return fmt.Errorf("rate_limit: burst must be at least 1 and refill positive, or set enabled: false")
	}
	return nil
}

func (c *Config) validateSeverity() error {
	for det, v := range c.Severity.Base {
		if v < 0 || v > 10 {
			return fmt.Errorf("severity.base.%s is %d: severities run from 0 to 10", det, v)
		}
	}
	for k, v := range c.Severity.Criticality {
		switch k {
		case "unknown", "low", "medium", "high", "safety-critical":
		default:
			return fmt.Errorf("severity.criticality: unknown criticality %q: use unknown, low, medium, high or safety-critical", k)
		}
		if v < -10 || v > 10 {
			return fmt.Errorf("severity.criticality.%s is %d: use a bonus between -10 and 10", k, v)
		}
	}
	if c.Severity.MaxScoreBonus < 0 || c.Severity.MaxScoreBonus > 10 {
		return fmt.Errorf("severity.max_score_bonus is %d: use 0 to 10", c.Severity.MaxScoreBonus)
	}
	if c.Severity.Control < 1 || c.Severity.Control > 10 || c.Severity.Write < 1 || c.Severity.Write > 10 {
		return fmt.Errorf("severity.control is %d and severity.write %d: use 1 to 10 (defaults 8 and 7)", c.Severity.Control, c.Severity.Write)
	}
	return nil
}

func checkDirection(key, d string) error {
	switch d {
	case DirectionUp, DirectionDown, DirectionBoth:
		return nil
	}
	return fmt.Errorf("%s is %q: use up, down or both", key, d)
}

func checkTechnique(key, t string) error {
	if t == "" {
		return nil
	}
	if len(t) < 5 || t[0] != 'T' {
		return fmt.Errorf("%s is %q: use an ATT&CK technique id such as T0836 or T1110", key, t)
	}
	if _, err := strconv.ParseFloat(t[1:], 64); err != nil {
		return fmt.Errorf("%s is %q: use an ATT&CK technique id such as T0836 or T1110.001", key, t)
	}
	return nil
}

func checkGlob(key, g string) error {
	if g == "" {
		return nil
	}
	if _, err := path.Match(g, ""); err != nil {
		return fmt.Errorf("%s %q is not a valid glob: %w; use *, ? and [..] as in shell patterns", key, g, err)
	}
	return nil
}

// peerQuantiles returns the indices into baseline.Expectation.GroupQuantiles
// of statistic s (upper) and of its mirror (lower).
func peerQuantiles(s string) (upper, lower int, err error) {
	switch s {
	case "p95":
		return baseline.QP95, baseline.QP05, nil
	case "p99":
		return baseline.QP99, baseline.QP01, nil
	case "p99.9":
		return baseline.QP999, baseline.QP001, nil
	case "p5":
		return baseline.QP05, baseline.QP95, nil
	case "p1":
		return baseline.QP01, baseline.QP99, nil
	case "p0.1":
		return baseline.QP001, baseline.QP999, nil
	case "p50":
		return baseline.QP50, baseline.QP50, nil
	}
	return 0, 0, fmt.Errorf("unknown statistic %q: use p0.1, p1, p5, p50, p95, p99 or p99.9", s)
}

const maxRules = 64

var aggregations = map[string]bool{"sum": true, "avg": true, "min": true, "max": true, "last": true}

func (r *RuleConfig) validate() error {
	if r.Name == "" {
		return fmt.Errorf("missing name: name every rule, it becomes the alert's behavior")
	}
	if r.Metric == "" {
		return fmt.Errorf("missing metric: name the metric column or set the rule judges")
	}
	if r.ToAlarm == 0 {
		r.ToAlarm = 1
	}
	if r.ToClear == 0 {
		r.ToClear = 1
	}
	if r.ToAlarm < 1 || r.ToClear < 1 {
		return fmt.Errorf("consecutive_datapoints_to_alarm and _to_clear must be at least 1")
	}
	if r.Duration < 0 {
		return fmt.Errorf("duration must not be negative")
	}
	if r.Aggregation == "" {
		r.Aggregation = "sum"
		if r.Duration == 0 {
			r.Aggregation = "last"
		}
	}
	if !aggregations[r.Aggregation] {
		return fmt.Errorf("aggregation %q: use sum, avg, min, max or last", r.Aggregation)
	}
	if r.Severity < 0 || r.Severity > 10 {
		return fmt.Errorf("severity %d: use 1 to 10 (0 means the rule default)", r.Severity)
	}
	if err := checkTechnique("technique", r.Technique); err != nil {
		return err
	}
	for _, g := range r.Groups {
		if err := checkGlob("groups", g); err != nil {
			return err
		}
	}
	switch r.ComparisonOperator {
	case OpLessThan, OpLessThanEquals, OpGreaterThan, OpGreaterThanEquals:
		if r.Value == nil || math.IsNaN(*r.Value) {
			return fmt.Errorf("operator %s needs a numeric value", r.ComparisonOperator)
		}
		if len(r.CIDRs) > 0 || len(r.Ports) > 0 {
			return fmt.Errorf("operator %s compares numbers: drop cidrs and ports", r.ComparisonOperator)
		}
	case OpInCIDRSet, OpNotInCIDRSet:
		if len(r.CIDRs) == 0 {
			return fmt.Errorf("operator %s needs cidrs, e.g. [10.0.0.0/8]", r.ComparisonOperator)
		}
		for _, s := range r.CIDRs {
			if _, err := netip.ParsePrefix(s); err != nil {
				return fmt.Errorf("cannot parse cidr %q: %w; write it as 10.0.0.0/8", s, err)
			}
		}
		if r.Duration != 0 {
			return fmt.Errorf("set operators judge each report: drop duration")
		}
	case OpInPortSet, OpNotInPortSet:
		if len(r.Ports) == 0 {
			return fmt.Errorf("operator %s needs ports, e.g. [22, 502]", r.ComparisonOperator)
		}
		for _, p := range r.Ports {
			if p < 0 || p > 65535 {
				return fmt.Errorf("port %d is out of range 0-65535", p)
			}
		}
		if r.Duration != 0 {
			return fmt.Errorf("set operators judge each report: drop duration")
		}
	default:
		return fmt.Errorf("unknown comparison_operator %q: use less-than, less-than-equals, greater-than, greater-than-equals, in-cidr-set, not-in-cidr-set, in-port-set or not-in-port-set", r.ComparisonOperator)
	}
	return nil
}

func (s *SuppressionConfig) validate() error {
	for _, kv := range [][2]string{{"device", s.Device}, {"group", s.Group}, {"detector", s.Detector}, {"behavior", s.Behavior}} {
		if err := checkGlob(kv[0], kv[1]); err != nil {
			return err
		}
	}
	if s.Device == "" && s.Group == "" && s.Detector == "" && s.Behavior == "" {
		return fmt.Errorf("a suppression without device, group, detector or behavior would silence everything: narrow it")
	}
	s.until = math.MaxInt64
	if s.Until != "" {
		t, err := time.Parse(time.RFC3339, s.Until)
		if err != nil {
			return fmt.Errorf("cannot parse until %q: %w; use RFC 3339 such as 2026-12-01T00:00:00Z", s.Until, err)
		}
		s.until = t.UnixNano()
	}
	return nil
}

func (s *SuppressionConfig) matches(a *Alert) bool {
	return a.EventTime.UnixNano() < s.until && globMatch(s.Device, a.Device) && globMatch(s.Group, a.Group) &&
		globMatch(s.Detector, a.Detector) && globMatch(s.Behavior, a.Behavior)
}

func globMatch(glob, s string) bool {
	if glob == "" {
		return true
	}
	ok, _ := path.Match(glob, s)
	return ok
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

func (m *MaintenanceConfig) validate() error {
	if err := checkGlob("device", m.Device); err != nil {
		return err
	}
	if err := checkGlob("group", m.Group); err != nil {
		return err
	}
	if m.Weekly != "" {
		if m.Start != "" || m.End != "" {
			return fmt.Errorf("use either weekly or start/end, not both")
		}
		return m.parseWeekly()
	}
	if m.Start == "" || m.End == "" {
		return fmt.Errorf("needs start and end (RFC 3339) or weekly such as \"sat,sun 02:00-04:00\"")
	}
	st, err := time.Parse(time.RFC3339, m.Start)
	if err != nil {
		return fmt.Errorf("cannot parse start %q: %w; use RFC 3339 such as 2026-12-01T02:00:00Z", m.Start, err)
	}
	en, err := time.Parse(time.RFC3339, m.End)
	if err != nil {
		return fmt.Errorf("cannot parse end %q: %w; use RFC 3339 such as 2026-12-01T04:00:00Z", m.End, err)
	}
	if !en.After(st) {
		return fmt.Errorf("end %s is not after start %s", m.End, m.Start)
	}
	m.start, m.end = st.UnixNano(), en.UnixNano()
	return nil
}

func (m *MaintenanceConfig) parseWeekly() error {
	bad := fmt.Errorf("cannot parse weekly %q: write days and a UTC time range such as \"sat,sun 02:00-04:00\" or \"mon-fri 22:00-23:30\"", m.Weekly)
	days, span, ok := strings.Cut(strings.TrimSpace(strings.ToLower(m.Weekly)), " ")
	if !ok {
		return bad
	}
	for _, d := range strings.Split(days, ",") {
		if a, b, rng := strings.Cut(d, "-"); rng {
			wa, oka := weekdays[a]
			wb, okb := weekdays[b]
			if !oka || !okb {
				return bad
			}
			for w := wa; ; w = (w + 1) % 7 {
				m.days[w] = true
				if w == wb {
					break
				}
			}
			continue
		}
		w, ok := weekdays[d]
		if !ok {
			return bad
		}
		m.days[w] = true
	}
	from, to, ok := strings.Cut(strings.TrimSpace(span), "-")
	if !ok {
		return bad
	}
	f, err1 := time.Parse("15:04", from)
	t, err2 := time.Parse("15:04", to)
	if err1 != nil || err2 != nil || !t.After(f) {
		return bad
	}
	day := func(x time.Time) int64 {
		return int64(x.Hour())*int64(time.Hour) + int64(x.Minute())*int64(time.Minute)
	}
	m.from, m.to = day(f), day(t)
	return nil
}

// active reports whether the window covers event time ns.
func (m *MaintenanceConfig) active(ns int64) bool {
	if m.Weekly == "" {
		return ns >= m.start && ns < m.end
	}
	t := time.Unix(0, ns).UTC()
	if !m.days[t.Weekday()] {
		return false
	}
	into := ns - time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC).UnixNano()
	return into >= m.from && into < m.to
}

func (q *QuarantineConfig) validate() error {
	if !q.Enabled {
		return nil
	}
	for _, d := range q.Detectors {
		if !knownDetector(d) {
			return fmt.Errorf("quarantine.detectors: unknown detector %q: use self, peer, rule, silence, identity, fleet, novelty, scan, flood or malformed", d)
		}
	}
	if q.MinSeverity < 1 || q.MinSeverity > 10 || q.RecommendMinSeverity < 1 || q.RecommendMinSeverity > 10 {
		return fmt.Errorf("quarantine.min_severity and recommend_min_severity must be 1 to 10")
	}
	if q.Mode != ModeAutomatic && q.Mode != ModeApprovalRequired {
		return fmt.Errorf("quarantine.mode is %q: use automatic or approval_required", q.Mode)
	}
	if q.TargetGroup == "" {
		return fmt.Errorf("quarantine.target_group is empty: name the restrictive group, e.g. quarantine-{group}")
	}
	if q.MaxGroupFraction <= 0 || q.MaxGroupFraction > 1 {
		return fmt.Errorf("quarantine.max_group_fraction is %v: use a fraction in (0, 1], e.g. 0.1", q.MaxGroupFraction)
	}
	if q.MaxPerMinute < 1 || q.ReleaseAfter < 1 || q.Expiry < 0 {
		return fmt.Errorf("quarantine.max_per_minute and release_after_clear_datapoints must be at least 1 and expiry not negative")
	}
	return nil
}

func knownDetector(d string) bool {
	switch d {
	case DetectorSelf, DetectorPeer, DetectorRule, DetectorSilence, DetectorIdentity, DetectorFleet,
		DetectorNovelty, DetectorScan, DetectorFlood, DetectorMalformed, DetectorJoint, DetectorMITM, DetectorRollout:
		return true
	}
	return false
}
