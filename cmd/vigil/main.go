// Command vigil is the one binary of Vigil: replay captures and telemetry,
// run as a Kafka consumer group, validate configs, inspect baselines.
package main

import (
	"flag"
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "validate":
		os.Exit(runValidate(os.Args[2:]))
	case "replay":
		os.Exit(runReplay(os.Args[2:]))
	case "score":
		os.Exit(runScore(os.Args[2:]))
	case "baseline":
		os.Exit(runBaseline(os.Args[2:]))
	case "run":
		os.Exit(runRun(os.Args[2:]))
	case "demo":
		os.Exit(runDemo(os.Args[2:]))
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "vigil: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
}

const usage = `vigil: streaming anomaly detection and baselines for IoT and OT fleets

Usage:
  vigil replay [--config FILE] [--out FILE] FILE...   judge JSONL telemetry and pcap/pcapng captures
  vigil score --labels FILE [--config FILE] FILE...  score the alerts of a replay against labels (tuning)
  vigil run --config FILE                            consume Kafka as a consumer group
  vigil demo                                         embedded Kafka broker, simulated fleet, live alerts
  vigil validate [--print] FILE                      check a config file (and show its effective settings)
  vigil baseline inspect FILE                        print a baseline checkpoint

Run 'vigil COMMAND --help' for the flags of a command.
`

func runValidate(args []string) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	printCfg := fs.Bool("print", false, "print the effective configuration (the file over the defaults) as YAML")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: vigil validate [--print] CONFIG

Checks CONFIG the way every command loads it: strict YAML over the defaults
in code, so an unknown or misspelt key, a wrong type or a tab fails with its
line number, and every setting is validated with the remedy in the error.
--print shows every setting with its effective value, defaults included.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	cfg, err := LoadConfig(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if *printCfg {
		enc := yaml.NewEncoder(os.Stdout)
		enc.SetIndent(2)
		if err := enc.Encode(cfg); err != nil {
			fmt.Fprintln(os.Stderr, "cannot print config:", err)
			return 1
		}
		return 0
	}
	fmt.Printf("%s: ok\n", fs.Arg(0))
	return 0
}
