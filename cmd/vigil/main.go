// Command vigil is the one binary of Vigil: replay captures and telemetry,
// run as a Kafka consumer group, validate configs, inspect baselines.
package main

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
)

func main() {
	deferFirstGC()
	os.Exit(runCommand(os.Args[1:]))
}

// runCommand runs the command args name and returns the exit code.
func runCommand(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "validate":
		return runValidate(args)
	case "replay":
		return runReplay(args)
	case "score":
		return runScore(args)
	case "baseline":
		if len(args) > 1 && isHelpFlag(args[1]) {
			args = args[1:] // "inspect --help": runBaseline prints its usage for a lone help flag
		}
		return runBaseline(args)
	case "run":
		return runRun(args)
	case "demo":
		return runDemo(args)
	case "console":
		return runConsole(args)
	case "drill":
		return runDrill(args)
	case "version", "--version", "-version":
		fmt.Println(version())
		return 0
	case "-h", "--help", "-help", "help":
		fmt.Print(usage)
		return 0
	}
	fmt.Fprintf(os.Stderr, "vigil: unknown command %q\n\n%s", cmd, usage)
	return 2
}

func isHelpFlag(arg string) bool {
	return slices.Contains([]string{"-h", "--help", "-help", "help"}, arg)
}

// version names the build: the module version (v1.2.3 when built by 'go
// install …@v1.2.3', "(devel)" from a checkout), the VCS revision and its
// time when the build recorded them, and the Go version.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "vigil (no build information)"
	}
	v := "vigil " + cmp.Or(bi.Main.Version, "(devel)")
	var rev, at string
	var modified bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev != "" {
		v += " revision " + rev
		if at != "" {
			v += " of " + at
		}
		if modified {
			v += " with local changes"
		}
	}
	return v + ", " + bi.GoVersion
}

const usage = `vigil: streaming anomaly detection and baselines for IoT and OT fleets

Usage:
  vigil replay [--config FILE] [--out FILE] FILE...   judge JSONL telemetry and pcap/pcapng captures
  vigil score --labels FILE [--config FILE] FILE...  score the alerts of a replay against labels (tuning)
  vigil run --config FILE                            consume Kafka as a consumer group
  vigil demo                                         embedded Kafka broker, simulated fleet, live alerts
  vigil console --config FILE [--http ADDR]          the whole fleet's console from the status topic of vigil run instances
  vigil drill --config FILE [--deadline 2m]          inject canary incidents into a running vigil run, check their alerts
  vigil validate [--run] [--print] FILE              check a config file and the files it names (and show its settings)
  vigil baseline inspect FILE                        print a baseline checkpoint

Run 'vigil COMMAND --help' for the flags of a command, 'vigil --version' for the build.
`

// writeFile creates path and lets fill write it, closing it either way.
func writeFile(path string, fill func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := fill(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
