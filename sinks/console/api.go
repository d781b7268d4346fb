package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/detect/query"
	"github.com/vigil-ot/vigil/sinks"
)

// Handler returns the console's HTTP handler: the page at / and the API
// under /api/v1. With tokens, every API request needs
// "Authorization: Bearer SECRET" (401 without a known one) and a decision
// needs an operator's (403 for a viewer's); without, every request is the
// operator "local".
func (c *Console) Handler(tokens *Tokens) http.Handler {
	mux := http.NewServeMux()
	api := func(pattern string, role string, h func(w http.ResponseWriter, r *http.Request, who string)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			who, ok := authorize(w, r, tokens, role)
			if ok {
				h(w, r, who)
			}
		})
	}
	api("GET /api/v1/whoami", RoleViewer, c.whoami(tokens))
	api("GET /api/v1/devices", RoleViewer, c.handleSearch)
	api("GET /api/v1/devices/{id...}", RoleViewer, c.handleDevice)
	api("GET /api/v1/groups", RoleViewer, c.handleGroups)
	api("GET /api/v1/groups/{key...}", RoleViewer, c.handleGroup)
	api("GET /api/v1/alerts", RoleViewer, c.handleAlerts)
	api("GET /api/v1/rollouts", RoleViewer, c.handleRollouts)
	api("GET /api/v1/rollouts/{group...}", RoleViewer, c.handleRollout)
	api("GET /api/v1/quarantine", RoleViewer, c.handleQuarantine)
	api("POST /api/v1/quarantine/{id}/{action}", RoleOperator, c.handleDecision)
	mux.Handle("GET /", webHandler())
	return mux
}

