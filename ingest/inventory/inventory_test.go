package inventory

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-ot/vigil/ingest"
)

const dir = "../../testdata/inventory"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func open(t testing.TB, path string, mutate func(*ingest.InventoryConfig)) (*Inventory, error) {
	t.Helper()
	cfg := ingest.DefaultInventoryConfig()
	cfg.Path = path
	if mutate != nil {
		mutate(&cfg)
	}
	return Open(cfg, quiet)
}

func mustOpen(t testing.TB, path string, mutate func(*ingest.InventoryConfig)) *Inventory {
	t.Helper()
	inv, err := open(t, path, mutate)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func TestCSVLookups(t *testing.T) {
	inv := mustOpen(t, filepath.Join(dir, "fleet.csv"), nil)
	if inv.Len() != 5 {
		t.Fatalf("%d devices, want 5", inv.Len())
	}
	a, ok := inv.Asset("plc-17")
	want := ingest.Asset{Device: "plc-17", IP: "10.1.2.3", MAC: "00:1b:1b:0a:0b:0c",
		Attrs:       map[string]string{"site": "plant-a", "hw": "s7-1500", "fw": "2.9.4", "owner": "ot-team-a", "zone": "cell-3"},
		Criticality: ingest.CriticalitySafety}
	if !ok || !reflect.DeepEqual(a, want) {
		t.Fatalf("plc-17: %+v", a)
	}
	if a, ok := inv.AssetByIP(netip.MustParseAddr("10.1.0.1")); !ok || a.Device != "gw-a-01" || !a.Patchable || a.Criticality != ingest.CriticalityMedium {
		t.Fatalf("by IP: %+v %v", a, ok)
	}
	// IPv4-mapped IPv6, as packet decoders may produce, finds the same asset.
	if a, ok := inv.AssetByIP(netip.MustParseAddr("::ffff:10.1.2.4")); !ok || a.Device != "plc-18" {
		t.Fatalf("by mapped IP: %+v %v", a, ok)
	}
	if a, ok := inv.AssetByMAC([6]byte{0xb8, 0x27, 0xeb, 0, 0, 7}); !ok || a.Device != "hmi-b-07" || !a.Patchable {
		t.Fatalf("by MAC: %+v %v", a, ok)
	}
	if _, ok := inv.Asset("nobody"); ok {
		t.Fatal("unknown device found")
	}
	if _, ok := inv.AssetByIP(netip.MustParseAddr("10.9.9.9")); ok {
		t.Fatal("unknown IP found")
	}
}

func TestJSONMatchesCSV(t *testing.T) {
	c := mustOpen(t, filepath.Join(dir, "fleet.csv"), nil)
	j := mustOpen(t, filepath.Join(dir, "fleet.json"), nil)
	for _, dev := range []string{"plc-17", "plc-18", "gw-a-01", "hmi-b-07", "meter-0042"} {
		ca, _ := c.Asset(dev)
		ja, ok := j.Asset(dev)
		if !ok || !reflect.DeepEqual(ca, ja) {
			t.Errorf("%s: csv %+v json %+v", dev, ca, ja)
		}
	}
}

func TestBadFiles(t *testing.T) {
	want := map[string]string{
		"criticality.csv":      `line 3: unknown criticality "urgent"; use low, medium, high or safety-critical`,
		"no_device.csv":        "line 3: no device id",
		"no_device_column.csv": `line 1: no "device" column`,
		"ip.csv":               `line 3: ip "10.0.0.300" is not an IP address`,
		"mac.csv":              `line 2: mac "00:11:22:33:44" is not a 6-byte MAC address`,
		"duplicate_device.csv": `line 4: device "plc-1" is already listed on line 2`,
		"duplicate_ip.csv":     `line 3: IP 10.0.0.1 of device "plc-2" is already used by "plc-1" on line 2`,
		"field_count.csv":      "line 3: wrong number of fields",
		"patchable.csv":        `line 2: patchable "maybe"`,
		"criticality.json":     `line 3: unknown criticality "urgent"`,
		"not_array.json":       "line 1: the JSON inventory must be an array",
		"nested.json":          `line 2: "site" is a JSON array or object; use a string`,
		"truncated.json":       "line 3:",
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "bad", "*"))
	if len(paths) != len(want) {
		t.Fatalf("%d bad files, %d expectations", len(paths), len(want))
	}
	for _, p := range paths {
		_, err := open(t, p, nil)
		if err == nil {
			t.Errorf("%s: loaded", p)
			continue
		}
		if w := want[filepath.Base(p)]; !strings.Contains(err.Error(), w) {
			t.Errorf("%s:\n got  %v\n want %s", filepath.Base(p), err, w)
		}
	}
}

