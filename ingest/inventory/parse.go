package inventory

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/vigil-ot/vigil/ingest"
)

// maxFileBytes bounds an inventory file; a million assets fit easily.
const maxFileBytes = 256 << 20

// Columns with a meaning of their own; every other column is an attribute.
const (
	colDevice      = "device"
	colIP          = "ip"
	colMAC         = "mac"
	colCriticality = "criticality"
	colPatchable   = "patchable"
)

// record is one validated inventory row with where it came from.
type record struct {
	asset  ingest.Asset
	ip     netip.Addr
	mac    [6]byte
	hasMAC bool
	line   int
}

// parseCSV reads a header row (device,ip,mac,site,hw,fw,owner,criticality,
// patchable plus any extra attribute columns, in any order; only device is
// required) and one asset per row. Lines starting with # are comments.
func parseCSV(r io.Reader) ([]record, error) {
	cr := csv.NewReader(io.LimitReader(r, maxFileBytes))
	cr.Comment = '#'
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read CSV header: %w", err)
	}
	cols := make([]string, len(header))
	seen := make(map[string]bool, len(header))
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if h == "" {
			return nil, fmt.Errorf("line 1: column %d has no name; name every column in the header", i+1)
		}
		if seen[h] {
			return nil, fmt.Errorf("line 1: column %q appears twice; keep one", h)
		}
		seen[h] = true
		cols[i] = h
	}
	if !seen[colDevice] {
		return nil, fmt.Errorf("line 1: no %q column; the header must name one, e.g. device,ip,mac,site,hw,fw,owner,criticality,patchable", colDevice)
	}
	var recs []record
	for {
		row, err := cr.Read()
		if err == io.EOF {
			return recs, nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("line %d: %w; every row needs the header's %d columns", pe.Line, pe.Err, len(cols))
			}
			return nil, fmt.Errorf("cannot read CSV: %w", err)
		}
		line, _ := cr.FieldPos(0)
		rec, err := newRecord(line, func(visit func(k, v string) error) error {
			for i, v := range row {
				if err := visit(cols[i], v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
}

// parseJSON reads an array of objects whose keys are the CSV columns.
// Values are strings; patchable may also be a boolean and attributes
// numbers.
func parseJSON(r io.Reader) ([]record, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFileBytes))
	if err != nil {
		return nil, fmt.Errorf("cannot read inventory: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	lineAt := func(off int64) int { return 1 + bytes.Count(data[:min(int(off), len(data))], []byte("\n")) }
	tok, err := dec.Token()
	if err == io.EOF {
		return nil, nil
	}
	if d, ok := tok.(json.Delim); err != nil || !ok || d != '[' {
		return nil, fmt.Errorf("line %d: the JSON inventory must be an array of objects, one per device", lineAt(dec.InputOffset()))
	}
	var recs []record
	for dec.More() {
		start := dec.InputOffset()
		// Skip the separator and blanks so the line is the object's own.
		for start < int64(len(data)) && strings.IndexByte(", \t\r\n", data[start]) >= 0 {
			start++
		}
		line := lineAt(start)
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			return nil, fmt.Errorf("line %d: %w; each element must be an object of strings", line, err)
		}
		rec, err := newRecord(line, func(visit func(k, v string) error) error {
			// Sorted so the first error reported does not vary between runs.
			for _, k := range slices.Sorted(maps.Keys(obj)) {
				v := obj[k]
				var s string
				switch x := v.(type) {
				case nil:
				case string:
					s = x
				case bool:
					s = strconv.FormatBool(x)
				case json.Number:
					s = x.String()
				default:
					return fmt.Errorf("line %d: %q is a JSON array or object; use a string", line, k)
				}
				if err := visit(strings.ToLower(k), s); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("line %d: %w; close the array with ]", lineAt(dec.InputOffset()), err)
	}
	return recs, nil
}

// newRecord validates one asset whose fields each calls visit with.
func newRecord(line int, each func(visit func(k, v string) error) error) (record, error) {
	rec := record{line: line, asset: ingest.Asset{Attrs: map[string]string{}}}
	err := each(func(k, v string) error {
		v = strings.TrimSpace(v)
		switch k {
		case colDevice:
			rec.asset.Device = v
		case colIP:
			if v == "" {
				return nil
			}
			ip, err := netip.ParseAddr(v)
			if err != nil {
				return fmt.Errorf("line %d: ip %q is not an IP address; write it like 10.1.2.3 or leave it empty", line, v)
			}
			rec.ip = ip.Unmap()
			rec.asset.IP = rec.ip.String()
		case colMAC:
			if v == "" {
				return nil
			}
			hw, err := net.ParseMAC(v)
			if err != nil || len(hw) != 6 {
				return fmt.Errorf("line %d: mac %q is not a 6-byte MAC address; write it like 00:1b:1b:0a:0b:0c or leave it empty", line, v)
			}
			copy(rec.mac[:], hw)
			rec.hasMAC = true
			rec.asset.MAC = hw.String()
		case colCriticality:
			c, ok := parseCriticality(v)
			if !ok {
				return fmt.Errorf("line %d: unknown criticality %q; use low, medium, high or safety-critical", line, v)
			}
			rec.asset.Criticality = c
		case colPatchable:
			p, ok := parsePatchable(v)
			if !ok {
				return fmt.Errorf("line %d: patchable %q is not a yes/no value; use true or false", line, v)
			}
			rec.asset.Patchable = p
		default:
			if v != "" {
				rec.asset.Attrs[k] = v
			}
		}
		return nil
	})
	if err != nil {
		return record{}, err
	}
	if rec.asset.Device == "" {
		return record{}, fmt.Errorf("line %d: no device id; every row needs one", line)
	}
	return rec, nil
}

func parseCriticality(v string) (ingest.Criticality, bool) {
	switch strings.ToLower(v) {
	case "":
		return ingest.CriticalityUnknown, true
	case "low":
		return ingest.CriticalityLow, true
	case "medium":
		return ingest.CriticalityMedium, true
	case "high":
		return ingest.CriticalityHigh, true
	case "safety-critical", "safety_critical", "safety":
		return ingest.CriticalitySafety, true
	}
	return ingest.CriticalityUnknown, false
}

func parsePatchable(v string) (bool, bool) {
	switch strings.ToLower(v) {
	case "", "false", "no", "n", "0":
		return false, true
	case "true", "yes", "y", "1":
		return true, true
	}
	return false, false
}
