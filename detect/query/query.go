package query

import (
	"cmp"
	"strings"
	"time"
)

// Record is what a query matches: a device or an alert, as the console
// holds it. Get returns the values of a field, named in lower case, and ok
// false when the record does not have it; a field may have several values
// (a device's addresses, the detectors of its open alarms), and ok with no
// values counts as not having it. Match does not keep the slice, so Get may
// return memory the record owns; it should not allocate, since Match calls
// it for every term and every record.
type Record interface {
	Get(field string) (values []string, ok bool)
}

// NumberRecord is an optional Record shortcut for numbers kept as
// float64: a number comparison asks GetNumber first and reads Get's text
// only when ok is false. Both must agree.
type NumberRecord interface {
	GetNumber(field string) (v float64, ok bool)
}

// TimeRecord is an optional Record shortcut for times kept as time.Time,
// as NumberRecord is for numbers. Get still answers for the field (as RFC
// 3339 text), for field:* and wildcards.
type TimeRecord interface {
	GetTime(field string) (t time.Time, ok bool)
}

// Query is a parsed query. It is immutable and safe for concurrent use.
type Query struct {
	root Expr // nil matches everything
}

// Expr is a node of a parsed query: *Term, *Not, *And or *Or. The console
// walks it to answer a term from an index instead of matching every record
// (Term.MatchValue tests one indexed value).
type Expr interface{ isExpr() }

// And holds when all of Exprs hold; it has two or more, none an *And.
type And struct{ Exprs []Expr }

// Or holds when one of Exprs holds; it has two or more, none an *Or.
type Or struct{ Exprs []Expr }

// Not holds when X does not.
type Not struct{ X Expr }

// Op is a term's operator.
type Op uint8

const (
	OpEqual        Op = iota // field:value
	OpMatch                  // field:value with wildcards
	OpHas                    // field:*
	OpLess                   // field<value
	OpLessEqual              // field<=value
	OpGreater                // field>value
	OpGreaterEqual           // field>=value
)

func (o Op) String() string {
	switch o {
	case OpLess:
		return "<"
	case OpLessEqual:
		return "<="
	case OpGreater:
		return ">"
	case OpGreaterEqual:
		return ">="
	}
	return ":"
}

// holds reports whether a comparison's result c satisfies o.
func (o Op) holds(c int) bool {
	switch o {
	case OpEqual:
		return c == 0
	case OpLess:
		return c < 0
	case OpLessEqual:
		return c <= 0
	case OpGreater:
		return c > 0
	case OpGreaterEqual:
		return c >= 0
	}
	return false
}

// Term is one search term.
type Term struct {
	Field string // lower case
	Op    Op
	// Kind is how values compare: never KindAuto. OpMatch and OpHas are
	// KindText.
	Kind Kind
	// Value is the literal without quotes and escapes; for OpMatch, the
	// pattern, where '\' still marks a literal '*', '?' or '\'.
	Value string
	Pos   int // byte offset of the term in the query

	num float64   // Value, for KindNumber
	at  time.Time // Value resolved against now, for KindTime
}

func (*And) isExpr()  {}
func (*Or) isExpr()   {}
func (*Not) isExpr()  {}
func (*Term) isExpr() {}

// Match reports whether r satisfies the query. It allocates nothing
// unless r does.
func (q *Query) Match(r Record) bool {
	if q.root == nil {
		return true
	}
	return match(q.root, r)
}

func match(e Expr, r Record) bool {
	switch e := e.(type) {
	case *Term:
		return e.matchRecord(r)
	case *And:
		for _, x := range e.Exprs {
			if !match(x, r) {
				return false
			}
		}
		return true
	case *Or:
		for _, x := range e.Exprs {
			if match(x, r) {
				return true
			}
		}
		return false
	case *Not:
		return !match(e.X, r)
	}
	panic("BUG: query: unknown expression")
}

func (t *Term) matchRecord(r Record) bool {
	if t.Op != OpHas && t.Op != OpMatch {
		switch t.Kind {
		case KindNumber:
			if nr, ok := r.(NumberRecord); ok {
				if v, ok := nr.GetNumber(t.Field); ok {
					return t.MatchNumber(v)
				}
			}
		case KindTime:
			if tr, ok := r.(TimeRecord); ok {
				if v, ok := tr.GetTime(t.Field); ok {
					return t.MatchTime(v)
				}
			}
		}
	}
	values, ok := r.Get(t.Field)
	if !ok || len(values) == 0 {
		return false
	}
	if t.Op == OpHas {
		return true
	}
	for _, v := range values {
		if t.MatchValue(v) {
			return true
		}
	}
	return false
}

