package telemetry

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fastjson/fastfloat"

	"github.com/vigil-ot/vigil/ingest"
)

// attrGrouper groups by the "site" attribute; enough to drive the builder.
type attrGrouper struct{}

func (attrGrouper) Group(_ string, attrs []ingest.Attr) string {
	for _, a := range attrs {
		if a.Key == "site" {
			return a.Value
		}
	}
	return "unknown"
}

func addSeeds(f *testing.F, globs ...string) {
	for _, g := range globs {
		paths, _ := filepath.Glob(filepath.Join(formatsDir, g))
		for _, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add([]byte("key"), data)
			f.Add([]byte(nil), data)
		}
	}
}

// fuzzDecoder checks what must hold for any input: no panic, an error has
// a reason, accepted rows have a device, finite metrics and survive the
// builder, and decoding is deterministic.
func fuzzDecoder(f *testing.F, format string) {
	f.Fuzz(func(t *testing.T, key, value []byte) {
		d := newDecoder(t, func(c *ingest.TelemetryConfig) { c.Format = format; c.MaxMessageBytes = 1 << 16 })
		rows, err := d.Decode(key, value, 1)
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("error without reason: %v", err)
			}
			return
		}
		if len(rows) == 0 {
			t.Fatal("no rows and no error")
		}
		first := render(rows)
		b := ingest.NewObservationBuilder(nil, ingest.NewRegistry(), attrGrouper{})
		for i := range rows {
			r := &rows[i]
			if r.Device == "" {
				t.Fatalf("row without device: %s", first)
			}
			for _, m := range r.Metrics {
				if m.Name == "" || math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
					t.Fatalf("bad metric %+v", m)
				}
			}
			b.Append(r)
		}
		rec, _ := b.NewRecord()
		if rec.NumRows() != int64(len(rows)) {
			t.Fatalf("record has %d rows, want %d", rec.NumRows(), len(rows))
		}
		rec.Release()
		again, err := d.Decode(key, value, 1)
		if err != nil || render(again) != first {
			t.Fatalf("second decode differs: %v", err)
		}
	})
}

func FuzzNative(f *testing.F) {
	addSeeds(f, "good/native.jsonl", "bad/*.json")
	f.Add([]byte(nil), []byte(`{"device":"a","ts":"2026-11-21T10:00:00Z","metrics":{"x":1},"conn":{"src_ip":"1.2.3.4"}}`))
	fuzzDecoder(f, ingest.FormatNative)
}

func FuzzTelegraf(f *testing.F) {
	addSeeds(f, "good/telegraf.jsonl", "bad/*telegraf*.json")
	f.Add([]byte("h"), []byte(`{"metrics":[{"fields":{"a":1},"name":"m","tags":{"host":"h"},"timestamp":1}]}`))
	fuzzDecoder(f, ingest.FormatTelegraf)
}

func FuzzDefender(f *testing.F) {
	addSeeds(f, "good/defender-*.json", "bad/*defender*.json")
	fuzzDecoder(f, ingest.FormatDefender)
}

func FuzzAuto(f *testing.F) {
	addSeeds(f, "good/*", "bad/*.json")
	fuzzDecoder(f, ingest.FormatAuto)
}

// FuzzNativeFastPath checks the fast native scanner against the fastjson
// reference: whenever the scanner accepts a message, the reference must
// decode it to the same rows.
func FuzzNativeFastPath(f *testing.F) {
	addSeeds(f, "good/native.jsonl", "bad/*.json")
	for _, m := range nativeMessages(8) {
		f.Add([]byte(nil), m)
	}
	f.Add([]byte("k"), []byte(` { "ts" : 1795687200123 , "metrics" : { "x" : -1.5e3 , "y" : true , "z" : null } , "attrs" : { "site" : "a" } } `))
	f.Add([]byte(nil), []byte(`{"v":2,"device":"a","seq":[1,{"x":"q\"}"},null,true,-0.5e1],"ts":1,"metrics":{"x":1},"conn":{"proto":"mqtt","src_ip":"1.2.3.4"}}`))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		for _, format := range []string{ingest.FormatNative, ingest.FormatAuto} {
			fast := newDecoder(t, func(c *ingest.TelemetryConfig) { c.Format = format })
			ref := newDecoder(t, func(c *ingest.TelemetryConfig) { c.Format = format })
			ref.referenceOnly = true
			refRows, refErr := ref.Decode(key, value, 7)
			fast.learnNames = true
			if !fast.scanNative(value, key, 7) {
				continue
			}
			if refErr != nil {
				t.Fatalf("%s: scanner accepted what the reference rejects: %v", format, refErr)
			}
			if got, want := render(fast.rows), render(refRows); got != want {
				t.Fatalf("%s: scanner\n%s\nreference\n%s", format, got, want)
			}
		}
	})
}