func TestGroupPrecedence(t *testing.T) {
	inv := mustOpen(t, filepath.Join(dir, "fleet.csv"), nil) // group_by [site, hw]
	tele := []ingest.Attr{{Key: "site", Value: "elsewhere"}, {Key: "hw", Value: "x9"}}
	cases := []struct {
		device string
		attrs  []ingest.Attr
		want   string
	}{
		{"plc-17", tele, "plant-a/s7-1500"},                                    // inventory wins over telemetry
		{"hmi-b-07", tele, "plant-b/x9"},                                       // telemetry fills the empty hw cell
		{"hmi-b-07", nil, "plant-b/unknown"},                                   // nobody knows hw
		{"new-dev", tele, "elsewhere/x9"},                                      // not in the inventory
		{"new-dev", nil, "unknown/unknown"},                                    // nothing at all
		{"new-dev", []ingest.Attr{{Key: "site", Value: "a/b"}}, "a_b/unknown"}, // "/" cannot forge a level
	}
	for _, c := range cases {
		if got := inv.Group(c.device, c.attrs); got != c.want {
			t.Errorf("Group(%s, %v) = %q, want %q", c.device, c.attrs, got, c.want)
		}
	}
	empty := mustOpen(t, "", func(c *ingest.InventoryConfig) { c.GroupBy = []string{"site"} })
	if got := empty.Group("plc-17", tele); got != "elsewhere" {
		t.Errorf("no inventory: %q", got)
	}
}

func TestGroupDoesNotAllocate(t *testing.T) {
	inv := mustOpen(t, filepath.Join(dir, "fleet.csv"), nil)
	tele := []ingest.Attr{{Key: "site", Value: "plant-z"}, {Key: "hw", Value: "x9"}}
	inv.Group("new-dev", tele)
	if n := testing.AllocsPerRun(100, func() {
		inv.Group("plc-17", nil)
		inv.Group("hmi-b-07", tele)
		inv.Group("new-dev", tele)
	}); n != 0 {
		t.Fatalf("%v allocations per run", n)
	}
}

