package telemetry

import (
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fastjson"

	"github.com/vigil-ot/vigil/ingest"
)

// Metric names produced from a Device Defender report. They mirror the
// report's long key names, which AWS also uses for its aws:* metrics.
const (
	MetricBytesIn                = "bytes_in"
	MetricBytesOut               = "bytes_out"
	MetricPacketsIn              = "packets_in"
	MetricPacketsOut             = "packets_out"
	MetricListeningTCPPorts      = "listening_tcp_ports"
	MetricListeningUDPPorts      = "listening_udp_ports"
	MetricEstablishedConnections = "established_connections"
)

// field returns the value under the long or the short key name; a report
// uses one spelling throughout, but accepting either per object costs
// nothing and tolerates hand-made mixtures.
func field(o *fastjson.Object, long, short string) *fastjson.Value {
	if v := o.Get(long); v != nil {
		return v
	}
	return o.Get(short)
}

func objectField(o *fastjson.Object, long, short string) (*fastjson.Object, error) {
	v := field(o, long, short)
	if v == nil || v.Type() == fastjson.TypeNull {
		return nil, nil
	}
	obj, err := v.Object()
	if err != nil {
		return nil, reject(ReasonBadField, "%s is a JSON %s, not an object", long, v.Type())
	}
	return obj, nil
}

func arrayField(o *fastjson.Object, long, short string) ([]*fastjson.Value, error) {
	v := field(o, long, short)
	if v == nil || v.Type() == fastjson.TypeNull {
		return nil, nil
	}
	a, err := v.Array()
	if err != nil {
		return nil, reject(ReasonBadField, "%s is a JSON %s, not an array", long, v.Type())
	}
	return a, nil
}

// decodeDefender reads an AWS IoT Device Defender device-side metrics
// report in its long or short key names. The report does not name its
// thing (AWS knows it from the MQTT topic), so the device comes from a
// top-level field added by the bridge or from the message key, as
// configured. The event time is a top-level "ts" when a bridge adds one,
// else header.report_id when it is an epoch timestamp in seconds or
// milliseconds (as AWS recommends), else the transport timestamp.
func (d *Decoder) decodeDefender(obj *fastjson.Object, key []byte, transportNanos int64) error {
	r := d.nextRow()
	if err := d.defenderDevice(r, obj, key); err != nil {
		return err
	}
	if err := defenderTime(r, obj, transportNanos); err != nil {
		return err
	}
	met, err := objectField(obj, "metrics", "met")
	if err != nil {
		return err
	}
	if met != nil {
		if err := d.defenderMetrics(r, met); err != nil {
			return err
		}
	}
	cmet, err := objectField(obj, "custom_metrics", "cmet")
	if err != nil {
		return err
	}
	if cmet != nil {
		if err := d.defenderCustom(r, cmet); err != nil {
			return err
		}
	}
	if len(r.Metrics) == 0 && len(r.Sets) == 0 {
		return reject(ReasonNoMetrics, "Device Defender report of %q has no metrics", truncateString(r.Device))
	}
	return nil
}

func (d *Decoder) defenderDevice(r *ingest.Row, obj *fastjson.Object, key []byte) error {
	if d.defenderFromFld {
		if v := obj.Get(d.defenderDeviceFl); v != nil {
			s, err := stringField(v, d.defenderDeviceFl)
			if err != nil {
				return err
			}
			r.Device = strings.TrimSpace(s)
		}
	}
	if r.Device == "" && d.defenderFromKey {
		r.Device = deviceFromKey(key)
	}
	if r.Device == "" {
		return reject(ReasonMissingDevice, "Device Defender report without a %q field or message key; see input.telemetry.defender.device_source", d.defenderDeviceFl)
	}
	return nil
}

