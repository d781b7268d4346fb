package main

import (
	"bytes"
	"compress/gzip"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnreplayableInputs: an input that cannot be replayed fails the
// replay before it starts, naming the file and what it is, instead of
// being read as thousands of bad telemetry lines or judging nothing and
// exiting 0.
func TestUnreplayableInputs(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return b
	}
	gz := func(data []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(data)
		zw.Close()
		return buf.Bytes()
	}
	pcapHeader := []byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0}
	netxray := append([]byte("XCP\x00"), random(4096)...)
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"trace.cap", netxray, "it is a NetXRay/Sniffer capture, which Vigil does not read"},
		{"trace.cap.gz", gz(netxray), "it is a NetXRay/Sniffer capture"},
		{"attack.pcap", []byte("version https://git-lfs.github.com/spec/v1\noid sha256:4d7a2146\nsize 1234567\n"), "git-lfs pointer"},
		{"telemetry.jsonl.gz", []byte("version https://git-lfs.github.com/spec/v1\noid sha256:4d7a2146\nsize 1234567\n"), "git-lfs pointer"},
		{"empty.jsonl", nil, "it is empty"},
		{"empty.jsonl.gz", gz(nil), "it is empty"},
		{"noise.pcap", random(4096), "neither a pcap/pcapng capture nor text telemetry"},
		{"header-only.pcap", pcapHeader, "the capture holds no packets"},
		{"corrupt.pcap", append(append([]byte(nil), pcapHeader...), bytes.Repeat([]byte{0xff}, 64)...), "not one packet can be read: corrupt record"},
	} {
		path := filepath.Join(dir, tc.name)
		if err := os.WriteFile(path, tc.data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, _, err := classifyInputs([]string{path})
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v; want one naming the file and %q", tc.name, err, tc.want)
		}
		if code, out := runCaptured(t, "replay", path); code == 0 || strings.Contains(out, "skipping bad telemetry line") {
			t.Errorf("vigil replay %s exits %d:\n%s", tc.name, code, out)
		}
	}
}

// TestReplayableInputs: telemetry and captures, plain and gzip, pass the
// checks of TestUnreplayableInputs.
func TestReplayableInputs(t *testing.T) {
	t.Chdir(repoRoot)
	inputs := []string{"testdata/fleet/telemetry.jsonl.gz", "testdata/fleet/telegraf.jsonl", "testdata/ot/modbus/modbusSmall.pcap", "testdata/ot/enip/enip_test.pcap"}
	tel, caps, err := classifyInputs(inputs)
	if err != nil || len(tel) != 2 || len(caps) != 2 {
		t.Errorf("telemetry %v, captures %v, err %v; want 2 and 2", tel, caps, err)
	}
}
