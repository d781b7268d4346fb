package detect

import (
	"math"
	"strconv"
	"strings"
)

// Messages are one line for a SOC analyst: who (device and group), what
// (the metric or behavior and its value), and against what (the device's
// usual value and its peers'). They allocate, which is fine: alerts are rare.

// formatValue renders v for metric name: bytes as B/kB/MB/GB, other values
// compactly (12, 0.35, 1.2k, 3.4M).
func formatValue(metric string, v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	if strings.Contains(strings.ToLower(metric), "bytes") {
		return formatScaled(v, []string{" B", " kB", " MB", " GB", " TB"})
	}
	return formatScaled(v, []string{"", "k", "M", "G", "T"})
}

func formatScaled(v float64, units []string) string {
	a := math.Abs(v)
	i := 0
	for a >= 1000 && i < len(units)-1 {
		a /= 1000
		v /= 1000
		i++
	}
	var s string
	switch {
	case i == 0 && v == math.Trunc(v) && a < 1e15:
		s = strconv.FormatInt(int64(v), 10)
	case a >= 100:
		s = strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 0.995 || i > 0:
		s = strings.TrimSuffix(strconv.FormatFloat(v, 'f', 1, 64), ".0")
	case a >= 0.01:
		s = strconv.FormatFloat(v, 'f', 2, 64)
	default:
		s = strconv.FormatFloat(v, 'g', 2, 64)
	}
	return s + units[i]
}

// formatRatio renders how many times usual v is ("12×", "1.8×").
func formatRatio(v, usual float64) (string, bool) {
	if usual <= 0 || v <= 0 {
		return "", false
	}
	r := v / usual
	switch {
	case r >= 10:
		return strconv.FormatFloat(r, 'f', 0, 64) + "×", true
	case r >= 1.5:
		return strconv.FormatFloat(r, 'f', 1, 64) + "×", true
	}
	return "", false
}

// who renders "plc-17 (plant-a/s7-1500)".
func who(device, group string) string {
	if group == "" {
		return device
	}
	return device + " (" + group + ")"
}

// writeReading writes what both deviation and peer messages open with:
// "<device> (<group>) <metric> <value>".
func writeReading(b *strings.Builder, device, group, metric string, v float64) {
	b.WriteString(who(device, group))
	b.WriteByte(' ')
	b.WriteString(metric)
	b.WriteByte(' ')
	b.WriteString(formatValue(metric, v))
}

// deviationMessage explains a metric value against the device's usual value
// and, when known, its peers' statistic.
func deviationMessage(device, group, metric string, v, usual float64, peerStat string, peerValue float64) string {
	var b strings.Builder
	writeReading(&b, device, group, metric, v)
	if r, ok := formatRatio(v, usual); ok {
		b.WriteString(", " + r + " its usual ")
	} else if v < usual {
		b.WriteString(", down from its usual ")
	} else {
		b.WriteString(", its usual is ")
	}
	b.WriteString(formatValue(metric, usual))
	if peerStat != "" && !math.IsNaN(peerValue) {
		b.WriteString(" (" + peerStat + " of peers " + formatValue(metric, peerValue) + ")")
	}
	return b.String()
}

// peerMessage explains a metric value against the device's group.
func peerMessage(device, group, metric string, v, median float64, stat string, statValue, usual float64) string {
	var b strings.Builder
	writeReading(&b, device, group, metric, v)
	if stat != "" {
		if v > statValue {
			b.WriteString(", above the " + stat + " of its peers " + formatValue(metric, statValue))
		} else {
			b.WriteString(", below the " + stat + " of its peers " + formatValue(metric, statValue))
		}
	}
	if r, ok := formatRatio(v, median); ok {
		b.WriteString(" (" + r + " the peer median " + formatValue(metric, median) + ")")
	} else {
		b.WriteString(" (peer median " + formatValue(metric, median) + ")")
	}
	if !math.IsNaN(usual) {
		b.WriteString("; its own usual " + formatValue(metric, usual))
	}
	return b.String()
}