func defenderTime(r *ingest.Row, obj *fastjson.Object, transportNanos int64) error {
	if v := obj.Get("ts"); v != nil {
		ts, err := parseTime(v, int64(time.Millisecond))
		r.TimeNanos = ts
		return err
	}
	hdr, err := objectField(obj, "header", "hed")
	if err != nil {
		return err
	}
	if hdr != nil {
		if v := field(hdr, "report_id", "rid"); v != nil {
			if rid, err := v.Float64(); err == nil {
				switch {
				case rid >= 1e9 && rid < 1e11: // seconds: 2001 … 5138
					r.TimeNanos = int64(rid) * int64(time.Second)
					return nil
				case rid >= 1e12 && rid < 1e14: // milliseconds
					r.TimeNanos = int64(rid) * int64(time.Millisecond)
					return nil
				}
			}
		}
	}
	if transportNanos > 0 {
		r.TimeNanos = transportNanos
		return nil
	}
	return reject(ReasonBadTimestamp, "Device Defender report_id is not an epoch timestamp and there is no transport timestamp")
}

func (d *Decoder) defenderMetrics(r *ingest.Row, met *fastjson.Object) error {
	ns, err := objectField(met, "network_stats", "ns")
	if err != nil {
		return err
	}
	if ns != nil {
		for _, m := range [...]struct{ long, short, name string }{
			{"bytes_in", "bi", MetricBytesIn},
			{"bytes_out", "bo", MetricBytesOut},
			{"packets_in", "pi", MetricPacketsIn},
			{"packets_out", "po", MetricPacketsOut},
		} {
			if v := field(ns, m.long, m.short); v != nil {
				if err := d.addNamedMetric(r, m.name, v); err != nil {
					return err
				}
			}
		}
	}
	if err := d.defenderPorts(r, met, "listening_tcp_ports", "tp", SetListeningTCPPorts); err != nil {
		return err
	}
	if err := d.defenderPorts(r, met, "listening_udp_ports", "up", SetListeningUDPPorts); err != nil {
		return err
	}
	tc, err := objectField(met, "tcp_connections", "tc")
	if err != nil || tc == nil {
		return err
	}
	ec, err := objectField(tc, "established_connections", "ec")
	if err != nil || ec == nil {
		return err
	}
	conns, err := arrayField(ec, "connections", "cs")
	if err != nil {
		return err
	}
	for _, c := range conns {
		co, err := c.Object()
		if err != nil {
			return reject(ReasonBadField, "a connection is a JSON %s, not an object", c.Type())
		}
		v := field(co, "remote_addr", "rad")
		if v == nil {
			continue
		}
		b, err := v.StringBytes()
		if err != nil {
			return reject(ReasonBadField, "remote_addr is a JSON %s, not a string", v.Type())
		}
		host, ok := remoteHost(b)
		if !ok {
			return reject(ReasonBadField, "remote_addr %q is not an address:port", truncate(b))
		}
		r.Sets = append(r.Sets, ingest.SetMember{Set: SetRemoteAddrs, Value: d.intern(host)})
	}
	return d.addCount(r, MetricEstablishedConnections, ec, len(conns))
}

// defenderPorts records a listening-ports block: its count as a metric and
// each port as a set member.
func (d *Decoder) defenderPorts(r *ingest.Row, met *fastjson.Object, long, short, set string) error {
	o, err := objectField(met, long, short)
	if err != nil || o == nil {
		return err
	}
	ports, err := arrayField(o, "ports", "pts")
	if err != nil {
		return err
	}
	for _, p := range ports {
		po, err := p.Object()
		if err != nil {
			return reject(ReasonBadField, "a %s entry is a JSON %s, not an object", long, p.Type())
		}
		v := field(po, "port", "pt")
		if v == nil {
			return reject(ReasonBadField, "a %s entry has no port", long)
		}
		n, err := v.Int()
		if err != nil || n < 0 || n > 65535 {
			return reject(ReasonBadField, "%s port %s is not 0…65535", long, truncateString(v.String()))
		}
		d.scratch = strconv.AppendInt(d.scratch[:0], int64(n), 10)
		r.Sets = append(r.Sets, ingest.SetMember{Set: set, Value: d.intern(d.scratch)})
	}
	return d.addCount(r, set, o, len(ports))
}

