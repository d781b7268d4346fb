// Package detect owns judgement: the detectors, the alarm lifecycle
// (hysteresis, suppression, maintenance windows, rate limits), severity,
// ATT&CK tags, the quarantine policy, the Alert type, the Sink interface it
// delivers to, and the Engine that wires source → baseline → detect → sink.
//
// Detectors hold no I/O: they append alerts for anomalous rows to a
// caller's slice. Everything runs on event time, so the same input always
// yields the same alerts.
package detect
