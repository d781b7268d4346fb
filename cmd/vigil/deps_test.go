package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/vigil-ot/vigil/"

// TestBinaryDoesNotDependOnBench fails when the production binary links a
// package of bench/: benchmarks and their load generators are not the
// product. The demo's simulators live in ingest/simulate for that reason.
func TestBinaryDoesNotDependOnBench(t *testing.T) {
	for _, pkg := range binaryDeps(t) {
		if strings.HasPrefix(pkg, module+"bench/") {
			t.Errorf("cmd/vigil depends on %s; move what the product needs out of bench/ (simulators go to ingest/simulate)", pkg)
		}
	}
}

// TestNodemoBuildLeavesOutTheDemo fails when `go build -tags nodemo` still
// links the embedded Kafka broker or the simulators, or no longer builds:
// the tag is how a production build drops what only `vigil demo` needs.
func TestNodemoBuildLeavesOutTheDemo(t *testing.T) {
	for _, pkg := range binaryDeps(t, "-tags", "nodemo") {
		if strings.HasPrefix(pkg, "github.com/twmb/franz-go/") || strings.HasPrefix(pkg, module+"ingest/simulate/") {
			t.Errorf("cmd/vigil built with -tags nodemo depends on %s; only demo.go may import the embedded broker and the simulators", pkg)
		}
	}
	if testing.Short() {
		t.Skip("building the nodemo binary is skipped in -short mode")
	}
	cmd := exec.Command("go", "build", "-tags", "nodemo", "-o", filepath.Join(t.TempDir(), "vigil"), ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags nodemo ./cmd/vigil: %v\n%s", err, out)
	}
}

// binaryDeps lists the packages cmd/vigil links (tests excluded), built
// with the go command's extra flags; it skips the test without go on PATH.
func binaryDeps(t *testing.T, flags ...string) []string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go is not on PATH: cannot list the binary's dependencies")
	}
	args := append([]string{"list", "-deps", "-f", "{{.ImportPath}}"}, flags...)
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cannot list the dependencies of cmd/vigil: %v", err)
	}
	return strings.Fields(string(out))
}
