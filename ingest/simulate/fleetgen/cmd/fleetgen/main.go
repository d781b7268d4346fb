// Command fleetgen writes the deterministic fleet telemetry sample, its
// inventory and its incident labels. The full fleet (300 devices, 864k
// lines, 55 MB compressed) is not committed:
//
//	go run ./ingest/simulate/fleetgen/cmd/fleetgen                # testdata/fleet/full (git-ignored)
//	go run ./ingest/simulate/fleetgen/cmd/fleetgen -sample        # the committed testdata/fleet sample, byte for byte
//	go run ./ingest/simulate/fleetgen/cmd/fleetgen -judgement     # the committed testdata/judgement data set, byte for byte
//	go run ./ingest/simulate/fleetgen/cmd/fleetgen -rollout bad   # a staged firmware rollout (bad or healthy), testdata/fleet/rollout-bad
//
// -days 3 (or more) adds clean days after the incident day. -judgement
// writes the judgement data set instead: three weeks of one group, its
// incident labels, benign events, inventory and README.
package main

import (
	"bufio"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/vigil-ot/vigil/ingest/simulate/fleetgen"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-judgement" || os.Args[1] == "--judgement") {
		judgement(os.Args[2:])
		return
	}
	if len(os.Args) > 2 && (os.Args[1] == "-rollout" || os.Args[1] == "--rollout") {
		rollout(os.Args[2], os.Args[3:])
		return
	}
	// -sample, given first, switches the defaults of the other flags.
	def, defOut := fleetgen.DefaultConfig(), "testdata/fleet/full"
	if len(os.Args) > 1 && (os.Args[1] == "-sample" || os.Args[1] == "--sample") {
		def, defOut = fleetgen.SampleConfig(), "testdata/fleet"
	}
	var (
		_        = flag.Bool("sample", false, "given first: the defaults of the committed sample (10 devices per group, -out testdata/fleet)")
		_        = flag.Bool("judgement", false, "given first: write the judgement data set instead (-judgement -h for its flags)")
		_        = flag.String("rollout", "", "given first: write a staged firmware rollout instead, bad or healthy (-rollout bad -h for its flags)")
		out      = flag.String("out", defOut, "directory to write telemetry.jsonl[.gz], inventory.csv, labels.csv and benign.csv into")
		name     = flag.String("name", "telemetry.jsonl.gz", "telemetry file name in -out; a .gz suffix compresses it, \"-\" writes to stdout")
		seed     = flag.Uint64("seed", def.Seed, "random seed")
		days     = flag.Int("days", def.Days, "days to generate (day 1 clean, day 2 incidents, later days clean)")
		perGroup = flag.Int("devices", def.DevicesPerGroup, "devices per (site, hardware) group; 6 groups")
		step     = flag.Duration("step", def.Step, "report interval")
		start    = flag.String("start", def.Start.Format(time.RFC3339), "first report time, RFC 3339")
		clean    = flag.Bool("clean", false, "inject no incidents (for benchmarks and false-positive studies)")
	)
	flag.Parse()
	t0, err := time.Parse(time.RFC3339, *start)
	if err != nil {
		fatalf("cannot parse -start=%q: %v; use RFC 3339 such as 2026-11-02T00:00:00Z", *start, err)
	}
	cfg := fleetgen.Config{Seed: *seed, Start: t0.UTC(), Days: *days, Step: *step, DevicesPerGroup: *perGroup, Incidents: !*clean}
	if err := cfg.Validate(); err != nil {
		fatalf("%v", err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fatalf("cannot create %s: %v", *out, err)
	}
	writeFile(filepath.Join(*out, "inventory.csv"), func(w io.Writer) error { return fleetgen.WriteInventory(cfg, w) })
	writeFile(filepath.Join(*out, "labels.csv"), func(w io.Writer) error { return fleetgen.WriteLabels(cfg, w) })
	writeFile(filepath.Join(*out, "benign.csv"), func(w io.Writer) error { return fleetgen.WriteBenign(cfg, w) })
	var st fleetgen.Stats
	gen := func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		st, err = fleetgen.Generate(cfg, bw)
		if err != nil {
			return err
		}
		return bw.Flush()
	}
	switch {
	case *name == "-":
		if err := gen(os.Stdout); err != nil {
			fatalf("%v", err)
		}
	case filepath.Ext(*name) == ".gz":
		writeFile(filepath.Join(*out, *name), func(w io.Writer) error {
			zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
			if err != nil {
				return err
			}
			if err := gen(zw); err != nil {
				return err
			}
			return zw.Close()
		})
	default:
		writeFile(filepath.Join(*out, *name), gen)
	}
	fmt.Fprintf(os.Stderr, "fleetgen: %d devices, %d lines\n", st.Devices, st.Lines)
}

