// Package score owns the judgement of Vigil's judgement: it scores the
// alerts of a replay against labels, so that every detection change can be
// measured before and after.
//
// It reads alerts (ReadAlerts, the JSON lines of the JSON sink) and labels
// (ParseIncidents for incident windows, ParsePacketLabels for per-packet
// labels; per-row labels come from the caller as []Row), pairs each alarm
// with its clear (Alarms), and Score computes the views a tuner needs:
//
//   - incidents: detected or missed, by which alarm, time to detect; false
//     alarms by device, detector and behavior, and per device-day;
//   - rows: confusion counts, precision, recall, F1, FAR and MAR, computed
//     as SKAB's leaderboard computes them;
//   - NAB: the Numenta Anomaly Benchmark window score (three profiles);
//   - SKAB: SKAB's changepoint variant of the NAB score (three profiles).
//
// Everything is a pure function of its input: no I/O besides the readers
// and writers handed in, no clock, so the same replay scores the same.
// The package does not import sinks: sinks imports detect, and the alert
// JSON it reads is a wire format, checked against sinks by a test.
package score
