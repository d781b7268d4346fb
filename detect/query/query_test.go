package query

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

// device is a Record over a map, the way a test (not the console) holds one.
type device map[string][]string

func (d device) Get(field string) ([]string, bool) {
	v, ok := d[field]
	return v, ok
}

// fleet is a handful of devices that differ in every field the tests ask about.
var fleet = map[string]device{
	"plc-a-1": {"device": {"plc-a-1"}, "group": {"plant-a/plc"}, "fw": {"2.9.3"}, "status": {"alarm"},
		"last_seen": {"2026-12-06T11:58:00Z"}, "score": {"7.5"}, "owner": {"plant ops"}, "ip": {"10.1.0.5", "192.168.7.5"},
		"detector": {"self", "peer"}},
	"plc-a-2": {"device": {"plc-a-2"}, "group": {"plant-a/plc"}, "fw": {"2.10.0"}, "status": {"normal"},
		"last_seen": {"2026-12-06T09:00:00Z"}, "score": {"0.4"}, "owner": {"Plant Ops"}, "ip": {"10.1.0.6"}},
	"plc-b-1": {"device": {"plc-b-1"}, "group": {"plant-b/plc"}, "fw": {"2.9.4-rc1"}, "status": {"alarm"},
		"last_seen": {"2026-12-06T13:30:00+02:00"}, "score": {"12"}, "owner": {"it"}, "ip": {"10.123.0.1"},
		"detector": {"rule"}},
	"hmi-b-1": {"device": {"hmi-b-1"}, "group": {"plant-b/hmi"}, "fw": {"v3.1"}, "status": {"quarantined"},
		"last_seen": {"2026-12-01"}, "score": {"5"}},
	"cam-7": {"device": {"cam-7"}, "fw": {"unknown"}, "status": {"normal"}, "last_seen": {"soon"},
		"score": {"high"}, "owner": {"a*b (c)?"}},
}

var schema = WithSchema(func(field string) (Kind, bool) {
	switch field {
	case "fw":
		return KindVersion, true
	case "last_seen":
		return KindTime, true
	case "score":
		return KindNumber, true
	case "device", "group", "status", "owner", "ip", "detector", "not", "and", "a", "b", "c":
		return KindAuto, true
	}
	return KindAuto, false
})

