// Package ingest owns everything between raw input and an observation batch:
// sources (Kafka consumer group, pcap/pcapng files, JSONL files), decoders
// (telemetry formats, packets, OT protocols), feature extraction, the
// observation schema and Batch with its acknowledgement. Its sub-package
// simulate holds the simulated fleet and OT network that `vigil demo` and
// the tests produce input with.
//
// Every source turns its input into Arrow records with the observation
// schema (see observation.go), so one baseline and one set of detectors
// serve device telemetry and network captures alike.
package ingest