// writeAtomic replaces path the way the Watch documentation asks.
func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestReloadOnChange(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	path := filepath.Join(t.TempDir(), "inv.csv")
	writeAtomic(t, path, "device,site,hw,criticality\nplc-1,plant-a,s7,low\n")
	inv := mustOpen(t, path, func(c *ingest.InventoryConfig) { c.ReloadInterval = 100 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	hup := make(chan os.Signal, 1)
	go func() { defer wg.Done(); inv.watch(ctx, hup) }()
	defer func() { cancel(); wg.Wait() }()

	// A changed file is picked up without a restart.
	writeAtomic(t, path, "device,site,hw,criticality\nplc-1,plant-b,s7,high\nplc-2,plant-b,s7,low\n")
	waitFor(t, "reload after change", func() bool { return inv.Len() == 2 })
	if a, _ := inv.Asset("plc-1"); a.Criticality != ingest.CriticalityHigh || inv.Group("plc-1", nil) != "plant-b/s7" {
		t.Fatalf("after reload: %+v", a)
	}

	// A broken file keeps the previous inventory and counts the failure once.
	writeAtomic(t, path, "device,site,hw,criticality\nplc-1,plant-c,s7,urgent\n")
	waitFor(t, "failed reload", func() bool { _, failed := inv.Reloads(); return failed == 1 })
	time.Sleep(300 * time.Millisecond)
	if _, failed := inv.Reloads(); failed != 1 {
		t.Fatalf("%d failures: a broken file must be reported once, not at every poll", failed)
	}
	if inv.Len() != 2 || inv.Group("plc-1", nil) != "plant-b/s7" {
		t.Fatal("broken file replaced the inventory")
	}

	// SIGHUP reloads even when the poll would not notice.
	writeAtomic(t, path, "device,site,hw\nplc-9,plant-d,s7\n")
	hup <- syscall.SIGHUP
	waitFor(t, "reload on SIGHUP", func() bool { _, ok := inv.Asset("plc-9"); return ok })
}

// TestWatchSIGHUP sends a real SIGHUP to the test process.
func TestWatchSIGHUP(t *testing.T) {
	// Our own subscription keeps the default action (exit) away before Watch
	// has subscribed and after it has stopped. It is never stopped: a SIGHUP
	// sent by the last poll below may still be in flight when the test
	// returns, and without a subscriber it would kill the test binary.
	guard := make(chan os.Signal, 1)
	signal.Notify(guard, syscall.SIGHUP)

	path := filepath.Join(t.TempDir(), "inv.json")
	writeAtomic(t, path, `[{"device":"a"}]`)
	inv := mustOpen(t, path, func(c *ingest.InventoryConfig) { c.ReloadInterval = 0 })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); inv.Watch(ctx) }()
	defer func() { cancel(); <-done }()

	writeAtomic(t, path, `[{"device":"a"},{"device":"b"}]`)
	waitFor(t, "reload on SIGHUP", func() bool {
		_ = syscall.Kill(os.Getpid(), syscall.SIGHUP)
		return inv.Len() == 2
	})
}

// addSeedFiles adds every testdata file matching the patterns to f's corpus.
func addSeedFiles(f *testing.F, patterns ...string) {
	for _, g := range patterns {
		paths, _ := filepath.Glob(filepath.Join(dir, g))
		for _, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
}

func FuzzInventoryCSV(f *testing.F) {
	addSeedFiles(f, "*.csv", "bad/*.csv")
	inv := &Inventory{groupBy: []string{"site", "hw"}, log: quiet}
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := parseCSV(strings.NewReader(string(data)))
		if err == nil {
			var s *snapshot
			s, err = inv.index(recs)
			if err == nil {
				inv.snap.Store(s)
				for dev, e := range s.byDevice {
					if dev == "" || e.asset.Device != dev {
						t.Fatalf("bad entry %q %+v", dev, e.asset)
					}
					if g := inv.Group(dev, nil); g == "" {
						t.Fatal("empty group")
					}
				}
				return
			}
		}
		if !strings.Contains(err.Error(), "line ") && !strings.Contains(err.Error(), "cannot read") {
			t.Fatalf("error without a line: %v", err)
		}
	})
}

func FuzzInventoryJSON(f *testing.F) {
	addSeedFiles(f, "*.json", "bad/*.json")
	inv := &Inventory{groupBy: []string{"site", "hw"}, log: quiet}
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := parseJSON(strings.NewReader(string(data)))
		if err == nil {
			if _, err = inv.index(recs); err == nil {
				return
			}
		}
		if !strings.Contains(err.Error(), "line ") {
			t.Fatalf("error without a line: %v", err)
		}
	})
}

