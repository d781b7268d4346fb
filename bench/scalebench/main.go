// Command scalebench measures how Vigil's cost per record grows with the
// fleet: it writes one JSON-lines file per fleet size, each holding the same
// number of records (1k devices × 1,000 reports, …, 1M devices × 1 report),
// runs the whole process (`vigil replay --quiet FILE`) on each, and prints
// per fleet size the records per second, the process CPU per record (user
// + system, from the child's rusage), its ratio to the smallest fleet's,
// and the peak RSS, per device too.
//
//	go run ./bench/scalebench                              # 1k, 100k, 300k, 1M devices; 1M records each
//	go run ./bench/scalebench -records 3000000 -runs 3     # median of 3 runs per size
//	go run ./bench/scalebench -devices 1000,1000000 -metrics 10
//	go run ./bench/scalebench -devices 1000 -cores 1,2 -runs 3  # GOMAXPROCS=1 and 2 side by side
//	go run ./bench/scalebench -devices 1000,300000 -jitter 5s   # reports in another order each round
//
// With -cores, each run of a size runs the process once per core count,
// one after the other (GOMAXPROCS=N, so N engine shards: vigil replay's
// default), and the table gets a row per core count; a line per core count
// then gives its wall-time speed-up over the first, run by run (each
// run's processes ran back to back, under the same load) and their median,
// with the load average before and after.
//
// Every record of a file is one report of one device: five (or -metrics)
// metrics around per-device levels with deterministic noise, attributes
// putting the fleet in 12 groups (site × hw), one report per device per
// minute, devices spread over the minute: device d at second 60·d/n, so
// every round comes in the same order of devices, as from a fleet polled
// in turn. With -jitter J each report lands up to J before or after its
// device's second (deterministic, wrapping within the minute), so the
// order of devices changes from round to round, as from devices that
// each keep their own clock. The files are written once (to
// -dir, kept with -keep) and the same file is read by every run of its
// size, so generation is not measured. The vigil binary is built from this
// module unless -vigil names one.
package main

import (
	"bufio"
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	records := flag.Int("records", 1_000_000, "records per fleet size (each file holds this many)")
	devices := flag.String("devices", "1000,100000,300000,1000000", "comma-separated fleet sizes")
	metrics := flag.Int("metrics", 5, "metrics per record (1 to 10)")
	runs := flag.Int("runs", 1, "runs per fleet size; the median run is printed")
	cores := flag.String("cores", "", "comma-separated GOMAXPROCS values to run each file with, side by side (default: the environment's)")
	vigil := flag.String("vigil", "", "vigil binary to run (default: go build ./cmd/vigil into -dir)")
	dir := flag.String("dir", "", "folder for the generated files (default: a new temporary folder)")
	keep := flag.Bool("keep", false, "keep the generated files")
	jitter := flag.Duration("jitter", 0, "move each report up to this much before or after its device's second of the minute (0: every round in the same order of devices; at most 30s)")
	flag.Parse()
	if err := run(*records, *devices, *metrics, *runs, *cores, *vigil, *dir, *keep, *jitter, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "scalebench:", err)
		os.Exit(1)
	}
}

// result is one run of vigil replay on one file.
type result struct {
	wall, cpu time.Duration
	maxRSS    int64 // bytes
}

