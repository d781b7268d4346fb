package replaybench

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/ingest/pcap/pcaptest"
	"github.com/vigil-ot/vigil/ingest/simulate/attackgen"
)

// bareLoopEnv names the capture the test binary, started again by
// BenchmarkReplayProcess, runs the bare decode loop over as a whole
// process of its own (see TestMain).
const bareLoopEnv = "VIGIL_BENCH_BARE_LOOP"

func TestMain(m *testing.M) {
	if path := os.Getenv(bareLoopEnv); path != "" {
		os.Exit(bareLoopProcess(path))
	}
	code := m.Run()
	if tools.dir != "" {
		os.RemoveAll(tools.dir)
	}
	os.Exit(code)
}

// bareLoopProcess is the bare side of BenchmarkReplayProcess: read the
// capture, run the bare DecodingLayerParser loop over it once, print the
// packet count.
func bareLoopProcess(path string) int {
	data, err := os.ReadFile(path)
	if err == nil {
		var n int
		if n, err = newBareLoop()(data); err == nil {
			fmt.Println(n)
			return 0
		}
	}
	fmt.Fprintln(os.Stderr, err)
	return 1
}

// vigilBinary lets BenchmarkReplayProcess time another build of vigil
// (e.g. before a change): go test ... -args -vigil PATH.
var vigilBinary = flag.String("vigil", "", "vigil binary BenchmarkReplayProcess runs (default: built from this tree)")

// tools holds what BenchmarkReplayProcess builds once per run: the vigil
// binary and the OT day capture.
var tools struct {
	once   sync.Once
	dir    string
	vigil  string
	otday  string
	tshark string // "" when tshark is not installed
	err    error
}

func setUpTools() {
	t := &tools
	if t.dir, t.err = os.MkdirTemp("", "replaybench"); t.err != nil {
		return
	}
	if t.vigil = *vigilBinary; t.vigil == "" {
		t.vigil = filepath.Join(t.dir, "vigil")
		if out, err := exec.Command("go", "build", "-o", t.vigil, "github.com/vigil-ot/vigil/cmd/vigil").CombinedOutput(); err != nil {
			t.err = fmt.Errorf("cannot build vigil: %v: %s", err, out)
			return
		}
	}
	t.otday = filepath.Join(t.dir, "otday.pcap")
	f, err := os.Create(t.otday)
	if err != nil {
		t.err = err
		return
	}
	w := bufio.NewWriter(f)
	_, t.err = attackgen.GenerateOTDay(w, attackgen.DefaultOTDayScenario())
	if err := w.Flush(); t.err == nil {
		t.err = err
	}
	if err := f.Close(); t.err == nil {
		t.err = err
	}
	t.tshark, _ = exec.LookPath("tshark")
}

// BenchmarkReplayProcess compares whole processes on the same capture
// file, as a user runs them: the bare DecodingLayerParser loop (this test
// binary started again: process start, reading the file, decoding L2–L4),
// `vigil replay --quiet --out /dev/null FILE` (start-up, every stage,
// every detector, writing the alerts) and `tshark -r FILE -q` (skipped
// when tshark is not installed). Each iteration runs each side once, in
// turn; the fastest run of each side is kept, by wall clock and by CPU
// time (user+system of the process), and their ratios reported:
// vigil_vs_bare (bare time / vigil time: the budget is >= 0.5 on
// the sparse 24-hour OT day, >= 0.75 on dense Modbus) and
// tshark_vs_vigil (tshark time / vigil time: >= 3). Inputs: attackgen's
// 24-hour OT day (`attackgen -scenario otday`: DNP3 and Modbus polling at
// a few packets a second, then its attacks) and, with
// ../shared/captures, the dense Modbus captures. Run it with a fixed
// count, e.g. -benchtime 5x.
func BenchmarkReplayProcess(b *testing.B) {
	tools.once.Do(setUpTools)
	if tools.err != nil {
		b.Fatal(tools.err)
	}
	inputs := []string{tools.otday}
	if dir := pcaptest.Dir(); dir != "" {
		for _, name := range benchCaptures {
			inputs = append(inputs, filepath.Join(dir, name))
		}
	}
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	for _, path := range inputs {
		b.Run(filepath.Base(path), func(b *testing.B) {
			bare := exec.Command(self)
			bare.Env = append(os.Environ(), bareLoopEnv+"="+path)
			sides := []*processSide{
				{name: "bare", argv: bare},
				{name: "vigil", argv: exec.Command(tools.vigil, "replay", "--quiet", "--out", os.DevNull, path)},
			}
			if tools.tshark != "" {
				sides = append(sides, &processSide{name: "tshark", argv: exec.Command(tools.tshark, "-r", path, "-q")})
			}
			for b.Loop() {
				for _, s := range sides {
					s.run(b)
				}
			}
			if n, err := strconv.Atoi(string(trimNewline(sides[0].out))); err != nil || n == 0 {
				b.Fatalf("the bare loop printed %q, not a packet count", sides[0].out)
			}
			for _, s := range sides {
				b.ReportMetric(s.wall.Seconds(), s.name+"_s")
				b.ReportMetric(s.cpu.Seconds(), s.name+"_cpu_s")
			}
			bareSide, vigil := sides[0], sides[1]
			b.ReportMetric(bareSide.wall.Seconds()/vigil.wall.Seconds(), "vigil_vs_bare")
			b.ReportMetric(bareSide.cpu.Seconds()/vigil.cpu.Seconds(), "vigil_vs_bare_cpu")
			if len(sides) == 3 {
				tshark := sides[2]
				b.ReportMetric(tshark.wall.Seconds()/vigil.wall.Seconds(), "tshark_vs_vigil")
				b.ReportMetric(tshark.cpu.Seconds()/vigil.cpu.Seconds(), "tshark_vs_vigil_cpu")
			}
		})
	}
}

// processSide is one side of BenchmarkReplayProcess: a command and its
// fastest run so far.
type processSide struct {
	name      string
	argv      *exec.Cmd // a template: each run copies its path, args and env
	wall, cpu time.Duration
	out       []byte
}

func (s *processSide) run(b *testing.B) {
	cmd := exec.Command(s.argv.Path, s.argv.Args[1:]...)
	cmd.Env = s.argv.Env
	start := time.Now()
	out, err := cmd.Output()
	wall := time.Since(start)
	if err != nil {
		b.Fatalf("%s: %v", cmd, err)
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if s.wall == 0 || wall < s.wall {
		s.wall = wall
	}
	if s.cpu == 0 || cpu < s.cpu {
		s.cpu = cpu
	}
	s.out = out
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
