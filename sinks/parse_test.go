package sinks

import (
	"errors"
	"fmt"
	"strings"
)

// parseCEF splits a CEF line the way ArcSight's parser reads it: seven
// header fields separated by unescaped pipes, then key=value pairs where a
// key is the word before an unescaped '='. It returns unescaped values and
// fails on a duplicate key, so an injected key shows up as an error.
func parseCEF(line string) ([]string, map[string]string, []string, error) {
	var header []string
	var cur strings.Builder
	i := 0
	for ; i < len(line) && len(header) < 7; i++ {
		c := line[i]
		switch {
		case c == '\\' && i+1 < len(line) && (line[i+1] == '\\' || line[i+1] == '|'):
			cur.WriteByte(line[i+1])
			i++
		case c == '|':
			header = append(header, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if len(header) != 7 || !strings.HasPrefix(header[0], "CEF:") {
		return nil, nil, nil, fmt.Errorf("header has %d fields", len(header))
	}
	ext := line[i:]
	// Positions of unescaped '='.
	var eqs []int
	for j := 0; j < len(ext); j++ {
		if ext[j] == '\\' {
			j++
			continue
		}
		if ext[j] == '=' {
			eqs = append(eqs, j)
		}
	}
	kv := make(map[string]string)
	var order []string
	for n, eq := range eqs {
		ks := strings.LastIndexByte(ext[:eq], ' ') + 1
		key := ext[ks:eq]
		end := len(ext)
		if n+1 < len(eqs) {
			end = strings.LastIndexByte(ext[:eqs[n+1]], ' ')
		}
		if key == "" || end < eq {
			return nil, nil, nil, fmt.Errorf("malformed extension near %q", ext[ks:])
		}
		if _, dup := kv[key]; dup {
			return nil, nil, nil, fmt.Errorf("duplicate key %q", key)
		}
		kv[key] = unescapeCEF(ext[eq+1 : end])
		order = append(order, key)
	}
	return header, kv, order, nil
}

func unescapeCEF(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			default:
				b.WriteByte(s[i])
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// parseLEEF splits a LEEF 2.0 line: six pipe-separated header fields
// (version, vendor, product, version, event id, delimiter), then
// attributes separated by the declared delimiter, each split at its first
// '='. A duplicate key is an error.
func parseLEEF(line string) ([]string, map[string]string, []string, error) {
	parts := strings.SplitN(line, "|", 7)
	if len(parts) != 7 || parts[0] != "LEEF:2.0" {
		return nil, nil, nil, fmt.Errorf("header has %d fields", len(parts)-1)
	}
	delim := "\t"
	if d := parts[5]; d != "x09" {
		if len(d) != 3 || d[0] != 'x' {
			return nil, nil, nil, fmt.Errorf("delimiter field %q", d)
		}
		var b byte
		fmt.Sscanf(d[1:], "%02x", &b)
		delim = string(b)
	}
	kv := make(map[string]string)
	var order []string
	for _, attr := range strings.Split(parts[6], delim) {
		k, v, ok := strings.Cut(attr, "=")
		if !ok {
			return nil, nil, nil, errors.New("attribute without '='")
		}
		if _, dup := kv[k]; dup {
			return nil, nil, nil, fmt.Errorf("duplicate key %q", k)
		}
		kv[k] = v
		order = append(order, k)
	}
	return parts[:6], kv, order, nil
}

// unescapeLEEF reverses Vigil's LEEF value escaping.
func unescapeLEEF(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'x':
				var c byte
				fmt.Sscanf(s[i+1:i+3], "%02x", &c)
				b.WriteByte(c)
				i += 2
			default:
				b.WriteByte(s[i])
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
