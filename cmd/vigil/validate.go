package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-ot/vigil/ingest/inventory"
	"github.com/vigil-ot/vigil/ingest/kafka"
)

const validateUsage = `usage: vigil validate [--run] [--print] [--against INPUT]... CONFIG

Checks CONFIG the way every command loads it: strict YAML over the defaults
in code, so an unknown or misspelt key, a wrong type or a tab fails with its
line number, and every setting is validated with the remedy in the error.
Then it opens what the config names, as 'vigil run' does at start-up: the
inventory is read, TLS certificates and keys are loaded, the folders of
file sinks must exist. Relative file names are taken from CONFIG's folder.
--run also checks what only 'vigil run' needs: input topics, and the SASL
secrets in the environment variables the config names.
--print shows every setting with its effective value, defaults included.
--against replays INPUT (as 'vigil replay' would, alerts discarded) and
warns about settings that name a metric no input has: a per-metric
override, a rule's metric, a joint metric, a rollout KPI (a typo there fails silently).

Flags:
`

func runValidate(args []string) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	printCfg := fs.Bool("print", false, "print the effective configuration (the file over the defaults) as YAML")
	forRun := fs.Bool("run", false, "also check what 'vigil run' needs: input topics and SASL secrets in the environment")
	var against []string
	fs.Var((*listFlag)(&against), "against", "replay `INPUT` and warn about settings naming a metric it does not have (repeatable)")
	fs.Usage = func() { fmt.Fprint(fs.Output(), validateUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	cfg, err := loadConfig(fs.Arg(0), func(c *Config) []error { return checkConfigFiles(c, *forRun) })
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
	if len(against) > 0 {
		warnings, err := unseenMetricsIn(cfg, against)
		if err != nil {
			fmt.Fprintln(os.Stderr, "vigil validate --against:", err)
			return 1
		}
		for _, w := range warnings {
			fmt.Fprintf(os.Stderr, "warning: %s\n", w)
		}
		fmt.Printf("%s: ok, %d warning(s) against %d input(s)\n", fs.Arg(0), len(warnings), len(against))
		return 0
	}
	fmt.Printf("%s: ok\n", fs.Arg(0))
	return 0
}

// unseenMetricsIn replays inputs under cfg, alerts discarded, and returns
// cfg's settings that name a metric none of them has.
func unseenMetricsIn(cfg Config, inputs []string) ([]string, error) {
	job, err := openReplay(cfg, inputs, &collectSink{}, slog.New(slog.DiscardHandler), replaySetup{})
	if err != nil {
		return nil, err
	}
	defer job.close()
	if err := job.run(context.Background()); err != nil {
		return nil, err
	}
	return cfg.Detect.UnseenMetrics(job.Store.HasMetric), nil
}

// checkConfigFiles checks what cfg names that can be checked without a
// broker: the inventory opens, TLS certificates, keys and CA bundles load,
// the folders of file sinks exist; forRun adds what 'vigil run' needs on
// top: input topics and the SASL secrets in the environment. vigil
// validate and vigil run's start-up both check through it, so a config
// validate passes does not fail run's start-up on any of these. Each
// problem is a settingError naming its setting.
func checkConfigFiles(cfg *Config, forRun bool) []error {
	var errs []error
	fail := func(path string, err error) { errs = append(errs, &settingError{path: path, err: err}) }
	if cfg.Input.Inventory.Path != "" {
		if _, err := inventory.Open(cfg.Input.Inventory, slog.New(slog.DiscardHandler)); err != nil {
			fail("input.inventory.path", err)
		}
	}
	if t := cfg.Kafka.TLS; t.Enabled {
		errs = append(errs, checkTLSFiles("kafka.tls", t.CAFile, t.CertFile, t.KeyFile)...)
	}
	for i, s := range cfg.Sinks {
		at := fmt.Sprintf("sinks[%d]", i)
		if s.Path != "" {
			if st, err := os.Stat(filepath.Dir(s.Path)); err != nil || !st.IsDir() {
				fail(at+".path", fmt.Errorf("cannot write %s: its folder %s does not exist; create it or change the path", s.Path, filepath.Dir(s.Path)))
			}
		}
		errs = append(errs, checkTLSFiles(at+".syslog.tls", s.Syslog.TLS.CAFile, s.Syslog.TLS.CertFile, s.Syslog.TLS.KeyFile)...)
		if t := s.Kafka.TLS; t != nil {
			errs = append(errs, checkTLSFiles(at+".kafka.tls", t.CAFile, t.CertFile, t.KeyFile)...)
		}
		if forRun && s.Kafka.SASL != nil {
			if _, err := kafka.SASLMechanism(s.Kafka.SASL, os.Getenv); err != nil {
				fail(at+".kafka.sasl", err)
			}
		}
	}
	if !forRun {
		return errs
	}
	if len(cfg.Kafka.TelemetryTopics)+len(cfg.Kafka.PacketTopics) == 0 {
		fail("kafka", errors.New("vigil run needs input topics: set telemetry_topics or packet_topics"))
	}
	if _, err := kafka.SASLMechanism(&cfg.Kafka.SASL, os.Getenv); err != nil {
		fail("kafka.sasl", err)
	}
	return errs
}

// checkTLSFiles loads a CA bundle and a client certificate and key as a
// TLS client does, and names the setting of each that does not load.
func checkTLSFiles(at, caFile, certFile, keyFile string) []error {
	var errs []error
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err == nil && !x509.NewCertPool().AppendCertsFromPEM(pem) {
			err = fmt.Errorf("%s holds no PEM certificate", caFile)
		}
		if err != nil {
			errs = append(errs, &settingError{path: at + ".ca_file", err: fmt.Errorf("cannot use the CA bundle: %w", err)})
		}
	}
	if certFile != "" && keyFile != "" {
		if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
			errs = append(errs, &settingError{path: at + ".cert_file", err: fmt.Errorf("cannot load the client certificate %s with key %s: %w", certFile, keyFile, err)})
		}
	}
	return errs
}

// loadConfig is LoadConfig followed by check, whose errors are placed in
// the file like validation errors.
func loadConfig(path string, check func(*Config) []error) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("cannot read config: %w", err)
	}
	cfg, err := parseConfigIn(data, filepath.Dir(path))
	if err == nil && check != nil {
		errs := check(&cfg)
		for i := range errs {
			errs[i] = locateSetting(data, errs[i])
		}
		err = errors.Join(errs...)
	}
	if err != nil {
		return Config{}, fmt.Errorf("cannot load config %s: %w", path, err)
	}
	return cfg, nil
}
