package baseline

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow/ipc"

	"github.com/vigil-ot/vigil/ingest"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden checkpoint in testdata/checkpoint")

// oneMetricRows makes rounds reports of devices devices, all in one group
// and with one metric, so that a checkpoint holds devices+2 rows: the
// group, its metric and one per device.
func oneMetricRows(rounds, devices int) []obs {
	var rows []obs
	for r := 0; r < rounds; r++ {
		for d := 0; d < devices; d++ {
			rows = append(rows, obs{
				t:    minute(r) + int64(d)*int64(time.Microsecond),
				dev:  fmt.Sprintf("dev-%05d", d),
				grp:  "plant",
				vals: []float64{float64(100 + d%50 + 7*r)},
			})
		}
	}
	return rows
}

// The checkpoint is written in batches of checkpointBatchRows rows; a
// restore reads them one by one. Whether the rows fill the last batch
// exactly, overflow it by one or make no batch at all, every device comes
// back with the same expectations.
func TestCheckpointRoundTripAcrossBatches(t *testing.T) {
	metrics := []string{"bytes_out"}
	for _, tc := range []struct {
		devices, batches int
	}{
		{0, 0},
		{1, 1},
		{checkpointBatchRows - 2, 1},     // exactly one batch
		{2*checkpointBatchRows - 2, 2},   // exactly two
		{2*checkpointBatchRows - 1, 3},   // one row over
		{3*checkpointBatchRows + 100, 4}, // a partial last batch
	} {
		t.Run(fmt.Sprint(tc.devices, "devices"), func(t *testing.T) {
			cfg := testConfig()
			regA := ingest.NewRegistry()
			a := NewStore(cfg, regA)
			if tc.devices > 0 {
				rec := buildRecord(t, regA, metrics, oneMetricRows(3, tc.devices))
				feed(a, rec)
				rec.Release()
			}
			var buf bytes.Buffer
			if err := a.Checkpoint(&buf, map[string]int64{"telemetry/0": int64(3 * tc.devices)}); err != nil {
				t.Fatal(err)
			}
			fr, err := ipc.NewFileReader(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			var rows int64
			batches := fr.NumRecords()
			for i := 0; i < batches; i++ {
				rec, err := fr.Record(i)
				if err != nil {
					t.Fatal(err)
				}
				rows += rec.NumRows()
			}
			fr.Close()
			if wantRows := int64(tc.devices + 2*min(tc.devices, 1)); rows != wantRows || batches != tc.batches {
				t.Fatalf("%d rows in %d batches, want %d in %d", rows, batches, wantRows, tc.batches)
			}

			regB := ingest.NewRegistry()
			regB.DeviceID("someone-else") // other ids than the first process's
			b := NewStore(cfg, regB)
			positions, err := b.Restore(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if positions["telemetry/0"] != int64(3*tc.devices) {
				t.Fatalf("positions %v", positions)
			}
			next := oneMetricRows(1, tc.devices+1) // every device, and one never seen
			for i := range next {
				next[i].t += minute(3) - t0
			}
			recA := buildRecord(t, regA, metrics, next)
			defer recA.Release()
			recB := buildRecord(t, regB, metrics, next)
			defer recB.Release()
			sameRestoredExpectations(t, feed(b, recB), feed(a, recA))
		})
	}
}

// sameRestoredExpectations compares a restored store's expectations with
// the original's: equal, but for a group quantile, which may fall in the
// next sketch bucket. A sketch's counts are float32 sums while its total
// is a float64 one, and a restored sketch's total is the sum of its
// counts: after thousands of samples the two differ in the fifth digit,
// and a rank near a bucket's edge moves across it. (That is the sketch
// encoding's; this file's restore was the same before it was streamed.)
func sameRestoredExpectations(t *testing.T, got, want [][]Expectation) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i := range got {
		for j := range got[i] {
			g, w := got[i][j], want[i][j]
			for k := range g.GroupQuantiles {
				gq, wq := g.GroupQuantiles[k], w.GroupQuantiles[k]
				if !near(gq, wq, 2*SketchRelativeAccuracy) && !(math.IsNaN(gq) && math.IsNaN(wq)) {
					t.Fatalf("row %d metric %d: group quantile %d is %g, want %g", i, j, k, gq, wq)
				}
			}
			g.GroupQuantiles, w.GroupQuantiles = [NumQuantiles]float64{}, [NumQuantiles]float64{}
			if !reflect.DeepEqual(nanToSentinel(g), nanToSentinel(w)) {
				t.Fatalf("row %d metric %d:\n got %+v\nwant %+v", i, j, got[i][j], want[i][j])
			}
		}
	}
}

// Writing a checkpoint takes memory for one batch, not for a copy of the
// file: a 29 MB checkpoint allocates 3.9 MB (one batch's buffers, reused
// by the next, and Arrow's few kilobytes of metadata per batch; both
// passes). Buffering the file, as Checkpoint once did, allocated 146 MB.
func TestCheckpointMemoryIsOneBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the state of 40k devices")
	}
	s := largeStore(t, 40_000)
	var size countingWriter
	if err := s.Checkpoint(&size, nil); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := s.Checkpoint(io.Discard, nil); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("a %d-byte checkpoint allocated %d bytes", size.n, allocated)
	if allocated > uint64(size.n)/4 {
		t.Errorf("a %d-byte checkpoint allocated %d bytes; it should stream, holding one batch of %d rows", size.n, allocated, checkpointBatchRows)
	}
}