// addCount records the report's total, or the number of listed entries
// when it gives none.
func (d *Decoder) addCount(r *ingest.Row, name string, o *fastjson.Object, listed int) error {
	if v := field(o, "total", "t"); v != nil {
		return d.addNamedMetric(r, name, v)
	}
	r.Metrics = append(r.Metrics, ingest.Metric{Name: name, Value: float64(listed)})
	return nil
}

// addNamedMetric adds a metric whose name is a constant, so it needs no
// interning.
func (d *Decoder) addNamedMetric(r *ingest.Row, name string, v *fastjson.Value) error {
	x, err := v.Float64()
	if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
		return reject(ReasonBadMetric, "metric %q is not a finite number", name)
	}
	r.Metrics = append(r.Metrics, ingest.Metric{Name: name, Value: x})
	return nil
}

// defenderCustom reads custom_metrics: each metric is an array holding one
// object with number, number_list, string_list or ip_list. Numbers become
// metrics; lists become set members named after the metric.
func (d *Decoder) defenderCustom(r *ingest.Row, cmet *fastjson.Object) error {
	var err error
	cmet.Visit(func(name []byte, v *fastjson.Value) {
		if err != nil {
			return
		}
		items, e := v.Array()
		if e != nil {
			err = reject(ReasonBadField, "custom metric %q is a JSON %s, not an array", truncate(name), v.Type())
			return
		}
		for _, it := range items {
			if err = d.customValue(r, name, it); err != nil {
				return
			}
		}
	})
	return err
}

func (d *Decoder) customValue(r *ingest.Row, name []byte, it *fastjson.Value) error {
	o, err := it.Object()
	if err != nil {
		return reject(ReasonBadField, "custom metric %q holds a JSON %s, not an object", truncate(name), it.Type())
	}
	if v := o.Get("number"); v != nil {
		return d.addMetric(r, name, v)
	}
	set := ""
	for _, kind := range [...]string{"number_list", "string_list", "ip_list"} {
		list := o.Get(kind)
		if list == nil {
			continue
		}
		elems, err := list.Array()
		if err != nil {
			return reject(ReasonBadField, "custom metric %q %s is a JSON %s, not an array", truncate(name), kind, list.Type())
		}
		if set == "" {
			set = d.intern(name)
		}
		for _, e := range elems {
			var b []byte
			switch kind {
			case "number_list":
				x, err := e.Float64()
				if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
					return reject(ReasonBadMetric, "custom metric %q number_list holds a non-number", truncate(name))
				}
				d.scratch = strconv.AppendFloat(d.scratch[:0], x, 'g', -1, 64)
				b = d.scratch
			default:
				if b, err = e.StringBytes(); err != nil {
					return reject(ReasonBadField, "custom metric %q %s holds a JSON %s, not a string", truncate(name), kind, e.Type())
				}
				if kind == "ip_list" {
					if _, err := netip.ParseAddr(b2s(b)); err != nil {
						return reject(ReasonBadField, "custom metric %q ip_list holds %q, not an IP address", truncate(name), truncate(b))
					}
				}
			}
			r.Sets = append(r.Sets, ingest.SetMember{Set: set, Value: d.intern(b)})
		}
		return nil
	}
	return reject(ReasonBadField, "custom metric %q has none of number, number_list, string_list, ip_list", truncate(name))
}

// remoteHost returns the address part of "a.b.c.d:port" or "[v6]:port".
func remoteHost(b []byte) ([]byte, bool) {
	s := b2s(b)
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return nil, false
	}
	host, port := b[:i], s[i+1:]
	if len(host) > 2 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return nil, false
	}
	if _, err := netip.ParseAddr(b2s(host)); err != nil {
		return nil, false
	}
	return host, true
}
