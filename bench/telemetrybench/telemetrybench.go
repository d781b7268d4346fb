// Package telemetrybench measures Vigil's telemetry path on the fleet
// sample of ingest/simulate/fleetgen: JSON bytes → decoded rows → Arrow batches →
// baseline and detectors → alerts encoded as JSON (the whole of `vigil
// replay` minus file reading), and Arrow batches → baseline expectations
// (the vectorized share). Its benchmarks are in telemetrybench_timing_test.go
// and its program in cmd/telemetrybench, which writes bench/RESULTS.md.
package telemetrybench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"go.yaml.in/yaml/v3"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/inventory"
	"github.com/vigil-ot/vigil/ingest/simulate/fleetgen"
	"github.com/vigil-ot/vigil/ingest/telemetry"
	"github.com/vigil-ot/vigil/sinks"
)

// Messages returns the fleet's telemetry as one JSON message a slice
// element (without the newline), aliasing one buffer.
func Messages(c fleetgen.Config) ([][]byte, error) {
	var buf bytes.Buffer
	if _, err := fleetgen.Generate(c, &buf); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	msgs := make([][]byte, 0, bytes.Count(data, []byte{'\n'}))
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			i = len(data)
		}
		msgs = append(msgs, data[:i:i])
		data = data[min(i+1, len(data)):]
	}
	return msgs, nil
}

// FleetConfigPath is the configuration tuned on the fleet sample, relative
// to the module root; the benchmarks judge with its baseline and detect
// sections, so they measure what 'vigil replay' does with it.
const FleetConfigPath = "testdata/config/fleet.yaml"

// FleetConfig reads the baseline and detect sections of FleetConfigPath
// over the defaults (the other sections name files the benchmarks do not
// read). The module root is found from the working directory upwards.
func FleetConfig() (baseline.Config, detect.Config, error) {
	path, err := fleetConfigFile()
	if err != nil {
		return baseline.Config{}, detect.Config{}, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return baseline.Config{}, detect.Config{}, fmt.Errorf("cannot read the fleet config: %w", err)
	}
	cfg := struct {
		Baseline baseline.Config `yaml:"baseline"`
		Detect   detect.Config   `yaml:"detect"`
	}{baseline.DefaultConfig(), detect.DefaultConfig()}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		return baseline.Config{}, detect.Config{}, fmt.Errorf("cannot parse %s: %w", path, err)
	}
	if err := errors.Join(cfg.Baseline.Validate(), cfg.Detect.Validate()); err != nil {
		return baseline.Config{}, detect.Config{}, fmt.Errorf("cannot use %s: %w", path, err)
	}
	return cfg.Baseline, cfg.Detect, nil
}

func fleetConfigFile() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("cannot find the module root: %w", err)
	}
	for d := dir; d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, FleetConfigPath), nil
		}
	}
	return "", fmt.Errorf("cannot find the module root above %s: run from inside the repository", dir)
}

// Pipeline is the telemetry path of a replay without the file reading:
// decoder, observation builder, baseline, engine and a JSON sink.
type Pipeline struct {
	dec       *telemetry.Decoder
	builder   *ingest.ObservationBuilder
	engine    *detect.Engine
	batchRows int
	sink      *countingWriter
}

// countingWriter counts the alert lines the sink writes.
type countingWriter struct{ lines int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.lines += int64(bytes.Count(p, []byte{'\n'}))
	return len(p), nil
}

// NewPipeline returns a pipeline with empty state: the first day of the
// fleet is its learning period, as in `vigil replay`.
func NewPipeline() (*Pipeline, error) {
	tcfg := ingest.DefaultTelemetryConfig()
	tcfg.Format = ingest.FormatNative
	dec, err := telemetry.NewDecoder(tcfg)
	if err != nil {
		return nil, err
	}
	icfg := ingest.DefaultInventoryConfig()
	icfg.ReloadInterval = 0
	inv, err := inventory.Open(icfg, nil) // groups from the reported site and hw
	if err != nil {
		return nil, err
	}
	bcfg, dcfg, err := FleetConfig()
	if err != nil {
		return nil, err
	}
	reg := ingest.NewRegistry()
	store := baseline.NewStore(bcfg, reg)
	w := &countingWriter{}
	eng, err := detect.NewEngine(dcfg, detect.Deps{Registry: reg, Baseline: store, Assets: inv,
		Sink: sinks.NewWriterSink("bench", w, sinks.FormatJSON)})
	if err != nil {
		return nil, err
	}
	return &Pipeline{dec: dec, builder: ingest.NewObservationBuilder(nil, reg, inv), engine: eng,
		batchRows: tcfg.BatchRows, sink: w}, nil
}

