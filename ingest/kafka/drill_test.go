package kafka

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/vigil-ot/vigil/ingest"
)

var testDrill = DrillCheck{Key: []byte("k3y"), DevicePrefix: "vigil-drill-"}

// decodeDrill decodes value with the given drill headers and returns the
// rows it yields and the rejection's reason ("" when accepted).
func decodeDrill(t testing.TB, check DrillCheck, value []byte, headers ...kafkago.Header) (int, string) {
	t.Helper()
	dec, err := NewTelemetryDecoder(ingest.DefaultTelemetryConfig(), check)
	if err != nil {
		t.Fatal(err)
	}
	bb := newBatchBuilder(ingest.NewRegistry(), deviceGrouper{})
	rec := &Record{Topic: "telemetry", Value: value, Headers: headers}
	if err := dec.Decode(rec, bb); err != nil {
		var re *RejectError
		if !errors.As(err, &re) {
			t.Fatalf("rejection %v has no reason", err)
		}
		if bb.Len() != 0 {
			t.Fatalf("a rejected record left %d rows", bb.Len())
		}
		return 0, re.Why
	}
	return bb.Len(), ""
}

func drillValue(device string) []byte {
	return fmt.Appendf(nil, `{"device":%q,"ts":"2026-12-01T10:00:00Z","metrics":{"drill_level":50}}`, device)
}

// TestDrillCheck: only a record tagged under the key may name drill
// devices, and it may name only them; without a key every tag is forged.
func TestDrillCheck(t *testing.T) {
	drillDev, realDev := drillValue("vigil-drill-a-0"), drillValue("plc-1")
	tag := func(key string, v []byte) []kafkago.Header {
		return []kafkago.Header{{Key: HeaderDrill, Value: DrillTag([]byte(key), v)}}
	}
	for _, tc := range []struct {
		name    string
		check   DrillCheck
		value   []byte
		headers []kafkago.Header
		want    string
	}{
		{"real device, untagged", testDrill, realDev, nil, ""},
		{"drill device, valid tag", testDrill, drillDev, tag("k3y", drillDev), ""},
		{"drill device, untagged", testDrill, drillDev, nil, ReasonDrillForged},
		{"drill device, tag under another key", testDrill, drillDev, tag("other", drillDev), ReasonDrillForged},
		{"drill device, tag of another value", testDrill, drillDev, tag("k3y", realDev), ReasonDrillForged},
		{"drill device, empty tag", testDrill, drillDev, []kafkago.Header{{Key: HeaderDrill}}, ReasonDrillForged},
		{"real device, valid tag", testDrill, realDev, tag("k3y", realDev), ReasonDrillForged},
		{"real device, forged tag", testDrill, realDev, tag("other", realDev), ReasonDrillForged},
		{"no key configured", DrillCheck{DevicePrefix: "vigil-drill-"}, drillDev, tag("", drillDev), ReasonDrillForged},
		{"upper-case hex is not the tag", testDrill, drillDev, []kafkago.Header{{Key: HeaderDrill, Value: bytes.ToUpper(DrillTag([]byte("k3y"), drillDev))}}, ReasonDrillForged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, why := decodeDrill(t, tc.check, tc.value, tc.headers...)
			if why != tc.want || (why == "" && rows != 1) {
				t.Errorf("got %d rows, reason %q; want reason %q", rows, why, tc.want)
			}
		})
	}
}

// FuzzDrillCheck: a record is accepted as a drill exactly when its header
// is the HMAC of its value under the key, and then only with drill
// devices; an untagged record only with real devices. Never a panic.
func FuzzDrillCheck(f *testing.F) {
	v := drillValue("vigil-drill-a-0")
	f.Add(v, DrillTag(testDrill.Key, v), true)
	f.Add(v, []byte("00"), true)
	f.Add(drillValue("plc-1"), []byte(nil), false)
	f.Add(drillValue("vigil-drill-"), DrillTag(testDrill.Key, drillValue("vigil-drill-")), true)
	f.Add([]byte(`[{"device":"vigil-drill-x","ts":1,"metrics":{"a":1}},{"device":"plc","ts":1,"metrics":{"a":1}}]`), []byte(nil), false)
	f.Fuzz(func(t *testing.T, value, tag []byte, tagged bool) {
		var headers []kafkago.Header
		if tagged {
			headers = []kafkago.Header{{Key: HeaderDrill, Value: tag}}
		}
		_, why := decodeDrill(t, testDrill, value, headers...)
		if why != "" && why != ReasonDrillForged {
			return // not telemetry at all
		}
		valid := tagged && bytes.Equal(tag, DrillTag(testDrill.Key, value))
		if tagged && !valid && why != ReasonDrillForged {
			t.Fatalf("a record with a forged tag %q was accepted", tag)
		}
		if why == ReasonDrillForged && valid {
			// Accepted tags are refused only for naming a real device.
			if _, ok := namesOnly(t, value, true); ok {
				t.Fatalf("a valid drill record of drill devices was refused")
			}
		}
		if why == "" {
			if _, ok := namesOnly(t, value, valid); !ok {
				t.Fatalf("a record (drill %v) naming the other kind of device was accepted", valid)
			}
		}
	})
}

// namesOnly decodes value without the drill check and reports whether all
// its devices are drill devices (drill) or all are real ones (!drill).
func namesOnly(t *testing.T, value []byte, drill bool) (int, bool) {
	dec, err := NewTelemetryDecoder(ingest.DefaultTelemetryConfig(), DrillCheck{})
	if err != nil {
		t.Fatal(err)
	}
	td := dec.(*telemetryDecoder)
	rows, err := td.d.Decode(nil, value, 0)
	if err != nil {
		return 0, false
	}
	for i := range rows {
		if testDrill.IsDrillDevice(rows[i].Device) != drill {
			return len(rows), false
		}
	}
	return len(rows), true
}
