package main

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
)

// firstGCMemory is how much memory the runtime holds (heap, stacks and its
// own structures: what GOMEMLIMIT counts) when the process collects
// garbage for the first time. By the runtime's default the first cycle
// comes at a 4 MB heap, about what package initialisation leaves live
// (kafka-go's protocol registry, Arrow's JSON tables, gopacket's
// decoders): a replay of a small capture collected garbage once, found
// nearly everything live, and paid for scanning the binary's 5 MB of
// global data and for faulting in the collector's own memory.
const firstGCMemory = 16 << 20

// deferFirstGC holds the first garbage collection until the runtime holds
// firstGCMemory; after that cycle the usual pacing (GOGC=100, no memory
// limit) applies. GOGC or GOMEMLIMIT in the environment leave the pacing
// to them.
func deferFirstGC() {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	gcPercent := debug.SetGCPercent(-1)
	debug.SetMemoryLimit(firstGCMemory)
	sentinel := new([16]byte) // unreachable: collected by the first cycle
	runtime.SetFinalizer(sentinel, func(*[16]byte) {
		debug.SetGCPercent(gcPercent)
		debug.SetMemoryLimit(math.MaxInt64)
	})
}
