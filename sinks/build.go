package sinks

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/vigil-ot/vigil/detect"
)

// Build returns the sink the commands write to: a Fanout over every sink
// of cfg, built with its defaults. It validates cfg first; on an error no
// sink stays open.
func Build(cfg Config, logger *slog.Logger) (detect.Sink, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var members []Member
	closeAll := func() {
		for _, m := range members {
			m.Sink.Close()
		}
	}
	for _, sc := range cfg.resolved() {
		s, err := buildSink(sc, logger)
		if err != nil {
			closeAll()
			return nil, err
		}
		members = append(members, Member{Name: sc.Name, Sink: s, Optional: sc.Optional, Retry: sc.Retry})
	}
	return NewFanoutOf(logger, members...), nil
}

func buildSink(sc SinkConfig, logger *slog.Logger) (detect.Sink, error) {
	delim, _ := sc.leefDelimiter()
	enc := Encoder{Format: sc.Format, Host: sc.Host, LEEFDelimiter: delim}
	switch sc.Kind {
	case KindStdout:
		return newWriterSink(sc.Name, os.Stdout, enc), nil
	case KindFile:
		f, err := os.OpenFile(sc.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, fmt.Errorf("cannot open sink %s file: %w; check that its directory exists and is writable", sc.Name, err)
		}
		s := newWriterSink(sc.Name, f, enc)
		s.closer = f
		return s, nil
	case KindSyslog:
		return NewSyslogSink(sc.Name, sc.Syslog, enc, logger)
	case KindKafka:
		return NewKafkaSink(sc.Name, sc.Kafka, enc, logger)
	}
	return nil, errors.New("BUG: unvalidated sink kind " + sc.Kind)
}
