// Command attackgen writes the crafted OT attack capture and its labels:
//
//	go run ./bench/attackgen/cmd/attackgen -o attack.pcap -labels attack.labels.csv
//
// then `vigil replay attack.pcap` should raise one alert per label.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/vigil-ot/vigil/bench/attackgen"
)

func main() {
	out := flag.String("o", "attack.pcap", "capture to write")
	labels := flag.String("labels", "attack.labels.csv", "labels file to write")
	clean := flag.Duration("clean", 30*time.Minute, "clean period before the first attack")
	flag.Parse()
	s := attackgen.DefaultScenario()
	s.Clean = *clean
	if err := run(s, *out, *labels); err != nil {
		fmt.Fprintln(os.Stderr, "attackgen:", err)
		os.Exit(1)
	}
}

func run(s attackgen.Scenario, out, labelsPath string) error {
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("cannot create capture: %w", err)
	}
	w := bufio.NewWriter(f)
	labels, err := attackgen.Generate(w, s)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	lf, err := os.Create(labelsPath)
	if err != nil {
		return fmt.Errorf("cannot create labels file: %w", err)
	}
	if err := attackgen.WriteLabels(lf, labels); err != nil {
		lf.Close()
		return fmt.Errorf("cannot write labels: %w", err)
	}
	return lf.Close()
}
