package kafka

import (
	"testing"

	"github.com/vigil-ot/vigil/ingest"
)

// TestRefusedDevicesHaveNoPartitionState: rows of devices refused past
// detect.max_devices (device_id -1) are not noted as devices of the
// partition, so a checkpoint never asks the registry for the name of -1.
func TestRefusedDevicesHaveNoPartitionState(t *testing.T) {
	reg := ingest.NewRegistry()
	reg.LimitDevices(1, false)
	bld := ingest.NewObservationBuilder(nil, reg, nil)
	for _, name := range []string{"plc-1", "forged-1", "plc-1", "forged-2", "forged-2"} {
		bld.Append(&ingest.Row{Device: name, Group: "plant-a", Metrics: []ingest.Metric{{Name: "temp", Value: 1}}})
	}
	rec, _ := bld.NewRecord()
	b := ingest.NewBatch(rec, nil)
	defer b.Release()
	ps := &partState{owned: map[int32]struct{}{}, dirty: map[int32]struct{}{}}
	noteDevices(ps, b.Record)
	if len(ps.owned) != 1 || len(ps.dirty) != 1 {
		t.Fatalf("owned %v, dirty %v; want only device 0", ps.owned, ps.dirty)
	}
	if _, ok := ps.owned[0]; !ok {
		t.Fatalf("owned %v lacks device 0", ps.owned)
	}
}
