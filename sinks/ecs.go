package sinks

import (
	"net/netip"
	"strconv"

	"github.com/vigil-ot/vigil/detect"
)

// ecsVersion is the Elastic Common Schema version the ECS form follows.
const ecsVersion = "8.11.0"

// AppendAlertECS appends a as one JSON object with Elastic Common Schema
// field names; see Encoder with FormatECS for the host name.
func AppendAlertECS(dst []byte, a *detect.Alert) []byte { return appendAlertECS(dst, a, "") }

// appendAlertECS appends a as one JSON object with Elastic Common Schema
// field names (event.*, rule.*, source.*, destination.*, threat.*), so that
// Elastic and Splunk CIM mappings find the fields where they expect them.
// What ECS has no field for lives under "vigil", with the schema version
// (vigil.drill true on drill alerts).
func appendAlertECS(dst []byte, a *detect.Alert, host string) []byte {
	dst = append(dst, `{"@timestamp":`...)
	dst = appendJSONTime(dst, a.EventTime)
	dst = append(dst, `,"ecs":{"version":"`+ecsVersion+`"}`...)
	dst = append(dst, `,"event":{"kind":"alert","category":["intrusion_detection"],"type":["info"],"module":"vigil","dataset":"vigil.alert"`...)
	dst = appendJSONKeyString(dst, "id", a.ID)
	dst = appendJSONKeyString(dst, "action", a.State)
	dst = appendJSONKeyInt(dst, "severity", int64(clampSeverity(a.Severity)))
	dst = appendJSONKeyFloat(dst, "risk_score", a.Score)
	dst = appendJSONKeyTime(dst, "start", a.AlarmStart)
	dst = appendJSONKeyTime(dst, "created", a.ProcessingTime)
	dst = appendJSONKeyString(dst, "reason", a.Message)
	dst = append(dst, '}')
	dst = appendJSONKeyString(dst, "message", a.Message)
	dst = append(dst, `,"rule":{"ruleset":"vigil"`...)
	dst = appendJSONKeyString(dst, "name", a.Behavior)
	dst = appendJSONKeyString(dst, "category", a.Detector)
	dst = append(dst, `},"device":{`...)
	dst = append(dst, `"id":`...)
	dst = appendJSONString(dst, a.Device)
	dst = append(dst, `},"labels":{"group":`...)
	dst = appendJSONString(dst, a.Group)
	dst = appendJSONKeyString(dst, "criticality", a.Criticality)
	dst = append(dst, '}')
	if a.Technique != "" {
		dst = append(dst, `,"threat":{"framework":"MITRE ATT&CK for ICS","technique":{"id":[`...)
		dst = appendJSONString(dst, a.Technique)
		dst = append(dst, `]}}`...)
	}
	dst = appendECSEndpoint(dst, "source", a.SrcIP, a.SrcPort, a.SrcMAC)
	dst = appendECSEndpoint(dst, "destination", a.DstIP, a.DstPort, a.DstMAC)
	if a.Transport != "" || a.Protocol != "" {
		dst = append(dst, `,"network":{"transport":`...)
		dst = appendJSONString(dst, a.Transport)
		dst = appendJSONKeyString(dst, "protocol", a.Protocol)
		dst = append(dst, '}')
	}
	dst = appendECSObserver(dst, host)
	dst = append(dst, `,"vigil":{"schema_version":`...)
	dst = strconv.AppendInt(dst, detect.AlertSchemaVersion, 10)
	dst = appendJSONKeyString(dst, "state", a.State)
	dst = appendJSONKeyFloat(dst, "observed", a.Observed)
	dst = appendJSONKeyString(dst, "observed_text", a.ObservedText)
	dst = appendJSONKeyFloat(dst, "expected", a.Expected)
	dst = appendJSONKeyFloat(dst, "lower", a.Lower)
	dst = appendJSONKeyFloat(dst, "upper", a.Upper)
	dst = appendJSONKeyFloat(dst, "score", a.Score)
	dst = appendJSONKeyString(dst, "severity_name", detect.SeverityName(a.Severity))
	dst = appendJSONKeyInt(dst, "sample_count", a.SampleCount)
	dst = append(dst, `,"baseline":`...)
	dst = strconv.AppendUint(dst, a.Baseline, 10)
	dst = appendJSONKeyInt(dst, "partition", int64(a.Partition))
	dst = appendJSONKeyInt(dst, "offset", a.Offset)
	if a.IsDrill() {
		dst = append(dst, `,"drill":true`...)
	}
	if a.Rollout != nil {
		dst = appendRolloutJSON(appendJSONKey(dst, "rollout"), a.Rollout)
	}
	return append(dst, `}}`...)
}

