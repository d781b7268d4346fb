package detect

import (
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/vigil-ot/vigil/ingest"
)

// rule is a static rule resolved from its RuleConfig.
type rule struct {
	cfg       *RuleConfig
	set       bool // judges set members (cidr or port operators)
	op        string
	value     float64
	window    int64 // ns; 0: every report is a datapoint
	agg       string
	early     bool // the running aggregate can only move towards a breach: alarm before the window closes
	prefixes  []netip.Prefix
	ports     []uint64 // bitset of 65536 ports
	technique string
}

func newRule(c *RuleConfig) rule {
	r := rule{cfg: c, op: c.ComparisonOperator, window: int64(c.Duration), agg: c.Aggregation, technique: c.Technique}
	if c.Value != nil {
		r.value = *c.Value
	}
	switch r.op {
	case OpInCIDRSet, OpNotInCIDRSet:
		r.set = true
		for _, s := range c.CIDRs {
			p, _ := netip.ParsePrefix(s) // validated
			r.prefixes = append(r.prefixes, p.Masked())
		}
	case OpInPortSet, OpNotInPortSet:
		r.set = true
		r.ports = make([]uint64, 65536/64)
		for _, p := range c.Ports {
			r.ports[p>>6] |= 1 << (p & 63)
		}
	}
	greater := r.op == OpGreaterThan || r.op == OpGreaterThanEquals
	less := r.op == OpLessThan || r.op == OpLessThanEquals
	r.early = r.window > 0 && (greater && (r.agg == "sum" || r.agg == "max") || less && r.agg == "min")
	if r.technique == "" {
		r.technique = metricTechnique(c.Metric)
	}
	return r
}

func (r *rule) appliesTo(group string) bool {
	if len(r.cfg.Groups) == 0 {
		return true
	}
	for _, g := range r.cfg.Groups {
		if globMatch(g, group) {
			return true
		}
	}
	return false
}

func (r *rule) compare(v float64) bool {
	switch r.op {
	case OpLessThan:
		return v < r.value
	case OpLessThanEquals:
		return v <= r.value
	case OpGreaterThan:
		return v > r.value
	case OpGreaterThanEquals:
		return v >= r.value
	}
	return false
}

// violates reports whether set member value breaks the rule; ok is false
// when value cannot be parsed as the rule's kind of member.
func (r *rule) violates(value string) (breach, ok bool) {
	switch r.op {
	case OpInPortSet, OpNotInPortSet:
		p, ok := parsePort(value)
		if !ok {
			return false, false
		}
		in := r.ports[p>>6]&(1<<(p&63)) != 0
		return in == (r.op == OpInPortSet), true
	}
	a, err := netip.ParseAddr(value)
	if err != nil {
		return false, false
	}
	a = a.Unmap()
	in := false
	for _, p := range r.prefixes {
		if p.Contains(a) {
			in = true
			break
		}
	}
	return in == (r.op == OpInCIDRSet), true
}

// parsePort parses a decimal port without allocating on bad input.
func parsePort(s string) (int, bool) {
	if s == "" || len(s) > 5 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, n <= 65535
}

// ruleState is one device's state of one rule.
type ruleState struct {
	alarm    alarmState
	winStart int64
	agg      float64
	n        int32
	counted  bool // the open window already counted as a breaching datapoint
	seenSet  bool // the device has reported the rule's set: its reports are datapoints
}

// setHit is what the current row's members did to one set rule.
type setHit struct {
	has      bool
	breach   bool
	offender int // index into Batch.Sets of the first offending member
	count    int // offending members
}

func (s *ruleState) fold(agg string, v float64) {
	if s.n == 0 {
		s.agg = v
		s.n = 1
		return
	}
	s.n++
	switch agg {
	case "sum", "avg":
		s.agg += v
	case "min":
		s.agg = math.Min(s.agg, v)
	case "max":
		s.agg = math.Max(s.agg, v)
	case "last":
		s.agg = v
	}
}

func (s *ruleState) value(agg string) float64 {
	if agg == "avg" && s.n > 0 {
		return s.agg / float64(s.n)
	}
	return s.agg
}

// judgeRules runs the static rules that apply to the row's group. It
// reports whether any datapoint breached.
func (e *Engine) judgeRules(b *ingest.Batch, d int32, ds *deviceState, g int32, gs *groupState, t int64) bool {
	if e.setRules {
		e.collectSetHits(b)
	}
	anomalous := false
	for ri := range e.rules {
		if gs.ruleMask&(1<<ri) == 0 {
			continue
		}
		r := &e.rules[ri]
		rs := &ds.more.rules[ri]
		if r.set {
			hit := &e.setScratch[ri]
			if hit.has {
				rs.seenSet = true
			}
			if !rs.seenSet {
				continue
			}
			anomalous = anomalous || hit.breach
			switch rs.alarm.step(t, hit.breach, r.cfg.ToAlarm, r.cfg.ToClear) {
			case raised:
				e.raise(e.setRuleAlert(b, r, hit, d, g, t), &rs.alarm, d, g, 1, r.cfg.Severity)
			case cleared:
				e.clear(e.setRuleAlert(b, r, hit, d, g, t), &rs.alarm, d)
			}
			continue
		}
		j := e.ruleCol[ri]
		if j < 0 || !e.exp[j].Present {
			continue
		}
		v := e.exp[j].Value
		if r.window == 0 {
			breach := r.compare(v)
			anomalous = anomalous || breach
			e.ruleDatapoint(r, rs, breach, v, d, g, t)
			continue
		}
		// The window of t: the open one while t is in it (winStart is a
		// multiple of the window), without a 64-bit division per row.
		ws := rs.winStart
		if rs.n == 0 || uint64(t-rs.winStart) >= uint64(r.window) {
			ws = floorDiv(t, r.window) * r.window
		}
		if ws > rs.winStart || rs.n == 0 {
			if rs.n > 0 && !rs.counted {
				final := rs.value(r.agg)
				e.ruleDatapoint(r, rs, r.compare(final), final, d, g, t)
			}
			rs.winStart, rs.n, rs.counted = ws, 0, false
		}
		// A late row of an earlier window is folded into the open one.
		rs.fold(r.agg, v)
		if r.early && !rs.counted {
			if cur := rs.value(r.agg); r.compare(cur) {
				rs.counted = true
				anomalous = true
				e.ruleDatapoint(r, rs, true, cur, d, g, t)
			}
		}
	}
	return anomalous
}

