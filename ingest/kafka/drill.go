package kafka

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/vigil-ot/vigil/ingest"
)

// HeaderDrill marks a drill record: its value is the hex HMAC-SHA256 of
// the record value under the drill key (see DrillTag).
const HeaderDrill = "vigil-drill"

// ReasonDrillForged is the rejection of a record that claims to be a drill
// without a valid tag, or a drill device's record without one.
const ReasonDrillForged = "drill_forged"

// DrillTag returns the drill header value of a record with value under key.
func DrillTag(key, value []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(value)
	return hex.AppendEncode(nil, m.Sum(nil))
}

// DrillCheck verifies drill records. The zero DrillCheck refuses every
// drill header and names no drill device.
type DrillCheck struct {
	Key          []byte // the shared drill key; empty: every drill header is forged
	DevicePrefix string // drill device names start with it; "": none
}

// IsDrillDevice reports whether device is named as a drill device.
func (d *DrillCheck) IsDrillDevice(device string) bool {
	return d.DevicePrefix != "" && strings.HasPrefix(device, d.DevicePrefix)
}

// verify reports whether tag is value's drill tag, in constant time.
func (d *DrillCheck) verify(tag, value []byte) bool {
	if len(d.Key) == 0 || len(tag) != 2*sha256.Size {
		return false
	}
	want := DrillTag(d.Key, value)
	return hmac.Equal(want, tag)
}

// check returns nil when a record (its drill header value, present or
// not, and its value) may yield rows: a record with a valid tag only rows
// of drill devices, any other record only rows of real devices. The error
// says why not, never what the key is.
func (d *DrillCheck) check(tag []byte, tagged bool, value []byte, rows []ingest.Row) error {
	drill := tagged && d.verify(tag, value)
	if tagged && !drill {
		return &RejectError{Why: ReasonDrillForged, Err: errors.New("the vigil-drill header is not the record's HMAC under the drill key; check drill.key_env on the producer and on vigil run")}
	}
	for i := range rows {
		dev := rows[i].Device
		isDrill := d.IsDrillDevice(dev)
		switch {
		case drill && !isDrill:
			return &RejectError{Why: ReasonDrillForged, Err: fmt.Errorf("a drill record names device %q, which does not start with drill.device_prefix %q", dev, d.DevicePrefix)}
		case !drill && isDrill:
			return &RejectError{Why: ReasonDrillForged, Err: fmt.Errorf("device %q is named as a drill device (drill.device_prefix %q) but the record has no vigil-drill tag", dev, d.DevicePrefix)}
		}
	}
	return nil
}

// drillHeader returns the value of the record's vigil-drill header, and
// whether it has one.
func drillHeader(rec *Record) ([]byte, bool) {
	for _, h := range rec.Headers {
		if h.Key == HeaderDrill {
			return h.Value, true
		}
	}
	return nil, false
}
