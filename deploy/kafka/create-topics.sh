#!/usr/bin/env bash
# Creates the access-log topic, or brings an existing one to the settings
# below (retention, min.insync.replicas, more partitions). Idempotent.
#
#   BOOTSTRAP=kafka-1:9092,kafka-2:9092,kafka-3:9092 ./create-topics.sh
#
# PARTITIONS bounds how many exporter replicas do work (one partition is read
# by one replica of the group): keep it >= the most replicas you will run
# (KEDA's maxReplicaCount) and a multiple of the usual count, so that
# partitions split evenly. 12 splits evenly over 1, 2, 3, 4, 6 and 12.
# Partitions can be added later, never removed. Sizing: docs/deploy.md.
set -euo pipefail

BOOTSTRAP=${BOOTSTRAP:-kafka-1:9092,kafka-2:9092,kafka-3:9092}
TOPIC=${TOPIC:-nginxlog}
PARTITIONS=${PARTITIONS:-12}
# Three days: a weekend-long outage of the exporter or Loki loses nothing.
RETENTION_MS=${RETENTION_MS:-259200000}
# A per-partition cap on top of time, so a traffic spike cannot fill the
# disks: 12 partitions x 3 replicas x 50 GiB = 1.8 TiB over the 3 nodes.
RETENTION_BYTES=${RETENTION_BYTES:-53687091200}
KAFKA_HOME=${KAFKA_HOME:-/opt/kafka}

# Not settable: these are what "no line lost with one node down" means.
REPLICATION_FACTOR=3
MIN_INSYNC_REPLICAS=2

topics() { "$KAFKA_HOME/bin/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" "$@"; }
configs=(
  --config min.insync.replicas=$MIN_INSYNC_REPLICAS
  --config unclean.leader.election.enable=false
  --config retention.ms="$RETENTION_MS"
  --config retention.bytes="$RETENTION_BYTES"
  # Keep Filebeat's batches as it compressed them (zstd): no recompression.
  --config compression.type=producer
)

if ! topics --describe --topic "$TOPIC" >/dev/null 2>&1; then
  topics --create --if-not-exists --topic "$TOPIC" \
    --partitions "$PARTITIONS" --replication-factor $REPLICATION_FACTOR "${configs[@]}"
else
  echo "create-topics: $TOPIC exists; applying settings" >&2
  alter=()
  for ((i = 0; i < ${#configs[@]}; i += 2)); do
    alter+=("${configs[i + 1]}")
  done
  "$KAFKA_HOME/bin/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" --alter \
    --entity-type topics --entity-name "$TOPIC" --add-config "$(IFS=,; echo "${alter[*]}")"
  have=$(topics --describe --topic "$TOPIC" | sed -n 's/.*PartitionCount: *\([0-9]*\).*/\1/p' | head -1)
  if [ "${have:-0}" -lt "$PARTITIONS" ]; then
    # New partitions change which partition a host's lines go to from now
    # on; lines already written stay where they are and are still read.
    topics --alter --topic "$TOPIC" --partitions "$PARTITIONS"
  fi
fi

# Refuse a topic that is not replicated as required (e.g. created by hand).
desc=$(topics --describe --topic "$TOPIC")
echo "$desc"
rf=$(echo "$desc" | sed -n 's/.*ReplicationFactor: *\([0-9]*\).*/\1/p' | head -1)
if [ "$rf" != "$REPLICATION_FACTOR" ]; then
  echo "create-topics: $TOPIC has replication factor $rf, want $REPLICATION_FACTOR; recreate it or reassign its partitions" >&2
  exit 1
fi
