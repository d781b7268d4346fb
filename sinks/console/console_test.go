package console

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/detect/query"
	"github.com/vigil-ot/vigil/ingest"
)

// assetMap is an inventory in memory.
type assetMap map[string]ingest.Asset

func (m assetMap) Asset(device string) (ingest.Asset, bool) {
	a, ok := m[device]
	return a, ok
}

// memSink is a real detect.Sink that keeps what it accepts.
type memSink struct {
	out    detect.Output
	writes int
}

func (s *memSink) Write(_ context.Context, o *detect.Output) error {
	s.writes++
	s.out.Alerts = append(s.out.Alerts, o.Alerts...)
	s.out.Quarantine = append(s.out.Quarantine, o.Quarantine...)
	return nil
}

func (s *memSink) Close() error { return nil }

var epoch = time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)

// testFleet publishes n devices: sites a/b/c, firmware 2.9.x or 2.10.0,
// every seventh device reporting an hour late, every fifth in alarm.
func testFleet(n int) (*Console, assetMap) {
	assets := assetMap{}
	c := New(Options{Config: Config{RecentValues: 8}})
	c.assets = assets
	u := &detect.StatusUpdate{Recent: detect.NewRecentValues(8, 0)}
	for i := range n {
		name := fmt.Sprintf("plc-%05d", i)
		site := []string{"plant-a", "plant-b", "plant-c"}[i%3]
		fw := []string{"2.9.3", "2.9.4", "2.10.0"}[i%3]
		assets[name] = ingest.Asset{Device: name, Attrs: map[string]string{"site": site, "hw": "s7-1500", "owner": "ops " + site},
			Criticality: ingest.Criticality(1 + i%4), Patchable: i%2 == 0}
		last := epoch.Add(-time.Duration(i%3) * time.Minute)
		if i%7 == 0 {
			last = epoch.Add(-time.Hour)
		}
		st := detect.DeviceStatus{ID: int32(i), Device: name, Group: site + "/s7-1500", LastSeen: last, Interval: time.Minute,
			Firmware: fw, SourceIPs: []string{fmt.Sprintf("10.%d.0.%d", i%3, i%250)}}
		if i%4 != 0 { // a certificate of its own, or its neighbour's (a copied identity)
			st.Cert = fmt.Sprintf("CN=%s,O=Plant", name)
			if i%13 == 1 {
				st.Cert = fmt.Sprintf("CN=plc-%05d,O=Plant", i-1)
			}
		}
		if i%3 != 0 { // MQTT client ids: its name, and another in upper case
			st.ClientIDs = []string{name}
			if i%6 == 1 {
				st.ClientIDs = append(st.ClientIDs, strings.ToUpper(name)+"-B")
			}
		}
		if i%5 == 0 {
			st.Alarms = 1
		}
		u.Devices = append(u.Devices, st)
		u.Recent.Add(int32(i), "cpu", detect.RecentValue{Time: last.UnixNano(), Value: float32(i), Expected: 10, Lower: 5, Upper: 15}, 100, false, false)
	}
	c.PublishStatus(u)
	c.readLock() // applied
	c.mu.RUnlock()
	return c, assets
}

// names returns the devices of a search, all pages.
func searchAll(t *testing.T, c *Console, q, sort string, limit int) []string {
	t.Helper()
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		res, err := c.Search(SearchRequest{Query: q, Sort: sort, Limit: limit, Cursor: cursor})
		if err != nil {
			t.Fatalf("%q: %v", q, err)
		}
		for _, d := range res.Devices {
			got = append(got, d.Device)
		}
		if res.Next == "" {
			if res.Total != len(got) {
				t.Fatalf("%q: total %d, pages held %d", q, res.Total, len(got))
			}
			return got
		}
		if pages > 1000 {
			t.Fatal("paging does not end")
		}
		cursor = res.Next
	}
}

