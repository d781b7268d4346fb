// Package console owns Vigil's operator console: a JSON API under /api/v1
// and a web page built on it, served from the binary. It searches the
// fleet by any attribute (the query language of detect/query), tells each
// device's story (attributes and where they came from, status, open
// alarms, recent alerts, identity, and per metric its baseline and recent
// values against the band they were judged by), shows the groups'
// learning, the firmware rollouts with their cohorts' KPIs, the alert
// timeline and the quarantine queue, and sends operators' quarantine
// decisions to the sinks as quarantine events.
//
// # Where its state comes from
//
// The engine is single-goroutine and the console never reads its state:
// the engine publishes what changed between batches (detect.StatusSink,
// at most once per interval), and the console's goroutine puts it in its
// fleet index under its own lock. The plots' values stay with the engine
// (detect.RecentValues), which a device page copies under their own
// lock. Alerts and quarantine events reach the console through the sink
// Attach wraps, which records what the sink accepted. detect/pipeline
// wires both; with engine shards, each shard publishes its own devices
// and groups (the console merges groups by name, keeps each device's
// recent values from the shard that published it, and does not let a
// device's older status replace a newer one).
//
// In a consumer group of several instances each engine holds only its
// partitions' devices: Shared (console.status_topic) publishes them to a
// compacted Kafka topic instead, and every console, with or without an
// engine (vigil console), builds the whole fleet's index from that topic.
// Decisions travel on the same topic to the instance that owns the
// device, which sends them to its sinks (wire.go describes the records).
//
// # Fleet index
//
// One column per field (device, group, status, learning, last_seen,
// detector, ip, client_id, cert, fw, score, severity, alarms, and every
// inventory attribute), dictionary-encoded for text. A query term is
// matched once per distinct value of its field and then answered by a
// scan of that column's small integers into a bitset (the fields whose
// values a device seldom shares, device, client_id and cert, keep each
// row's own string and are matched row by row); AND, OR and NOT
// are bitset operations; a page is the first rows of the order after the
// cursor, picked with a bounded heap. BenchmarkSearch measures it over a
// million devices.
//
// # API
//
//	GET  /api/v1/devices?q=QUERY&sort=KEY&limit=N&cursor=C  fleet search: {query, total, devices, next, now}
//	GET  /api/v1/devices/{device}                           the device's story
//	GET  /api/v1/groups                                      groups: learning progress, devices by status
//	GET  /api/v1/groups/{group}                              members and per-metric distribution
//	GET  /api/v1/alerts?q=QUERY&limit=N                      recent alerts, newest first (alert schema)
//	GET  /api/v1/rollouts                                    firmware rollouts (detect.rollout): progress, state, last alert
//	GET  /api/v1/rollouts/{group}                            and per KPI the cohorts compared over the latest windows
//	GET  /api/v1/quarantine                                  the queue and the quarantine events
//	POST /api/v1/quarantine/{event id}/approve|reject|release  an operator's decision
//	GET  /api/v1/whoami                                      the token's name and role
//
// A bad query is a 400 with {"error", "position"}. With tokens, every API
// request needs "Authorization: Bearer SECRET" (401 otherwise) and a
// decision needs an operator token (403 for a viewer). Relative times in
// queries (last_seen<-1h) count from the newest report of the fleet.
package console