// authorize checks the request's bearer token for role and returns who
// it is; it writes the 401 or 403 itself.
func authorize(w http.ResponseWriter, r *http.Request, tokens *Tokens, role string) (string, bool) {
	if tokens.Len() == 0 {
		return "local", true
	}
	secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	name, have, known := "", "", false
	if ok {
		name, have, known = tokens.who(strings.TrimSpace(secret))
	}
	if !known {
		w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
		writeError(w, http.StatusUnauthorized, "a bearer token is required: send Authorization: Bearer TOKEN")
		return "", false
	}
	if role == RoleOperator && have != RoleOperator {
		writeError(w, http.StatusForbidden, "this needs an operator token; "+name+" is a "+have)
		return "", false
	}
	return name, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func (c *Console) whoami(tokens *Tokens) func(http.ResponseWriter, *http.Request, string) {
	return func(w http.ResponseWriter, r *http.Request, who string) {
		role := RoleOperator
		if tokens.Len() > 0 {
			secret, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			_, role, _ = tokens.who(strings.TrimSpace(secret))
		}
		writeJSON(w, http.StatusOK, map[string]string{"name": who, "role": role})
	}
}

func (c *Console) handleSearch(w http.ResponseWriter, r *http.Request, _ string) {
	v := r.URL.Query()
	req := SearchRequest{Query: v.Get("q"), Sort: v.Get("sort"), Cursor: v.Get("cursor")}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, "limit "+strconv.Quote(s)+" is not a number")
			return
		}
		req.Limit = n
	}
	res, err := c.Search(req)
	if err != nil {
		writeQueryError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// writeQueryError answers a bad query with a 400 that carries the
// position of the problem, when it has one.
func writeQueryError(w http.ResponseWriter, err error) {
	body := map[string]any{"error": err.Error()}
	var qe *query.Error
	if errors.As(err, &qe) {
		body["position"] = qe.Pos
	}
	writeJSON(w, http.StatusBadRequest, body)
}

// DeviceStory is GET /api/v1/devices/{id}.
type DeviceStory struct {
	DeviceRow
	Interval   float64           `json:"interval_seconds"` // learned report interval; 0: not learned
	Attributes []Attribute       `json:"attributes"`
	Identity   Identity          `json:"identity"`
	OpenAlarms []json.RawMessage `json:"open_alarms"`   // alert schema
	Alerts     []json.RawMessage `json:"recent_alerts"` // alert schema, newest first
	Quarantine *QuarantineItem   `json:"quarantine"`    // the device's current episode, or null
	Metrics    []MetricStory     `json:"metrics"`
	// RecentStep is the event time each of the metrics' points stands for
	// (the console's recent_step): its first value, or the value that lay
	// furthest outside its band; 0: each point is a value.
	RecentStep float64 `json:"recent_step_seconds"`
}

// Identity is who a device said it was.
type Identity struct {
	SourceIPs []string `json:"source_ips"`
	ClientIDs []string `json:"client_ids"`
	Cert      string   `json:"cert"`
	Firmware  string   `json:"firmware"`
	// FirmwareHistory is the firmware it reported, oldest first, up to 8:
	// each from its first report of it; the last is Firmware.
	FirmwareHistory []FirmwareRun `json:"firmware_history"`
}

// FirmwareRun is a firmware a device reported, from its first report of it
// (left out: from before the engine's state was restored).
type FirmwareRun struct {
	Version string    `json:"version"`
	Since   time.Time `json:"since,omitzero"`
}

// firmwareRuns returns the engine's firmware runs as the API's.
func firmwareRuns(runs []detect.FirmwareRun) []FirmwareRun {
	var out []FirmwareRun
	for _, f := range runs {
		out = append(out, FirmwareRun{Version: f.Version, Since: f.Since})
	}
	return out
}

// MetricStory is one metric of a device: its baseline and recent values.
type MetricStory struct {
	Name      string `json:"name"`
	Samples   int64  `json:"samples"`    // values the device's baseline has learned
	FromGroup bool   `json:"from_group"` // too few of its own: judged on its group's baseline
	Seasonal  bool   `json:"seasonal"`   // judged on the hour-of-week profile
	// Expected, Lower and Upper are the band the latest value was judged
	// against (null while there is none).
	Expected *float64     `json:"expected"`
	Lower    *float64     `json:"lower"`
	Upper    *float64     `json:"upper"`
	Group    *GroupMetric `json:"group"` // the group's distribution, null before it learned any
	// Points are the recent values, oldest first: [time (Unix ms), value,
	// expected, lower, upper], null where there was no band; with a step
	// (DeviceStory.RecentStep), one a step. Samples, FromGroup, Seasonal
	// and the band are the latest value's (with a step, of a value at most
	// a step before the device's latest).
	Points [][5]*float64 `json:"points"`
}

// GroupMetric is a metric's distribution in a group.
type GroupMetric struct {
	Samples         int64               `json:"samples"`
	Mean            *float64            `json:"mean"`
	Std             *float64            `json:"std"`
	Percentiles     map[string]*float64 `json:"percentiles"`
	SeasonalBuckets int                 `json:"seasonal_buckets"` // hour-of-week buckets with enough weight (of 168)
	// ProfileKind and Profile are the recurring pattern a device's
	// expectation follows once the group has the history for it
	// (baseline.MetricInfo.Profile): by hour of day (24 values) or of week
	// (168, Monday 00:00 first), the group's offset from a device's level,
	// null where an hour has too little weight yet; absent before.
	ProfileKind string     `json:"profile_kind,omitempty"`
	Profile     []*float64 `json:"profile,omitempty"`
}

func num(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

const recentAlertsPerDevice = 50

func (c *Console) handleDevice(w http.ResponseWriter, r *http.Request, _ string) {
	story, ok := c.Device(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, "no device "+strconv.Quote(r.PathValue("id")))
		return
	}
	writeJSON(w, http.StatusOK, story)
}

// Device returns a device's story.
func (c *Console) Device(name string) (*DeviceStory, bool) {
	c.readLock()
	defer c.mu.RUnlock()
	row, ok := c.byName[name]
	if !ok {
		return nil, false
	}
	d := c.devices[row]
	st := &d.status
	now := c.now()
	s := &DeviceStory{DeviceRow: c.row(int(row), now), Interval: st.Interval.Seconds(), Attributes: c.attributes(nil, st),
		Identity: Identity{SourceIPs: nonNil(st.SourceIPs), ClientIDs: nonNil(st.ClientIDs), Cert: st.Cert, Firmware: st.Firmware,
			FirmwareHistory: firmwareRuns(st.EarlierFirmware)},
		OpenAlarms: []json.RawMessage{}, Alerts: []json.RawMessage{}, Metrics: []MetricStory{}, RecentStep: c.opts.RecentStep.Seconds()}
	if st.Firmware != "" {
		s.Identity.FirmwareHistory = append(s.Identity.FirmwareHistory, FirmwareRun{Version: st.Firmware, Since: st.FirmwareSince})
	}
	s.Identity.FirmwareHistory = nonNil(s.Identity.FirmwareHistory)
	slices.SortFunc(s.Attributes, func(a, b Attribute) int { return strings.Compare(a.Key, b.Key) })
	for _, o := range c.open[name] {
		s.OpenAlarms = append(s.OpenAlarms, sinks.AppendAlertJSON(nil, &o.alert))
	}
	c.eachAlert(func(a *detect.Alert) bool {
		if a.Device == name {
			s.Alerts = append(s.Alerts, sinks.AppendAlertJSON(nil, a))
		}
		return len(s.Alerts) < recentAlertsPerDevice
	})
	for _, q := range c.quarantineItems() {
		if q.Device == name {
			s.Quarantine = &q
			break
		}
	}
	var group *detect.GroupStatus
	for i := range c.groups {
		if c.groups[i].Name == st.Group {
			group = &c.groups[i]
		}
	}
	if d.recent != nil {
		for _, rs := range d.recent.Device(row) {
			s.Metrics = append(s.Metrics, metricStory(&rs, group))
		}
	}
	slices.SortFunc(s.Metrics, func(a, b MetricStory) int { return strings.Compare(a.Name, b.Name) })
	return s, true
}

// nonNil returns s, or an empty slice for nil (JSON [], not null).
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func metricStory(m *detect.RecentSeries, group *detect.GroupStatus) MetricStory {
	out := MetricStory{Name: m.Metric, Samples: m.Samples, FromGroup: m.FromGroup, Seasonal: m.Seasonal, Points: make([][5]*float64, 0, len(m.Values))}
	for _, v := range m.Values {
		out.Points = append(out.Points, [5]*float64{num(float64(v.Time / int64(time.Millisecond))), num(float64(v.Value)),
			num(float64(v.Expected)), num(float64(v.Lower)), num(float64(v.Upper))})
	}
	if n := len(out.Points); n > 0 {
		last := out.Points[n-1]
		out.Expected, out.Lower, out.Upper = last[2], last[3], last[4]
	}
	if group == nil {
		return out
	}
	for _, gm := range group.Metrics {
		if gm.Name != m.Metric {
			continue
		}
		g := groupMetric(&gm)
		out.Group = &g
	}
	return out
}

func groupMetric(gm *baseline.MetricInfo) GroupMetric {
	m := GroupMetric{Samples: gm.Samples, Mean: num(gm.Mean), Std: num(gm.Std), Percentiles: map[string]*float64{}, SeasonalBuckets: gm.SeasonalBuckets,
		ProfileKind: gm.ProfileKind}
	for i, q := range quantileNames {
		m.Percentiles[q] = num(gm.Quantiles[i])
	}
	for _, o := range gm.Profile {
		m.Profile = append(m.Profile, num(o))
	}
	return m
}

// quantileNames name baseline.Quantiles, in its order.
var quantileNames = []string{"p0.1", "p1", "p5", "p50", "p95", "p99", "p99.9"}

// eachAlert calls f with the recent alerts, newest first, while it returns
// true.
func (c *Console) eachAlert(f func(a *detect.Alert) bool) {
	n := len(c.alerts)
	for k := 0; k < n; k++ {
		i := (c.nAlerts - 1 - k) % c.opts.MaxAlerts
		if i < 0 || i >= n {
			return
		}
		if !f(&c.alerts[i]) {
			return
		}
	}
}

// GroupSummary is a group in GET /api/v1/groups.
type GroupSummary struct {
	Name     string         `json:"name"`
	Learning bool           `json:"learning"`
	Progress float64        `json:"progress"` // 0 to 1: the learning thresholds reached (1 once protecting)
	Rows     int64          `json:"rows"`
	Span     float64        `json:"span_seconds"`
	Devices  int            `json:"devices"`
	Status   map[string]int `json:"status"` // devices by status
}

// GroupStory is GET /api/v1/groups/{key}.
type GroupStory struct {
	GroupSummary
	MinSamples  int64                  `json:"min_samples"`
	MinDuration float64                `json:"min_duration_seconds"`
	Members     []string               `json:"members"`
	Metrics     map[string]GroupMetric `json:"metrics"`
}

func (c *Console) handleGroups(w http.ResponseWriter, r *http.Request, _ string) {
	c.readLock()
	defer c.mu.RUnlock()
	out := []GroupSummary{}
	for i := range c.groups {
		out = append(out, c.groupSummary(&c.groups[i]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"groups": out})
}

func (c *Console) groupSummary(g *detect.GroupStatus) GroupSummary {
	s := GroupSummary{Name: g.Name, Learning: g.Learning, Rows: g.Rows, Span: g.Span.Seconds(), Status: map[string]int{}, Progress: 1}
	if g.Learning {
		p := 1.0
		if g.MinSamples > 0 {
			p = min(p, float64(g.Rows)/float64(g.MinSamples))
		}
		if g.MinDuration > 0 {
			p = min(p, float64(g.Span)/float64(g.MinDuration))
		}
		s.Progress = min(p, 0.99)
	}
	x := c.idx
	groups, status := x.cols["group"], x.cols["status"]
	for r, d := range c.devices {
		if d != nil && groups.text(r) == g.Name {
			s.Devices++
			s.Status[status.text(r)]++
		}
	}
	return s
}

func (c *Console) handleGroup(w http.ResponseWriter, r *http.Request, _ string) {
	c.readLock()
	defer c.mu.RUnlock()
	key := r.PathValue("key")
	for i := range c.groups {
		g := &c.groups[i]
		if g.Name != key {
			continue
		}
		s := GroupStory{GroupSummary: c.groupSummary(g), MinSamples: g.MinSamples, MinDuration: g.MinDuration.Seconds(),
			Members: []string{}, Metrics: map[string]GroupMetric{}}
		groups := c.idx.cols["group"]
		for r, d := range c.devices {
			if d != nil && groups.text(r) == key {
				s.Members = append(s.Members, d.status.Device)
			}
		}
		slices.Sort(s.Members)
		for _, gm := range g.Metrics {
			s.Metrics[gm.Name] = groupMetric(&gm)
		}
		writeJSON(w, http.StatusOK, s)
		return
	}
	writeError(w, http.StatusNotFound, "no group "+strconv.Quote(key))
}

// alertRecord is an alert as a query matches it.
type alertRecord struct {
	a   *detect.Alert
	buf [1]string
}

// alertFields are the fields an alert query knows.
var alertFields = map[string]query.Kind{
	"detector": query.KindText, "device": query.KindText, "group": query.KindText, "behavior": query.KindText,
	"state": query.KindText, "technique": query.KindText, "criticality": query.KindText, "severity_name": query.KindText,
	"severity": query.KindNumber, "score": query.KindNumber, "time": query.KindTime, "protocol": query.KindText,
	"src_ip": query.KindText, "dst_ip": query.KindText,
}

func (r *alertRecord) Get(f string) ([]string, bool) {
	a := r.a
	var v string
	switch f {
	case "detector":
		v = a.Detector
	case "device":
		v = a.Device
	case "group":
		v = a.Group
	case "behavior":
		v = a.Behavior
	case "state":
		v = a.State
	case "technique":
		v = a.Technique
	case "criticality":
		v = a.Criticality
	case "severity_name":
		v = detect.SeverityName(a.Severity)
	case "protocol":
		v = a.Protocol
	case "src_ip":
		v = a.SrcIP
	case "dst_ip":
		v = a.DstIP
	case "severity":
		v = strconv.Itoa(a.Severity)
	case "score":
		v = strconv.FormatFloat(a.Score, 'f', -1, 64)
	case "time":
		v = a.EventTime.Format(time.RFC3339Nano)
	}
	if v == "" {
		return nil, false
	}
	r.buf[0] = v
	return r.buf[:], true
}

func (r *alertRecord) GetNumber(f string) (float64, bool) {
	switch f {
	case "severity":
		return float64(r.a.Severity), true
	case "score":
		return r.a.Score, true
	}
	return 0, false
}

func (r *alertRecord) GetTime(f string) (time.Time, bool) {
	if f == "time" {
		return r.a.EventTime, true
	}
	return time.Time{}, false
}

func (c *Console) handleAlerts(w http.ResponseWriter, r *http.Request, _ string) {
	v := r.URL.Query()
	limit := 200
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > c.opts.MaxAlerts {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: ask for 1 to %d alerts", s, c.opts.MaxAlerts))
			return
		}
		limit = n
	}
	c.readLock()
	defer c.mu.RUnlock()
	q, err := query.Parse(v.Get("q"), query.WithSchema(func(f string) (query.Kind, bool) { k, ok := alertFields[f]; return k, ok }),
		query.WithNow(c.now()))
	if err != nil {
		writeQueryError(w, err)
		return
	}
	out := []json.RawMessage{}
	total := 0
	rec := &alertRecord{}
	c.eachAlert(func(a *detect.Alert) bool {
		rec.a = a
		if q.Match(rec) {
			total++
			if len(out) < limit {
				out = append(out, sinks.AppendAlertJSON(nil, a))
			}
		}
		return true
	})
	writeJSON(w, http.StatusOK, map[string]any{"query": q.String(), "total": total, "alerts": out})
}

// QuarantineItem is a device in the quarantine queue.
type QuarantineItem struct {
	Device   string          `json:"device"`
	Group    string          `json:"group"`
	State    string          `json:"state"` // recommended (waiting for a decision) or quarantined
	Event    json.RawMessage `json:"event"` // the quarantine event a decision applies to, in the quarantine schema
	EventID  string          `json:"event_id"`
	Decision *Decision       `json:"decision"` // the decision that put it in quarantine, if one did
}

func (c *Console) handleQuarantine(w http.ResponseWriter, r *http.Request, _ string) {
	c.readLock()
	defer c.mu.RUnlock()
	items := c.quarantineItems()
	var history []json.RawMessage
	evs := make([]*event, 0, len(c.events))
	for _, e := range c.events {
		evs = append(evs, e)
	}
	slices.SortFunc(evs, func(a, b *event) int { return b.Time.Compare(a.Time) })
	for _, e := range evs {
		history = append(history, sinks.AppendQuarantineJSON(nil, &e.QuarantineEvent))
	}
	writeJSON(w, http.StatusOK, map[string]any{"queue": items, "events": nonNil(history)})
}

// quarantineItems are the pending recommendations and the devices in
// quarantine, recommendations first, by device.
func (c *Console) quarantineItems() []QuarantineItem {
	items := []QuarantineItem{}
	for r, d := range c.devices {
		if d == nil {
			continue
		}
		status := c.idx.cols["status"].text(r)
		var ev *event
		switch {
		case status == StatusQuarantined && d.decision != nil && d.decision.Action == ActionApprove:
			ev = c.events[d.decision.Sent]
		case status == StatusQuarantined || status == StatusRecommended:
			ev = c.events[d.status.QuarantineID]
		}
		if ev == nil {
			continue
		}
		items = append(items, QuarantineItem{Device: d.status.Device, Group: d.status.Group, State: status,
			Event: sinks.AppendQuarantineJSON(nil, &ev.QuarantineEvent), EventID: ev.ID, Decision: d.decision})
	}
	slices.SortFunc(items, func(a, b QuarantineItem) int {
		if a.State != b.State {
			return strings.Compare(b.State, a.State) // recommended before quarantined
		}
		return strings.Compare(a.Device, b.Device)
	})
	return items
}

func (c *Console) handleDecision(w http.ResponseWriter, r *http.Request, who string) {
	action := r.PathValue("action")
	if action != ActionApprove && action != ActionReject && action != ActionRelease {
		writeError(w, http.StatusNotFound, "no decision "+strconv.Quote(action)+": approve, reject or release")
		return
	}
	ev, err := c.Decide(r.Context(), r.PathValue("id"), action, who)
	switch {
	case errors.Is(err, ErrNoEvent):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrConflict):
		writeError(w, http.StatusConflict, err.Error())
	case err != nil:
		writeError(w, http.StatusBadGateway, err.Error())
	default:
		writeJSON(w, http.StatusOK, map[string]json.RawMessage{"event": sinks.AppendQuarantineJSON(nil, &ev)})
	}
}

