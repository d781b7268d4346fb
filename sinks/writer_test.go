package sinks

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/vigil-ot/vigil/detect"
)

func TestWriterSinkLines(t *testing.T) {
	for _, f := range []Format{FormatJSON, FormatCEF, FormatLEEF, FormatECS} {
		var buf bytes.Buffer
		s := NewWriterSink("test-"+string(f), &buf, f)
		out := detect.Output{Alerts: fixtureAlerts(), Quarantine: fixtureQuarantine()}
		if err := s.Write(context.Background(), &out); err != nil {
			t.Fatal(err)
		}
		if err := s.Write(context.Background(), &out); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		if len(lines) != 2*out.Len() {
			t.Fatalf("%s: %d lines for %d items: a device string split a line", f, len(lines), 2*out.Len())
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriterSinkReportsEveryItem(t *testing.T) {
	s := NewWriterSink("broken", failingWriter{}, FormatJSON)
	out := detect.Output{Alerts: fixtureAlerts(), Quarantine: fixtureQuarantine()}
	err := s.Write(context.Background(), &out)
	var de *detect.DeliveryError
	if !errors.As(err, &de) {
		t.Fatalf("want *detect.DeliveryError, got %v", err)
	}
	if len(de.Failed) != out.Len() || de.Failed[0] != out.Alerts[0].ID || de.Failed[len(de.Failed)-1] != "q-hostile" {
		t.Fatalf("failed ids = %v", de.Failed)
	}
	if !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("error lost its cause: %v", err)
	}
}