func (e *Engine) ruleDatapoint(r *rule, rs *ruleState, breach bool, v float64, d, g int32, t int64) {
	switch rs.alarm.step(t, breach, r.cfg.ToAlarm, r.cfg.ToClear) {
	case raised:
		excess := 1.0
		if r.value != 0 {
			excess = math.Abs(v / r.value)
			if r.op == OpLessThan || r.op == OpLessThanEquals {
				excess = math.Abs(r.value / v)
			}
		}
		e.raise(e.numericRuleAlert(r, v, d, g, t, false), &rs.alarm, d, g, excess, r.cfg.Severity)
	case cleared:
		e.clear(e.numericRuleAlert(r, v, d, g, t, true), &rs.alarm, d)
	}
}

// collectSetHits evaluates the current row's set members against the set
// rules; members are ordered by row, so this walks Batch.Sets once per
// batch.
func (e *Engine) collectSetHits(b *ingest.Batch) {
	for ri := range e.setScratch {
		e.setScratch[ri] = setHit{}
	}
	row := int32(e.row)
	for e.setAt < len(b.Sets) && b.Sets[e.setAt].Row < row {
		e.setAt++
	}
	for ; e.setAt < len(b.Sets) && b.Sets[e.setAt].Row == row; e.setAt++ {
		m := &b.Sets[e.setAt]
		for ri := range e.rules {
			r := &e.rules[ri]
			if !r.set || r.cfg.Metric != m.Set {
				continue
			}
			hit := &e.setScratch[ri]
			hit.has = true
			breach, ok := r.violates(m.Value)
			if !ok {
				e.stats.BadSetMembers++
				continue
			}
			if breach {
				if !hit.breach {
					hit.offender = e.setAt
				}
				hit.breach = true
				hit.count++
			}
		}
	}
}

func (e *Engine) numericRuleAlert(r *rule, v float64, d, g int32, t int64, ok bool) *Alert {
	a := e.newAlert(DetectorRule, r.cfg.Name, d, g, t)
	a.Observed, a.Expected, a.Score = v, r.value, v
	switch r.op {
	case OpGreaterThan, OpGreaterThanEquals:
		a.Upper = r.value
	default:
		a.Lower = r.value
	}
	if r.value != 0 {
		a.Score = v / r.value
	}
	a.Technique = r.technique
	var sb strings.Builder
	verb := " broke rule "
	if ok {
		verb = " complies with rule "
	}
	sb.WriteString(who(a.Device, a.Group) + verb + r.cfg.Name + ": " + r.cfg.Metric)
	if r.window > 0 {
		sb.WriteString(" (" + r.agg + " over " + r.cfg.Duration.String() + ")")
	}
	sb.WriteString(" " + formatValue(r.cfg.Metric, v))
	if ok {
		sb.WriteString(", alarm when")
	}
	sb.WriteString(" " + opSymbol(r.op) + " " + formatValue(r.cfg.Metric, r.value))
	a.Message = sb.String()
	return a
}

func (e *Engine) setRuleAlert(b *ingest.Batch, r *rule, hit *setHit, d, g int32, t int64) *Alert {
	a := e.newAlert(DetectorRule, r.cfg.Name, d, g, t)
	a.Observed, a.Score = float64(hit.count), float64(hit.count)
	a.Technique = r.technique
	var allowed string
	if r.prefixes != nil {
		allowed = strings.Join(r.cfg.CIDRs, " ")
	} else {
		ps := make([]string, 0, len(r.cfg.Ports))
		for _, p := range slices.Sorted(slices.Values(r.cfg.Ports)) {
			ps = append(ps, strconv.Itoa(p))
		}
		allowed = strings.Join(ps, " ")
	}
	if !hit.breach {
		a.Message = who(a.Device, a.Group) + " complies with rule " + r.cfg.Name + ": " + r.cfg.Metric + " " + opPhrase(r.op) + " [" + allowed + "]"
		return a
	}
	off := strings.Clone(b.Sets[hit.offender].Value)
	a.ObservedText = off
	more := ""
	if hit.count > 1 {
		more = " and " + strconv.Itoa(hit.count-1) + " more"
	}
	a.Message = who(a.Device, a.Group) + " broke rule " + r.cfg.Name + ": " + r.cfg.Metric + " has " + off + more + ", " + violationPhrase(r.op) + " [" + allowed + "]"
	return a
}

func opSymbol(op string) string {
	switch op {
	case OpLessThan:
		return "<"
	case OpLessThanEquals:
		return "<="
	case OpGreaterThan:
		return ">"
	case OpGreaterThanEquals:
		return ">="
	}
	return op
}

func opPhrase(op string) string {
	switch op {
	case OpInCIDRSet, OpInPortSet:
		return "stays outside"
	}
	return "stays within"
}

func violationPhrase(op string) string {
	switch op {
	case OpInCIDRSet, OpInPortSet:
		return "which is in the forbidden set"
	}
	return "which is not in the allowed set"
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