// TestFastPathTaken guards the benchmark's premise: typical native
// messages take the scanner, not the fallback.
func TestFastPathTaken(t *testing.T) {
	d := newDecoder(t, nil)
	for i, m := range nativeMessages(100) {
		if _, err := d.Decode(nil, m, 0); err != nil {
			t.Fatal(err)
		}
		d.rows = d.rows[:0]
		if i > 0 && !d.scanNative(m, nil, 0) {
			t.Fatalf("message %d fell back: %s", i, m)
		}
	}
}

// TestKeyCacheHits guards the premise of the key caches: after one
// message, every key of the next message of the same layout is matched
// from the cache.
func TestKeyCacheHits(t *testing.T) {
	for _, msgs := range [][][]byte{nativeMessages(2), kafkaMessages(2)} {
		d := newDecoder(t, nil)
		for _, m := range msgs {
			if _, err := d.Decode(nil, m, 0); err != nil {
				t.Fatal(err)
			}
		}
		for name, c := range map[string]*keyCache{"top": &d.topKeys, "attrs": &d.attrKeys, "metrics": &d.metricKeys, "conn": &d.connKeys} {
			for k, s := range c.slots {
				if len(s.lead) == 0 {
					t.Errorf("%s key %d not cached: %s", name, k, msgs[1])
				}
			}
		}
		if len(d.topKeys.slots) < 4 || len(d.metricKeys.slots) != 5 {
			t.Errorf("cached %d top-level and %d metric keys of %s", len(d.topKeys.slots), len(d.metricKeys.slots), msgs[1])
		}
		// A third message of the layout takes every key from the cache.
		buf := msgs[0]
		i, _ := byteAt(buf, 0, '{')
		for k := range d.topKeys.slots {
			next, _, _, slot, _, ok := d.topKeys.key(buf, i, k)
			if !ok || slot == nil {
				t.Fatalf("top-level key %d missed the cache in %s", k, buf)
			}
			if i, ok = skipAt(buf, next); !ok {
				t.Fatal("cannot skip value")
			}
		}
	}
}

func TestFastPathSkipsUnknownFields(t *testing.T) {
	d := newDecoder(t, nil)
	msg := []byte(`{"v":2,"device":"a","seq":[1,{"x":"q\"}"},null,true,-0.5e1],"ts":1,"metrics":{"x":1},"conn":{"proto":"mqtt","src_ip":"1.2.3.4"}}`)
	if _, err := d.Decode(nil, msg, 0); err != nil {
		t.Fatal(err)
	}
	d.rows = d.rows[:0]
	if !d.scanNative(msg, nil, 0) || d.rows[0].SrcIP != "1.2.3.4" {
		t.Fatalf("unknown fields sent the message to the fallback: %+v", d.rows)
	}
	d.rows = d.rows[:0]
	if d.scanNative([]byte(`{"v":-,"device":"a","ts":1,"metrics":{"x":1}}`), nil, 0) {
		t.Fatal("scanner accepted a lone minus that fastjson rejects")
	}
}

// TestFastPathMatchesReference puts awkward tokens in every slot the
// scanner reads or skips and checks it never accepts what the reference
// rejects or decodes differently; fuzzing finds such tokens only slowly.
func TestFastPathMatchesReference(t *testing.T) {
	tokens := []string{`-`, `+`, `+1`, `.5`, `1e`, `--1`, `1-2`, `NaN`, `nan`, `-Inf`, `inf`, `Infinity`, `1e400`, `-0`, `0x10`,
		`"a\"b"`, `"a\\"`, `"\u00e9"`, `"`, `[]`, `[1,]`, `[,1]`, `[1 2]`, `{}`, `{"a":}`, `{"a" 1}`, `{,}`, `tru`, `nul`, `null`,
		`true`, `false`, `1.2.3`, `""`, `"x"`, ` 1 `, "\t1\n", `[[[[[]]]]]`, `{"a":[{"b":null}]}`, `1}`, `"x" "y"`}
	templates := []string{
		`{"device":"a","ts":1,"metrics":{"x":1},"extra":%s}`,
		`{"device":"a","ts":1,"metrics":{"x":%s}}`,
		`{"device":"a","ts":%s,"metrics":{"x":1}}`,
		`{"device":%s,"ts":1,"metrics":{"x":1}}`,
		`{"device":"a","ts":1,"metrics":{"x":1},"attrs":{"site":%s}}`,
		`{"device":"a","ts":1,"metrics":{"x":1},"conn":{"src_ip":%s}}`,
		`{"device":"a","ts":1,"metrics":{"x":1},"conn":{"proto":%s}}`,
		`{"device":"a","ts":1,"metrics":{"x":1}}%s`,
		`%s{"device":"a","ts":1,"metrics":{"x":1}}`,
		`{"name":%s,"device":"a","ts":1,"metrics":{"x":1}}`,
		`{"thing":%s,"hed":{"rid":1},"device":"a","ts":1,"metrics":{"x":1}}`,
		`{"ts":1,"metrics":{"x":1},"fields":%s,"device":"a"}`,
	}
	for _, tpl := range templates {
		for _, tok := range tokens {
			msg := []byte(fmt.Sprintf(tpl, tok))
			ref := newDecoder(t, nil)
			ref.referenceOnly = true
			want, refErr := ref.Decode([]byte("k"), msg, 5)
			fast := newDecoder(t, nil)
			fast.learnNames = true
			if !fast.scanNative(msg, []byte("k"), 5) {
				continue
			}
			if refErr != nil {
				t.Errorf("%s: scanner accepted, reference: %v", msg, refErr)
			} else if render(fast.rows) != render(want) {
				t.Errorf("%s: scanner\n%s reference\n%s", msg, render(fast.rows), render(want))
			}
		}
	}
}