// appendQuarantineECS appends q with ECS field names: an event of kind
// "event", category "host", type "change", action the quarantine action.
func appendQuarantineECS(dst []byte, q *detect.QuarantineEvent, host string) []byte {
	dst = append(dst, `{"@timestamp":`...)
	dst = appendJSONTime(dst, q.Time)
	dst = append(dst, `,"ecs":{"version":"`+ecsVersion+`"}`...)
	dst = append(dst, `,"event":{"kind":"event","category":["host"],"type":["change"],"module":"vigil","dataset":"vigil.quarantine"`...)
	dst = appendJSONKeyString(dst, "id", q.ID)
	dst = appendJSONKeyString(dst, "action", q.Action)
	dst = appendJSONKeyInt(dst, "severity", int64(clampSeverity(q.Severity)))
	dst = appendJSONKeyTime(dst, "end", q.Expiry)
	dst = appendJSONKeyString(dst, "reason", q.Message)
	dst = append(dst, '}')
	dst = appendJSONKeyString(dst, "message", q.Message)
	dst = append(dst, `,"device":{"id":`...)
	dst = appendJSONString(dst, q.Device)
	dst = append(dst, `},"labels":{"group":`...)
	dst = appendJSONString(dst, q.Group)
	dst = appendJSONKeyString(dst, "target_group", q.TargetGroup)
	dst = appendJSONKeyString(dst, "mode", q.Mode)
	dst = append(dst, '}')
	dst = appendECSObserver(dst, host)
	dst = append(dst, `,"vigil":{"schema_version":`...)
	dst = strconv.AppendInt(dst, detect.QuarantineSchemaVersion, 10)
	dst = append(dst, `,"reasons":`...)
	dst = appendJSONStrings(dst, q.Reasons)
	dst = appendJSONKeyTime(dst, "expiry", q.Expiry)
	return append(dst, `}}`...)
}

func appendECSObserver(dst []byte, host string) []byte {
	dst = append(dst, `,"observer":{"vendor":"Vigil","product":"Vigil","type":"ids"`...)
	if host != "" {
		dst = appendJSONKeyString(dst, "hostname", host)
	}
	return append(dst, '}')
}

// appendECSEndpoint appends source or destination. ECS maps ip as an IP
// field, so a value that is not an address would make Elasticsearch reject
// the whole document: such a value goes to "address", which takes any text.
func appendECSEndpoint(dst []byte, name, ip string, port uint16, mac string) []byte {
	if ip == "" && port == 0 && mac == "" {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, `":{`...)
	sep := false
	if ip != "" {
		if _, err := netip.ParseAddr(ip); err == nil {
			dst = append(dst, `"ip":`...)
		} else {
			dst = append(dst, `"address":`...)
		}
		dst = appendJSONString(dst, ip)
		sep = true
	}
	if port != 0 {
		if sep {
			dst = append(dst, ',')
		}
		dst = append(dst, `"port":`...)
		dst = strconv.AppendUint(dst, uint64(port), 10)
		sep = true
	}
	if mac != "" {
		if sep {
			dst = append(dst, ',')
		}
		dst = append(dst, `"mac":`...)
		dst = appendJSONString(dst, mac)
	}
	return append(dst, '}')
}