// TestGroupConcurrent: partition workers share one inventory; every worker
// must get the same key for the same attributes while keys are being added.
func TestGroupConcurrent(t *testing.T) {
	inv := mustOpen(t, "", nil)
	var wg sync.WaitGroup
	results := make([][]string, 4)
	for w := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				site := "s" + string(rune('a'+i%26)) + string(rune('a'+i/26))
				results[w] = append(results[w], inv.Group("d", []ingest.Attr{{Key: "site", Value: site}, {Key: "hw", Value: "h"}}))
			}
		}()
	}
	wg.Wait()
	for w := 1; w < len(results); w++ {
		if !reflect.DeepEqual(results[w], results[0]) {
			t.Fatalf("worker %d saw different keys", w)
		}
	}
	if results[0][27] != "sbb/h" {
		t.Fatalf("key %q", results[0][27])
	}
}

// TestBuilderGroupCacheFollowsReloadAndAttrs checks that the observation
// builder, which keeps each device's group while GroupGeneration and the
// row's attributes stay the same, still sees a reload and changed attrs.
func TestBuilderGroupCacheFollowsReloadAndAttrs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inv.csv")
	writeAtomic(t, path, "device,site,hw\nplc-1,plant-a,s7\n")
	inv := mustOpen(t, path, nil)
	b := ingest.NewObservationBuilder(nil, ingest.NewRegistry(), inv)
	attrs := func(site string) []ingest.Attr {
		return []ingest.Attr{{Key: "site", Value: site}, {Key: "hw", Value: "rpi"}}
	}
	rows := []struct {
		device, site string
		reload       string // inventory content to load before the row
		want         string
	}{
		{"plc-1", "x", "", "plant-a/s7"},
		{"plc-1", "x", "", "plant-a/s7"},
		{"plc-2", "x", "", "x/rpi"},
		{"plc-2", "x", "", "x/rpi"},
		{"plc-2", "y", "", "y/rpi"},
		{"plc-1", "x", "device,site,hw\nplc-1,plant-b,s7\nplc-2,plant-c,\n", "plant-b/s7"},
		{"plc-2", "y", "", "plant-c/rpi"},
		{"plc-2", "y", "", "plant-c/rpi"},
	}
	for _, r := range rows {
		if r.reload != "" {
			writeAtomic(t, path, r.reload)
			if err := inv.Reload(); err != nil {
				t.Fatal(err)
			}
		}
		b.Append(&ingest.Row{Device: r.device, Attrs: attrs(r.site), Metrics: []ingest.Metric{{Name: "m", Value: 1}}})
	}
	rec, _ := b.NewRecord()
	defer rec.Release()
	col := rec.Column(3).(interface{ Value(int) string })
	for i, r := range rows {
		if got := col.Value(i); got != r.want {
			t.Errorf("row %d (%s, site %s): group %q, want %q", i, r.device, r.site, got, r.want)
		}
	}
}

// TestDrillGroups: a drill device is in a drill group beside its real one
// whatever its attributes or inventory row say, and no real device is ever
// in a drill group, even one whose site is "drill".
func TestDrillGroups(t *testing.T) {
	inv := mustOpen(t, filepath.Join(dir, "fleet.csv"), nil)
	inv.SetDrillDevicePrefix("vigil-drill-")
	attrs := []ingest.Attr{{Key: "site", Value: "plant-a"}, {Key: "hw", Value: "s7-1500"}}
	for _, tc := range []struct {
		device string
		attrs  []ingest.Attr
		want   string
	}{
		{"plc-17", nil, "plant-a/s7-1500"}, // from the inventory
		{"plc-new", attrs, "plant-a/s7-1500"},
		{"vigil-drill-1-0", attrs, "drill/plant-a/s7-1500"},
		{"vigil-drill-1-0", nil, "drill/unknown/unknown"},
		{"plc-new", []ingest.Attr{{Key: "site", Value: "drill"}, {Key: "hw", Value: "x"}}, "drill_x"},
		{"vigil-drill-1-0", []ingest.Attr{{Key: "site", Value: "drill"}, {Key: "hw", Value: "x"}}, "drill/drill/x"},
	} {
		if got := inv.Group(tc.device, tc.attrs); got != tc.want {
			t.Errorf("Group(%s, %v) = %q, want %q", tc.device, tc.attrs, got, tc.want)
		}
	}
}