// FuzzParseRFC3339UTC checks the hand-written timestamp parser against
// time.Parse: whatever it accepts, time.Parse must accept as the same
// instant, and parseTimeString must give what time.Parse alone gives.
func FuzzParseRFC3339UTC(f *testing.F) {
	for _, s := range []string{"2026-11-21T10:00:00.123Z", "2026-11-21T10:00:00Z", "1970-01-01T00:00:00.000000001Z",
		"2261-12-31T23:59:59.999999999Z", "2024-02-29T12:00:00Z", "2023-02-29T12:00:00Z", "2026-11-21T10:00:60Z",
		"2026-11-21T24:00:00Z", "2026-11-21t10:00:00Z", "2026-11-21T10:00:00.Z", "2026-11-21T10:00:00.1234567890Z",
		"2026-11-21T10:00:00+01:00", "0000-01-01T00:00:00Z", "1969-12-31T23:59:59.9Z", "2026-13-01T00:00:00Z",
		"2026-11-21T10:00:00,5Z", "+026-11-21T10:00:00Z", "2026-1a-21T10:00:00Z", "9999-12-31T23:59:59Z"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ref, refErr := time.Parse(time.RFC3339Nano, string(b))
		if ns, y, ok := parseRFC3339UTC(b); ok {
			if refErr != nil {
				t.Fatalf("%q: accepted, time.Parse: %v", b, refErr)
			}
			if y != ref.Year() || (y >= 1970 && y <= 2261 && ns != ref.UnixNano()) {
				t.Fatalf("%q: got %d (year %d), time.Parse %d (year %d)", b, ns, y, ref.UnixNano(), ref.Year())
			}
		}
		got, err := parseTimeString(b)
		want, wantErr := int64(0), refErr
		if refErr == nil {
			if y := ref.Year(); y < 1970 || y > 2261 {
				wantErr = errors.New("out of range")
			} else {
				want = ref.UnixNano()
			}
		}
		if (err != nil) != (wantErr != nil) || got != want {
			t.Fatalf("%q: parseTimeString %d, %v; time.Parse %d, %v", b, got, err, want, wantErr)
		}
	})
}

// FuzzParseNumber checks the scanner's integer shortcut against
// fastfloat.Parse, which the reference decoder uses, bit for bit, and its
// integers against strconv.ParseFloat.
func FuzzParseNumber(f *testing.F) {
	for _, s := range []string{"0", "-0", "1234", "-1234", "999999999999999999", "-999999999999999999",
		"9999999999999999999", "123456789012345678", "9007199254740993", "-9007199254740993", "12.5", "1e3",
		"-", "", "007", "1-2", "+1", "18446744073709551616", "0.1", "-.5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := parseNumber(raw)
		want, wantErr := fastfloat.Parse(raw)
		if (err != nil) != (wantErr != nil) || (err == nil && math.Float64bits(got) != math.Float64bits(want) && !(math.IsNaN(got) && math.IsNaN(want))) {
			t.Fatalf("%q: parseNumber %v, %v; fastfloat.Parse %v, %v", raw, got, err, want, wantErr)
		}
		digits := strings.TrimPrefix(raw, "-")
		if digits != "" && strings.Trim(digits, "0123456789") == "" && err == nil {
			if x, err := strconv.ParseFloat(raw, 64); err == nil && math.Float64bits(x) != math.Float64bits(got) {
				t.Fatalf("%q: parseNumber %v, strconv.ParseFloat %v", raw, got, x)
			}
		}
	})
}

