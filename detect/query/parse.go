package query

import (
	"fmt"
	"strings"
	"time"
)

// Error is a query that cannot be parsed. Pos is the byte offset, from 0,
// where the problem is; Msg says what was expected, in words an analyst
// can act on. Error() is "position 12: expected a value after 'fw<'",
// meant to be returned as it is in an HTTP 400 body.
type Error struct {
	Pos int
	Msg string
}

func (e *Error) Error() string { return fmt.Sprintf("position %d: %s", e.Pos, e.Msg) }

// Schema tells Parse which fields exist and how their values compare: ok
// false makes the field unknown, and the query an error at the field's
// position. KindAuto leaves the kind to each literal.
type Schema func(field string) (kind Kind, ok bool)

// Option changes how Parse reads a query.
type Option func(*parser)

// WithSchema makes Parse reject the fields s does not know, and compare
// each field in the kind s gives it. s is called with the lower-case name.
func WithSchema(s Schema) Option { return func(p *parser) { p.schema = s } }

// WithFields is WithSchema with the kind of every field left to KindAuto.
func WithFields(known ...string) Option {
	set := make(map[string]bool, len(known))
	for _, f := range known {
		set[strings.ToLower(f)] = true
	}
	return WithSchema(func(field string) (Kind, bool) { return KindAuto, set[field] })
}

// WithNow sets the instant relative times are counted from (by default,
// the time Parse is called).
func WithNow(now time.Time) Option { return func(p *parser) { p.now = now } }

// maxDepth bounds the nesting of parentheses and NOTs, so that neither
// Parse nor Match can exhaust the stack on a hostile query.
const maxDepth = 100

type parser struct {
	src    string
	pos    int
	depth  int
	now    time.Time
	schema Schema
}

// Parse reads a query; a query of only white space matches every record.
// A query that cannot be read gives an *Error.
func Parse(q string, opts ...Option) (*Query, error) {
	p := parser{src: q, now: time.Now()}
	for _, o := range opts {
		o(&p)
	}
	p.skipSpace()
	if p.pos == len(p.src) {
		return &Query{}, nil
	}
	root, err := p.parseOr("")
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.src) { // parseOr stops early only at a ')'
		return nil, p.errorf(p.pos, "')' without a matching '('")
	}
	return &Query{root: root}, nil
}

func (p *parser) errorf(pos int, format string, args ...any) error {
	return &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func isNameChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || isDigit(c) || c == '_' || c == '.' || c == '-'
}

func (p *parser) skipSpace() {
	for p.pos < len(p.src) && isSpace(p.src[p.pos]) {
		p.pos++
	}
}

// keyword returns "and", "or" or "not" when one starts at p.pos, with the
// offset after it; a word followed by ':' or a comparison is a field.
func (p *parser) keyword() (kw string, end int) {
	end = p.pos
	for end < len(p.src) && isNameChar(p.src[end]) {
		end++
	}
	if end-p.pos > 3 || end-p.pos < 2 {
		return "", p.pos
	}
	if end < len(p.src) && strings.IndexByte(":<>", p.src[end]) >= 0 {
		return "", p.pos
	}
	switch w := strings.ToLower(p.src[p.pos:end]); w {
	case "and", "or", "not":
		return w, end
	}
	return "", p.pos
}

func (p *parser) parseOr(after string) (Expr, error) {
	first, err := p.parseAnd(after)
	if err != nil {
		return nil, err
	}
	or := []Expr{first}
	for {
		p.skipSpace()
		kw, end := p.keyword()
		if kw != "or" {
			break
		}
		p.pos = end
		next, err := p.parseAnd("'" + p.src[end-2:end] + "'")
		if err != nil {
			return nil, err
		}
		if x, ok := next.(*Or); ok {
			or = append(or, x.Exprs...)
		} else {
			or = append(or, next)
		}
	}
	if len(or) == 1 {
		return first, nil
	}
	if x, ok := first.(*Or); ok { // "(a OR b) OR c" reads as "a OR b OR c"
		or = append(x.Exprs[:len(x.Exprs):len(x.Exprs)], or[1:]...)
	}
	return &Or{Exprs: or}, nil
}