func run(records int, devicesFlag string, metrics, runs int, coresFlag, vigil, dir string, keep bool, jitter time.Duration, out io.Writer) error {
	sizes, err := parseSizes("-devices", devicesFlag)
	if err != nil {
		return err
	}
	cores := []int{0} // the environment's
	if coresFlag != "" {
		if cores, err = parseSizes("-cores", coresFlag); err != nil {
			return err
		}
	}
	if metrics < 1 || metrics > len(metricNames) {
		return fmt.Errorf("-metrics %d: choose 1 to %d", metrics, len(metricNames))
	}
	if runs < 1 {
		return errors.New("-runs must be at least 1")
	}
	if jitter < 0 || jitter > 30*time.Second {
		return fmt.Errorf("-jitter %v: choose 0 to 30s", jitter)
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "scalebench-"); err != nil {
			return err
		}
		if !keep {
			defer os.RemoveAll(dir)
		}
	}
	if vigil == "" {
		vigil = filepath.Join(dir, "vigil")
		build := exec.Command("go", "build", "-o", vigil, "./cmd/vigil")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("go build ./cmd/vigil (run scalebench from the module's root, or give -vigil): %w", err)
		}
	}
	order := "every round in the same order of devices"
	if jitter > 0 {
		order = fmt.Sprintf("each report up to %v off its device's second", jitter)
	}
	fmt.Fprintf(out, "vigil replay --quiet FILE, %d records of %d metrics per file (%s), %d run(s) each (median shown); load average %s\n\n",
		records, metrics, order, runs, loadAverage())
	fmt.Fprintln(out, "| devices | reports/device | GOMAXPROCS | wall s | records/s | CPU ns/record | × smallest fleet | peak RSS MB | RSS B/device |")
	fmt.Fprintln(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	var base float64
	var speedups []string
	for _, n := range sizes {
		reports := max(records/n, 1)
		path := filepath.Join(dir, fmt.Sprintf("fleet-%d-%d-%d-%s.jsonl", n, reports, metrics, jitter))
		if _, err := os.Stat(path); err != nil {
			if err := writeFleet(path, n, reports, metrics, jitter); err != nil {
				return err
			}
		}
		rs := make([][]result, len(cores)) // by core count, then run
		for range runs {
			for c, procs := range cores {
				r, err := replay(vigil, path, procs)
				if err != nil {
					return err
				}
				rs[c] = append(rs[c], r)
			}
		}
		total := n * reports
		for c, procs := range cores {
			r := median(rs[c], func(r result) time.Duration { return r.cpu })
			perRecord := float64(r.cpu.Nanoseconds()) / float64(total)
			if base == 0 {
				base = perRecord
			}
			gomaxprocs := "-"
			if procs > 0 {
				gomaxprocs = strconv.Itoa(procs)
			}
			fmt.Fprintf(out, "| %d | %d | %s | %.2f | %.0f | %.0f | %.2f | %.0f | %.0f |\n", n, reports, gomaxprocs, r.wall.Seconds(),
				float64(total)/r.wall.Seconds(), perRecord, perRecord/base, float64(r.maxRSS)/1e6, float64(r.maxRSS)/float64(n))
			if c > 0 {
				speedups = append(speedups, speedup(n, procs, cores[0], rs[0], rs[c]))
			}
		}
	}
	if len(speedups) > 0 {
		fmt.Fprintf(out, "\n%s\nload average after: %s\n", strings.Join(speedups, "\n"), loadAverage())
	}
	return nil
}

// median returns the median of rs by key.
func median(rs []result, key func(result) time.Duration) result {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b result) int { return int(key(a) - key(b)) })
	return rs[len(rs)/2]
}

// speedup describes the wall-time speed-up of the runs with procs over
// those with base, run by run, and its median.
func speedup(devices, procs, base int, baseRuns, runs []result) string {
	var ratios []float64
	var each []string
	for i := range runs {
		ratios = append(ratios, baseRuns[i].wall.Seconds()/runs[i].wall.Seconds())
		each = append(each, strconv.FormatFloat(ratios[i], 'f', 2, 64))
	}
	slices.Sort(ratios)
	return fmt.Sprintf("%d devices: GOMAXPROCS=%d is %.2f× as fast as GOMAXPROCS=%d (median; runs %s)",
		devices, procs, ratios[len(ratios)/2], base, strings.Join(each, ", "))
}

// loadAverage returns the 1, 5 and 15 minute load averages, or "?".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

