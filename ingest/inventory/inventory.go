// Package inventory owns the asset inventory: a CSV or JSON file mapping
// device ids (and optionally IP and MAC addresses) to attributes — site,
// hardware, firmware, owner, criticality, patchable and any extra column —
// and the group keys derived from them.
//
// An Inventory answers ingest.AssetLookup and ingest.Grouper from an
// immutable snapshot swapped atomically, so readers never lock against a
// reload, and it reloads on SIGHUP or when the file changes. A reload that
// fails keeps the previous snapshot and logs why.
//
// Precedence: for every group_by attribute the inventory's value wins and
// telemetry attributes only fill gaps (devices missing from the inventory,
// or empty cells). The inventory is curated by the operator; telemetry
// attributes are written by the device, and a compromised device must not
// be able to move itself into another peer group to hide. Values missing
// from both count as "unknown".
package inventory

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vigil-ot/vigil/ingest"
)

// Unknown is the group key part used when no source knows an attribute.
const Unknown = "unknown"

// maxGroupValue bounds one attribute value inside a group key, since
// telemetry attributes are device-controlled.
const maxGroupValue = 64

// maxInternedGroups bounds the table of group keys derived from telemetry;
// past it keys are still correct but allocated per call.
const maxInternedGroups = 1 << 16

// Inventory is the loaded asset inventory. It is safe for concurrent use.
type Inventory struct {
	path     string
	format   string
	groupBy  []string
	interval time.Duration
	// drillPrefix starts the names of drill devices; see SetDrillDevicePrefix.
	drillPrefix string
	log         *slog.Logger

	snap atomic.Pointer[snapshot]
	// gen counts the snapshots stored after the first; see GroupGeneration.
	gen atomic.Uint64

	groups groupTable // interned group keys built from telemetry attributes

	reloads, reloadErrors atomic.Uint64

	// loadMu serializes loads; tried* describe the file as last read, good
	// or bad, so a broken file is reported once, not at every poll.
	loadMu    sync.Mutex
	triedMod  time.Time
	triedSize int64
}

// snapshot is one loaded version of the file; it is never modified.
type snapshot struct {
	byDevice map[string]*entry
	byIP     map[netip.Addr]*entry
	byMAC    map[[6]byte]*entry
}

type entry struct {
	asset ingest.Asset
	// groupVals[i] is the inventory's value of groupBy[i], "" when absent.
	groupVals []string
	// group is the whole key when the inventory knows every group_by
	// attribute, so the common case needs no telemetry attributes at all.
	group string
}

// Open returns the inventory described by cfg, loading cfg.Path when set.
// With an empty path it holds no assets and groups devices by telemetry
// attributes alone. logger may be nil for slog.Default.
func Open(cfg ingest.InventoryConfig, logger *slog.Logger) (*Inventory, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot open inventory: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	inv := &Inventory{
		path:     cfg.Path,
		format:   cfg.Format,
		groupBy:  append([]string(nil), cfg.GroupBy...),
		interval: cfg.ReloadInterval,
		log:      logger,
	}
	inv.snap.Store(inv.newSnapshot(nil))
	if inv.path == "" {
		return inv, nil
	}
	if err := inv.load(); err != nil {
		return nil, err
	}
	return inv, nil
}

// Reload reads the file again and swaps in its contents. On error the
// previous inventory stays in force and the error says what to fix.
func (inv *Inventory) Reload() error {
	if inv.path == "" {
		return nil
	}
	if err := inv.load(); err != nil {
		inv.reloadErrors.Add(1)
		return err
	}
	inv.reloads.Add(1)
	return nil
}

