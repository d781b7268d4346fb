package kafka

import (
	"bytes"
	"testing"
)

func TestChangelogValueRoundTrip(t *testing.T) {
	v := appendChangelogHeader(nil, 123456789)
	v = append(v, "state"...)
	next, data, err := parseChangelogValue(v)
	if err != nil || next != 123456789 || string(data) != "state" {
		t.Fatalf("parse(append(123456789, state)) = %d %q %v", next, data, err)
	}
	if _, _, err := parseChangelogValue([]byte{9, 0, 0}); err == nil {
		t.Error("a short value of another version parsed")
	}
}

func TestChangelogPartitionFromKey(t *testing.T) {
	for key, want := range map[string]int{
		"telemetry/0/d/plc-1":      0,
		"telemetry/17/m":           17,
		"ot.packets-2/305/d/a/b/":  305,
		"no-slash":                 0,
		"t/99999999999999999999/m": 0,
	} {
		if got := changelogPartition([]byte(key)); got != want {
			t.Errorf("changelogPartition(%q) = %d, want %d", key, got, want)
		}
	}
}

func TestRestoreFilter(t *testing.T) {
	f := newRestoreFilter(100, map[string]changelogEntry{"a": {next: 150}, "b": {next: 90}})
	for _, c := range []struct {
		dev     string
		off     int64
		covered bool
	}{
		{"a", 99, true}, {"b", 99, true}, {"c", 99, true}, // below the marker: in every device's state
		{"a", 120, true}, {"a", 150, false}, // a's own checkpoint is later
		{"b", 100, false}, {"c", 100, false},
	} {
		if got := f.covered(c.dev, c.off); got != c.covered {
			t.Errorf("covered(%s, %d) = %v, want %v", c.dev, c.off, got, c.covered)
		}
	}
}

func FuzzChangelogRecord(f *testing.F) {
	f.Add([]byte("telemetry/3/d/plc-1"), appendChangelogHeader(nil, 42))
	f.Add([]byte("t/99999999999999999999/m"), []byte{1})
	f.Fuzz(func(t *testing.T, key, value []byte) {
		if p := changelogPartition(key); p < 0 {
			t.Fatalf("negative partition %d from key %q", p, key)
		}
		next, data, err := parseChangelogValue(value)
		if err != nil {
			return
		}
		if again := append(appendChangelogHeader(nil, next), data...); !bytes.Equal(again, value) {
			t.Fatalf("value %x does not round-trip: %x", value, again)
		}
	})
}
