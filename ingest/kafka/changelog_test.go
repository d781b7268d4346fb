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

// deviceCodec stands for the baseline (DeviceState) and the engine
// (DeviceAlarms) in the encoding of a device's changelog value.
type deviceCodec struct{ state, alarms string }

func (d deviceCodec) MarshalDevice(dst []byte, _ string) ([]byte, error) {
	return append(dst, d.state...), nil
}
func (deviceCodec) UnmarshalDevice(string, []byte) error { return nil }
func (deviceCodec) ForgetDevice(string)                  {}
func (d deviceCodec) MarshalDeviceAlarms(dst []byte, _ string) ([]byte, error) {
	return append(dst, d.alarms...), nil
}
func (deviceCodec) UnmarshalDeviceAlarms(string, []byte) error { return nil }
func (deviceCodec) AlarmsChanged(dst []int32) []int32          { return dst }

// TestChangelogDeviceValueVersions: a device's value carries the baseline
// and the alarm state apart (version 2); a version 1 value, written before
// alarms travelled, still loads, without alarm state.
func TestChangelogDeviceValueVersions(t *testing.T) {
	codec := deviceCodec{state: "baseline-state", alarms: "alarm-state"}
	c := &Consumer{state: codec, alarms: codec}
	v, err := c.appendDeviceValue(nil, 77, "plc-1")
	if err != nil {
		t.Fatal(err)
	}
	e, err := parseDeviceValue(v)
	if err != nil || e.next != 77 || string(e.data) != codec.state || string(e.alarms) != codec.alarms {
		t.Fatalf("version 2: %d %q %q %v", e.next, e.data, e.alarms, err)
	}
	c.alarms = nil // an engine that keeps no alarm state
	v, _ = c.appendDeviceValue(nil, 77, "plc-1")
	if e, err := parseDeviceValue(v); err != nil || string(e.data) != codec.state || len(e.alarms) != 0 {
		t.Fatalf("version 2 without alarms: %q %q %v", e.data, e.alarms, err)
	}

	v1 := append([]byte{1, 0, 0, 0, 0, 0, 0, 0, 77}, codec.state...)
	if e, err := parseDeviceValue(v1); err != nil || e.next != 77 || string(e.data) != codec.state || e.alarms != nil {
		t.Fatalf("version 1: %d %q %q %v", e.next, e.data, e.alarms, err)
	}
	long := appendChangelogHeader(nil, 77)
	long = append(long, 0, 0, 1, 0) // 256 bytes of baseline state announced
	long = append(long, codec.state...)
	if _, err := parseDeviceValue(long); err == nil {
		t.Error("a baseline state longer than the value parsed")
	}
	if _, err := parseDeviceValue(appendChangelogHeader(nil, 77)); err == nil {
		t.Error("a version 2 value without the baseline state's length parsed")
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
	f.Add([]byte("telemetry/3/d/plc-1"), append(appendChangelogHeader(nil, 42), 0, 0, 0, 2, 'b', 's', 'a'))
	f.Add([]byte("telemetry/3/d/plc-1"), append([]byte{1, 0, 0, 0, 0, 0, 0, 0, 42}, 'b', 's'))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		if p := changelogPartition(key); p < 0 {
			t.Fatalf("negative partition %d from key %q", p, key)
		}
		if e, err := parseDeviceValue(value); err == nil && value[0] == changelogVersion {
			codec := deviceCodec{state: string(e.data), alarms: string(e.alarms)}
			c := &Consumer{state: codec, alarms: codec}
			if again, _ := c.appendDeviceValue(nil, e.next, ""); !bytes.Equal(again, value) {
				t.Fatalf("device value %x does not round-trip: %x", value, again)
			}
		}
		next, data, err := parseChangelogValue(value)
		if err != nil {
			return
		}
		// the same header in the current version
		if again := append(appendChangelogHeader(nil, next), data...); !bytes.Equal(again[1:], value[1:]) {
			t.Fatalf("value %x does not round-trip: %x", value, again)
		}
	})
}
