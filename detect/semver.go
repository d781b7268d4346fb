package detect

import "cmp"

// compareVersions compares firmware versions a and b the way vendors write
// them: an optional leading "v", dot- or dash-separated fields compared
// numerically when both are numbers and lexically otherwise, and a
// pre-release suffix ("-rc1", "-beta") ordered before the release itself.
// It returns -1, 0 or +1 and allocates nothing.
func compareVersions(a, b string) int {
	a, b = trimV(a), trimV(b)
	aCore, aPre := splitPre(a)
	bCore, bPre := splitPre(b)
	if c := compareFields(aCore, bCore); c != 0 {
		return c
	}
	switch {
	case aPre == "" && bPre == "":
		return 0
	case aPre == "":
		return 1 // release after its pre-releases
	case bPre == "":
		return -1
	}
	return compareFields(aPre, bPre)
}

func trimV(s string) string {
	if len(s) > 1 && (s[0] == 'v' || s[0] == 'V') && s[1] >= '0' && s[1] <= '9' {
		return s[1:]
	}
	return s
}

// splitPre splits "2.9.4-rc1+build7" into "2.9.4" and "rc1"; build
// metadata is ignored, as semantic versioning orders it.
func splitPre(s string) (core, pre string) {
	for i := 0; i < len(s); i++ {
		if s[i] == '+' {
			s = s[:i]
			break
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '-' {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

// compareFields compares dot-separated fields; a missing field counts as
// zero, so 2.9 equals 2.9.0.
func compareFields(a, b string) int {
	for a != "" || b != "" {
		var fa, fb string
		fa, a = nextField(a)
		fb, b = nextField(b)
		if c := compareField(fa, fb); c != 0 {
			return c
		}
	}
	return 0
}

func nextField(s string) (field, rest string) {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' || s[i] == '_' {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

func compareField(a, b string) int {
	an, aNum := numeric(a)
	bn, bNum := numeric(b)
	switch {
	case aNum && bNum:
		return cmp.Compare(an, bn)
	case a == "" && bNum:
		return cmp.Compare(0, bn)
	case b == "" && aNum:
		return cmp.Compare(an, 0)
	case aNum:
		return -1 // numeric fields sort before alphanumeric ones, as in semver
	case bNum:
		return 1
	}
	return cmp.Compare(a, b)
}

// numeric parses an unsigned decimal field (at most 18 digits, so it
// cannot overflow).
func numeric(s string) (uint64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}
