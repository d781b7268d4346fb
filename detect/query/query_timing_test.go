package query

import "testing"

// benchQuery has five clauses of four kinds: text, wildcard, version, time
// and number, one negated.
const benchQuery = "status:alarm AND fw<2.9.4 AND last_seen<-1h AND score>5 AND NOT group:plant-a/*"

// benchDevice is a device as the console might hold it: some twenty
// attributes, two addresses, two open alarms, and every clause of
// benchQuery satisfied, so that Match evaluates all five.
func benchDevice() device {
	return device{
		"device": {"plc-b-0173"}, "group": {"plant-b/line-3/plc"}, "site": {"north"}, "hw": {"S7-1500"},
		"fw": {"2.9.3"}, "owner": {"plant ops"}, "criticality": {"high"}, "patchable": {"false"},
		"status": {"alarm"}, "learning": {"false"}, "last_seen": {"2026-12-06T10:14:07.123Z"}, "connected": {"false"},
		"detector": {"self", "identity"}, "ip": {"10.3.0.173", "192.168.30.173"}, "cert": {"sha256:4f9a0c"},
		"score": {"7.25"}, "vendor": {"Siemens"}, "protocol": {"s7comm"}, "zone": {"cell-3"}, "interval": {"10s"},
	}
}

func BenchmarkMatch(b *testing.B) {
	q, err := Parse(benchQuery, schema, WithNow(now))
	if err != nil {
		b.Fatal(err)
	}
	d := benchDevice()
	if !q.Match(d) {
		b.Fatal("the benchmark device does not match")
	}
	b.ReportAllocs()
	for b.Loop() {
		q.Match(d)
	}
}

// BenchmarkMatchTyped is BenchmarkMatch over a record that keeps score and
// last_seen as numbers and times (NumberRecord, TimeRecord).
func BenchmarkMatchTyped(b *testing.B) {
	q, err := Parse(benchQuery, schema, WithNow(now))
	if err != nil {
		b.Fatal(err)
	}
	d := &typed{device: benchDevice(), score: 7.25}
	d.seen, _ = parseTime(d.device["last_seen"][0])
	if !q.Match(d) {
		b.Fatal("the benchmark device does not match")
	}
	b.ReportAllocs()
	for b.Loop() {
		q.Match(d)
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchQuery)))
	for b.Loop() {
		if _, err := Parse(benchQuery, schema, WithNow(now)); err != nil {
			b.Fatal(err)
		}
	}
}