func (p *parser) parseAnd(after string) (Expr, error) {
	first, err := p.parseUnary(after)
	if err != nil {
		return nil, err
	}
	and := []Expr{first}
	for {
		p.skipSpace()
		if p.pos == len(p.src) || p.src[p.pos] == ')' {
			break
		}
		kw, end := p.keyword()
		if kw == "or" {
			break
		}
		after = ""
		if kw == "and" {
			after = "'" + p.src[p.pos:end] + "'"
			p.pos = end
		}
		next, err := p.parseUnary(after)
		if err != nil {
			return nil, err
		}
		if x, ok := next.(*And); ok {
			and = append(and, x.Exprs...)
		} else {
			and = append(and, next)
		}
	}
	if len(and) == 1 {
		return first, nil
	}
	if x, ok := first.(*And); ok {
		and = append(x.Exprs[:len(x.Exprs):len(x.Exprs)], and[1:]...)
	}
	return &And{Exprs: and}, nil
}

func (p *parser) parseUnary(after string) (Expr, error) {
	p.skipSpace()
	if kw, end := p.keyword(); kw == "not" {
		start := p.pos
		if p.depth++; p.depth > maxDepth {
			return nil, p.errorf(start, "the query nests NOT and parentheses more than %d deep", maxDepth)
		}
		p.pos = end
		x, err := p.parseUnary("'" + p.src[start:end] + "'")
		if err != nil {
			return nil, err
		}
		p.depth--
		return &Not{X: x}, nil
	}
	return p.parsePrimary(after)
}

func (p *parser) parsePrimary(after string) (Expr, error) {
	if after != "" {
		after = " after " + after
	}
	if p.pos == len(p.src) {
		return nil, p.errorf(p.pos, "expected a search term such as status:alarm%s, found the end of the query", after)
	}
	switch p.src[p.pos] {
	case '(':
		open := p.pos
		if p.depth++; p.depth > maxDepth {
			return nil, p.errorf(open, "the query nests NOT and parentheses more than %d deep", maxDepth)
		}
		p.pos++
		x, err := p.parseOr("'('")
		if err != nil {
			return nil, err
		}
		p.depth--
		if p.pos == len(p.src) {
			return nil, p.errorf(open, "this '(' is not closed: add a ')'")
		}
		p.pos++ // the ')' parseOr stopped at
		return x, nil
	case ')':
		return nil, p.errorf(p.pos, "expected a search term such as status:alarm%s, found ')'", after)
	case '"':
		return nil, p.errorf(p.pos, "expected a field name before the quoted value, as in owner:\"plant ops\"")
	}
	if kw, end := p.keyword(); kw != "" {
		return nil, p.errorf(p.pos, "expected a search term such as status:alarm%s, found '%s'", after, p.src[p.pos:end])
	}
	return p.parseTerm()
}

func (p *parser) parseTerm() (Expr, error) {
	start := p.pos
	for p.pos < len(p.src) && isNameChar(p.src[p.pos]) {
		p.pos++
	}
	name := p.src[start:p.pos]
	if name != "" && (name[0] == '-' || name[0] == '.') {
		return nil, p.errorf(start, "a field name starts with a letter, a digit or '_', not %s (to exclude, write NOT field:value)", quoteByte(p.src, start))
	}
	if name == "" {
		return nil, p.errorf(start, "expected a field name (letters, digits, '_', '.', '-'), found %s", quoteByte(p.src, start))
	}
	if p.pos == len(p.src) || strings.IndexByte(":<>", p.src[p.pos]) < 0 {
		if p.pos == len(p.src) || isSpace(p.src[p.pos]) || p.src[p.pos] == ')' || p.src[p.pos] == '(' {
			return nil, p.errorf(p.pos, "expected ':' or a comparison (<, <=, >, >=) after '%s'; a search term names its field, as in device:%s", name, name)
		}
		return nil, p.errorf(p.pos, "unexpected %s after the field name '%s': write %s:value, or compare with <, <=, >, >=", quoteByte(p.src, p.pos), name, name)
	}
	field := strings.ToLower(name)
	kind := KindAuto
	if p.schema != nil {
		var ok bool
		if kind, ok = p.schema(field); !ok {
			return nil, p.errorf(start, "unknown field '%s'", name)
		}
	}
	t := &Term{Field: field, Pos: start}
	switch p.src[p.pos] {
	case ':':
		t.Op = OpEqual
	case '<':
		t.Op = OpLess
	case '>':
		t.Op = OpGreater
	}
	p.pos++
	if t.Op != OpEqual && p.pos < len(p.src) && p.src[p.pos] == '=' {
		t.Op++ // OpLessEqual, OpGreaterEqual
		p.pos++
	}
	prefix := p.src[start:p.pos]
	valuePos := p.pos
	v, err := p.parseValue(prefix)
	if err != nil {
		return nil, err
	}
	if t.Op == OpEqual {
		switch {
		case v.star:
			t.Op, t.Kind = OpHas, KindText
			return t, nil
		case v.wild >= 0:
			t.Op, t.Kind, t.Value = OpMatch, KindText, v.pattern
			return t, nil
		case kind == KindAuto:
			kind = KindText
		}
	} else {
		if v.wild >= 0 {
			return nil, p.errorf(v.wild, "a wildcard ('*', '?') works after ':' only, not after '%s' (write \\* for a literal '*')", prefix)
		}
		if v.lit == "" {
			return nil, p.errorf(valuePos, "expected a value after '%s'", prefix)
		}
		if kind == KindAuto {
			kind = inferKind(v.lit)
		}
	}
	t.Kind, t.Value = kind, v.lit
	return t, p.typeLiteral(t, valuePos)
}