// Run feeds msgs through the pipeline and returns how many alert lines
// the sink wrote.
func (p *Pipeline) Run(ctx context.Context, msgs [][]byte) (int64, error) {
	for i, m := range msgs {
		rows, err := p.dec.Decode(nil, m, 0)
		if err != nil {
			return 0, fmt.Errorf("cannot decode message %d: %w", i, err)
		}
		for j := range rows {
			rows[j].Partition, rows[j].Offset = -1, int64(i)
			p.builder.Append(&rows[j])
		}
		if p.builder.Len() >= p.batchRows {
			if err := p.flush(ctx); err != nil {
				return 0, err
			}
		}
	}
	if p.builder.Len() > 0 {
		if err := p.flush(ctx); err != nil {
			return 0, err
		}
	}
	if err := p.engine.Flush(ctx); err != nil {
		return 0, err
	}
	return p.sink.lines, nil
}

func (p *Pipeline) flush(ctx context.Context) error {
	rec, sets := p.builder.NewRecord()
	b := ingest.NewBatch(rec, nil)
	b.Sets = sets
	return p.engine.Process(ctx, b)
}

// Records decodes msgs into observation records of batchRows rows, for
// the Arrow benchmark. The caller releases them.
func Records(msgs [][]byte, batchRows int) ([]arrow.Record, *ingest.Registry, error) {
	tcfg := ingest.DefaultTelemetryConfig()
	dec, err := telemetry.NewDecoder(tcfg)
	if err != nil {
		return nil, nil, err
	}
	inv, err := inventory.Open(ingest.InventoryConfig{Format: "auto", GroupBy: []string{"site", "hw"}}, nil)
	if err != nil {
		return nil, nil, err
	}
	reg := ingest.NewRegistry()
	bld := ingest.NewObservationBuilder(nil, reg, inv)
	var recs []arrow.Record
	for i, m := range msgs {
		rows, err := dec.Decode(nil, m, 0)
		if err != nil {
			return nil, nil, fmt.Errorf("cannot decode message %d: %w", i, err)
		}
		for j := range rows {
			bld.Append(&rows[j])
		}
		if bld.Len() >= batchRows || i == len(msgs)-1 {
			rec, _ := bld.NewRecord()
			recs = append(recs, rec)
		}
	}
	return recs, reg, nil
}

// Expecter runs the baseline's share of the path: Bind, then Expect and
// Learn for every row.
type Expecter struct {
	store *baseline.Store
	exp   []baseline.Expectation
}

// NewExpecter returns an Expecter with empty state over reg.
func NewExpecter(reg *ingest.Registry) (*Expecter, error) {
	bcfg, _, err := FleetConfig()
	if err != nil {
		return nil, err
	}
	return &Expecter{store: baseline.NewStore(bcfg, reg), exp: make([]baseline.Expectation, 16)}, nil
}

// Run judges and learns every row of recs and returns the metric values
// (rows × metric columns) it produced expectations for.
func (e *Expecter) Run(recs []arrow.Record) (int64, error) {
	var values int64
	for _, rec := range recs {
		f := e.store.Bind(rec)
		if err := f.Err(); err != nil {
			return values, err
		}
		if n := f.NumMetrics(); n > len(e.exp) {
			e.exp = make([]baseline.Expectation, n)
		}
		exp := e.exp[:f.NumMetrics()]
		for i := 0; i < f.NumRows(); i++ {
			f.Expect(i, exp)
			f.Learn(i)
		}
		values += int64(f.NumRows() * f.NumMetrics())
	}
	return values, nil
}

// CPUTime returns the process's user and system CPU time, so rates can be
// quoted per CPU-second even on a machine shared with other work.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