func parseSizes(flag, s string) ([]int, error) {
	var sizes []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s %q: want positive counts separated by commas, such as 1000,1000000", flag, s)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

// replay runs vigil replay on path, with GOMAXPROCS=procs unless 0, and
// returns its wall time, CPU time and peak RSS.
func replay(vigil, path string, procs int) (result, error) {
	cmd := exec.Command(vigil, "replay", "--quiet", "--out", os.DevNull, path)
	if procs > 0 {
		cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(procs))
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("%s replay %s: %w\n%s", vigil, path, err, stderr.String())
	}
	wall := time.Since(start)
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return result{}, errors.New("no rusage for the child process on this platform")
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return result{wall: wall, cpu: cpu, maxRSS: ru.Maxrss * 1024}, nil // Linux: Maxrss in KiB
}

// metricNames are the metrics a record carries, the first -metrics of them.
var metricNames = []string{"bytes_out", "bytes_in", "msgs_sent", "auth_failures", "cpu_pct",
	"mem_pct", "temp_c", "conn_count", "errors", "latency_ms"}

// writeFleet writes reports rounds of one report per device, in time
// order: round r at minute r, device d at second 60·d/n of it, moved by up
// to ±jitter (wrapping within the minute).
func writeFleet(path string, n, reports, metrics int, jitter time.Duration) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	t0 := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	var line []byte
	type report struct {
		at time.Duration // from the round's start
		d  int
	}
	round := make([]report, n)
	for r := range reports {
		for d := range n {
			at := time.Duration(int64(d) * int64(time.Minute) / int64(n))
			if jitter > 0 {
				at += time.Duration((2*unit(uint64(d)<<20^uint64(r)^0x5851f42d4c957f2d) - 1) * float64(jitter))
				at = (at%time.Minute + time.Minute) % time.Minute
			}
			round[d] = report{at, d}
		}
		if jitter > 0 {
			slices.SortFunc(round, func(a, b report) int { return cmp.Compare(a.at, b.at) })
		}
		for _, rep := range round {
			ts := t0.Add(time.Duration(r)*time.Minute + rep.at)
			line = appendRecord(line[:0], rep.d, r, ts, metrics)
			if _, err := w.Write(line); err != nil {
				f.Close()
				return err
			}
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// appendRecord appends device d's report of round r as one JSON line.
func appendRecord(b []byte, d, r int, ts time.Time, metrics int) []byte {
	b = append(b, `{"device":"dev-`...)
	b = appendPadded(b, d, 7)
	b = append(b, `","ts":"`...)
	b = ts.AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","attrs":{"site":"s`...)
	b = strconv.AppendInt(b, int64(d%4), 10)
	b = append(b, `","hw":"h`...)
	b = strconv.AppendInt(b, int64(d%3), 10)
	b = append(b, `"},"metrics":{`...)
	for m := range metrics {
		if m > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, metricNames[m]...)
		b = append(b, `":`...)
		b = strconv.AppendFloat(b, value(d, r, m), 'f', -1, 64)
	}
	return append(b, "}}\n"...)
}

// value is metric m of device d in round r: a level of the device's own
// (up to ±20 % around the metric's) with ±5 % noise, counts as integers,
// auth_failures and errors 0.
func value(d, r, m int) float64 {
	if metricNames[m] == "auth_failures" || metricNames[m] == "errors" {
		return 0
	}
	levels := [...]float64{10000, 2000, 50, 0, 25, 40, 45, 12, 0, 8}
	level := levels[m] * (0.8 + 0.4*unit(uint64(d)*16+uint64(m)))
	v := level * (1 + 0.05*(2*unit(uint64(d)<<24^uint64(r)<<4^uint64(m)^0x9e3779b97f4a7c15)-1))
	if m < 4 || m == 7 {
		return math.Round(v)
	}
	return math.Round(v*10) / 10
}

// unit maps x to [0, 1) by a SplitMix64 step: deterministic noise without
// a generator's state.
func unit(x uint64) float64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / (1 << 53)
}

func appendPadded(b []byte, v, width int) []byte {
	s := strconv.Itoa(v)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}
