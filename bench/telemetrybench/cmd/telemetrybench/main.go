// Command telemetrybench measures the telemetry path on the fleet sample
// and records the figures in bench/RESULTS.md (its own section only):
//
//	go run ./bench/telemetrybench/cmd/telemetrybench -write bench/RESULTS.md
//
// JSON → alerts: decode, Arrow batches, baseline, every telemetry detector,
// alerts encoded as JSON; each replay starts from an empty baseline, so the
// first day of the sample is learned. Arrow → expectations: Bind, Expect and
// Learn over 4096-row records. Rates are per CPU-second of the process
// (user + system), which is the per-core rate on a busy machine too, and
// per wall second with GOMAXPROCS as set.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/vigil-ot/vigil/bench/telemetrybench"
	"github.com/vigil-ot/vigil/ingest/simulate/fleetgen"
)

const (
	beginMark = "<!-- telemetrybench:begin -->"
	endMark   = "<!-- telemetrybench:end -->"
)

type result struct {
	name, unit    string
	items         int64
	cpu, wall     []time.Duration
	allocs, bytes uint64
	target        float64
	extra         string
}

func main() {
	replays := flag.Int("replays", 3, "timed replays of each workload; the best is reported with the median")
	write := flag.String("write", "", "update the telemetrybench section of this markdown file (e.g. bench/RESULTS.md)")
	flag.Parse()

	msgs, err := telemetrybench.Messages(fleetgen.SampleConfig())
	check(err)
	var size int64
	for _, m := range msgs {
		size += int64(len(m)) + 1
	}

	jr := result{name: "JSON bytes → alerts", unit: "msgs", target: 500_000}
	var alerts int64
	for i := 0; i < *replays; i++ {
		p, err := telemetrybench.NewPipeline()
		check(err)
		jr.measure(func() int64 {
			n, err := p.Run(context.Background(), msgs)
			check(err)
			alerts = n
			return int64(len(msgs))
		})
	}
	jr.extra = fmt.Sprintf("%d messages of 5 metrics (%.0f bytes each), %d alert lines", len(msgs), float64(size)/float64(len(msgs)), alerts)

	recs, reg, err := telemetrybench.Records(msgs, 4096)
	check(err)
	ar := result{name: "Arrow batch → expectations", unit: "values", target: 10_000_000}
	for i := 0; i < *replays; i++ {
		e, err := telemetrybench.NewExpecter(reg)
		check(err)
		ar.measure(func() int64 {
			n, err := e.Run(recs)
			check(err)
			return n
		})
	}
	ar.extra = fmt.Sprintf("%d records of up to 4096 rows × 5 metrics", len(recs))

	var out bytes.Buffer
	report(&out, *write != "", jr, ar)
	fmt.Print(out.String())
	if *write != "" {
		check(updateSection(*write, out.String()))
		fmt.Fprintf(os.Stderr, "telemetrybench: updated %s\n", *write)
	}
}

// measure runs one timed replay of fn, which returns the items it did.
func (r *result) measure(fn func() int64) {
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	c0, w0 := telemetrybench.CPUTime(), time.Now()
	n := fn()
	c1, w1 := telemetrybench.CPUTime(), time.Now()
	runtime.ReadMemStats(&m1)
	r.items = n
	r.cpu = append(r.cpu, c1-c0)
	r.wall = append(r.wall, w1.Sub(w0))
	r.allocs += m1.Mallocs - m0.Mallocs
	r.bytes += m1.TotalAlloc - m0.TotalAlloc
}

func (r *result) rates(ds []time.Duration) (best, median float64) {
	rs := make([]float64, len(ds))
	for i, d := range ds {
		rs[i] = float64(r.items) / d.Seconds()
	}
	sort.Float64s(rs)
	return rs[len(rs)-1], rs[len(rs)/2]
}

func report(w *bytes.Buffer, withHeader bool, rs ...result) {
	model := cpuModel()
	load, _ := os.ReadFile("/proc/loadavg")
	if withHeader {
		fmt.Fprintf(w, "## Telemetry path (bench/telemetrybench)\n\n")
		fmt.Fprintf(w, "Command: `go run ./bench/telemetrybench/cmd/telemetrybench -write bench/RESULTS.md` (and `go test -run '^$' -bench . -benchmem ./bench/telemetrybench`)\n\n")
	}
	fmt.Fprintf(w, "Machine: %s, %d CPUs, GOMAXPROCS %d, %s, %s; load average during the run: %s\n\n",
		model, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), time.Now().UTC().Format("2006-01-02 15:04 MST"), strings.TrimSpace(string(load)))
	fmt.Fprintf(w, "| workload | per CPU-second: best (median) | target per core | per wall second: best | allocs per item | bytes per item | input |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		cb, cm := r.rates(r.cpu)
		wb, _ := r.rates(r.wall)
		total := float64(r.items) * float64(len(r.cpu))
		verdict := "met"
		if cb < r.target {
			verdict = "**not met**"
		}
		fmt.Fprintf(w, "| %s | %s %s/s (%s) | %s/s: %s | %s %s/s | %.4f | %.1f | %s |\n",
			r.name, si(cb), r.unit, si(cm), si(r.target), verdict, si(wb), r.unit, float64(r.allocs)/total, float64(r.bytes)/total, r.extra)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Each replay starts from an empty baseline: allocations per item include building the state of 60 devices and 6 groups once, spread over the replay.")
	fmt.Fprintln(w, "On a machine shared with other work (see the load average) CPU-second rates vary up to 2× between runs, as caches and hyperthreads are shared; the median says more than the best there.")
}

func si(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// updateSection replaces this program's section of path (between its
// markers), or appends it, leaving the rest of the file to its owners.
func updateSection(path, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("cannot read %s: %w", path, err)
	}
	block := beginMark + "\n" + section + endMark + "\n"
	s := string(old)
	if i, j := strings.Index(s, beginMark), strings.Index(s, endMark); i >= 0 && j > i {
		s = s[:i] + block + s[j+len(endMark):]
		s = strings.Replace(s, endMark+"\n\n", endMark+"\n", 1)
	} else {
		if s == "" {
			s = "# Benchmark results\n\nFigures recorded by the programs in bench/, each in its own section.\n"
		}
		s = strings.TrimRight(s, "\n") + "\n\n" + block
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}

func check(err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "telemetrybench: %v\n", err)
		os.Exit(1)
	}
}
