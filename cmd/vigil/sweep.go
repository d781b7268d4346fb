package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// variant is one config a score compares: the base config with some keys
// set to one value each (none for the base alone).
type variant struct {
	name string // "detect.self.threshold=4 …", or "config" for the base
	cfg  Config
}

// sweepVariants returns the base config (from path, or the defaults when
// path is empty) with each combination of the sweeps' values set, in
// order: the first sweep varies slowest. A sweep is KEY=V1,V2,… with KEY a
// dotted path of the YAML config, e.g. detect.self.threshold=3,4,5.
func sweepVariants(path string, sweeps []string) ([]variant, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("cannot read config: %w", err)
		}
	}
	if len(sweeps) == 0 {
		cfg, err := parseConfigIn(data, configDir(path))
		if err != nil {
			return nil, configError(path, err)
		}
		return []variant{{name: "config", cfg: cfg}}, nil
	}
	type sweep struct {
		key    string
		values []string
	}
	var parsed []sweep
	for _, s := range sweeps {
		key, vals, ok := strings.Cut(s, "=")
		if !ok || key == "" || vals == "" {
			return nil, fmt.Errorf("cannot parse --sweep %q: want KEY=V1,V2,… such as detect.self.threshold=3,4,5", s)
		}
		parsed = append(parsed, sweep{key: key, values: strings.Split(vals, ",")})
	}
	// Every combination, the last sweep varying fastest.
	combos := [][]string{nil}
	for _, sw := range parsed {
		var next [][]string
		for _, c := range combos {
			for _, v := range sw.values {
				next = append(next, append(append([]string(nil), c...), sw.key+"="+v))
			}
		}
		combos = next
	}
	var out []variant
	for _, c := range combos {
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return nil, configError(path, err)
		}
		for _, kv := range c {
			key, val, _ := strings.Cut(kv, "=")
			if err := setYAMLPath(&doc, key, val); err != nil {
				return nil, fmt.Errorf("cannot apply --sweep %s: %w", kv, err)
			}
		}
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		if err := enc.Encode(&doc); err != nil {
			return nil, fmt.Errorf("BUG: cannot encode swept config: %w", err)
		}
		cfg, err := parseConfigIn(buf.Bytes(), configDir(path))
		if err != nil {
			return nil, fmt.Errorf("--sweep %s: %w", strings.Join(c, " "), err)
		}
		out = append(out, variant{name: strings.Join(c, " "), cfg: cfg})
	}
	return out, nil
}

// configDir is the folder relative file names of the config at path are
// taken from; "" without a config file.
func configDir(path string) string {
	if path == "" {
		return ""
	}
	return filepath.Dir(path)
}

func configError(path string, err error) error {
	if path == "" {
		return err
	}
	return fmt.Errorf("cannot load config %s: %w", path, err)
}

// setYAMLPath sets the scalar at the dotted key path in doc to value,
// creating the mappings on the way. The value is written untyped, so the
// strict decoder reads it as the setting's own type (and names the key when
// it cannot).
func setYAMLPath(doc *yaml.Node, path, value string) error {
	if doc.Kind == 0 { // an empty file
		doc.Kind = yaml.DocumentNode
	}
	if len(doc.Content) == 0 {
		doc.Content = []*yaml.Node{{Kind: yaml.MappingNode}}
	}
	n := doc.Content[0]
	parts := strings.Split(path, ".")
	for i, part := range parts {
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("%s is not a section", strings.Join(parts[:i], "."))
		}
		child, _ := mappingValue(n, part)
		if child == nil {
			child = &yaml.Node{Kind: yaml.MappingNode}
			if i == len(parts)-1 {
				child = &yaml.Node{Kind: yaml.ScalarNode}
			}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: part}, child)
		}
		n = child
	}
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("%s is a section, not a setting", path)
	}
	n.Value, n.Tag, n.Style = value, "", 0
	return nil
}
