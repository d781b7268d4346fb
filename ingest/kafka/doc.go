// Package kafka owns Vigil's life as a Kafka consumer group: partition
// workers that decode records into batches (a batch never spans
// partitions) from records they fetch themselves (wire.go: Fetch requests
// and record batches parsed in place; membership, commits and producers
// are kafka-go's), the capped checkpointer that commits an offset only once
// every batch below it was acknowledged, the dead-letter topic for
// undecodable records, the changelog that makes device state follow its
// partition, the sharing of group summaries between instances, and, with
// repartition_by_group, the stage that keys telemetry by group so that
// every group is judged whole on one instance (repartition.go).
//
// One engine goroutine judges the batches of all partitions in order of
// arrival, because the engine is not safe for concurrent use; partition
// workers decode in parallel and hand it batches over a bounded channel.
package kafka
