package telemetry

import (
	"time"

	"github.com/valyala/fastjson"

	"github.com/vigil-ot/vigil/ingest"
)

// decodeNative reads Vigil's own layout:
//
//	{"device":"plc-17","ts":"2026-11-21T10:00:00.123Z",
//	 "attrs":{"site":"plant-a","hw":"s7-1500","fw":"2.9.4"},
//	 "metrics":{"bytes_out":1234,"msgs_sent":12},
//	 "conn":{"src_ip":"10.1.2.3","client_id":"plc-17","cert":"sha256:ab…"}}
//
// ts is RFC 3339 or epoch milliseconds; device falls back to the key; attrs
// and conn are optional; unknown top-level keys are ignored so producers can
// add fields without breaking older consumers.
func (d *Decoder) decodeNative(obj *fastjson.Object, key []byte, transportNanos int64) error {
	r := d.nextRow()
	var err error
	haveTime, haveMetrics := false, false
	obj.Visit(func(k []byte, v *fastjson.Value) {
		if err != nil {
			return
		}
		switch string(k) {
		case "device":
			r.Device, err = stringField(v, "device")
		case "ts":
			r.TimeNanos, err = parseTime(v, int64(time.Millisecond))
			haveTime = true
		case "attrs":
			err = d.nativeAttrs(r, v)
		case "metrics":
			haveMetrics = true
			err = d.nativeMetrics(r, v)
		case "conn":
			err = nativeConn(r, v)
		}
	})
	if err != nil {
		return err
	}
	if r.Device == "" {
		r.Device = deviceFromKey(key)
		if r.Device == "" {
			return reject(ReasonMissingDevice, "no \"device\" field and no message key")
		}
	}
	if !haveTime {
		if transportNanos <= 0 {
			return reject(ReasonBadTimestamp, "no \"ts\" field and no transport timestamp")
		}
		r.TimeNanos = transportNanos
	}
	if !haveMetrics || len(r.Metrics) == 0 {
		return reject(ReasonNoMetrics, "device %q reported no metrics", truncateString(r.Device))
	}
	return nil
}

func (d *Decoder) nativeMetrics(r *ingest.Row, v *fastjson.Value) error {
	o, err := v.Object()
	if err != nil {
		return reject(ReasonBadField, "metrics is a JSON %s, not an object", v.Type())
	}
	o.Visit(func(k []byte, mv *fastjson.Value) {
		if err == nil && mv.Type() != fastjson.TypeNull {
			err = d.addMetric(r, k, mv)
		}
	})
	return err
}

func (d *Decoder) nativeAttrs(r *ingest.Row, v *fastjson.Value) error {
	o, err := v.Object()
	if err != nil {
		return reject(ReasonBadField, "attrs is a JSON %s, not an object", v.Type())
	}
	o.Visit(func(k []byte, av *fastjson.Value) {
		if err != nil {
			return
		}
		if av.Type() == fastjson.TypeNull {
			return
		}
		var s string
		if s, err = stringField(av, "attribute"); err == nil && s != "" {
			setAttr(r, b2s(k), s)
		}
	})
	return err
}

func nativeConn(r *ingest.Row, v *fastjson.Value) error {
	o, err := v.Object()
	if err != nil {
		return reject(ReasonBadField, "conn is a JSON %s, not an object", v.Type())
	}
	o.Visit(func(k []byte, cv *fastjson.Value) {
		if err != nil {
			return
		}
		switch string(k) {
		case "src_ip":
			r.SrcIP, err = stringField(cv, "conn.src_ip")
		case "client_id":
			r.ClientID, err = stringField(cv, "conn.client_id")
		case "cert":
			r.Cert, err = stringField(cv, "conn.cert")
		}
	})
	return err
}

func truncateString(s string) string { return truncate([]byte(s)) }
