// Package pcaptest locates the team's folder of real captures
// (../shared/captures next to the module, or $VIGIL_CAPTURES) for the
// tests and benchmarks that read them. A fresh clone has no such folder:
// tests skip and benchmarks fall back to generated traffic.
package pcaptest

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the real-capture folder: $VIGIL_CAPTURES when set, else
// ../shared/captures from the module root (the nearest parent holding
// go.mod). It returns "" when that folder has no INVENTORY.tsv, the list
// every capture folder of the team comes with.
func Dir() string {
	dir := os.Getenv("VIGIL_CAPTURES")
	if dir == "" {
		wd, _ := os.Getwd()
		for d := wd; d != filepath.Dir(d); d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				dir = filepath.Join(filepath.Dir(d), "shared", "captures")
				break
			}
		}
	}
	if dir == "" {
		return ""
	}
	if _, err := os.Stat(filepath.Join(dir, "INVENTORY.tsv")); err != nil {
		return ""
	}
	return dir
}

// Require returns Dir, or skips t when there is no capture folder.
func Require(t testing.TB) string {
	t.Helper()
	dir := Dir()
	if dir == "" {
		t.Skip("real captures not present: set VIGIL_CAPTURES to a folder with INVENTORY.tsv, or place them at ../shared/captures next to the module")
	}
	return dir
}
