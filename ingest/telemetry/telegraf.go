package telemetry

import (
	"github.com/valyala/fastjson"

	"github.com/vigil-ot/vigil/ingest"
)

// decodeTelegraf reads the output of Telegraf's JSON serializer, either one
// metric per message
//
//	{"fields":{"bytes_out":1234},"name":"net","tags":{"host":"plc-17","site":"plant-a"},"timestamp":1795687200}
//
// or its batch form {"metrics":[…]}. A metric named "net" with field
// "bytes_out" becomes the metric "net.bytes_out". Consecutive metrics of a
// batch with the same device and timestamp — Telegraf emits one per
// measurement of the same gather — are merged into one row, so a device's
// measurements of one interval are judged together. String fields are
// skipped: they are not numbers to learn from.
func (d *Decoder) decodeTelegraf(obj *fastjson.Object, key []byte) error {
	batch := obj.Get("metrics")
	if batch == nil {
		return d.telegrafMetric(obj, key, false)
	}
	items, err := batch.Array()
	if err != nil {
		return reject(ReasonBadField, "metrics is a JSON %s, not an array of Telegraf metrics", batch.Type())
	}
	for i, it := range items {
		o, err := it.Object()
		if err != nil {
			return reject(ReasonBadField, "metrics[%d] is a JSON %s, not an object", i, it.Type())
		}
		if err := d.telegrafMetric(o, key, true); err != nil {
			return err
		}
	}
	if len(d.rows) == 0 {
		return reject(ReasonNoMetrics, "Telegraf batch has no metric with a numeric field")
	}
	return nil
}

// telegrafMetric decodes one Telegraf metric into a new row, or into the
// previous row when device and time match. In a batch, a metric without
// numeric fields is skipped; alone, it is rejected.
func (d *Decoder) telegrafMetric(obj *fastjson.Object, key []byte, inBatch bool) error {
	nameV, fields, tags, tsV := obj.Get("name"), obj.Get("fields"), obj.Get("tags"), obj.Get("timestamp")
	if nameV == nil || fields == nil {
		return reject(ReasonBadField, "a Telegraf metric needs \"name\" and \"fields\"")
	}
	name, err := nameV.StringBytes()
	if err != nil {
		return reject(ReasonBadField, "Telegraf name is a JSON %s, not a string", nameV.Type())
	}
	if tsV == nil {
		return reject(ReasonBadTimestamp, "Telegraf metric %q has no timestamp", truncate(name))
	}
	ts, err := parseTime(tsV, d.telegrafUnit)
	if err != nil {
		return err
	}
	var tagObj *fastjson.Object
	device := ""
	if tags != nil && tags.Type() != fastjson.TypeNull {
		if tagObj, err = tags.Object(); err != nil {
			return reject(ReasonBadField, "Telegraf tags is a JSON %s, not an object", tags.Type())
		}
		if dv := tagObj.Get(d.telegrafDevice); dv != nil {
			if device, err = stringField(dv, "device tag"); err != nil {
				return err
			}
		}
	}
	if device == "" {
		if device = deviceFromKey(key); device == "" {
			return reject(ReasonMissingDevice, "Telegraf metric %q has no %q tag and no message key", truncate(name), d.telegrafDevice)
		}
	}
	r := d.rowFor(device, ts)
	if err := d.telegrafAttrs(r, tagObj); err != nil {
		return err
	}
	fo, err := fields.Object()
	if err != nil {
		return reject(ReasonBadField, "Telegraf fields is a JSON %s, not an object", fields.Type())
	}
	fo.Visit(func(k []byte, v *fastjson.Value) {
		if err != nil {
			return
		}
		switch v.Type() {
		case fastjson.TypeNumber, fastjson.TypeTrue, fastjson.TypeFalse:
			d.scratch = append(append(append(d.scratch[:0], name...), '.'), k...)
			err = d.addMetric(r, d.scratch, v)
		}
	})
	if err != nil {
		return err
	}
	if len(r.Metrics) == 0 {
		d.rows = d.rows[:len(d.rows)-1]
		if !inBatch {
			return reject(ReasonNoMetrics, "Telegraf metric %q of device %q has no numeric field", truncate(name), truncateString(device))
		}
	}
	return nil
}

// rowFor returns the previous row when it has the same device and time,
// else a new one.
func (d *Decoder) rowFor(device string, ts int64) *ingest.Row {
	if n := len(d.rows); n > 0 {
		if r := &d.rows[n-1]; r.Device == device && r.TimeNanos == ts {
			return r
		}
	}
	r := d.nextRow()
	r.Device, r.TimeNanos = device, ts
	return r
}

func (d *Decoder) telegrafAttrs(r *ingest.Row, tags *fastjson.Object) error {
	if tags == nil {
		return nil
	}
	var err error
	if len(d.telegrafAttrTags) > 0 {
		for _, t := range d.telegrafAttrTags {
			v := tags.Get(t)
			if v == nil {
				continue
			}
			s, e := stringField(v, "Telegraf tag")
			if e != nil {
				return e
			}
			if s != "" && !hasAttr(r, t) {
				setAttr(r, t, s)
			}
		}
		return nil
	}
	tags.Visit(func(k []byte, v *fastjson.Value) {
		if err != nil || string(k) == d.telegrafDevice {
			return
		}
		var s string
		if s, err = stringField(v, "Telegraf tag"); err == nil && s != "" && !hasAttr(r, b2s(k)) {
			setAttr(r, b2s(k), s)
		}
	})
	return err
}

// hasAttr reports whether r already has attribute k, as a row merged from
// several measurements repeats their common tags.
func hasAttr(r *ingest.Row, k string) bool {
	for _, a := range r.Attrs {
		if a.Key == k {
			return true
		}
	}
	return false
}