func TestSearch(t *testing.T) {
	c, _ := testFleet(300)
	for _, tc := range []struct {
		q    string
		want func(i int) bool
	}{
		{"", func(i int) bool { return true }},
		{"site:plant-a", func(i int) bool { return i%3 == 0 }},
		{"fw<2.9.4", func(i int) bool { return i%3 == 0 }},
		{"fw>=2.9.4 AND NOT site:plant-b", func(i int) bool { return i%3 == 2 }},
		{"fw:2.9.*", func(i int) bool { return i%3 != 2 }},
		{"status:alarm", func(i int) bool { return i%5 == 0 }},
		{"status:normal OR device:plc-0000?", func(i int) bool { return i%5 != 0 || i < 10 }},
		{"last_seen<-30m", func(i int) bool { return i%7 == 0 }},
		{"connected:false", func(i int) bool { return i%7 == 0 }},
		{"ip:10.1.*", func(i int) bool { return i%3 == 1 }},
		{`owner:"OPS plant-c"`, func(i int) bool { return i%3 == 2 }},
		{"criticality:safety-critical", func(i int) bool { return i%4 == 3 }},
		{"patchable:true (site:plant-a OR site:plant-b)", func(i int) bool { return i%2 == 0 && i%3 != 2 }},
		{"alarms>0", func(i int) bool { return i%5 == 0 }},
	} {
		var want []string
		for i := range 300 {
			if tc.want(i) {
				want = append(want, fmt.Sprintf("plc-%05d", i))
			}
		}
		if got := searchAll(t, c, tc.q, "", 7); !slices.Equal(got, want) {
			t.Errorf("%q: got %d devices %v, want %d %v", tc.q, len(got), head(got), len(want), head(want))
		}
	}
}

func head(s []string) []string { return s[:min(len(s), 5)] }

