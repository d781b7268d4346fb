#!/bin/sh
# Creates the topics Vigil reads and writes. Run once per cluster:
#   BOOTSTRAP=kafka-1:9093 CONFIG=admin.properties sh deploy/topics.sh
# Input partitions bound how many instances share the work (one worker per
# partition); the changelog gets as many partitions as the largest input
# topic so each input partition's state sits in one changelog partition.
set -eu
BOOTSTRAP=${BOOTSTRAP:-localhost:9092}
KT=${KAFKA_TOPICS:-kafka-topics.sh}
RF=${REPLICATION:-3}
PARTITIONS=${PARTITIONS:-12}
CMD_CONFIG=""
if [ -n "${CONFIG:-}" ]; then CMD_CONFIG="--command-config $CONFIG"; fi

create() { # name partitions extra-configs...
  name=$1; parts=$2; shift 2
  # shellcheck disable=SC2086
  $KT --bootstrap-server "$BOOTSTRAP" $CMD_CONFIG --create --if-not-exists \
    --topic "$name" --partitions "$parts" --replication-factor "$RF" "$@"
}

# Inputs: retention as your sensors need; Vigil only reads them.
create iot-telemetry "$PARTITIONS" --config retention.ms=604800000
create ot-packets "$PARTITIONS" --config retention.ms=86400000 --config max.message.bytes=8388608
# Device state per input partition: compacted, never deleted by time.
create vigil-state-changelog "$PARTITIONS" --config cleanup.policy=compact \
  --config min.compaction.lag.ms=60000 --config segment.ms=3600000 --config max.message.bytes=8388608
# With kafka.repartition_by_group (REPARTITION=yes GROUP_ID=<kafka.group_id>): the
# telemetry keyed by group, <group_id>-by-group; its partitions bound how many
# instances judge (a group is whole in one). Kept as long as the inputs.
if [ "${REPARTITION:-no}" = yes ]; then
  create "${GROUP_ID:-vigil-plant-a}-by-group" "$PARTITIONS" --config retention.ms=604800000
fi
# Group summaries shared between instances: compacted, one partition.
create vigil-group-state 1 --config cleanup.policy=compact --config segment.ms=3600000 \
  --config max.message.bytes=8388608
# The fleet's device status and the operators' quarantine decisions, shared by
# the instances' consoles (console.status_topic): compacted, so the latest
# record of each device stays; tombstones (removed devices) go after a day.
create vigil-console-status 6 --config cleanup.policy=compact \
  --config min.compaction.lag.ms=60000 --config segment.ms=3600000 --config delete.retention.ms=86400000
# Undecodable records, with the vigil-reason header: keep them long enough to look.
create vigil-dead-letter 3 --config retention.ms=1209600000
# Outputs of the Kafka sink (sinks.kafka): JSON alerts and quarantine events.
create vigil-alerts "$PARTITIONS" --config retention.ms=2592000000
create vigil-quarantine 3 --config retention.ms=2592000000