// typeLiteral parses t.Value in t.Kind.
func (p *parser) typeLiteral(t *Term, pos int) error {
	switch t.Kind {
	case KindNumber:
		var ok bool
		if t.num, ok = parseNumber(t.Value); !ok {
			return p.errorf(pos, "'%s' is not a number, and %s holds numbers (as in %s>5)", t.Value, t.Field, t.Field)
		}
	case KindVersion:
		if !isVersion(t.Value) {
			return p.errorf(pos, "'%s' is not a version, and %s holds versions (as in %s<2.9.4)", t.Value, t.Field, t.Field)
		}
	case KindTime:
		d, ok, tooFar := parseRelative(t.Value)
		switch {
		case tooFar:
			return p.errorf(pos, "'%s' is more than 100 years from now", t.Value)
		case ok:
			t.at = p.now.Add(d)
		default:
			if t.at, ok = parseTime(t.Value); !ok {
				return p.errorf(pos, "'%s' is not a time: write one relative to now, as in %s<-1h (more than an hour ago; units s, m, h, d, w), or an RFC 3339 time or a date (2026-12-06T08:00:00Z, 2026-12-06)", t.Value, t.Field)
			}
		}
	}
	return nil
}

// value is a term's value as read: lit with the escapes taken out,
// pattern in matchGlob's syntax, wild the offset of its first wildcard or
// -1, star for a lone unescaped '*'.
type value struct {
	lit, pattern string
	wild         int
	star         bool
}

func (p *parser) parseValue(prefix string) (value, error) {
	v := value{wild: -1}
	start := p.pos
	if p.pos == len(p.src) || p.src[p.pos] == ')' || p.src[p.pos] == '(' {
		return v, p.errorf(p.pos, "expected a value after '%s'", prefix)
	}
	if isSpace(p.src[p.pos]) {
		return v, p.errorf(p.pos, "expected a value right after '%s', without a space", prefix)
	}
	quoted := p.src[p.pos] == '"'
	if quoted {
		p.pos++
	}
	var lit, pattern strings.Builder
	for {
		if p.pos == len(p.src) {
			if quoted {
				return v, p.errorf(start, "this quote is not closed: add a '\"'")
			}
			break
		}
		c := p.src[p.pos]
		if quoted && c == '"' {
			p.pos++
			break
		}
		if !quoted && (isSpace(c) || c == '(' || c == ')') {
			break
		}
		if !quoted && c == '"' {
			return v, p.errorf(p.pos, "a quote inside a value: quote the whole value, as in owner:\"plant ops\", or write \\\" for a quote")
		}
		switch c {
		case '\\':
			if p.pos+1 == len(p.src) {
				return v, p.errorf(p.pos, "'\\' at the end of the query escapes nothing: write \\\\ for a backslash")
			}
			e := p.src[p.pos+1]
			lit.WriteByte(e)
			if e == '*' || e == '?' || e == '\\' {
				pattern.WriteByte('\\')
			}
			pattern.WriteByte(e)
			p.pos += 2
			continue
		case '*', '?':
			if v.wild < 0 {
				v.wild = p.pos
			}
		}
		lit.WriteByte(c)
		pattern.WriteByte(c)
		p.pos++
	}
	v.lit, v.pattern = lit.String(), pattern.String()
	v.star = v.pattern == "*"
	return v, nil
}

func quoteByte(s string, pos int) string {
	if pos == len(s) {
		return "the end of the query"
	}
	if c := s[pos]; c >= ' ' && c < 0x7f {
		return "'" + string(c) + "'"
	}
	return fmt.Sprintf("byte %#02x", s[pos])
}
