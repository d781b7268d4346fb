package pipeline_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/detect/pipeline"
)

// discardSink accepts everything.
type discardSink struct{}

func (discardSink) Write(context.Context, *detect.Output) error { return nil }
func (discardSink) Close() error                                { return nil }

// BenchmarkReplayShards replays a file of 1,000 devices in 12 groups, 200
// reports each of 5 metrics, the whole way (read, decode, learn, judge,
// deliver) on one engine shard per core: run it with -cpu 1,2 to compare
// GOMAXPROCS=1 and 2 side by side.
func BenchmarkReplayShards(b *testing.B) {
	const devices, reports = 1000, 200
	path := filepath.Join(b.TempDir(), "fleet.jsonl")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	rnd := rand.New(rand.NewSource(1))
	start := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	for r := range reports {
		for d := range devices {
			ts := start.Add(time.Duration(r)*time.Minute + time.Duration(d)*time.Minute/devices)
			fmt.Fprintf(w, `{"device":"dev-%04d","ts":%d,"attrs":{"site":"s%d","hw":"h%d"},"metrics":{"bytes_out":%.0f,"bytes_in":%.0f,"msgs_sent":%.0f,"cpu_pct":%.1f,"mem_pct":%.1f}}`+"\n",
				d, ts.UnixMilli(), d%4, d%3, 10000+500*rnd.NormFloat64(), 2000+100*rnd.NormFloat64(), 50+2*rnd.NormFloat64(), 25+rnd.NormFloat64(), 40+rnd.NormFloat64())
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	cfg := crossShardConfig(4096)
	cfg.Inventory.GroupBy = []string{"site", "hw"}
	b.ResetTimer()
	for range b.N {
		p, err := pipeline.New(cfg, pipeline.Deps{Sink: discardSink{}, NoNetwork: true, Shards: runtime.GOMAXPROCS(0)})
		if err != nil {
			b.Fatal(err)
		}
		files, err := p.OpenFiles(cfg, []string{path}, nil, pipeline.FileOptions{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Run(context.Background(), files.Merged); err != nil {
			b.Fatal(err)
		}
		files.Close()
	}
	b.ReportMetric(float64(b.N*devices*reports)/b.Elapsed().Seconds(), "rows/s")
}
