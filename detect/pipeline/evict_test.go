package pipeline_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/detect/pipeline"
	"github.com/vigil-ot/vigil/ingest"
)

type countSink struct{ alerts int }

func (s *countSink) Write(_ context.Context, out *detect.Output) error {
	s.alerts += len(out.Alerts)
	return nil
}

func (s *countSink) Close() error { return nil }

// TestEvictIdleConcurrentDecode: four decoders (as Kafka partition
// workers do), each with its own builder over the pipeline's registry,
// build batches of a fleet that keeps changing, ahead of the engine by a
// queue of batches, under max_devices 50 with when_full evict_idle:
// thousands of evictions reuse ids while builders still cache them and
// queued batches still carry them. Every device reports its own number as
// its value, so a row judged under another device's id shows: every
// judged value must be its device's own, on its device's own baseline
// (the band the row was judged against is centred on the device's
// number, once it has one).
func TestEvictIdleConcurrentDecode(t *testing.T) {
	cfg := detect.DefaultConfig()
	cfg.MaxDevices = 50
	cfg.WhenFull = detect.WhenFullEvictIdle
	cfg.Self.MinSamples = 3 // a band from a device's third value on
	bcfg := baseline.DefaultConfig()
	bcfg.MinSamples, bcfg.MinDuration = 20, time.Minute
	// A device's baseline is its own from its first value, without a
	// prior from its group: the mean of a device is then exactly its
	// number, unless another device's values got into it.
	bcfg.DevicePriorWeight, bcfg.DeviceMinSamples = 0, 0
	var mixed []string
	judged, banded := 0, 0
	trace := func(tp detect.TracePoint) {
		judged++
		if tp.Expected == tp.Expected {
			banded++
		}
		i := strings.LastIndexByte(tp.Device, '-')
		n, err := strconv.Atoi(tp.Device[i+1:])
		if err != nil || tp.Value != float64(n) || tp.Expected == tp.Expected && tp.Expected != float64(n) {
			mixed = append(mixed, fmt.Sprintf("%s judged %v against %v", tp.Device, tp.Value, tp.Expected))
		}
	}
	p, err := pipeline.New(pipeline.Config{Inventory: ingest.DefaultInventoryConfig(), Baseline: bcfg, Detect: cfg},
		pipeline.Deps{Sink: &countSink{}, NoNetwork: true, Trace: trace})
	if err != nil {
		t.Fatal(err)
	}

	const decoders, batches, rowsPerBatch, window = 4, 150, 40, 12
	start := time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC)
	queue := make(chan *ingest.Batch, 8)
	var wg sync.WaitGroup
	for w := range decoders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := ingest.NewObservationBuilder(nil, p.Registry, p.Inventory)
			var r ingest.Row
			for k := range batches {
				for j := range rowsPerBatch {
					// a window of 12 devices, moving on by one every
					// batch: old devices go quiet, new ones come
					dev := w*1_000_000 + k + j%window
					r.Reset()
					r.TimeNanos = start.Add(time.Duration(k)*time.Minute + time.Duration(j)*time.Second).UnixNano()
					r.Device, r.Group, r.Partition, r.Offset = "plc-"+strconv.Itoa(dev), "plant-"+strconv.Itoa(w), int32(w), int64(k*rowsPerBatch+j)
					r.Metrics = append(r.Metrics, ingest.Metric{Name: "value", Value: float64(dev)})
					b.Append(&r)
				}
				rec, sets := b.NewRecord()
				batch := ingest.NewBatch(rec, nil)
				batch.Sets = sets
				queue <- batch
			}
		}()
	}
	go func() {
		wg.Wait()
		close(queue)
	}()
	ctx := context.Background()
	for b := range queue {
		if err := p.Engine.Process(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if len(mixed) > 0 {
		t.Fatalf("%d of %d values judged as another device's, such as %s", len(mixed), judged, mixed[0])
	}
	st := p.Engine.Stats()
	if st.DevicesEvicted < 1000 || st.Rows+st.DeviceCapRows != decoders*batches*rowsPerBatch {
		t.Errorf("%d devices evicted, %d rows judged, %d refused; want over 1000 evictions and every row judged or refused",
			st.DevicesEvicted, st.Rows, st.DeviceCapRows)
	}
	if n := p.Registry.NumDevices(); n != cfg.MaxDevices {
		t.Errorf("registry holds %d devices, want %d", n, cfg.MaxDevices)
	}
	if n := p.Store.NumDevices(); n != cfg.MaxDevices {
		t.Errorf("baseline holds %d device slots, want %d", n, cfg.MaxDevices)
	}
	if banded < judged/4 {
		t.Errorf("%d of %d values judged against their device's band, want a quarter at least", banded, judged)
	}
	t.Logf("%d values judged (%d against their device's band), %d devices evicted, %d rows refused", judged, banded, st.DevicesEvicted, st.DeviceCapRows)
}
