package score

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Incident is one labelled incident: a device (or several) misbehaved
// from Start to End.
type Incident struct {
	ID string `json:"id,omitempty"`
	// Device names what the incident is about: a device id (which also
	// matches a fleet alarm naming that group key as its device),
	// "group:KEY" (any device of group KEY, or a fleet alarm of KEY), or "*"
	// (any device).
	Device   string    `json:"device"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Kind     string    `json:"kind,omitempty"`     // e.g. the attack's name
	Detector string    `json:"detector,omitempty"` // the detector expected to fire; not used for matching
	Behavior string    `json:"behavior,omitempty"` // the behavior expected; not used for matching
	Note     string    `json:"note,omitempty"`
	File     string    `json:"file,omitempty"` // where it was labelled
	Line     int       `json:"line,omitempty"`
}

// Matches reports whether an alarm of device (in group) can be about this
// incident, by its Device alone; times are Score's business.
func (inc *Incident) Matches(device, group string) bool {
	switch {
	case inc.Device == "*":
		return true
	case strings.HasPrefix(inc.Device, groupPrefix):
		key := inc.Device[len(groupPrefix):]
		return group == key || device == key
	}
	return device == inc.Device
}

const groupPrefix = "group:"

// where locates the incident for an error message.
func (inc *Incident) where() string {
	if inc.Line > 0 {
		return inc.File + ":" + strconv.Itoa(inc.Line)
	}
	return "incident " + strconv.Quote(inc.ID)
}

// rawIncident is an incident as written, before its times are parsed.
type rawIncident struct {
	ID       string `json:"id"`
	Device   string `json:"device"`
	Start    string `json:"start"`
	End      string `json:"end"`
	Kind     string `json:"kind"`
	Detector string `json:"detector"`
	Behavior string `json:"behavior"`
	Note     string `json:"note"`
}

// ParseIncidents reads incident labels from r; name is the file name its
// errors start with. Two forms are accepted, told by the first non-space
// byte:
//
//   - CSV ('[' is not first): a header line naming at least device, start
//     and end, and optionally kind (or attack), id, detector, behavior and
//     note, in any order and any case; other columns are ignored. The
//     separator is a comma, or a tab when the header has tabs and no comma
//     (the TSV attackgen writes). Lines starting with # are comments.
//   - JSON ('[' first): an array of objects with the same keys.
//
// Times are RFC 3339. Device is a device id, "group:KEY" or "*" (see
// Incident.Matches). The incidents come back in file order, File and Line
// set; a file with no incident (a header alone, or []) gives an empty
// non-nil slice: labels saying nothing happened, so every alarm is false.
//
// Every error starts with "name:line: ": a missing column, an empty device,
// a time that does not parse, an end before its start, or two windows of
// the same device that overlap (windows that only touch are fine).
func ParseIncidents(name string, r io.Reader) ([]Incident, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", name, err)
	}
	var incs []Incident
	if t := bytes.TrimLeft(data, " \t\r\n\ufeff"); len(t) > 0 && t[0] == '[' {
		incs, err = parseIncidentsJSON(name, data)
	} else {
		incs, err = parseIncidentsCSV(name, data)
	}
	if err != nil {
		return nil, err
	}
	if err := checkOverlaps(incs); err != nil {
		return nil, err
	}
	return incs, nil
}

func parseIncidentsCSV(name string, data []byte) ([]Incident, error) {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	cr := csv.NewReader(bytes.NewReader(data))
	cr.Comment = '#'
	cr.TrimLeadingSpace = true
	if header, _, _ := bytes.Cut(data, []byte("\n")); bytes.IndexByte(header, '\t') >= 0 && bytes.IndexByte(header, ',') < 0 {
		cr.Comma = '\t'
	}
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s:1: no header; the first line names the columns, at least device,start,end", name)
	}
	if err != nil {
		return nil, csvError(name, err)
	}
	headerLine, _ := cr.FieldPos(0)
	col := make(map[string]int)
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "attack" {
			h = "kind"
		}
		if _, dup := col[h]; !dup {
			col[h] = i
		}
	}
	for _, need := range []string{"device", "start", "end"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("%s:%d: missing column %q; the header needs at least device,start,end", name, headerLine, need)
		}
	}
	field := func(rec []string, key string) string {
		if i, ok := col[key]; ok && i < len(rec) {
			return rec[i]
		}
		return ""
	}
	incs := []Incident{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return incs, nil
		}
		if err != nil {
			return nil, csvError(name, err)
		}
		line, _ := cr.FieldPos(0)
		inc, err := rawIncident{
			ID: field(rec, "id"), Device: field(rec, "device"), Start: field(rec, "start"), End: field(rec, "end"),
			Kind: field(rec, "kind"), Detector: field(rec, "detector"), Behavior: field(rec, "behavior"), Note: field(rec, "note"),
		}.incident(name, line)
		if err != nil {
			return nil, err
		}
		incs = append(incs, inc)
	}
}

func csvError(name string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s:%d: %w", name, pe.Line, pe.Err)
	}
	return fmt.Errorf("cannot read %s: %w", name, err)
}

func parseIncidentsJSON(name string, data []byte) ([]Incident, error) {
	// lineAt counts lines from the last offset it was asked about, as
	// offsets mostly grow.
	seen, seenLine := 0, 1
	lineAt := func(off int64) int {
		o := min(max(int(off), 0), len(data))
		if o < seen {
			seen, seenLine = 0, 1
		}
		seenLine += bytes.Count(data[seen:o], []byte("\n"))
		seen = o
		return seenLine
	}
	jsonErr := func(err error, off int64) error {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			off = se.Offset
		case errors.As(err, &te) && te.Field == "":
			return fmt.Errorf("%s:%d: cannot parse labels JSON: a label is an object, not a %s", name, lineAt(te.Offset), te.Value)
		case errors.As(err, &te):
			return fmt.Errorf("%s:%d: cannot parse labels JSON: %s is a %s; every value is a string", name, lineAt(te.Offset), te.Field, te.Value)
		}
		return fmt.Errorf("%s:%d: cannot parse labels JSON: %w", name, lineAt(off), err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // the '[' ParseIncidents saw
		return nil, jsonErr(err, dec.InputOffset())
	}
	incs := []Incident{}
	for dec.More() {
		// The object starts after the whitespace and comma that follow the
		// previous value.
		start := dec.InputOffset()
		for start < int64(len(data)) && bytes.IndexByte([]byte(" \t\r\n,"), data[start]) >= 0 {
			start++
		}
		var raw rawIncident
		if err := dec.Decode(&raw); err != nil {
			return nil, jsonErr(err, start)
		}
		inc, err := raw.incident(name, lineAt(start))
		if err != nil {
			return nil, err
		}
		incs = append(incs, inc)
	}
	if _, err := dec.Token(); err != nil { // ']'
		return nil, jsonErr(err, dec.InputOffset())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s:%d: unexpected data after the labels array", name, lineAt(dec.InputOffset()))
	}
	return incs, nil
}

// incident checks and converts one labelled incident of file name, line.
func (r rawIncident) incident(name string, line int) (Incident, error) {
	inc := Incident{
		ID: strings.TrimSpace(r.ID), Device: strings.TrimSpace(r.Device), Kind: strings.TrimSpace(r.Kind),
		Detector: strings.TrimSpace(r.Detector), Behavior: strings.TrimSpace(r.Behavior), Note: strings.TrimSpace(r.Note),
		File: name, Line: line,
	}
	at := inc.where()
	if inc.Device == "" || inc.Device == groupPrefix {
		return inc, fmt.Errorf("%s: empty device; name a device id, group:KEY or * (any device)", at)
	}
	var err error
	if inc.Start, err = parseLabelTime("start", r.Start); err != nil {
		return inc, fmt.Errorf("%s: %w", at, err)
	}
	if inc.End, err = parseLabelTime("end", r.End); err != nil {
		return inc, fmt.Errorf("%s: %w", at, err)
	}
	if inc.End.Before(inc.Start) {
		return inc, fmt.Errorf("%s: end %s is before start %s", at, inc.End.Format(time.RFC3339Nano), inc.Start.Format(time.RFC3339Nano))
	}
	return inc, nil
}

func parseLabelTime(what, s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, fmt.Errorf("missing %s time", what)
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("cannot parse %s %q as an RFC 3339 time such as 2026-11-03T10:00:00Z", what, s)
	}
	return t, nil
}

// overlaps reports whether the windows of a and b share more than an
// instant; two equal point windows overlap too.
func overlaps(a, b *Incident) bool {
	return a.Start.Before(b.End) && b.Start.Before(a.End) || a.Start.Equal(b.Start)
}

// checkOverlaps reports the first pair of windows of the same Device (as
// written) that overlap, naming the later-starting one first.
func checkOverlaps(incs []Incident) error {
	order := make([]int, len(incs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool {
		a, b := &incs[order[i]], &incs[order[j]]
		if a.Device != b.Device {
			return a.Device < b.Device
		}
		return a.Start.Before(b.Start)
	})
	// latest is, among the windows of the current device seen so far, the
	// one that ends last: any later-starting window overlapping an earlier
	// one overlaps it.
	latest := -1
	for _, i := range order {
		inc := &incs[i]
		if latest >= 0 && incs[latest].Device == inc.Device {
			if prev := &incs[latest]; overlaps(prev, inc) {
				return fmt.Errorf("%s: window %s – %s of device %s overlaps the one at %s (%s – %s); merge them or fix the times",
					inc.where(), inc.Start.Format(time.RFC3339), inc.End.Format(time.RFC3339), inc.Device,
					prev.where(), prev.Start.Format(time.RFC3339), prev.End.Format(time.RFC3339))
			}
			if !inc.End.After(incs[latest].End) {
				continue
			}
		}
		latest = i
	}
	return nil
}

// ValidateDevices checks that every incident names something the input
// holds: a device id must be a known device or a known group key (fleet
// incidents name the group key), "group:KEY" a known group; "*" always
// passes. A nil function knows nothing. The error names the first incident
// that fails, with its file and line.
func ValidateDevices(incidents []Incident, knownDevices, knownGroups func(string) bool) error {
	known := func(f func(string) bool, s string) bool { return f != nil && f(s) }
	for i := range incidents {
		inc := &incidents[i]
		switch {
		case inc.Device == "*":
		case strings.HasPrefix(inc.Device, groupPrefix):
			if key := inc.Device[len(groupPrefix):]; !known(knownGroups, key) {
				return fmt.Errorf("%s: group %q never appears in the input; check the label's spelling, or score the input it comes from", inc.where(), key)
			}
		case !known(knownDevices, inc.Device) && !known(knownGroups, inc.Device):
			return fmt.Errorf("%s: device %q never appears in the input; check the label's spelling, or score the input it comes from", inc.where(), inc.Device)
		}
	}
	return nil
}

// ParsePacketLabels reads per-packet labels — one line a packet,
// "index;label" or "index,label", index 1-based into the capture — and
// turns them into attack episodes; name is the file name its errors start
// with, and times[i] is the capture time of packet i+1.
//
// A label of 0 (or 0.0), normal, benign (any case) or empty is normal;
// anything else names an attack. An episode is a maximal run of packets
// with consecutive indexes and the same attack label: a normal packet, a
// packet missing from the file or another label ends it. Each episode
// becomes an Incident with Device "*", Kind the label, Start and End the
// earliest and latest capture time of its packets, and Line the line of its
// first packet.
//
// The first line may be a header (its index is not a number); blank lines
// and lines starting with # are skipped. Errors carry "name:line: ": a
// line without a separator, an index that is not a number, outside
// 1..len(times), or not above the previous one.
func ParsePacketLabels(name string, r io.Reader, times []time.Time) ([]Incident, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	var (
		incs        []Incident
		open        = -1 // index in incs of the open episode, or -1
		first, last int  // packet indexes of the open episode
		prev        int  // previous index
		content     bool // a non-blank line was seen
	)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		header := !content
		content = true
		sep := strings.IndexByte(line, ';')
		if sep < 0 {
			sep = strings.IndexByte(line, ',')
		}
		if sep < 0 {
			return nil, fmt.Errorf("%s:%d: want index;label or index,label, got %q", name, n, line)
		}
		idx, err := strconv.Atoi(strings.TrimSpace(line[:sep]))
		if err != nil {
			if header {
				continue
			}
			return nil, fmt.Errorf("%s:%d: cannot parse packet index %q as a number", name, n, strings.TrimSpace(line[:sep]))
		}
		if idx < 1 || idx > len(times) {
			return nil, fmt.Errorf("%s:%d: packet index %d is outside the capture's packets 1..%d; are these the labels of this capture?", name, n, idx, len(times))
		}
		if idx <= prev {
			return nil, fmt.Errorf("%s:%d: packet index %d does not increase (the previous line has %d)", name, n, idx, prev)
		}
		prev = idx
		label := strings.Trim(strings.TrimSpace(line[sep+1:]), `"`)
		t := times[idx-1]
		if open >= 0 && label == incs[open].Kind && idx == last+1 {
			last = idx
			ep := &incs[open]
			ep.ID = fmt.Sprintf("packets %d-%d", first, last)
			ep.Start, ep.End = minTime(ep.Start, t), maxTime(ep.End, t)
			continue
		}
		open = -1
		if isNormalLabel(label) {
			continue
		}
		open, first, last = len(incs), idx, idx
		incs = append(incs, Incident{ID: "packet " + strconv.Itoa(idx), Device: "*", Kind: label, Start: t, End: t, File: name, Line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: cannot read packet labels: %w", name, err)
	}
	return incs, nil
}

func isNormalLabel(label string) bool {
	switch strings.ToLower(label) {
	case "", "normal", "benign":
		return true
	}
	f, err := strconv.ParseFloat(label, 64)
	return err == nil && f == 0
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
