package csvts

import (
	"path/filepath"
	"strings"
)

// stdinName is the device of CSV rows read from standard input ("-").
const stdinName = "stdin"

// DeviceNames returns the device of each CSV file when rows carry no
// device column: the file's stem (valve1/0.csv and valve1/0.csv.gz give
// "0"). Files that share a stem are told apart by their folders: the
// parent folder and the stem ("valve1/0", "valve2/0"), and more folders
// while names still collide. The same paths always give the same names,
// whatever the order; a path given twice gives one name twice.
func DeviceNames(paths []string) []string {
	parts := make([][]string, len(paths))
	for i, p := range paths {
		parts[i] = pathParts(p)
	}
	depth := make([]int, len(paths)) // folders in each name
	names := make([]string, len(paths))
	for {
		for i := range paths {
			names[i] = joinLast(parts[i], depth[i])
		}
		// Raise the depth of every name two different files share.
		byName := map[string][]int{}
		for i, n := range names {
			byName[n] = append(byName[n], i)
		}
		grew := false
		for _, idx := range byName {
			for _, i := range idx {
				if depth[i]+1 < len(parts[i]) && anotherFile(idx, parts, i) {
					depth[i]++
					grew = true
				}
			}
		}
		if !grew {
			return names
		}
	}
}

// anotherFile reports whether idx holds a file other than parts[i].
func anotherFile(idx []int, parts [][]string, i int) bool {
	for _, j := range idx {
		if strings.Join(parts[j], "/") != strings.Join(parts[i], "/") {
			return true
		}
	}
	return false
}

// pathParts returns the folders of an absolute form of path, then its
// stem.
func pathParts(path string) []string {
	if path == "-" {
		return []string{stdinName}
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	path = filepath.ToSlash(filepath.Clean(path))
	dir, base := filepath.Split(path)
	var parts []string
	for _, d := range strings.Split(strings.Trim(dir, "/"), "/") {
		if d != "" {
			parts = append(parts, d)
		}
	}
	return append(parts, stem(base))
}

// stem is base without .gz and then its last extension.
func stem(base string) string {
	base = strings.TrimSuffix(base, ".gz")
	if ext := filepath.Ext(base); ext != "" && ext != base {
		base = strings.TrimSuffix(base, ext)
	}
	return base
}

func joinLast(parts []string, folders int) string {
	return strings.Join(parts[len(parts)-1-folders:], "/")
}
