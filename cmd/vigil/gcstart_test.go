package main

import (
	"math"
	"os"
	"os/exec"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

// gcChildEnv runs TestFirstGCDeferred's checks in a process of their own,
// whose collector no other test has started.
const gcChildEnv = "VIGIL_TEST_FIRST_GC_CHILD"

// gcSink keeps TestFirstGCDeferred's allocations from being optimised away.
var gcSink [][]byte

// The process collects no garbage while it is small, then, once the
// runtime holds firstGCMemory, collects and goes back to the usual
// pacing (GOGC=100, no memory limit).
func TestFirstGCDeferred(t *testing.T) {
	if os.Getenv(gcChildEnv) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFirstGCDeferred$", "-test.count=1")
		cmd.Env = append(os.Environ(), gcChildEnv+"=1")
		for _, kv := range []string{"GOGC", "GOMEMLIMIT"} {
			cmd.Env = append(cmd.Env, kv+"=") // empty: the default pacing
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return
	}
	deferFirstGC()
	cycles := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	before := cycles()
	for range 3 << 10 { // 3 MB in small pieces: past the runtime's 4 MB default with what is live
		gcSink = append(gcSink, make([]byte, 1<<10))
	}
	if n := cycles() - before; n != 0 {
		t.Fatalf("%d garbage collections while the heap grew by 3 MB", n)
	}
	gcSink = nil
	for range 64 << 10 { // 64 MB of garbage: past firstGCMemory
		gcSink = append(gcSink[:0], make([]byte, 1<<10))
	}
	if cycles() == before {
		t.Fatal("no garbage collection after 64 MB")
	}
	for deadline := time.Now().Add(10 * time.Second); debug.SetMemoryLimit(-1) != math.MaxInt64; {
		if time.Now().After(deadline) {
			t.Fatal("the memory limit is still set after the first garbage collection")
		}
		time.Sleep(time.Millisecond) // the finalizer runs on a goroutine of its own
	}
	if p := debug.SetGCPercent(100); p != 100 {
		t.Fatalf("GOGC %d after the first garbage collection, want 100", p)
	}
}
