// Command vigil is the one binary of Vigil: replay captures and telemetry,
// run as a Kafka consumer group, validate configs, inspect baselines.
package main

import (
	"fmt"
	"os"
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
  vigil validate [--run] [--print] FILE              check a config file and the files it names (and show its settings)
  vigil baseline inspect FILE                        print a baseline checkpoint

Run 'vigil COMMAND --help' for the flags of a command.
`
