// Command attackgen writes a crafted, labelled OT capture:
//
//	go run ./ingest/simulate/attackgen/cmd/attackgen -scenario attack -o attack.pcap -labels attack.labels.csv
//	go run ./ingest/simulate/attackgen/cmd/attackgen -scenario otday -clean 3h
//
// then `vigil score --labels attack.labels.csv attack.pcap` scores the
// alerts a replay raises against the labels.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/vigil-ot/vigil/ingest/simulate/attackgen"
)

const usage = `Usage: attackgen [-scenario attack|otday] [-clean DURATION] [-o FILE] [-labels FILE]

Writes a crafted OT capture (classic pcap, Ethernet; valid checksums, opens
in Wireshark) and its labels: the incident CSV 'vigil score --labels' reads,
one line an attack with its device, time span, detector, behavior and
ATT&CK for ICS technique.

Scenarios:
  attack  Modbus/TCP and S7comm polling, then a new Modbus writer, an S7 PLC
          stop, a TCP port scan and a spoofed SYN flood (default clean 30m).
  otday   a substation day: DNP3 polling of two outstations, Modbus polling
          of three PLCs and irregular NetBIOS, mDNS, SSDP, DHCP and ARP
          chatter; then ARP and ICMP sweeps, a slow TCP, a UDP port and a
          Modbus host scan, a spoofed SYN flood with backscatter, Modbus,
          BACnet, EtherNet/IP and S7 device identification, a Modbus
          register enumeration, and two MITM signs (a conflicting TCP
          retransmission, an ARP rebinding) (default clean 24h).

Flags:
`

func main() {
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), usage)
		flag.PrintDefaults()
	}
	scenario := flag.String("scenario", "attack", "scenario to write: attack or otday")
	out := flag.String("o", "", "capture to write (default SCENARIO.pcap)")
	labels := flag.String("labels", "", "labels file to write (default SCENARIO.labels.csv)")
	clean := flag.Duration("clean", 0, "clean period before the first attack (default 30m for attack, 24h for otday)")
	flag.Parse()
	generate, err := generator(*scenario, *clean)
	if err == nil {
		err = run(generate, orDefault(*out, *scenario+".pcap"), orDefault(*labels, *scenario+".labels.csv"))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "attackgen:", err)
		os.Exit(1)
	}
}

type generateFunc func(io.Writer) ([]attackgen.Label, error)

// generator returns the scenario's generator, with its clean period set
// when clean is not zero.
func generator(scenario string, clean time.Duration) (generateFunc, error) {
	if clean < 0 {
		return nil, fmt.Errorf("-clean %v is negative; give a duration such as 3h", clean)
	}
	switch scenario {
	case "attack":
		s := attackgen.DefaultScenario()
		if clean > 0 {
			s.Clean = clean
		}
		return func(w io.Writer) ([]attackgen.Label, error) { return attackgen.Generate(w, s) }, nil
	case "otday":
		s := attackgen.DefaultOTDayScenario()
		if clean > 0 {
			s.Clean = clean
		}
		return func(w io.Writer) ([]attackgen.Label, error) { return attackgen.GenerateOTDay(w, s) }, nil
	}
	return nil, fmt.Errorf("unknown -scenario %q; use attack or otday", scenario)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func run(generate generateFunc, out, labelsPath string) error {
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("cannot create capture: %w", err)
	}
	w := bufio.NewWriter(f)
	labels, err := generate(w)
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
