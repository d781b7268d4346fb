// Package baseline owns learned state, per device and per group: decayed
// moments at several half-lives, quantile and distinct-count sketches,
// hour-of-week seasonal profiles and learned communication sets, the
// learning → protecting mode of each group, and checkpoint/restore.
//
// State lives in slices indexed by the device_id and group_id columns of
// the observation schema (see ingest.Registry), and is updated from whole
// Arrow columns. Every summary is mergeable, so partial summaries from
// shards or instances combine exactly.
package baseline
