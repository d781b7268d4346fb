package detect

import (
	"context"
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/ingest"
)

// FuzzEngineProcess feeds the engine rows built from arbitrary bytes:
// any times (backwards, duplicates, far apart), NaN and infinite values,
// odd firmware strings, set members that are not addresses or ports. It
// must never panic, and every alert must carry an id, a device and a
// severity in range.
func FuzzEngineProcess(f *testing.F) {
	f.Add([]byte("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"), "2.9.4", "22")
	f.Add([]byte("\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\xf0\x7f"), "v1-rc", "10.0.0.1")
	f.Add(make([]byte, 160), "", "::1")
	f.Fuzz(func(t *testing.T, data []byte, fw, member string) {
		cfg := DefaultConfig()
		cfg.Self.MinSamples, cfg.Peer.MinGroupSamples, cfg.Silence.MinReports, cfg.Fleet.MinWindows = 1, 1, 2, 1
		cfg.Fleet.MinDevices = 1
		cfg.Rules = []RuleConfig{
			{Name: "sum", Metric: "a", ComparisonOperator: OpGreaterThan, Value: fptr(1), Duration: time.Minute},
			{Name: "ports", Metric: "ports", ComparisonOperator: OpNotInPortSet, Ports: []int{22}},
			{Name: "cidr", Metric: "addrs", ComparisonOperator: OpInCIDRSet, CIDRs: []string{"10.0.0.0/8"}},
		}
		cfg.Quarantine = quarantineConfig().Quarantine
		cfg.Quarantine.Detectors = []string{DetectorSelf, DetectorRule, DetectorIdentity}
		cfg.Quarantine.MinSeverity = 1
		bcfg := baseline.DefaultConfig()
		bcfg.MinSamples, bcfg.MinDuration, bcfg.DeviceMinSamples = 1, 0, 1
		reg := ingest.NewRegistry()
		sink := &collectSink{}
		eng, err := NewEngine(cfg, Deps{Registry: reg, Baseline: baseline.NewStore(bcfg, reg), Sink: sink})
		if err != nil {
			t.Fatal(err)
		}
		builder := ingest.NewObservationBuilder(nil, reg, nil)
		devices := []string{"d0", "d1", "d2"}
		var row ingest.Row
		rows := int64(0)
		for len(data) >= 16 {
			rows++
			ts := int64(binary.LittleEndian.Uint32(data)) * int64(time.Second) / 4
			v := math.Float64frombits(binary.LittleEndian.Uint64(data[4:]))
			sel := data[12]
			data = data[16:]
			row.Reset()
			row.TimeNanos = ts
			row.Device = devices[int(sel)%len(devices)]
			row.Group = "g" + devices[int(sel>>4)%2]
			row.Metrics = append(row.Metrics, ingest.Metric{Name: "a", Value: v}, ingest.Metric{Name: "b", Value: float64(sel)})
			if sel&1 != 0 {
				row.Firmware = fw
				row.SrcIP = member
				row.Cert = fw
			}
			if sel&2 != 0 {
				row.Sets = append(row.Sets, ingest.SetMember{Set: "ports", Value: member}, ingest.SetMember{Set: "addrs", Value: member})
			}
			builder.Append(&row)
			if sel&8 != 0 {
				rec, sets := builder.NewRecord()
				b := ingest.NewBatch(rec, nil)
				b.Sets = sets
				if err := eng.Process(context.Background(), b); err != nil {
					t.Fatal(err)
				}
			}
		}
		rec, sets := builder.NewRecord()
		b := ingest.NewBatch(rec, nil)
		b.Sets = sets
		if err := eng.Process(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		if err := eng.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		// every row is judged, or held back and dropped by the clock
		if st := eng.Stats(); st.Rows+st.FutureRows+st.UnclockedRows != rows {
			t.Fatalf("%d rows in: %d judged, %d future, %d unclocked", rows, st.Rows, st.FutureRows, st.UnclockedRows)
		}
		for _, a := range sink.alerts {
			if a.ID == "" || a.Device == "" || a.Severity < 1 || a.Severity > 10 || a.Message == "" {
				t.Fatalf("malformed alert %+v", a)
			}
		}
	})
}

func FuzzMaintenanceWeekly(f *testing.F) {
	for _, s := range []string{"sat,sun 02:00-04:00", "mon-fri 22:00-23:30", "fri-mon 00:00-23:59", "x", "sun 5-6", "mon- 01:00-02:00"} {
		f.Add(s, int64(1794787200000000000))
	}
	f.Fuzz(func(t *testing.T, weekly string, ns int64) {
		m := MaintenanceConfig{Name: "m", Weekly: weekly}
		if err := m.validate(); err != nil {
			return
		}
		m.active(ns)
	})
}

// FuzzDetectConfig decodes arbitrary YAML as the detect section: it must
// fail with an error or build an engine, never panic.
func FuzzDetectConfig(f *testing.F) {
	f.Add(fullDetectYAML)
	f.Add("rules: [{name: a, metric: m, comparison_operator: in-cidr-set, cidrs: [10.0.0.0/8]}]")
	f.Add("maintenance: [{name: w, weekly: \"fri-mon 22:00-23:00\"}]\nsuppress: [{device: \"[a-\"}]")
	f.Fuzz(func(t *testing.T, src string) {
		cfg, err := parseDetect(t, src)
		if err != nil {
			return
		}
		reg := ingest.NewRegistry()
		if _, err := NewEngine(cfg, Deps{Registry: reg, Baseline: baseline.NewStore(baseline.DefaultConfig(), reg), Sink: &collectSink{}}); err != nil {
			t.Fatalf("a config that validated could not build an engine: %v", err)
		}
	})
}
