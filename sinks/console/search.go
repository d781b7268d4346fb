package console

import (
	"cmp"
	"container/heap"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ot/vigil/detect/query"
)

// SearchRequest is a fleet search: GET /api/v1/devices.
type SearchRequest struct {
	Query  string // the query language of detect/query; "" matches every device
	Sort   string // a sort key (device, group, status, last_seen, severity, score, alarms), "-" first for descending; "": device
	Limit  int    // page size, 1 to MaxLimit; 0: DefaultLimit
	Cursor string // Next of the previous page; "": the first page
}

// Page sizes of a search.
const (
	DefaultLimit = 50
	MaxLimit     = 1000
)

// SearchResult is one page of a fleet search.
type SearchResult struct {
	Query   string      `json:"query"` // the query in canonical form
	Total   int         `json:"total"` // devices that match, on every page
	Devices []DeviceRow `json:"devices"`
	Next    string      `json:"next,omitempty"` // cursor of the next page; "" on the last
	Now     time.Time   `json:"now"`            // what relative times in the query count from
}

// DeviceRow is a device in a search result.
type DeviceRow struct {
	Device    string            `json:"device"`
	Group     string            `json:"group"`
	Status    string            `json:"status"`
	LastSeen  time.Time         `json:"last_seen"`
	Connected bool              `json:"connected"`
	Learning  bool              `json:"learning"`
	Alarms    int               `json:"alarms"`
	Severity  int               `json:"severity"`
	Detectors []string          `json:"detectors"`
	Attrs     map[string]string `json:"attrs"`
}

// QueryError is a query the console cannot run: a 400.
type QueryError struct{ Err error }

func (e *QueryError) Error() string { return e.Err.Error() }
func (e *QueryError) Unwrap() error { return e.Err }

// sortKeys are the keys a search sorts by.
var sortKeys = []string{"device", "group", "status", "last_seen", "severity", "score", "alarms"}

// Search runs a fleet search.
func (c *Console) Search(req SearchRequest) (*SearchResult, error) {
	c.readLock()
	defer c.mu.RUnlock()
	now := c.now()
	q, err := query.Parse(req.Query, query.WithSchema(c.idx.kind), query.WithNow(now))
	if err != nil {
		return nil, &QueryError{err}
	}
	key, desc := strings.CutPrefix(req.Sort, "-")
	if key == "" {
		key = "device"
	}
	if !slices.Contains(sortKeys, key) {
		return nil, &QueryError{fmt.Errorf("cannot sort by %q: sort by one of %s, with '-' first for descending", req.Sort, strings.Join(sortKeys, ", "))}
	}
	limit := req.Limit
	if limit == 0 {
		limit = DefaultLimit
	}
	if limit < 1 || limit > MaxLimit {
		return nil, &QueryError{fmt.Errorf("limit %d is out of range: ask for 1 to %d devices a page", limit, MaxLimit)}
	}
	less := c.idx.less(key, desc)
	after := -1
	if req.Cursor != "" {
		n, err := strconv.Atoi(req.Cursor)
		if err != nil || n < 0 || n >= c.idx.rows || !c.idx.present.has(n) {
			return nil, &QueryError{fmt.Errorf("cursor %q is not one this console gave: start again from the first page", req.Cursor)}
		}
		after = n
	}
	hits := c.idx.eval(q.Root(), now)
	res := &SearchResult{Query: q.String(), Total: hits.count(), Now: now, Devices: []DeviceRow{}}
	top := &rowHeap{less: less}
	for w, word := range hits {
		for word != 0 {
			r := w*64 + bits.TrailingZeros64(word)
			word &= word - 1
			if after >= 0 && !less(after, r) {
				continue
			}
			if len(top.rows) < limit+1 {
				heap.Push(top, r)
			} else if less(r, top.rows[0]) {
				top.rows[0] = r
				heap.Fix(top, 0)
			}
		}
	}
	rows := make([]int, len(top.rows))
	for i := len(rows) - 1; i >= 0; i-- {
		rows[i] = heap.Pop(top).(int)
	}
	if len(rows) > limit {
		rows = rows[:limit]
		res.Next = strconv.Itoa(rows[limit-1])
	}
	for _, r := range rows {
		res.Devices = append(res.Devices, c.row(r, now))
	}
	return res, nil
}

// now is what relative times count from: the newest report of the fleet
// (so that a replay of last month reads as live), or the wall clock
// before any.
func (c *Console) now() time.Time {
	if c.clock != 0 {
		return time.Unix(0, c.clock).UTC()
	}
	return c.opts.Clock().UTC()
}

func (c *Console) row(r int, now time.Time) DeviceRow {
	d := c.devices[r]
	st := &d.status
	x := c.idx
	out := DeviceRow{Device: st.Device, Group: st.Group, Status: x.cols["status"].text(r), LastSeen: st.LastSeen,
		Connected: connected(now.UnixNano(), st.LastSeen.UnixNano(), int64(st.Interval)), Learning: st.Learning,
		Alarms: int(x.cols["alarms"].num[r]), Attrs: map[string]string{}, Detectors: []string{}}
	if sev := x.cols["severity"].num[r]; sev == sev {
		out.Severity = int(sev)
	}
	for _, id := range x.cols["detector"].many[r] {
		out.Detectors = append(out.Detectors, x.cols["detector"].dict[id])
	}
	for _, a := range c.attributes(nil, st) {
		out.Attrs[a.Key] = a.Value
	}
	return out
}

// statusRank orders statuses from calm to urgent.
var statusRank = map[string]int{StatusNormal: 0, StatusAlarm: 1, StatusRecommended: 2, StatusQuarantined: 3}

// less returns the order of rows by key, ties broken by device name.
func (x *fleetIndex) less(key string, desc bool) func(a, b int) bool {
	names := x.cols["device"]
	var by func(a, b int) int
	switch key {
	case "group", "device":
		col := x.cols[key]
		by = func(a, b int) int { return strings.Compare(col.text(a), col.text(b)) }
	case "status":
		col := x.cols[key]
		by = func(a, b int) int { return cmp.Compare(statusRank[col.text(a)], statusRank[col.text(b)]) }
	case "last_seen":
		at := x.cols[key].at
		by = func(a, b int) int { return cmp.Compare(at[a], at[b]) }
	default:
		num := x.cols[key].num
		by = func(a, b int) int { return cmp.Compare(orMinusInf(num[a]), orMinusInf(num[b])) }
	}
	return func(a, b int) bool {
		c := by(a, b)
		if desc {
			c = -c
		}
		if c == 0 {
			c = strings.Compare(names.text(a), names.text(b))
			if c == 0 {
				c = cmp.Compare(a, b)
			}
		}
		return c < 0
	}
}

func orMinusInf(v float64) float64 {
	if v != v {
		return math.Inf(-1)
	}
	return v
}

// rowHeap keeps the first rows of an order: its top is the last of them.
type rowHeap struct {
	rows []int
	less func(a, b int) bool
}

func (h *rowHeap) Len() int           { return len(h.rows) }
func (h *rowHeap) Less(i, j int) bool { return h.less(h.rows[j], h.rows[i]) }
func (h *rowHeap) Swap(i, j int)      { h.rows[i], h.rows[j] = h.rows[j], h.rows[i] }
func (h *rowHeap) Push(v any)         { h.rows = append(h.rows, v.(int)) }
func (h *rowHeap) Pop() any {
	v := h.rows[len(h.rows)-1]
	h.rows = h.rows[:len(h.rows)-1]
	return v
}