func matching(t *testing.T, q *Query) []string {
	t.Helper()
	var names []string
	for name, d := range fleet {
		if q.Match(d) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

func TestMatch(t *testing.T) {
	cases := []struct {
		query string
		want  string // matching devices, sorted, space-separated
	}{
		{"", "cam-7 hmi-b-1 plc-a-1 plc-a-2 plc-b-1"},
		{"   ", "cam-7 hmi-b-1 plc-a-1 plc-a-2 plc-b-1"},
		{"status:alarm", "plc-a-1 plc-b-1"},
		{"STATUS:ALARM", "plc-a-1 plc-b-1"},
		{"status:alar", ""},
		{`owner:"plant ops"`, "plc-a-1 plc-a-2"},
		{`owner:"PLANT OPS"`, "plc-a-1 plc-a-2"},
		{"device:plc-a-*", "plc-a-1 plc-a-2"},
		{"device:plc-?-1", "plc-a-1 plc-b-1"},
		{"device:*-1", "hmi-b-1 plc-a-1 plc-b-1"},
		{"fw:2.9.*", "plc-a-1 plc-b-1"},
		{"fw:2.9", ""}, // no 2.9.0 in the fleet
		{"fw:3.1.0", "hmi-b-1"},
		{"fw<2.9.4", "plc-a-1 plc-b-1"}, // 2.9.4-rc1 is before 2.9.4; "unknown" is no version
		{"fw<=2.9.4-rc1", "plc-a-1 plc-b-1"},
		{"fw>2.9.4", "hmi-b-1 plc-a-2"},
		{"fw>=v2.10", "hmi-b-1 plc-a-2"},
		{"score>5", "plc-a-1 plc-b-1"},
		{"score>=5", "hmi-b-1 plc-a-1 plc-b-1"},
		{"score<1", "plc-a-2"},
		{"score:5.0", "hmi-b-1"},
		{"score:5*", "hmi-b-1"}, // a wildcard matches text
		{"last_seen<-1h", "hmi-b-1 plc-a-2"},
		{"last_seen>-1h", "plc-a-1 plc-b-1"}, // 13:30+02:00 is 11:30Z
		{"last_seen>-1h30m", "plc-a-1 plc-b-1"},
		{"last_seen<-2d", "hmi-b-1"},
		{"last_seen>=2026-12-06T11:00:00Z", "plc-a-1 plc-b-1"},
		{"last_seen<2026-12-06", "hmi-b-1"},
		{"ip:10.1.*", "plc-a-1 plc-a-2"}, // not 10.123.0.1, as the regexp 10.1.* would
		{"ip:192.168.*", "plc-a-1"},
		{"detector:peer", "plc-a-1"},
		{"detector:*", "plc-a-1 plc-b-1"},
		{"owner:*", "cam-7 plc-a-1 plc-a-2 plc-b-1"},
		{"NOT owner:*", "hmi-b-1"},
		{"group:plant-a/*", "plc-a-1 plc-a-2"},
		{"status:alarm AND NOT group:plant-a/*", "plc-b-1"},
		{"status:alarm and not group:plant-a/*", "plc-b-1"},
		{"status:alarm NOT group:plant-a/*", "plc-b-1"},
		{"status:quarantined OR score>10", "hmi-b-1 plc-b-1"},
		{"(status:quarantined OR score>10) fw<3", "plc-b-1"},
		{`owner:a\*b*`, "cam-7"},
		{`owner:"a\*b (c)\?"`, "cam-7"},
		{`owner:a\*c*`, ""},
		{"owner<j", "cam-7 plc-b-1"}, // text order: "a*b (c)?" and "it"
		{"not:x", ""},                // a field called not
	}
	for _, c := range cases {
		q, err := Parse(c.query, schema, WithNow(now))
		if err != nil {
			t.Errorf("Parse(%q): %v", c.query, err)
			continue
		}
		if got := strings.Join(matching(t, q), " "); got != c.want {
			t.Errorf("%q matches [%s], want [%s]", c.query, got, c.want)
		}
	}
}

// TestAutoKinds checks the kind a literal gives a field the schema leaves
// to KindAuto.
func TestAutoKinds(t *testing.T) {
	cases := []struct {
		query string
		kind  Kind
	}{
		{"x<5", KindNumber}, {"x<-0.5", KindNumber}, {"x>1e3", KindNumber}, {"x<2.9", KindNumber},
		{"x<2.9.4", KindVersion}, {"x<v3", KindVersion}, {"x<2.9.4-rc1", KindVersion}, {"x<7d", KindVersion},
		{"x<-1h", KindTime}, {"x>+10m", KindTime}, {"x<2026-12-06", KindTime}, {"x<2026-12-06T08:00:00.5+01:00", KindTime},
		{"x<-9999999999w", KindTime}, // an error: too far
		{"x<m", KindText}, {"x<-", KindText}, {"x<-1", KindNumber}, {"x<-1x", KindText}, {"x:5", KindText},
		{"x:2.9.4", KindText},
	}
	for _, c := range cases {
		q, err := Parse(c.query, WithNow(now))
		if c.query == "x<-9999999999w" {
			if err == nil || !strings.Contains(err.Error(), "more than 100 years") {
				t.Errorf("Parse(%q) = %v, want a too far error", c.query, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", c.query, err)
			continue
		}
		if k := q.Root().(*Term).Kind; k != c.kind {
			t.Errorf("%q compares %s, want %s", c.query, k, c.kind)
		}
	}
	// Without a schema, fw<2.9 is a number comparison: 2.10 is less.
	q, _ := Parse("fw<2.9")
	if !q.Match(device{"fw": {"2.10"}}) {
		t.Error("fw<2.9 without a schema should compare numbers")
	}
	q, _ = Parse("fw<2.9", WithSchema(func(string) (Kind, bool) { return KindVersion, true }))
	if q.Match(device{"fw": {"2.10"}}) {
		t.Error("fw<2.9 with fw a version should not hold for 2.10")
	}
}

func TestPrecedence(t *testing.T) {
	cases := []struct {
		query, canonical string
		want             func(a, b, c bool) bool
	}{
		{"a:1 OR b:1 c:1", "a:1 OR b:1 AND c:1", func(a, b, c bool) bool { return a || b && c }},
		{"a:1 b:1 OR c:1", "a:1 AND b:1 OR c:1", func(a, b, c bool) bool { return a && b || c }},
		{"(a:1 OR b:1) c:1", "(a:1 OR b:1) AND c:1", func(a, b, c bool) bool { return (a || b) && c }},
		{"NOT a:1 b:1", "NOT a:1 AND b:1", func(a, b, c bool) bool { return !a && b }},
		{"NOT a:1 OR b:1", "NOT a:1 OR b:1", func(a, b, c bool) bool { return !a || b }},
		{"NOT (a:1 OR b:1) c:1", "NOT (a:1 OR b:1) AND c:1", func(a, b, c bool) bool { return !(a || b) && c }},
		{"NOT (a:1 b:1)", "NOT (a:1 AND b:1)", func(a, b, c bool) bool { return !(a && b) }},
		{"NOT NOT a:1", "NOT NOT a:1", func(a, b, c bool) bool { return a }},
		{"a:1 AND (b:1 AND c:1)", "a:1 AND b:1 AND c:1", func(a, b, c bool) bool { return a && b && c }},
		{"((a:1 or b:1) or c:1)", "a:1 OR b:1 OR c:1", func(a, b, c bool) bool { return a || b || c }},
		{"a:1 OR NOT b:1 AND c:1", "a:1 OR NOT b:1 AND c:1", func(a, b, c bool) bool { return a || !b && c }},
	}
	for _, c := range cases {
		q, err := Parse(c.query)
		if err != nil {
			t.Fatalf("Parse(%q): %v", c.query, err)
		}
		if got := q.String(); got != c.canonical {
			t.Errorf("Parse(%q).String() = %q, want %q", c.query, got, c.canonical)
		}
		for bits := range 8 {
			a, b, cc := bits&1 != 0, bits&2 != 0, bits&4 != 0
			d := device{"a": {digit(a)}, "b": {digit(b)}, "c": {digit(cc)}}
			if got, want := q.Match(d), c.want(a, b, cc); got != want {
				t.Errorf("%q with a=%v b=%v c=%v: %v, want %v", c.query, a, b, cc, got, want)
			}
		}
	}
}

func digit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func TestString(t *testing.T) {
	cases := []struct{ query, canonical string }{
		{"Status:alarm", "status:alarm"},
		{"status:alarm  fw<2.9.4", "status:alarm AND fw<2.9.4"},
		{`owner:"plant ops"`, `owner:"plant ops"`},
		{`owner:"plant"`, `owner:plant`},
		{`owner:""`, `owner:""`},
		{`device:plc\*`, `device:plc\*`},
		{`device:"plc\*"`, `device:plc\*`},
		{`device:"a b*"`, `device:"a b*"`},
		{`device:"say \"hi\""`, `device:"say \"hi\""`},
		{`device:back\\slash`, `device:back\\slash`},
		{`device:\a`, `device:a`},
		{`device:"(x)"`, `device:"(x)"`},
		{`x<"=5"`, `x<"=5"`}, // bare, =5 would join the '<'
		{`x<==5`, `x<==5`},
		{`x>="a b"`, `x>="a b"`},
		{"ip:*", "ip:*"},
		{`ip:"*"`, "ip:*"},
		{`ip:\*`, `ip:\*`},
		{"last_seen<-1h30m", "last_seen<-1h30m"},
		{"AND:1 or NOT:2", "and:1 OR not:2"},
		{"a:1(b:2)", "a:1 AND b:2"},
		{"a:b:c", "a:b:c"},
		{"ip:fe80::1", "ip:fe80::1"},
		{"a:\xff\xfe", "a:\xff\xfe"},
	}
	for _, c := range cases {
		q, err := Parse(c.query, WithNow(now))
		if err != nil {
			t.Errorf("Parse(%q): %v", c.query, err)
			continue
		}
		got := q.String()
		if got != c.canonical {
			t.Errorf("Parse(%q).String() = %q, want %q", c.query, got, c.canonical)
		}
		q2, err := Parse(got, WithNow(now))
		if err != nil || q2.String() != got {
			t.Errorf("Parse(%q) = %v, %v: not a round trip", got, q2, err)
		}
	}
}

func TestErrors(t *testing.T) {
	cases := []struct {
		query string
		pos   int
		msg   string
	}{
		{"fw<", 3, "expected a value after 'fw<'"},
		{"status:alarm fw<", 16, "expected a value after 'fw<'"},
		{"fw<=", 4, "expected a value after 'fw<='"},
		{`fw<""`, 3, "expected a value after 'fw<'"},
		{"owner: ops", 6, "expected a value right after 'owner:', without a space"},
		{"status:", 7, "expected a value after 'status:'"},
		{"status:(alarm)", 7, "expected a value after 'status:'"},
		{"plc-a-1", 7, "expected ':' or a comparison (<, <=, >, >=) after 'plc-a-1'"},
		{"fw=2.9", 2, "unexpected '=' after the field name 'fw'"},
		{"fw!=2.9", 2, "unexpected '!' after the field name 'fw'"},
		{":alarm", 0, "expected a field name (letters, digits, '_', '.', '-'), found ':'"},
		{"*", 0, "expected a field name"},
		{"status:alarm -connected:true", 13, "not '-' (to exclude, write NOT field:value)"},
		{"é:x", 0, "found byte 0xc3"},
		{`"plant ops"`, 0, "expected a field name before the quoted value"},
		{`owner:"plant ops`, 6, "this quote is not closed"},
		{`owner:plant"ops"`, 11, "a quote inside a value"},
		{`owner:ops\`, 9, "'\\' at the end of the query escapes nothing"},
		{"(status:alarm", 0, "this '(' is not closed"},
		{"a:1 (b:2 (c:3)", 4, "this '(' is not closed"},
		{"status:alarm)", 12, "')' without a matching '('"},
		{"()", 1, "expected a search term such as status:alarm after '(', found ')'"},
		{"a:1 AND", 7, "expected a search term such as status:alarm after 'AND', found the end of the query"},
		{"a:1 or", 6, "after 'or', found the end"},
		{"a:1 AND OR b:2", 8, "after 'AND', found 'OR'"},
		{"OR a:1", 0, "expected a search term such as status:alarm, found 'OR'"},
		{"NOT", 3, "after 'NOT', found the end of the query"},
		{"a:1 AND )", 8, "after 'AND', found ')'"},
		{"fw<2.9.*", 7, "a wildcard ('*', '?') works after ':' only, not after 'fw<'"},
		{"fw>=?", 4, "a wildcard"},
		{"firmware:2.9", 0, "unknown field 'firmware'"},
		{"status:alarm Firmware<2", 13, "unknown field 'Firmware'"},
		{"score>high", 6, "'high' is not a number, and score holds numbers (as in score>5)"},
		{"score:high", 6, "'high' is not a number"},
		{"fw<latest", 3, "'latest' is not a version, and fw holds versions (as in fw<2.9.4)"},
		{"last_seen<1h", 10, "'1h' is not a time: write one relative to now, as in last_seen<-1h"},
		{"last_seen<2026-02-30", 10, "is not a time"},
		{"last_seen>-99999999w", 10, "'-99999999w' is more than 100 years from now"},
		{strings.Repeat("(", 101) + "a:1" + strings.Repeat(")", 101), 100, "more than 100 deep"},
		{strings.Repeat("NOT ", 101) + "a:1", 400, "more than 100 deep"},
	}
	for _, c := range cases {
		q, err := Parse(c.query, schema, WithNow(now))
		var perr *Error
		if !errors.As(err, &perr) {
			t.Errorf("Parse(%q) = %v, %v; want an *Error", c.query, q, err)
			continue
		}
		if perr.Pos != c.pos || !strings.Contains(perr.Msg, c.msg) {
			t.Errorf("Parse(%q): %v\nwant position %d: ...%s...", c.query, err, c.pos, c.msg)
		}
		if !strings.HasPrefix(err.Error(), "position ") {
			t.Errorf("Parse(%q): %q does not start with its position", c.query, err)
		}
	}
	// 100 levels are fine.
	if _, err := Parse(strings.Repeat("(", 100)+"a:1"+strings.Repeat(")", 100), schema); err != nil {
		t.Errorf("100 parentheses: %v", err)
	}
	var perr *Error
	_, err := Parse("fw<")
	if !errors.As(err, &perr) || err.Error() != "position 3: expected a value after 'fw<'" {
		t.Errorf("Parse(\"fw<\") = %v", err)
	}
}

func TestWithFields(t *testing.T) {
	_, err := Parse("Status:alarm OR colour:red", WithFields("status", "Device"))
	if err == nil || err.Error() != "position 16: unknown field 'colour'" {
		t.Errorf("unknown field: %v", err)
	}
	if _, err := Parse("device:x", WithFields("status", "Device")); err != nil {
		t.Errorf("a known field declared in upper case: %v", err)
	}
}

func TestFields(t *testing.T) {
	q, err := Parse("status:alarm (FW<2.9.4 OR NOT fw:2.*) last_seen<-1h Status:*")
	if err != nil {
		t.Fatal(err)
	}
	if got := q.Fields(); !slices.Equal(got, []string{"status", "fw", "last_seen"}) {
		t.Errorf("Fields() = %q", got)
	}
	if q, _ := Parse(""); q.Fields() != nil || q.Root() != nil || q.String() != "" {
		t.Error("the empty query has fields, an expression or text")
	}
}

func TestRelativeTime(t *testing.T) {
	cases := []struct {
		lit  string
		want time.Duration
	}{
		{"-1h", -time.Hour}, {"+10m", 10 * time.Minute}, {"-90s", -90 * time.Second}, {"-1h30m", -90 * time.Minute},
		{"-7d", -7 * 24 * time.Hour}, {"-2w", -14 * 24 * time.Hour}, {"-1d12h", -36 * time.Hour}, {"-0s", 0},
	}
	for _, c := range cases {
		q, err := Parse("last_seen>"+c.lit, schema, WithNow(now))
		if err != nil {
			t.Errorf("%s: %v", c.lit, err)
			continue
		}
		term := q.Root().(*Term)
		if want := now.Add(c.want); !term.at.Equal(want) {
			t.Errorf("%s is %v, want %v", c.lit, term.at, want)
		}
		// The boundary itself: > excludes it, >= includes it.
		at := now.Add(c.want)
		if term.MatchTime(at) || !term.MatchTime(at.Add(time.Nanosecond)) {
			t.Errorf("last_seen>%s at its boundary", c.lit)
		}
	}
	for _, bad := range []string{"-1", "-h", "-1y", "-1h-", "1h", "-1.5h", "-1H", "- 1h"} {
		if _, ok, _ := parseRelative(bad); ok {
			t.Errorf("parseRelative(%q) accepted", bad)
		}
	}
	// now defaults to the time of Parse.
	q, err := Parse("last_seen>-1m", schema)
	if err != nil {
		t.Fatal(err)
	}
	if !q.Match(device{"last_seen": {time.Now().UTC().Format(time.RFC3339Nano)}}) {
		t.Error("a device seen now is not seen within the last minute")
	}
}

func TestCompareVersions(t *testing.T) {
	// Each row is in ascending order; = marks equal neighbours.
	rows := [][]string{
		{"", "=0", "=0.0", "0.1", "1.0", "1.0.0a", "1.0.1"},
		{"2.7.1", "2.9", "=2.9.0", "=v2.9.0", "=V2.9.0+build5", "2.9.3", "2.9.4-alpha", "2.9.4-alpha.1", "2.9.4-alpha.beta",
			"2.9.4-beta", "2.9.4-beta.2", "2.9.4-beta.10", "2.9.4-rc1", "=2.9.4-RC1", "2.9.4-rc2", "2.9.4-rc10", "2.9.4",
			"=2.9.4+b7", "=2.09.4", "2.9.4a", "2.9.10", "2.10.0", "2.99", "3", "=v3.0", "10.0.0"},
		{"4.1", "4.1.1", "V4.1_SP1", "V4.1_SP2", "V4.1_SP10", "4.2"}, // a number field sorts before letters
		{"1.0", "99999999999999999999.1", "100000000000000000000"},
		{"2.9.4", "2.9.4.1", "2.9.4.x", "2.9.4x"},
	}
	for _, row := range rows {
		for i := 1; i < len(row); i++ {
			a, b, want := row[i-1], row[i], -1
			if strings.HasPrefix(b, "=") {
				b, want = b[1:], 0
			}
			a = strings.TrimPrefix(a, "=")
			if got := CompareVersions(a, b); got != want {
				t.Errorf("CompareVersions(%q, %q) = %d, want %d", a, b, got, want)
			}
			if got := CompareVersions(b, a); got != -want {
				t.Errorf("CompareVersions(%q, %q) = %d, want %d", b, a, got, -want)
			}
		}
	}
}

func TestGlob(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true}, {"?", "", false}, {"?", "é", true}, {"??", "é", false}, {"a*", "A", true},
		{"plc-a-*", "PLC-A-17", true}, {"*-1", "plc-a-1", true}, {"*-1", "plc-a-10", false},
		{"2.9.*", "2.9.4", true}, {"2.9.*", "2.9", false}, {"2.9.*", "2x9x4", false},
		{"a.*", "abc", false}, {"a.*", "a.x", true}, // '.' is a dot, not any character
		{"[ab]*", "a", false}, {"[ab]*", "[ab]c", true}, {"(?i)x", "(?i)x", true}, {"(?i)x", "X", false},
		{"a+", "aa", false}, {"a+", "a+", true}, {"^a$", "a", false}, {"^a$", "^A$", true},
		{"a|b", "a", false}, {`x\*`, "x*", true}, {`x\*`, "xy", false}, {`x\?`, "x?", true}, {`x\\`, `x\`, true},
		{"*a*a*a*a*a*a*a*b", strings.Repeat("a", 5000), false},
		{"straße", "STRASSE", false}, {"ǅ*", "ǆx", true}, {"k", "\u212a", true}, // Kelvin sign folds to k
		{"\xff", "\xfe", false}, {"?", "\xff", true},
	}
	for _, c := range cases {
		if got := matchGlob(c.pattern, c.s); got != c.want {
			t.Errorf("matchGlob(%q, %q) = %v, want %v", c.pattern, c.s, got, c.want)
		}
	}
}

func TestParseTime(t *testing.T) {
	good := []string{"2026-12-06T12:00:00Z", "2026-12-06T12:00:00.123456789Z", "2026-12-06T12:00:00.1234567891+01:30",
		"2024-02-29T00:00:00-23:59", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z"}
	for _, s := range good {
		got, ok := parseTime(s)
		want, err := time.Parse(time.RFC3339, s)
		if !ok || err != nil || !got.Equal(want) {
			t.Errorf("parseTime(%q) = %v, %v; time.Parse: %v, %v", s, got, ok, want, err)
		}
	}
	if got, ok := parseTime("2026-12-06"); !ok || !got.Equal(time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("a date: %v %v", got, ok)
	}
	bad := []string{"2026-12-06T12:00:00", "2026-13-01", "2025-02-29", "2026-12-06t12:00:00Z", "2026-12-06T24:00:00Z",
		"2026-12-06T12:00:60Z", "2026-12-06T12:00:00+24:00", "2026-12-06T12:00:00.Z", "26-12-06", "2026-12-6", "soon"}
	for _, s := range bad {
		if got, ok := parseTime(s); ok {
			t.Errorf("parseTime(%q) = %v, want no time", s, got)
		}
	}
}

// typed is a device that also keeps score and last_seen typed.
type typed struct {
	device
	score float64
	seen  time.Time
}

func (d typed) GetNumber(field string) (float64, bool) { return d.score, field == "score" }
func (d typed) GetTime(field string) (time.Time, bool) { return d.seen, field == "last_seen" }

func TestTypedRecordAgreesWithText(t *testing.T) {
	for name, d := range fleet {
		td := typed{device: d}
		var ok bool
		if td.score, ok = parseNumber(d["score"][0]); !ok {
			continue
		}
		if td.seen, ok = parseTime(d["last_seen"][0]); !ok {
			continue
		}
		for _, query := range []string{"score>5", "score<=7.5", "score:12", "last_seen<-1h", "last_seen>=2026-12-06", "score:*", "score:1*"} {
			q, err := Parse(query, schema, WithNow(now))
			if err != nil {
				t.Fatal(err)
			}
			if q.Match(td) != q.Match(d) {
				t.Errorf("%s: %q matches the typed record %v, the text one %v", name, query, q.Match(td), q.Match(d))
			}
		}
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	q, err := Parse(benchQuery, schema, WithNow(now))
	if err != nil {
		t.Fatal(err)
	}
	d := benchDevice()
	if allocs := testing.AllocsPerRun(100, func() { q.Match(d) }); allocs != 0 {
		t.Errorf("Match allocates %v times per record", allocs)
	}
}