// judgement writes the judgement data set with the flags in args.
func judgement(args []string) {
	def := fleetgen.DefaultJudgementConfig()
	flags := flag.NewFlagSet("fleetgen -judgement", flag.ExitOnError)
	out := flags.String("out", "testdata/judgement", "directory to write telemetry.jsonl.gz, labels.csv, benign.csv, inventory.csv and README.md into")
	seed := flags.Uint64("seed", def.Seed, "random seed")
	flags.Parse(args)
	cfg := def
	cfg.Seed = *seed
	if err := cfg.Validate(); err != nil {
		fatalf("%v", err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fatalf("cannot create %s: %v", *out, err)
	}
	readme := filepath.Join(*out, "README.md")
	old, err := os.ReadFile(readme)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		fatalf("cannot read %s: %v", readme, err)
	}
	writeFile(filepath.Join(*out, "inventory.csv"), func(w io.Writer) error { return fleetgen.WriteJudgementInventory(cfg, w) })
	writeFile(filepath.Join(*out, "labels.csv"), func(w io.Writer) error { return fleetgen.WriteJudgementLabels(cfg, w) })
	writeFile(filepath.Join(*out, "benign.csv"), func(w io.Writer) error { return fleetgen.WriteJudgementBenign(cfg, w) })
	var st fleetgen.Stats
	writeGzip(filepath.Join(*out, "telemetry.jsonl.gz"), func(w io.Writer) (err error) {
		st, err = fleetgen.GenerateJudgement(cfg, w)
		return err
	})
	writeFile(readme, func(w io.Writer) error {
		return fleetgen.WriteJudgementReadme(cfg, st, fleetgen.FiguresSection(old), w)
	})
	fmt.Fprintf(os.Stderr, "fleetgen: judgement data set, %d devices, %d lines\n", st.Devices, st.Lines)
}

// writeGzip writes what gen writes to path, gzipped at the best
// compression through a 1 MiB buffer.
func writeGzip(path string, gen func(io.Writer) error) {
	writeFile(path, func(w io.Writer) error {
		zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
		if err != nil {
			return err
		}
		bw := bufio.NewWriterSize(zw, 1<<20)
		if err := gen(bw); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		return zw.Close()
	})
}

func writeFile(path string, write func(io.Writer) error) {
	f, err := os.Create(path)
	if err != nil {
		fatalf("cannot create %s: %v", path, err)
	}
	if err := write(f); err != nil {
		f.Close()
		fatalf("cannot write %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		fatalf("cannot write %s: %v", path, err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "fleetgen: "+format+"\n", args...)
	os.Exit(1)
}

// rollout writes the staged rollout of variant with the flags in args.
func rollout(variant string, args []string) {
	def := fleetgen.DefaultRolloutConfig(variant)
	flags := flag.NewFlagSet("fleetgen -rollout "+variant, flag.ExitOnError)
	out := flags.String("out", "testdata/fleet/rollout-"+variant, "directory to write telemetry.jsonl.gz into")
	seed := flags.Uint64("seed", def.Seed, "random seed")
	devices := flags.Int("devices", def.Devices, "devices in the group")
	flags.Parse(args)
	cfg := def
	cfg.Seed, cfg.Devices = *seed, *devices
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fatalf("cannot create %s: %v", *out, err)
	}
	var st fleetgen.Stats
	writeGzip(filepath.Join(*out, "telemetry.jsonl.gz"), func(w io.Writer) (err error) {
		st, err = fleetgen.GenerateRollout(cfg, w)
		return err
	})
	fmt.Fprintf(os.Stderr, "fleetgen: %s rollout, %d devices, %d lines; waves at", variant, st.Devices, st.Lines)
	for _, w := range cfg.Waves() {
		fmt.Fprintf(os.Stderr, " %s (%d devices)", w.Start.Format(time.RFC3339), w.Devices)
	}
	fmt.Fprintln(os.Stderr)
}
