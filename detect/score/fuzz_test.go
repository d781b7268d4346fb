package score

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// addFiles adds the files matching each pattern to the seed corpus.
func addFiles(f *testing.F, patterns ...string) {
	for _, p := range patterns {
		paths, _ := filepath.Glob(p)
		for _, path := range paths {
			if data, err := os.ReadFile(path); err == nil {
				f.Add(data)
			}
		}
	}
}

// FuzzParseIncidents feeds arbitrary bytes to the incident label parser:
// it returns incidents or an error, never a panic, and what it accepts
// holds its promises: a device, an end not before its start, a line, and
// no overlapping windows of one device.
func FuzzParseIncidents(f *testing.F) {
	addFiles(f, "../../testdata/fleet/labels.csv", "../../testdata/score/*/labels.*", "../../testdata/score/bad/*.csv", "../../testdata/score/bad/*.json")
	f.Add([]byte("start\tend\tattack\tdevice\n2026-01-05T08:30:00Z\t2026-01-05T08:30:01Z\ts7_plc_stop\tplc-2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		incs, err := ParseIncidents("f", bytes.NewReader(data))
		if err != nil {
			return
		}
		if incs == nil {
			t.Fatal("accepted labels came back nil")
		}
		for _, inc := range incs {
			if inc.Device == "" || inc.Device == groupPrefix || inc.End.Before(inc.Start) || inc.Line < 1 || inc.File != "f" {
				t.Fatalf("accepted a broken incident %+v", inc)
			}
		}
		if err := checkOverlaps(incs); err != nil {
			t.Fatalf("accepted overlapping windows: %v", err)
		}
	})
}

// FuzzParsePacketLabels feeds arbitrary labels for a capture of n packets:
// no panic, and every episode is an attack on "*" with a sane span and an
// increasing line.
func FuzzParsePacketLabels(f *testing.F) {
	paths, _ := filepath.Glob("../../testdata/score/bad/*.packets")
	for _, p := range paths {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data, uint8(10))
		}
	}
	f.Add([]byte("No.,Label\n1,normal\n2,scan\n3,scan\n4,0\n5,flood\n"), uint8(5))
	f.Fuzz(func(t *testing.T, data []byte, n uint8) {
		times := make([]time.Time, n)
		for i := range times {
			times[i] = at(time.Duration(i%7) * time.Second) // not in order
		}
		incs, err := ParsePacketLabels("p", bytes.NewReader(data), times)
		if err != nil {
			return
		}
		line := 0
		for _, inc := range incs {
			if inc.Device != "*" || isNormalLabel(inc.Kind) || inc.End.Before(inc.Start) || inc.Line <= line {
				t.Fatalf("bad episode %+v after line %d", inc, line)
			}
			line = inc.Line
		}
	})
}
