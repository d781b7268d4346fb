package console

import (
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vigil-ot/vigil/detect/query"
)

// bitset is a set of index rows.
type bitset []uint64

func newBitset(n int) bitset    { return make(bitset, (n+63)/64) }
func (b bitset) set(r int)      { b[r>>6] |= 1 << (r & 63) }
func (b bitset) has(r int) bool { return b[r>>6]&(1<<(r&63)) != 0 }
func (b bitset) and(o bitset) {
	for i := range b {
		b[i] &= o[i]
	}
}
func (b bitset) or(o bitset) {
	for i := range b {
		b[i] |= o[i]
	}
}
func (b bitset) andNot(o bitset) {
	for i := range b {
		b[i] &^= o[i]
	}
}
func (b bitset) copyFrom(o bitset) { copy(b, o) }
func (b bitset) count() (n int) {
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

// column is one field of the fleet index: a dictionary-encoded text column
// (one value id per row, or several for a multi-valued field), a text
// column of values a row seldom shares (unique: each row's own strings,
// for names, client ids and certificates), a number column or a time
// column. A query term is answered from its column alone: a text term is
// matched once per distinct value, then the rows are a scan of small
// integers (a unique column's values are matched row by row); nothing
// walks the devices' structs.
type column struct {
	kind   query.Kind
	multi  bool
	unique bool
	// text columns
	dict []string
	ids  map[string]uint32 // value -> index in dict
	// fold is, by lower-case value, the indices in dict of the values
	// that are not in lower case themselves (those are in ids), for ':'
	// without wildcards: a fleet's names, addresses and certificates are
	// seldom in upper case, and each entry costs a device ~70 bytes.
	fold map[string][]uint32
	one  []uint32   // by row: dict index + 1; 0: no value
	many [][]uint32 // by row, for a multi-valued field: dict indices
	// unique text columns: a dictionary of values each row has its own
	// would cost every new device a lookup and an insertion in a large map
	// (the console's largest cost in a large fleet's first reports), and
	// save nothing
	vals  []string   // by row; "": no value
	lists [][]string // by row, for a multi-valued field
	// number and time columns
	num []float64 // by row; NaN: no value
	at  []int64   // by row, Unix ns; 0: no value
}

func newColumn(f field) *column {
	c := &column{kind: f.kind, multi: f.multi, unique: f.unique}
	if f.kind != query.KindNumber && f.kind != query.KindTime && !f.unique {
		c.ids, c.fold = map[string]uint32{}, map[string][]uint32{}
	}
	return c
}

// grow makes the column rows long (each slice allocated once for it).
func (c *column) grow(rows int) {
	switch {
	case c.kind == query.KindNumber:
		n := len(c.num)
		c.num = grown(c.num, rows)
		for i := n; i < rows; i++ {
			c.num[i] = math.NaN()
		}
	case c.kind == query.KindTime:
		c.at = grown(c.at, rows)
	case c.unique && c.multi:
		c.lists = grown(c.lists, rows)
	case c.unique:
		c.vals = grown(c.vals, rows)
	case c.multi:
		c.many = grown(c.many, rows)
	default:
		c.one = grown(c.one, rows)
	}
}

// grown returns s with zero values up to length n, allocated at once.
func grown[S ~[]E, E any](s S, n int) S {
	old := len(s)
	if old >= n {
		return s
	}
	s = slices.Grow(s, n-old)[:n]
	clear(s[old:])
	return s
}

func (c *column) intern(v string) uint32 {
	if id, ok := c.ids[v]; ok {
		return id
	}
	id := uint32(len(c.dict))
	v = strings.Clone(v)
	c.dict = append(c.dict, v)
	c.ids[v] = id
	if k := strings.ToLower(v); k != v {
		c.fold[k] = append(c.fold[k], id)
	}
	return id
}

// setText sets row r's value ("" : none). Most updates of a device leave
// a field as it was: then it compares, and looks nothing up. A unique
// column keeps a copy of a new value (the copies of a fleet's first
// update lie together, as a dictionary's values do: sorting by them reads
// memory in order).
func (c *column) setText(r int, v string) {
	switch {
	case c.unique:
		if c.vals[r] != v {
			c.vals[r] = strings.Clone(v)
		}
	case v == "":
		c.one[r] = 0
	case c.one[r] == 0 || c.dict[c.one[r]-1] != v:
		c.one[r] = c.intern(v) + 1
	}
}

// setTexts sets row r's values. A unique column keeps vs itself (the
// caller's, which it must not change) unless it holds an empty value.
func (c *column) setTexts(r int, vs []string) {
	if c.unique {
		if slices.Contains(vs, "") {
			vs = slices.DeleteFunc(slices.Clone(vs), func(v string) bool { return v == "" })
		}
		c.lists[r] = vs
		return
	}
	if c.hasTexts(r, vs) {
		return
	}
	ids := c.many[r][:0]
	for _, v := range vs {
		if v != "" {
			ids = append(ids, c.intern(v))
		}
	}
	c.many[r] = ids
}

// hasTexts reports whether row r's values are vs (without the empty ones).
func (c *column) hasTexts(r int, vs []string) bool {
	ids := c.many[r]
	for _, v := range vs {
		if v == "" {
			continue
		}
		if len(ids) == 0 || c.dict[ids[0]] != v {
			return false
		}
		ids = ids[1:]
	}
	return len(ids) == 0
}

// text returns row r's first value of a text column, "" for none.
func (c *column) text(r int) string {
	switch {
	case c.unique && c.multi:
		if len(c.lists[r]) == 0 {
			return ""
		}
		return c.lists[r][0]
	case c.unique:
		return c.vals[r]
	}
	if c.multi {
		if len(c.many[r]) == 0 {
			return ""
		}
		return c.dict[c.many[r][0]]
	}
	if c.one[r] == 0 {
		return ""
	}
	return c.dict[c.one[r]-1]
}

// matchDict returns which dictionary values satisfy t.
func (c *column) matchDict(t *query.Term) []bool {
	hit := make([]bool, len(c.dict))
	if t.Op == query.OpEqual && t.Kind == query.KindText {
		k := strings.ToLower(t.Value)
		if id, ok := c.ids[k]; ok {
			hit[id] = t.MatchValue(c.dict[id])
		}
		for _, id := range c.fold[k] {
			hit[id] = t.MatchValue(c.dict[id])
		}
		return hit
	}
	prefix := ""
	if t.Op == query.OpMatch {
		prefix = literalPrefix(t.Value)
	}
	for id, v := range c.dict {
		hit[id] = prefixMayMatch(v, prefix) && t.MatchValue(v)
	}
	return hit
}

// literalPrefix returns the ASCII letters, digits and punctuation a glob
// starts with before its first wildcard or escape, in lower case: every
// value it matches starts with them, without regard to case.
func literalPrefix(pattern string) string {
	i := 0
	for i < len(pattern) && pattern[i] < utf8.RuneSelf && !strings.ContainsRune(`*?\`, rune(pattern[i])) {
		i++
	}
	return strings.ToLower(pattern[:i])
}

// prefixMayMatch is a quick test before the glob: false only when v
// cannot start with prefix (lower-case ASCII) without regard to case. A
// byte beyond ASCII may fold to an ASCII letter (the Kelvin sign to k), so
// from there on the glob decides.
func prefixMayMatch(v, prefix string) bool {
	for i := 0; i < len(prefix); i++ {
		if i >= len(v) {
			return false
		}
		c := v[i]
		if c >= utf8.RuneSelf {
			return true
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// eval adds to dst the rows whose value satisfies t.
func (c *column) eval(t *query.Term, dst bitset) {
	switch c.kind {
	case query.KindNumber:
		for r, v := range c.num {
			if v == v && (t.Op == query.OpHas || c.matchNumber(t, v)) {
				dst.set(r)
			}
		}
	case query.KindTime:
		for r, v := range c.at {
			if v != 0 && (t.Op == query.OpHas || c.matchTime(t, v)) {
				dst.set(r)
			}
		}
	default:
		if c.unique {
			c.evalUnique(t, dst)
			return
		}
		hit := c.matchDict(t)
		if c.multi {
			for r, ids := range c.many {
				for _, id := range ids {
					if hit[id] {
						dst.set(r)
						break
					}
				}
			}
			return
		}
		for r, id := range c.one {
			if id != 0 && hit[id-1] {
				dst.set(r)
			}
		}
	}
}

// evalUnique adds to dst the rows of a unique column with a value that
// satisfies t, matched row by row (after a quick test of the prefix a
// match must have).
func (c *column) evalUnique(t *query.Term, dst bitset) {
	prefix := ""
	if t.Op == query.OpMatch || t.Op == query.OpEqual && t.Kind == query.KindText {
		prefix = literalPrefix(t.Value)
	}
	match := func(v string) bool { return v != "" && prefixMayMatch(v, prefix) && t.MatchValue(v) }
	if c.multi {
		for r, vs := range c.lists {
			if slices.ContainsFunc(vs, match) {
				dst.set(r)
			}
		}
		return
	}
	for r, v := range c.vals {
		if match(v) {
			dst.set(r)
		}
	}
}

func (c *column) matchNumber(t *query.Term, v float64) bool {
	if t.Kind == query.KindNumber {
		return t.MatchNumber(v)
	}
	return t.MatchValue(strconv.FormatFloat(v, 'f', -1, 64))
}

func (c *column) matchTime(t *query.Term, v int64) bool {
	at := time.Unix(0, v).UTC()
	if t.Kind == query.KindTime {
		return t.MatchTime(at)
	}
	return t.MatchValue(at.Format(time.RFC3339))
}

// fleetIndex is the fleet's devices by field. Rows are the registry's
// device ids; present marks the rows that hold a device.
type fleetIndex struct {
	rows    int
	present bitset
	cols    map[string]*column
	// the builtin fields' columns, which every update of a device sets
	device, group, status, learning, lastSeen, detector, ip, clientID, cert, score, severity, alarms *column
	// connected is evaluated at query time from last_seen and the
	// learned report interval, against the query's now.
	interval []int64
}

func newFleetIndex() *fleetIndex {
	x := &fleetIndex{cols: map[string]*column{}}
	for _, f := range builtinFields {
		x.cols[f.name] = newColumn(f)
	}
	x.device, x.group, x.status, x.learning, x.lastSeen = x.cols["device"], x.cols["group"], x.cols["status"], x.cols["learning"], x.cols["last_seen"]
	x.detector, x.ip, x.clientID, x.cert = x.cols["detector"], x.cols["ip"], x.cols["client_id"], x.cols["cert"]
	x.score, x.severity, x.alarms = x.cols["score"], x.cols["severity"], x.cols["alarms"]
	return x
}

// field is a field every device has in the index.
type field struct {
	name   string
	kind   query.Kind
	multi  bool
	unique bool // a device's own value, seldom another's (see column)
}

// builtinFields are the fields of every device; inventory and reported
// attributes add text fields of their own (site, hw, owner, …).
var builtinFields = []field{
	{name: "device", kind: query.KindText, unique: true},
	{name: "group", kind: query.KindText},
	{name: "status", kind: query.KindText},
	{name: "learning", kind: query.KindText},
	{name: "last_seen", kind: query.KindTime},
	{name: "detector", kind: query.KindText, multi: true},
	{name: "ip", kind: query.KindText, multi: true},
	{name: "client_id", kind: query.KindText, multi: true, unique: true},
	{name: "cert", kind: query.KindText, unique: true},
	{name: "fw", kind: query.KindVersion},
	{name: "criticality", kind: query.KindText},
	{name: "patchable", kind: query.KindText},
	{name: "score", kind: query.KindNumber},
	{name: "severity", kind: query.KindNumber},
	{name: "alarms", kind: query.KindNumber},
}

// fieldConnected is answered from last_seen and the report interval.
const fieldConnected = "connected"

// ensureRow makes row r exist.
func (x *fleetIndex) ensureRow(r int) {
	if r < x.rows {
		return
	}
	x.rows = r + 1
	x.present = grown(x.present, (x.rows+63)/64)
	x.interval = grown(x.interval, x.rows)
	for _, c := range x.cols {
		c.grow(x.rows)
	}
}

// col returns the column of field name, creating a text column for an
// attribute not seen before.
func (x *fleetIndex) col(name string) *column {
	c := x.cols[name]
	if c == nil {
		c = newColumn(field{name: name, kind: query.KindAuto})
		c.grow(x.rows)
		x.cols[name] = c
	}
	return c
}

// kind is the query schema: the fields the index has.
func (x *fleetIndex) kind(f string) (query.Kind, bool) {
	if f == fieldConnected {
		return query.KindText, true
	}
	c, ok := x.cols[f]
	if !ok {
		return 0, false
	}
	return c.kind, true
}

// eval returns the rows that satisfy e, among the present ones.
func (x *fleetIndex) eval(e query.Expr, now time.Time) bitset {
	out := newBitset(x.rows)
	switch e := e.(type) {
	case nil:
		out.copyFrom(x.present)
	case *query.Term:
		if e.Field == fieldConnected {
			x.evalConnected(e, now, out)
		} else if c := x.cols[e.Field]; c != nil {
			c.eval(e, out)
		}
		out.and(x.present)
	case *query.And:
		out.copyFrom(x.eval(e.Exprs[0], now))
		for _, sub := range e.Exprs[1:] {
			out.and(x.eval(sub, now))
		}
	case *query.Or:
		for _, sub := range e.Exprs {
			out.or(x.eval(sub, now))
		}
	case *query.Not:
		out.copyFrom(x.present)
		out.andNot(x.eval(e.X, now))
	}
	return out
}

// connectedLimit is how many report intervals a device may be quiet and
// still count as connected; a device whose interval is not learned yet
// counts as connected for defaultConnectedFor after its last report.
const (
	connectedLimit      = 3
	defaultConnectedFor = 15 * time.Minute
)

func (x *fleetIndex) evalConnected(t *query.Term, now time.Time, dst bitset) {
	yes, no := t.MatchValue("true"), t.MatchValue("false")
	last := x.cols["last_seen"].at
	n := now.UnixNano()
	for r := range x.rows {
		if last[r] == 0 {
			continue
		}
		if connected(n, last[r], x.interval[r]) {
			if yes {
				dst.set(r)
			}
		} else if no {
			dst.set(r)
		}
	}
}

func connected(now, last, interval int64) bool {
	limit := int64(defaultConnectedFor)
	if interval > 0 {
		limit = connectedLimit * interval
	}
	return now-last <= limit
}