func (inv *Inventory) load() error {
	inv.loadMu.Lock()
	defer inv.loadMu.Unlock()
	f, err := os.Open(inv.path)
	if err != nil {
		return fmt.Errorf("cannot open inventory: %w; check input.inventory.path", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("cannot stat inventory: %w", err)
	}
	inv.triedMod, inv.triedSize = st.ModTime(), st.Size()
	format := inv.format
	if format == "auto" {
		format = "csv"
		if strings.EqualFold(filepath.Ext(inv.path), ".json") {
			format = "json"
		}
	}
	var assets []record
	if format == "json" {
		assets, err = parseJSON(f)
	} else {
		assets, err = parseCSV(f)
	}
	if err != nil {
		return fmt.Errorf("cannot load inventory %s: %w", inv.path, err)
	}
	s, err := inv.index(assets)
	if err != nil {
		return fmt.Errorf("cannot load inventory %s: %w", inv.path, err)
	}
	inv.snap.Store(s)
	inv.gen.Add(1) // after Store: whoever sees the new count sees s
	inv.log.Info("inventory loaded", "path", inv.path, "devices", len(s.byDevice), "with_ip", len(s.byIP), "with_mac", len(s.byMAC))
	return nil
}

func (inv *Inventory) newSnapshot(n []record) *snapshot {
	return &snapshot{
		byDevice: make(map[string]*entry, len(n)),
		byIP:     make(map[netip.Addr]*entry),
		byMAC:    make(map[[6]byte]*entry),
	}
}

// index builds a snapshot and rejects ambiguous files: a device, IP or MAC
// listed twice would make lookups depend on row order.
func (inv *Inventory) index(recs []record) (*snapshot, error) {
	s := inv.newSnapshot(recs)
	lineOf := make(map[*entry]int, len(recs))
	for _, r := range recs {
		e := &entry{asset: r.asset, groupVals: make([]string, len(inv.groupBy))}
		if prev, dup := s.byDevice[r.asset.Device]; dup {
			return nil, fmt.Errorf("line %d: device %q is already listed on line %d; keep one row per device", r.line, r.asset.Device, lineOf[prev])
		}
		complete := true
		for i, k := range inv.groupBy {
			e.groupVals[i] = r.asset.Attrs[k]
			complete = complete && e.groupVals[i] != ""
		}
		if complete {
			e.group = string(joinGroup(nil, e.groupVals))
		}
		s.byDevice[r.asset.Device] = e
		lineOf[e] = r.line
		if r.ip.IsValid() {
			if prev, dup := s.byIP[r.ip]; dup {
				return nil, fmt.Errorf("line %d: IP %s of device %q is already used by %q on line %d; an address must name one device", r.line, r.ip, r.asset.Device, prev.asset.Device, lineOf[prev])
			}
			s.byIP[r.ip] = e
		}
		if r.hasMAC {
			if prev, dup := s.byMAC[r.mac]; dup {
				return nil, fmt.Errorf("line %d: MAC %s of device %q is already used by %q on line %d; a MAC must name one device", r.line, r.asset.MAC, r.asset.Device, prev.asset.Device, lineOf[prev])
			}
			s.byMAC[r.mac] = e
		}
	}
	return s, nil
}

// joinGroup appends the group key of vals to dst: values joined by "/",
// with "/" inside a value replaced so keys stay unambiguous, and long
// values cut.
func joinGroup(dst []byte, vals []string) []byte {
	for i, v := range vals {
		if i > 0 {
			dst = append(dst, '/')
		}
		dst = appendGroupValue(dst, v)
	}
	return dst
}

func appendGroupValue(dst []byte, v string) []byte {
	if v == "" {
		return append(dst, Unknown...)
	}
	if len(v) > maxGroupValue {
		v = v[:maxGroupValue]
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '/' {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

// Asset returns what the inventory knows of device. The returned Attrs map
// is shared and must not be modified.
func (inv *Inventory) Asset(device string) (ingest.Asset, bool) {
	if e := inv.snap.Load().byDevice[device]; e != nil {
		return e.asset, true
	}
	return ingest.Asset{}, false
}

// AssetByIP returns the asset listed with address ip, so network features
// can name devices instead of addresses.
func (inv *Inventory) AssetByIP(ip netip.Addr) (ingest.Asset, bool) {
	if e := inv.snap.Load().byIP[ip.Unmap()]; e != nil {
		return e.asset, true
	}
	return ingest.Asset{}, false
}

// AssetByMAC returns the asset listed with hardware address mac.
func (inv *Inventory) AssetByMAC(mac [6]byte) (ingest.Asset, bool) {
	if e := inv.snap.Load().byMAC[mac]; e != nil {
		return e.asset, true
	}
	return ingest.Asset{}, false
}

// Len returns the number of devices in the inventory.
func (inv *Inventory) Len() int { return len(inv.snap.Load().byDevice) }

// GroupBy returns the configured group_by attributes.
func (inv *Inventory) GroupBy() []string { return inv.groupBy }

// Reloads returns how many reloads succeeded and failed since Open.
func (inv *Inventory) Reloads() (ok, failed uint64) {
	return inv.reloads.Load(), inv.reloadErrors.Load()
}

// Group returns device's group key: for each group_by attribute the
// inventory's value, else the value in attrs, else "unknown", joined by
// "/". It does not allocate once a key has been seen, and the returned
// string is stable.
//
// A drill device (named with the drill device prefix) is in the drill
// group beside its real one, ingest.DrillGroupPrefix and its key, so it
// never enters a real group's baseline; a real group whose key would start
// with that prefix gets "drill_" instead of "drill/", so no real device is
// ever in a drill group.
func (inv *Inventory) Group(device string, attrs []ingest.Attr) string {
	drill := inv.drillPrefix != "" && strings.HasPrefix(device, inv.drillPrefix)
	e := inv.snap.Load().byDevice[device]
	if e != nil && e.group != "" && !drill && !strings.HasPrefix(e.group, ingest.DrillGroupPrefix) {
		return e.group
	}
	var arr [128]byte
	buf := arr[:0]
	if drill {
		buf = append(buf, ingest.DrillGroupPrefix...)
	}
	if e != nil && e.group != "" {
		buf = append(buf, e.group...)
	} else {
		for i, k := range inv.groupBy {
			if i > 0 {
				buf = append(buf, '/')
			}
			v := ""
			if e != nil {
				v = e.groupVals[i]
			}
			if v == "" {
				v = attrValue(attrs, k)
			}
			buf = appendGroupValue(buf, v)
		}
	}
	if !drill && strings.HasPrefix(string(buf), ingest.DrillGroupPrefix) {
		buf[len(ingest.DrillGroupPrefix)-1] = '_'
	}
	return inv.internGroup(buf)
}

// SetDrillDevicePrefix names drill devices by the start of their names
// (drill.device_prefix); call it before the inventory is used.
func (inv *Inventory) SetDrillDevicePrefix(prefix string) { inv.drillPrefix = prefix }

// GroupGeneration changes whenever a reload may have changed what Group
// returns. Group is otherwise a function of its arguments, so a caller that
// owns its cache (ingest.ObservationBuilder) may keep Group's answer per
// device and attributes while the generation stays the same, and skip the
// lookups and key building of every row.
func (inv *Inventory) GroupGeneration() uint64 { return inv.gen.Load() }

func attrValue(attrs []ingest.Attr, k string) string {
	for _, a := range attrs {
		if a.Key == k {
			return a.Value
		}
	}
	return ""
}

func (inv *Inventory) internGroup(key []byte) string { return inv.groups.intern(key) }

// groupTable interns group keys. Every row of a device missing from the
// inventory looks its key up here, from every partition worker at once, so
// hits read an immutable map through an atomic pointer without locking;
// new keys go to a locked map that is published once it has missed as
// often as it is long (the scheme of sync.Map, without its interface
// conversions, which would allocate per lookup).
type groupTable struct {
	read   atomic.Pointer[map[string]string]
	mu     sync.Mutex
	all    map[string]string // every key; read is a copy of it
	misses int
}

func (t *groupTable) intern(key []byte) string {
	if m := t.read.Load(); m != nil {
		if s, ok := (*m)[string(key)]; ok {
			return s
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.all[string(key)]
	if !ok {
		s = string(key)
		if len(t.all) < maxInternedGroups {
			if t.all == nil {
				t.all = make(map[string]string)
			}
			t.all[s] = s
		}
	}
	if t.misses++; t.misses >= len(t.all) {
		m := maps.Clone(t.all)
		t.read.Store(&m)
		t.misses = 0
	}
	return s
}

// Watch reloads the inventory on SIGHUP and, when reload_interval is set,
// whenever the file's modification time or size changes, until ctx ends.
// Failed reloads are logged and leave the previous inventory in force.
// Write the file atomically (write a temporary file, then rename) so a
// poll never sees it half written.
func (inv *Inventory) Watch(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	inv.watch(ctx, hup)
}

func (inv *Inventory) watch(ctx context.Context, hup <-chan os.Signal) {
	if inv.path == "" {
		<-ctx.Done()
		return
	}
	var tick <-chan time.Time
	if inv.interval > 0 {
		t := time.NewTicker(inv.interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			inv.reloadAndLog("SIGHUP")
		case <-tick:
			if inv.changed() {
				inv.reloadAndLog("file changed")
			}
		}
	}
}

func (inv *Inventory) changed() bool {
	st, err := os.Stat(inv.path)
	if err != nil {
		// Mid-rename or deleted: keep the loaded inventory and look again
		// at the next tick.
		return false
	}
	inv.loadMu.Lock()
	defer inv.loadMu.Unlock()
	return !st.ModTime().Equal(inv.triedMod) || st.Size() != inv.triedSize
}

func (inv *Inventory) reloadAndLog(why string) {
	if err := inv.Reload(); err != nil {
		inv.log.Error("inventory reload failed; keeping the previous inventory", "trigger", why, "err", err)
	}
}