// testdata/checkpoint/small.arrow is a checkpoint of the current format.
// It still restores, and the same state still writes the same bytes: a
// change to the file format shows up here. small-v1.arrow, written before
// group peak memories (format vigil.baseline/1), restores to the same
// expectations but for the peaks, which it does not have.
func TestCheckpointGolden(t *testing.T) {
	golden := filepath.Join("testdata", "checkpoint", "small.arrow")
	cfg := testConfig()
	cfg.SeasonalWarmup = 0
	reg := ingest.NewRegistry()
	s := NewStore(cfg, reg)
	expectAll(t, s, reg, fleetRows(1, 0, 240, 12, 4))
	s.CommSet("edges", 0).Observe(reg.GroupID("grp-1"), 42, t0)
	var buf bytes.Buffer
	if err := s.Checkpoint(&buf, map[string]int64{"telemetry/0": 240}); err != nil {
		t.Fatal(err)
	}
	if *updateGolden {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v; run go test ./baseline -run TestCheckpointGolden -update to write it", err)
	}
	regB := ingest.NewRegistry()
	b := NewStore(cfg, regB)
	if _, err := b.Restore(bytes.NewReader(want)); err != nil {
		t.Fatalf("cannot restore %s: %v", golden, err)
	}
	next := fleetRows(2, 240, 60, 12, 4)
	live := expectAll(t, s, reg, next)
	sameExpectations(t, "restored golden", expectAll(t, b, regB, next), live)

	v1, err := os.ReadFile(filepath.Join("testdata", "checkpoint", "small-v1.arrow"))
	if err != nil {
		t.Fatal(err)
	}
	regV1 := ingest.NewRegistry()
	old := NewStore(cfg, regV1)
	if _, err := old.Restore(bytes.NewReader(v1)); err != nil {
		t.Fatalf("cannot restore the format 1 golden: %v", err)
	}
	fromV1 := expectAll(t, old, regV1, next)
	for i := range fromV1 {
		for j := range fromV1[i] {
			fromV1[i][j].GroupPeak = live[i][j].GroupPeak // the peaks learned after the restore differ
		}
	}
	sameExpectations(t, "restored format 1 golden", fromV1, live)
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("the checkpoint differs from %s (%d bytes, want %d); if the format changed on purpose, bump checkpointFormat, keep reading the old one and rerun with -update", golden, buf.Len(), len(want))
	}
}

// checksumWriter sums a file as it streams by; verifyChecksum sums it
// whole, from the slots checksumSlots finds. Whichever way the file is cut
// into writes, even through a token, they agree, also with a device
// named like the token (more slots, whose digits are the name's).
func TestChecksumWriterAgreesWithVerify(t *testing.T) {
	const name = checksumToken + "12345678-device"
	reg := ingest.NewRegistry()
	s := NewStore(testConfig(), reg)
	rows := fleetRows(1, 0, 60, 12, 4)
	rows[7].dev = name
	expectAll(t, s, reg, rows)
	var buf bytes.Buffer
	if err := s.Checkpoint(&buf, nil); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	if n := len(checksumSlots(data)); n < 3 {
		t.Fatalf("%d checksum slots, want the schema's two and the device name's", n)
	}
	var sum string
	for _, i := range checksumSlots(data) {
		if d := string(data[i : i+len(checksumBlank)]); d != "12345678" {
			sum = d
		}
	}
	for _, chunk := range []int{1, 2, 3, 5, 7, 13, 64, 4096, len(data)} {
		cw := checksumWriter{w: io.Discard}
		for rest := data; len(rest) > 0; {
			n := min(chunk, len(rest))
			cw.Write(rest[:n])
			rest = rest[n:]
		}
		if got := fmt.Sprintf("%08x", cw.crc); got != sum || cw.size != int64(len(data)) {
			t.Errorf("in writes of %d bytes: checksum %s over %d bytes, want %s over %d", chunk, got, cw.size, sum, len(data))
		}
	}

	// the device keeps its name and state through a restore
	regB := ingest.NewRegistry()
	b := NewStore(testConfig(), regB)
	if _, err := b.Restore(bytes.NewReader(data)); err != nil {
		t.Fatalf("a device named %q makes the checkpoint unrestorable: %v", name, err)
	}
	next := fleetRows(2, 60, 24, 12, 4)
	next[7].dev = name
	sameExpectations(t, "restored store", expectAll(t, b, regB, next), expectAll(t, s, reg, next))
}
