package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// runCaptured runs vigil with args in-process and returns its exit code
// and what it wrote to standard output and error.
func runCaptured(t *testing.T, args ...string) (int, string) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stdout, stderr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = f, f
	code := runCommand(args)
	os.Stdout, os.Stderr = stdout, stderr
	out, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return code, string(out)
}

// TestEveryHelpExitsZero runs each command with --help and -h: each prints
// its usage and exits 0, as scripts and package managers expect.
func TestEveryHelpExitsZero(t *testing.T) {
	for _, cmd := range [][]string{
		{}, {"replay"}, {"score"}, {"run"}, {"demo"}, {"console"}, {"validate"}, {"baseline"}, {"baseline", "inspect"},
	} {
		for _, flag := range []string{"--help", "-h"} {
			args := append(append([]string(nil), cmd...), flag)
			code, out := runCaptured(t, args...)
			if code != 0 {
				t.Errorf("vigil %s exits %d, want 0", strings.Join(args, " "), code)
			}
			if !strings.Contains(strings.ToLower(out), "usage") {
				t.Errorf("vigil %s printed no usage:\n%s", strings.Join(args, " "), out)
			}
		}
	}
}

func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "version"} {
		code, out := runCaptured(t, arg)
		if code != 0 || !strings.HasPrefix(out, "vigil ") || !strings.Contains(out, runtime.Version()) {
			t.Errorf("vigil %s exits %d and prints %q; want 0 and the version with the Go version", arg, code, out)
		}
	}
}