// Server is a running console listener.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// Serve serves the console on addr until Close. A listener that is not
// on a loopback address needs tokens: without, Serve refuses to start.
func (c *Console) Serve(addr string, tokens *Tokens, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s for the console: %w", addr, err)
	}
	if err := CheckListener(ln.Addr(), tokens); err != nil {
		ln.Close()
		return nil, err
	}
	s := &Server{srv: &http.Server{Handler: c.Handler(tokens), ReadHeaderTimeout: 5 * time.Second}, ln: ln}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && log != nil {
			log.Error("console listener stopped", "err", err)
		}
	}()
	return s, nil
}

// CheckListener refuses a console on a listener that is not on a loopback
// address when there are no tokens: anyone who reached it could approve
// quarantines.
func CheckListener(addr net.Addr, tokens *Tokens) error {
	if tcp, ok := addr.(*net.TCPAddr); ok && !tcp.IP.IsLoopback() && tokens.Len() == 0 {
		return fmt.Errorf("cannot serve the console on %s without tokens: anyone who reaches it could approve quarantines; "+
			"listen on 127.0.0.1, or set %s or %s (name:role:secret, role viewer or operator)", addr, EnvTokens, EnvTokensFile)
	}
	return nil
}

// Addr returns the address the console listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the listener, letting requests in flight finish for up to
// two seconds.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}
