package inventory

import (
	"path/filepath"
	"testing"

	"github.com/vigil-ot/vigil/ingest"
)

// BenchmarkGroup measures the per-row group lookup for a device known to
// the inventory and for one grouped by its telemetry attributes.
func BenchmarkGroup(b *testing.B) {
	inv := mustOpen(b, filepath.Join(dir, "fleet.csv"), nil)
	tele := []ingest.Attr{{Key: "site", Value: "plant-z"}, {Key: "hw", Value: "x9"}}
	b.Run("inventory", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			inv.Group("plc-17", tele)
		}
	})
	b.Run("telemetry", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			inv.Group("new-dev", tele)
		}
	})
}
