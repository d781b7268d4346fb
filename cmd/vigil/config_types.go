package main

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// explainDecodeError turns the YAML decoder's type errors, which name Go
// types ("cannot unmarshal !!str `five` into float64", "field slef not
// found in type detect.Config"), into errors that name the setting and what
// it takes: `line 7: detect.self.threshold: "five" is not a number`. It
// walks the document's node tree beside Config's type, so the setting's
// path and line come from the tree, not from the decoder's text. Any other
// error, or one the walk cannot explain, is returned as it is.
func explainDecodeError(data []byte, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return err
	}
	var errs []error
	checkSetting(doc.Content[0], reflect.TypeFor[Config](), "", &errs)
	if len(errs) == 0 {
		return err
	}
	return errors.Join(errs...)
}

// checkSetting checks that node n can be decoded as type t, the setting at
// path, and appends a settingError for each value of the wrong kind,
// unknown key and key set twice below it.
func checkSetting(n *yaml.Node, t reflect.Type, path string, errs *[]error) {
	if n.Kind == yaml.AliasNode {
		if n = n.Alias; n == nil {
			return
		}
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value leaves the default
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	wrongKind := func() {
		found := fmt.Sprintf("%q is not", n.Value)
		switch n.Kind {
		case yaml.MappingNode:
			found = "a mapping is not"
		case yaml.SequenceNode:
			found = "a list is not"
		}
		hint := ""
		if n.Kind == yaml.MappingNode && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			hint = `; start each item with "- "`
		}
		*errs = append(*errs, &settingError{path: path, line: n.Line, err: fmt.Errorf("%s %s%s", found, takes(t), hint)})
	}
	switch t.Kind() {
	case reflect.Interface:
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			wrongKind()
			return
		}
		fields := yamlFields(t)
		eachKey(n, path, errs, func(key, value *yaml.Node, p string) {
			ft, ok := fields[key.Value]
			if !ok {
				*errs = append(*errs, &settingError{path: p, line: key.Line, err: unknownSetting(key.Value, fields)})
				return
			}
			checkSetting(value, ft, p, errs)
		})
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			wrongKind()
			return
		}
		eachKey(n, path, errs, func(_, value *yaml.Node, p string) { checkSetting(value, t.Elem(), p, errs) })
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			wrongKind()
			return
		}
		for i, item := range n.Content {
			checkSetting(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	default:
		if n.Kind != yaml.ScalarNode {
			wrongKind()
			return
		}
		// The decoder itself judges the scalar, so what passes here is
		// exactly what the strict load accepts.
		if n.Decode(reflect.New(t).Interface()) != nil {
			wrongKind()
		}
	}
}

// eachKey calls f for each key of mapping n with the key's path, and
// reports a key set twice instead of calling f for it again.
func eachKey(n *yaml.Node, path string, errs *[]error, f func(key, value *yaml.Node, path string)) {
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key := n.Content[i]
		p := key.Value
		if path != "" {
			p = path + "." + key.Value
		}
		if line, dup := first[key.Value]; dup {
			*errs = append(*errs, &settingError{path: p, line: key.Line, err: fmt.Errorf("set twice (first at line %d); keep one", line)})
			continue
		}
		first[key.Value] = key.Line
		f(key, n.Content[i+1], p)
	}
}

// takes says in words what a setting of type t takes.
func takes(t reflect.Type) string {
	if t == reflect.TypeFor[time.Duration]() {
		return "a duration such as 90s, 5m or 24h"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number of 0 or more"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map:
		return "a mapping"
	case reflect.Struct:
		return "a mapping of settings"
	}
	return "a " + t.Kind().String()
}

// yamlFields returns the settings of struct type t by their YAML names,
// as the decoder names them: the tag's name, else the lower-cased field
// name; inline structs contribute their own.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, flags, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(flags, "inline") {
			for k, v := range yamlFields(f.Type) {
				fields[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields
}

// unknownSetting explains a key that is no setting: the setting it is
// most likely a typo of, or the settings there are.
func unknownSetting(key string, fields map[string]reflect.Type) error {
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names)
	best, bestDist := "", 3
	for _, name := range names {
		if d := editDistance(strings.ToLower(key), name); d < bestDist {
			best, bestDist = name, d
		}
	}
	if best != "" {
		return fmt.Errorf("unknown setting; did you mean %s?", best)
	}
	return fmt.Errorf("unknown setting; use %s", strings.Join(names, ", "))
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
