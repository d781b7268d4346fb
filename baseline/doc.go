// Package baseline owns learned state, per device and per group: decayed
// moments at several half-lives, quantile and distinct-count sketches,
// hour-of-week seasonal profiles and learned communication sets, the
// learning → protecting mode of each group, and checkpoint/restore.
//
// State lives in slices indexed by the device_id and group_id columns of
// the observation schema (see ingest.Registry), and is updated from the
// Arrow columns of each record: Store.Bind resolves a record's metric
// columns once, then Frame.Expect and Frame.Learn work row by row on the
// []float64 values and null bitmaps, with no map lookup and no allocation.
// Everything decays on event time, never on the wall clock, so a replay
// gives the same state as the live run.
//
// Every summary is mergeable, so partial summaries from shards or
// instances combine: Moments with Chan's formulas, QuantileSketch and HLL
// by adding buckets and taking register maxima, seasonal buckets as
// moments. Store.MarshalGroup / MergeGroup share group summaries between
// instances; MarshalDevice / UnmarshalDevice move a device's state with its
// Kafka partition; Checkpoint / Restore write and read all of it as one
// Arrow IPC file keyed by name, with the input positions it covers.
//
// The reusable building blocks (Moments, QuantileSketch, HLL, CommSet and
// the deterministic hashes) serve detectors that keep their own fleet
// KPIs and novelty sets.
package baseline