// FuzzNumberValueAt checks the scanner's one-pass number reader against
// numberAt followed by parseNumber (itself checked against fastfloat by
// FuzzParseNumber): same verdict, same end, same bits.
func FuzzNumberValueAt(f *testing.F) {
	for _, s := range []string{"0", "-0", "1012.3", "-29.87", "0.000001", "1.", ".5", "-.5", "1e3", "1.5E-2", "1.2.3",
		"123456789012345", "1234567890.12345", "12345678901.2345", "999999999999999999", "-999999999999999999",
		"9999999999999999999", "1-2", "+1", "-", "", " 12 ", "7,", "7}", "007.50", "1.0000000000000000000001", "NaN", "-Inf", "1e400"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		x, next, ok := numberValueAt(b, 0)
		wx, wnext, wok := numberValueSlow(b, ws(b, 0))
		if ok != wok || ok && (next != wnext || math.Float64bits(x) != math.Float64bits(wx)) {
			t.Fatalf("%q: numberValueAt %v, %d, %v; numberAt+parseNumber %v, %d, %v", b, x, next, ok, wx, wnext, wok)
		}
	})
}

// FuzzNativeFastPathWarm is FuzzNativeFastPath for a scanner that has
// read another message first (prev) and then value itself, so its key
// caches hold prev's layout and then value's own: the scanner must accept
// no more than with cold caches and decode to the reference's rows.
func FuzzNativeFastPathWarm(f *testing.F) {
	msgs := append(nativeMessages(4), kafkaMessages(4)...)
	for i := 0; i+1 < len(msgs); i++ {
		f.Add(msgs[i], msgs[i+1])
	}
	f.Add(msgs[0], msgs[len(msgs)-1])
	f.Add([]byte(`{"device":"a","ts":1,"metrics":{"x":1,"y":null},"attrs":{"site":"s"}}`),
		[]byte(`{"device":"a","ts":1,"metrics":{"x":1,"y":2,"z":3},"attrs":{"site":"s","hw":null}}`))
	f.Add([]byte(`{"device":"a","ts":1,"metrics":{"x":1}}`), []byte(`{"device":"a","ts":1,"metrics":{"x":1},"name":"n"}`))
	f.Add([]byte(`{ "device" : "a", "ts" : 1, "metrics" : { "x" : 1 } }`), []byte(`{ "device" : "a", "ts" : 1, "metrics" : { "x" :  1 ,"y":2} }`))
	f.Fuzz(func(t *testing.T, prev, value []byte) {
		ref := newDecoder(t, nil)
		ref.referenceOnly = true
		refRows, refErr := ref.Decode([]byte("k"), value, 7)
		want := render(refRows)
		fast := newDecoder(t, nil)
		fast.learnNames = true
		fast.scanNative(prev, []byte("k"), 7)
		for pass := range 2 {
			fast.rows = fast.rows[:0]
			if !fast.scanNative(value, []byte("k"), 7) {
				continue
			}
			if refErr != nil {
				t.Fatalf("pass %d: scanner accepted what the reference rejects: %v", pass, refErr)
			}
			if got := render(fast.rows); got != want {
				t.Fatalf("pass %d: scanner\n%s\nreference\n%s", pass, got, want)
			}
		}
	})
}

// FuzzMinuteCache checks that parsing b after a with a minuteCache gives
// what parseRFC3339UTC gives for b alone (the cache then holds a's minute,
// or b's own when the fuzzer makes them equal).
func FuzzMinuteCache(f *testing.F) {
	f.Add([]byte("2026-11-21T10:00:00.123Z"), []byte("2026-11-21T10:00:59.9Z"))
	f.Add([]byte("2026-11-21T10:00:00Z"), []byte("2026-11-21T10:01:00Z"))
	f.Add([]byte("2024-02-29T12:00:00Z"), []byte("2024-02-29T12:00:60Z"))
	f.Add([]byte("2026-11-21T10:00:00Z"), []byte("2026-11-21T10:00:00.1234567890Z"))
	f.Add([]byte("2026-13-01T00:00:00Z"), []byte("2026-13-01T00:00:00Z"))
	f.Add([]byte("9999-12-31T23:59:59Z"), []byte("9999-12-31T23:59:59.999999999Z"))
	f.Add([]byte("2026-11-21T10:00:00Z"), []byte("2026-11-21T10:00:00+01:00"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		var c minuteCache
		c.parse(a)
		for pass := range 2 {
			ns, y, ok := c.parse(b)
			wns, wy, wok := parseRFC3339UTC(b)
			if ok != wok || ok && (ns != wns || y != wy) {
				t.Fatalf("pass %d, after %q: %q: cached %d, %d, %v; parseRFC3339UTC %d, %d, %v", pass, a, b, ns, y, ok, wns, wy, wok)
			}
		}
	})
}