// TestSearchSortAndPages: every order pages through every device once,
// in order.
func TestSearchSortAndPages(t *testing.T) {
	c, _ := testFleet(100)
	for _, sort := range []string{"device", "-device", "last_seen", "-last_seen", "status", "-status", "group", "-alarms"} {
		got := searchAll(t, c, "", sort, 9)
		if len(got) != 100 {
			t.Fatalf("sort %s: %d devices, want 100", sort, len(got))
		}
		all, err := c.Search(SearchRequest{Sort: sort, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var one []string
		for _, d := range all.Devices {
			one = append(one, d.Device)
		}
		if !slices.Equal(got, one) {
			t.Fatalf("sort %s: pages of 9 differ from one page:\n%v\n%v", sort, got, one)
		}
	}
	res, _ := c.Search(SearchRequest{Sort: "-status", Limit: 1})
	if res.Devices[0].Status != StatusAlarm {
		t.Fatalf("-status does not put alarms first: %+v", res.Devices[0])
	}
	res, _ = c.Search(SearchRequest{Sort: "last_seen", Limit: 1})
	if !res.Devices[0].LastSeen.Equal(epoch.Add(-time.Hour)) {
		t.Fatalf("last_seen ascending starts at %v", res.Devices[0].LastSeen)
	}
}

func TestSearchErrors(t *testing.T) {
	c, _ := testFleet(10)
	for _, tc := range []struct {
		req  SearchRequest
		pos  int
		text string
	}{
		{SearchRequest{Query: "fw<"}, 3, "expected a value"},
		{SearchRequest{Query: "site:a AND sitee:b"}, 11, "unknown field 'sitee'"},
		{SearchRequest{Query: "fw<banana"}, 3, "not a version"},
		{SearchRequest{Sort: "colour"}, -1, "cannot sort by"},
		{SearchRequest{Limit: 5000}, -1, "out of range"},
		{SearchRequest{Cursor: "x"}, -1, "cursor"},
	} {
		_, err := c.Search(tc.req)
		var qe *QueryError
		if !errors.As(err, &qe) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%+v: error %v, want a QueryError with %q", tc.req, err, tc.text)
			continue
		}
		var pe *query.Error
		if tc.pos >= 0 && (!errors.As(err, &pe) || pe.Pos != tc.pos) {
			t.Errorf("%+v: %v, want position %d", tc.req, err, tc.pos)
		}
	}
}

// deviceRecord is the slow reference of the index: a device's fields as a
// query.Record, matched by query.Match.
type deviceRecord map[string][]string

func (r deviceRecord) Get(f string) ([]string, bool) { v, ok := r[f]; return v, ok && len(v) > 0 }

// TestSearchAgreesWithMatch: the index answers every query as
// query.Match does on the devices' fields.
func TestSearchAgreesWithMatch(t *testing.T) {
	c, _ := testFleet(120)
	ref := referenceRecords(c)
	for _, q := range []string{
		"site:plant-a", "NOT fw:2.10.0", "fw<=2.9.4 OR status:alarm", "device:*1?", "ip:*", "NOT ip:10.2.*",
		"(site:plant-b OR site:plant-c) NOT (status:alarm AND patchable:false)", "last_seen>=-2m", "alarms<1",
		"owner:ops*", "owner:OPS?PLANT-a", "device:PLC-0001*", "device:plc-\\*", "criticality>low", "hw:s7-1500 fw>2.9",
		"score:*", "NOT score:*", "learning:false",
		"device:plc-00012", "device:PLC-00012", "device>plc-00100", "cert:cn=plc-00012,o=plant", "cert:CN=plc-0001*", "NOT cert:*",
		"client_id:plc-00013-b", "client_id:*-B", "NOT client_id:*", "client_id:plc-0000? AND cert:*",
	} {
		if msg := agree(c, ref, q); msg != "" {
			t.Error(msg)
		}
	}
}

// FuzzSearchAgreesWithMatch: for any query that parses, the index and
// query.Match pick the same devices.
func FuzzSearchAgreesWithMatch(f *testing.F) {
	for _, q := range []string{"site:plant-a", "fw<2.9.4 OR NOT ip:10.1.*", "device:plc-0001? last_seen<-5m", "(alarms>0 OR connected:false) NOT owner:*c",
		"cert:cn=plc-00012*", "client_id:PLC-00001-b"} {
		f.Add(q)
	}
	c, _ := testFleet(40)
	ref := referenceRecords(c)
	f.Fuzz(func(t *testing.T, q string) {
		if msg := agree(c, ref, q); msg != "" {
			t.Fatal(msg)
		}
	})
}

// referenceRecords returns every device's fields as a query.Record, from
// the console's own API, in the order of the device names.
func referenceRecords(c *Console) []deviceRecord {
	res, _ := c.Search(SearchRequest{Limit: 1000})
	var out []deviceRecord
	for _, d := range res.Devices {
		rec := deviceRecord{"device": {d.Device}, "group": {d.Group}, "status": {d.Status}, "learning": {fmt.Sprint(d.Learning)},
			"last_seen": {d.LastSeen.Format(time.RFC3339Nano)}, "alarms": {fmt.Sprint(d.Alarms)}, "detector": d.Detectors,
			"connected": {fmt.Sprint(d.Connected)}}
		story, _ := c.Device(d.Device)
		rec["ip"], rec["client_id"] = story.Identity.SourceIPs, story.Identity.ClientIDs
		if story.Identity.Cert != "" {
			rec["cert"] = []string{story.Identity.Cert}
		}
		for k, v := range d.Attrs {
			rec[k] = []string{v}
		}
		out = append(out, rec)
	}
	return out
}

// agree runs q through the index and through query.Match, and says how
// they differ ("" when they agree or q does not parse).
func agree(c *Console, ref []deviceRecord, q string) string {
	res, err := c.Search(SearchRequest{Query: q, Limit: 1000})
	if err != nil {
		return ""
	}
	parsed, err := query.Parse(q, query.WithNow(res.Now), query.WithSchema(c.idx.kind))
	if err != nil {
		return fmt.Sprintf("%q: the index parsed it, Parse says %v", q, err)
	}
	var want, got []string
	for _, rec := range ref {
		if parsed.Match(rec) {
			want = append(want, rec["device"][0])
		}
	}
	for _, d := range res.Devices {
		got = append(got, d.Device)
	}
	if !slices.Equal(got, want) {
		return fmt.Sprintf("%q: index %d devices %v, Match %d %v", q, len(got), head(got), len(want), head(want))
	}
	return ""
}

func TestDeviceStory(t *testing.T) {
	c, assets := testFleet(3)
	sink := &memSink{}
	tee := c.Attach(sink, assets)
	alarm := detect.Alert{ID: "a1", EventTime: epoch, State: detect.StateAlarm, Device: "plc-00001", Detector: detect.DetectorSelf,
		Behavior: "cpu", Severity: 7, Score: 9, Observed: 40, Expected: 10, Lower: 5, Upper: 15}
	if err := tee.Write(t.Context(), &detect.Output{Alerts: []detect.Alert{alarm}}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 { // more than the ring holds
		c.devices[1].recent.Add(1, "cpu", detect.RecentValue{Time: epoch.Add(time.Duration(i) * time.Minute).UnixNano(),
			Value: float32(i), Expected: float32(math.NaN()), Lower: float32(math.NaN()), Upper: float32(math.NaN())}, 100, false, false)
	}
	s, ok := c.Device("plc-00001")
	if !ok {
		t.Fatal("no device")
	}
	if s.Status != StatusAlarm || len(s.OpenAlarms) != 1 || len(s.Alerts) != 1 || s.Severity != 7 || !slices.Equal(s.Detectors, []string{"self"}) {
		t.Fatalf("story: %+v", s.DeviceRow)
	}
	m := s.Metrics[0]
	if len(m.Points) != 8 || *m.Points[0][1] != 12 || *m.Points[7][1] != 19 || m.Points[7][2] != nil || m.Expected != nil {
		t.Fatalf("the ring holds the last 8 values, without a band: %v", m.Points)
	}
	if got := fmt.Sprint(s.Attributes); !strings.Contains(got, "{fw 2.9.4 report}") || !strings.Contains(got, "{site plant-b inventory}") ||
		!slices.IsSortedFunc(s.Attributes, func(a, b Attribute) int { return strings.Compare(a.Key, b.Key) }) {
		t.Fatalf("attributes, by key: %s", got)
	}
	cleared := alarm
	cleared.State, cleared.ID = detect.StateCleared, "a2"
	tee.Write(t.Context(), &detect.Output{Alerts: []detect.Alert{cleared}})
	if s, _ := c.Device("plc-00001"); s.Status != StatusNormal || len(s.OpenAlarms) != 0 || len(s.Alerts) != 2 {
		t.Fatalf("after the clear: %+v", s.DeviceRow)
	}
	if len(sink.out.Alerts) != 2 {
		t.Fatalf("the tee did not pass the alerts on: %d", len(sink.out.Alerts))
	}
}

// TestDecisions: approving a recommendation sends a quarantine event that
// says who decided and when, and the device shows quarantined until an
// operator releases it; a decision applies once.
func TestDecisions(t *testing.T) {
	c, assets := testFleet(3)
	sink := &memSink{}
	tee := c.Attach(sink, assets)
	now := time.Date(2026, 12, 6, 14, 0, 0, 0, time.UTC)
	c.opts.Clock = func() time.Time { return now }
	rec := detect.QuarantineEvent{ID: "rec1", Time: epoch, Action: detect.ActionRecommend, Mode: detect.ModeApprovalRequired,
		Device: "plc-00002", Group: "plant-c/s7-1500", TargetGroup: "quarantine-plant-c", Reasons: []string{"a1"}, Severity: 8}
	tee.Write(t.Context(), &detect.Output{Quarantine: []detect.QuarantineEvent{rec}})
	c.PublishStatus(&detect.StatusUpdate{Devices: []detect.DeviceStatus{{ID: 2, Device: "plc-00002", Group: "plant-c/s7-1500",
		LastSeen: epoch, Alarms: 1, Quarantine: detect.ActionRecommend, QuarantineID: "rec1"}}})
	if got := searchAll(t, c, "status:recommended", "", 10); !slices.Equal(got, []string{"plc-00002"}) {
		t.Fatalf("recommended: %v", got)
	}
	if _, err := c.Decide(t.Context(), "rec1", ActionRelease, "alice"); !errors.Is(err, ErrConflict) {
		t.Fatalf("release of a recommendation: %v", err)
	}
	ev, err := c.Decide(t.Context(), "rec1", ActionApprove, "alice")
	if err != nil {
		t.Fatal(err)
	}
	sent := sink.out.Quarantine[len(sink.out.Quarantine)-1]
	if sent.ID != ev.ID || sent.Action != detect.ActionQuarantine || sent.Mode != detect.ModeApprovalRequired || !sent.Time.Equal(now) ||
		!strings.Contains(sent.Message, "approved by alice at 2026-12-06T14:00:00Z") || sent.TargetGroup != "quarantine-plant-c" ||
		!slices.Equal(sent.Reasons, []string{"rec1", "a1"}) {
		t.Fatalf("event sent: %+v", sent)
	}
	if _, err := c.Decide(t.Context(), "rec1", ActionReject, "bob"); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "alice decided approve") {
		t.Fatalf("a second decision: %v", err)
	}
	if got := searchAll(t, c, "status:quarantined", "", 10); !slices.Equal(got, []string{"plc-00002"}) {
		t.Fatalf("quarantined: %v", got)
	}
	// the engine's recommendation ends when the alarm clears; the operator's
	// quarantine stays until released
	c.PublishStatus(&detect.StatusUpdate{Devices: []detect.DeviceStatus{{ID: 2, Device: "plc-00002", Group: "plant-c/s7-1500", LastSeen: epoch}}})
	if got := searchAll(t, c, "status:quarantined", "", 10); len(got) != 1 {
		t.Fatalf("an approved quarantine ended by itself: %v", got)
	}
	if _, err := c.Decide(t.Context(), ev.ID, ActionRelease, "bob"); err != nil {
		t.Fatal(err)
	}
	rel := sink.out.Quarantine[len(sink.out.Quarantine)-1]
	if rel.Action != detect.ActionRelease || !strings.Contains(rel.Message, "released by bob") {
		t.Fatalf("release event %+v", rel)
	}
	if got := searchAll(t, c, "status:normal", "", 10); !slices.Contains(got, "plc-00002") {
		t.Fatalf("after the release: %v", got)
	}
	if _, err := c.Decide(t.Context(), "nope", ActionApprove, "alice"); !errors.Is(err, ErrNoEvent) {
		t.Fatalf("unknown event: %v", err)
	}
}

// FuzzGlobPrefix: the prefix shortcut never rules out a value the glob
// matches.
func FuzzGlobPrefix(f *testing.F) {
	f.Add("plc-0*", "PLC-0012")
	f.Add("k*", "\u212a-1")
	f.Add(`a\*b*`, "a*bc")
	f.Add("ops?x", "OPS x")
	f.Fuzz(func(t *testing.T, pattern, v string) {
		q, err := query.Parse("f:" + strings.ReplaceAll(pattern, `"`, ""))
		if err != nil {
			return
		}
		term, ok := q.Root().(*query.Term)
		if !ok || term.Op != query.OpMatch {
			return
		}
		if term.MatchValue(v) && !prefixMayMatch(v, literalPrefix(term.Value)) {
			t.Fatalf("%q matches %q but its prefix %q rules it out", v, term.Value, literalPrefix(term.Value))
		}
	})
}

// TestDeviceIDReused: when the engine evicts a device and gives its id to
// a new one (detect.when_full evict_idle), the new device takes the row
// and the evicted one leaves the fleet.
func TestDeviceIDReused(t *testing.T) {
	c, _ := testFleet(3)
	c.PublishStatus(&detect.StatusUpdate{Evicted: []string{"plc-00001"},
		Devices: []detect.DeviceStatus{{ID: 1, Device: "plc-new", Group: "plant-b/s7-1500", LastSeen: epoch}}})
	if _, ok := c.Device("plc-00001"); ok {
		t.Error("the evicted plc-00001 is still in the fleet")
	}
	if s, ok := c.Device("plc-new"); !ok || s.Device != "plc-new" {
		t.Errorf("the new device is not in the fleet: %v", ok)
	}
	if got := searchAll(t, c, "", "", 10); slices.Contains(got, "plc-00001") || !slices.Contains(got, "plc-new") || len(got) != 3 {
		t.Errorf("fleet %v, want plc-00000, plc-00002 and plc-new", got)
	}
}

// TestOlderStatusDoesNotReplaceNewer: a device's status older than the one
// the console holds (the shard it left publishing after the shard it moved
// to) is dropped; a newer one replaces it.
func TestOlderStatusDoesNotReplaceNewer(t *testing.T) {
	c := New(Options{})
	publish := func(sts ...detect.DeviceStatus) {
		c.PublishStatus(&detect.StatusUpdate{Devices: sts})
		c.readLock() // applied
		c.mu.RUnlock()
	}
	story := func(name string) DeviceRow {
		t.Helper()
		s, ok := c.Device(name)
		if !ok {
			t.Fatalf("no %s", name)
		}
		return s.DeviceRow
	}
	publish(detect.DeviceStatus{ID: 0, Device: "plc-1", Group: "site-b", LastSeen: epoch, Alarms: 1})
	publish(detect.DeviceStatus{ID: 0, Device: "plc-1", Group: "site-a", LastSeen: epoch.Add(-time.Minute)})
	if r := story("plc-1"); r.Group != "site-b" || r.Alarms != 1 {
		t.Fatalf("an older status replaced a newer one: %+v", r)
	}
	publish(detect.DeviceStatus{ID: 0, Device: "plc-1", Group: "site-b", LastSeen: epoch.Add(time.Minute)})
	if r := story("plc-1"); r.Alarms != 0 || !r.LastSeen.Equal(epoch.Add(time.Minute)) {
		t.Fatalf("a newer status did not replace the older: %+v", r)
	}
}

// TestStatusCostPerDevice: the console tells the engine what applying a
// device took (detect.StatusCoster), from the updates that had devices:
// an update of groups alone, however long, does not make a device look
// dear.
func TestStatusCostPerDevice(t *testing.T) {
	c := New(Options{})
	publish := func(u *detect.StatusUpdate) {
		c.PublishStatus(u)
		c.readLock() // applied
		c.mu.RUnlock()
	}
	if got := c.StatusCost(); got != 0 {
		t.Fatalf("cost before any update: %v", got)
	}
	u := &detect.StatusUpdate{}
	for i := range 1000 {
		u.Devices = append(u.Devices, detect.DeviceStatus{ID: int32(i), Device: fmt.Sprintf("plc-%04d", i), Group: "g", LastSeen: epoch})
	}
	publish(u)
	perDevice := c.StatusCost()
	if perDevice <= 0 || perDevice > time.Millisecond {
		t.Fatalf("applying 1000 devices: %v a device", perDevice)
	}
	groups := &detect.StatusUpdate{}
	for i := range 200 {
		groups.Groups = append(groups.Groups, detect.GroupStatus{GroupInfo: baseline.GroupInfo{Name: fmt.Sprintf("g-%d", i)}})
	}
	publish(groups)
	if got := c.StatusCost(); got != perDevice {
		t.Fatalf("an update without devices changed the cost a device: %v, was %v", got, perDevice)
	}
}

// TestConfigRecentStep: recent_step takes 0 (every value) to 24h; outside,
// the error names the setting.
func TestConfigRecentStep(t *testing.T) {
	for _, tc := range []struct {
		step time.Duration
		ok   bool
	}{{0, true}, {5 * time.Minute, true}, {24 * time.Hour, true}, {-time.Minute, false}, {25 * time.Hour, false}} {
		c := DefaultConfig()
		c.RecentStep = tc.step
		err := c.Validate()
		if (err == nil) != tc.ok || (err != nil && !strings.Contains(err.Error(), "recent_step "+tc.step.String())) {
			t.Errorf("recent_step %s: %v", tc.step, err)
		}
	}
}
