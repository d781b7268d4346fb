package query

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzParse parses anything: Parse must not panic, a failure must be an
// *Error with a position inside the query, and a success must print a
// canonical form that parses to itself and matches the same records. Its
// seed corpus is in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add("status:alarm AND NOT group:plant-a/*")
	records := []Record{}
	for _, d := range fleet {
		records = append(records, d)
		if score, ok := parseNumber(d["score"][0]); ok {
			seen, _ := parseTime(d["last_seen"][0])
			records = append(records, typed{device: d, score: score, seen: seen})
		}
	}
	records = append(records, device{}, device{"a": {"1"}, "b": {"", "x y"}, "c": {"*", `\`, "\xff"}})
	f.Fuzz(func(t *testing.T, s string) {
		for _, opts := range [][]Option{{WithNow(now)}, {schema, WithNow(now)}} {
			q, err := Parse(s, opts...)
			if err != nil {
				var perr *Error
				if !errors.As(err, &perr) || perr.Pos < 0 || perr.Pos > len(s) {
					t.Fatalf("Parse(%q): %v, not an *Error inside the query", s, err)
				}
				continue
			}
			canonical := q.String()
			q2, err := Parse(canonical, opts...)
			if err != nil {
				t.Fatalf("Parse(%q) is %q, which does not parse: %v", s, canonical, err)
			}
			if again := q2.String(); again != canonical {
				t.Fatalf("Parse(%q) is %q, then %q", s, canonical, again)
			}
			if !slices.Equal(q.Fields(), q2.Fields()) {
				t.Fatalf("Parse(%q) names %q, its canonical form %q", s, q.Fields(), q2.Fields())
			}
			for _, r := range records {
				if q.Match(r) != q2.Match(r) {
					t.Fatalf("Parse(%q) and its canonical form %q disagree on %v", s, canonical, r)
				}
			}
		}
	})
}

// FuzzCompareVersions checks that CompareVersions is an order: antisymmetric,
// reflexive and transitive, whatever the strings.
func FuzzCompareVersions(f *testing.F) {
	for _, s := range []string{"2.9.4", "v2.10.0-rc1+b", "1..2", "-", "+", "V4.1_SP2", "x.y.z", "2.9.4-rc10", "007"} {
		f.Add(s, "2.9.4", "2.9.4-rc2")
	}
	f.Fuzz(func(t *testing.T, a, b, c string) {
		ab, ba := CompareVersions(a, b), CompareVersions(b, a)
		if ab != -ba {
			t.Fatalf("CompareVersions(%q, %q) = %d but reversed %d", a, b, ab, ba)
		}
		if CompareVersions(a, a) != 0 {
			t.Fatalf("%q is not equal to itself", a)
		}
		bc, ac := CompareVersions(b, c), CompareVersions(a, c)
		if ab <= 0 && bc <= 0 && ac > 0 || ab >= 0 && bc >= 0 && ac < 0 {
			t.Fatalf("not transitive: %q %d %q %d %q, but %d", a, ab, b, bc, c, ac)
		}
	})
}

// FuzzParseTime proves the allocation-free parseTime against time.Parse:
// every time it reads, time.Parse reads as the same instant.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2026-12-06T12:00:00Z", "2026-12-06T12:00:00.5+01:30", "2024-02-29", "2026-12-06T12:00:00.1234567891-23:59"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseTime(s)
		if !ok {
			return
		}
		layout := time.RFC3339
		if len(s) == len(time.DateOnly) {
			layout = time.DateOnly
		}
		want, err := time.Parse(layout, s)
		if err != nil || !got.Equal(want) {
			t.Fatalf("parseTime(%q) = %v; time.Parse: %v, %v", s, got, want, err)
		}
	})
}

// FuzzGlob proves matchGlob against a regular expression built from the
// pattern (in a test only: the package never builds one from a query), on
// UTF-8 text, where regexp's case folding is the same as ours.
func FuzzGlob(f *testing.F) {
	for _, p := range [][2]string{{"plc-a-*", "PLC-A-1"}, {"2.9.?", "2.9.4"}, {`a\*b*`, "a*bc"}, {"*a*b", "xaxb"}, {"[", "["}} {
		f.Add(p[0], p[1])
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		if !utf8.ValidString(pattern) || !utf8.ValidString(s) || strings.HasSuffix(pattern, `\`) && !strings.HasSuffix(pattern, `\\`) {
			return
		}
		var re strings.Builder
		re.WriteString(`(?is)\A`)
		for i := 0; i < len(pattern); {
			r, w := utf8.DecodeRuneInString(pattern[i:])
			switch r {
			case '*':
				re.WriteString(".*")
			case '?':
				re.WriteString(".")
			case '\\':
				if i+w < len(pattern) {
					i += w
					r, w = utf8.DecodeRuneInString(pattern[i:])
				}
				re.WriteString(regexp.QuoteMeta(string(r)))
			default:
				re.WriteString(regexp.QuoteMeta(string(r)))
			}
			i += w
		}
		re.WriteString(`\z`)
		want := regexp.MustCompile(re.String()).MatchString(s)
		if got := matchGlob(pattern, s); got != want {
			t.Fatalf("matchGlob(%q, %q) = %v, the regexp %s says %v", pattern, s, got, re.String(), want)
		}
	})
}
