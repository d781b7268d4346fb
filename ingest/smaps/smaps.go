// Package smaps reads what the Linux kernel reports of the process's
// memory, for tests that check where state lives.
package smaps

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"
)

// THPMode returns the kernel's transparent huge page mode (always,
// madvise or never), or "" when it has none.
func THPMode() string {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil {
		return ""
	}
	_, mode, _ := strings.Cut(string(b), "[")
	mode, _, _ = strings.Cut(mode, "]")
	return mode
}

// HugePagesAt returns the kB of transparent huge pages (AnonHugePages in
// /proc/self/smaps) of the mapping that holds address p.
func HugePagesAt(p unsafe.Pointer) (int, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	at := uint64(uintptr(p))
	found, in := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if kb, ok := strings.CutPrefix(line, "AnonHugePages:"); ok {
			if in {
				return strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kb), "kB")))
			}
			continue
		}
		// A mapping's first line: "from-to perms offset dev inode [path]".
		fields := strings.Fields(line)
		if len(fields) < 5 || strings.HasSuffix(fields[0], ":") {
			continue
		}
		if from, to, ok := strings.Cut(fields[0], "-"); ok {
			lo, err1 := strconv.ParseUint(from, 16, 64)
			hi, err2 := strconv.ParseUint(to, 16, 64)
			in = err1 == nil && err2 == nil && lo <= at && at < hi
			found = found || in
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("no mapping holds %p", p)
	}
	return 0, fmt.Errorf("the mapping of %p reports no AnonHugePages", p)
}
