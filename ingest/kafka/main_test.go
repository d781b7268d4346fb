package kafka_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/vigil-ot/vigil/ingest"
)

// TestMain fails the package when any test acknowledged a batch twice: the
// consumer, the engine and the sinks each own a step of a batch, and only
// the one that finishes it acks (ingest.Batch.Ack).
func TestMain(m *testing.M) {
	code := m.Run()
	if n := ingest.DoubleAcks(); n > 0 && code == 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d batches were acknowledged twice (ingest.Batch.Ack must be called exactly once)\n", n)
		code = 1
	}
	os.Exit(code)
}