// MatchValue reports whether one value of the field satisfies the term; a
// value that is not of the term's kind satisfies no comparison.
func (t *Term) MatchValue(v string) bool {
	switch t.Op {
	case OpHas:
		return true
	case OpMatch:
		return matchGlob(t.Value, v)
	}
	switch t.Kind {
	case KindNumber:
		f, ok := parseNumber(v)
		return ok && t.MatchNumber(f)
	case KindVersion:
		return isVersion(v) && t.Op.holds(CompareVersions(v, t.Value))
	case KindTime:
		at, ok := parseTime(v)
		return ok && t.MatchTime(at)
	}
	if t.Op == OpEqual {
		return equalText(v, t.Value)
	}
	return t.Op.holds(compareText(v, t.Value))
}

// MatchNumber reports whether the number v satisfies a KindNumber term.
func (t *Term) MatchNumber(v float64) bool {
	return t.Kind == KindNumber && v == v && t.Op.holds(cmp.Compare(v, t.num))
}

// MatchTime reports whether the instant v satisfies a KindTime term.
func (t *Term) MatchTime(v time.Time) bool {
	return t.Kind == KindTime && t.Op.holds(v.Compare(t.at))
}

// Root returns the query's expression, nil for a query that matches
// everything.
func (q *Query) Root() Expr { return q.root }

// Fields returns the fields the query names, each once, in the order they
// first appear.
func (q *Query) Fields() []string {
	var fields []string
	var walk func(Expr)
	walk = func(e Expr) {
		switch e := e.(type) {
		case *Term:
			for _, f := range fields {
				if f == e.Field {
					return
				}
			}
			fields = append(fields, e.Field)
		case *And:
			for _, x := range e.Exprs {
				walk(x)
			}
		case *Or:
			for _, x := range e.Exprs {
				walk(x)
			}
		case *Not:
			walk(e.X)
		}
	}
	if q.root != nil {
		walk(q.root)
	}
	return fields
}

// String returns the query in canonical form: keywords in upper case, AND
// written out, parentheses only where precedence needs them, field names in
// lower case, values quoted only when they must be. Parse(q.String()), with
// the same options and now, matches the same records as q.
func (q *Query) String() string {
	if q.root == nil {
		return ""
	}
	var b strings.Builder
	writeExpr(&b, q.root, 0)
	return b.String()
}

// precedence orders expressions by how tightly they bind.
func precedence(e Expr) int {
	switch e.(type) {
	case *Or:
		return 1
	case *And:
		return 2
	case *Not:
		return 3
	}
	return 4
}

// writeExpr writes e, in parentheses when it binds less tightly than min.
func writeExpr(b *strings.Builder, e Expr, min int) {
	if precedence(e) < min {
		b.WriteByte('(')
		defer b.WriteByte(')')
	}
	switch e := e.(type) {
	case *Or:
		for i, x := range e.Exprs {
			if i > 0 {
				b.WriteString(" OR ")
			}
			writeExpr(b, x, 2)
		}
	case *And:
		for i, x := range e.Exprs {
			if i > 0 {
				b.WriteString(" AND ")
			}
			writeExpr(b, x, 3)
		}
	case *Not:
		b.WriteString("NOT ")
		writeExpr(b, e.X, 3)
	case *Term:
		e.write(b)
	}
}

func (t *Term) write(b *strings.Builder) {
	b.WriteString(t.Field)
	b.WriteString(t.Op.String())
	switch t.Op {
	case OpHas:
		b.WriteByte('*')
		return
	case OpMatch:
		writeValue(b, t.Value, false, false)
		return
	}
	writeValue(b, t.Value, true, t.Op == OpLess || t.Op == OpGreater)
}

// writeValue writes a value bare when it can, quoted when it must; escape
// marks a literal, whose '*', '?' and '\' need a '\' (a pattern has them).
// afterOp is set after '<' or '>', where a leading '=' would join the
// operator.
func writeValue(b *strings.Builder, v string, escape, afterOp bool) {
	quote := v == "" || afterOp && v[0] == '='
	for i := 0; i < len(v) && !quote; i++ {
		c := v[i]
		quote = isSpace(c) || c == '(' || c == ')' || c == '"'
	}
	if quote {
		b.WriteByte('"')
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if escape && (c == '*' || c == '?' || c == '\\') || c == '"' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	if quote {
		b.WriteByte('"')
	}
}
