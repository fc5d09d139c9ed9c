#!/usr/bin/env bash
# Formats a node's log dir for KRaft, once, before its first start. Run it on
# each of the three nodes with the SAME cluster id:
#
#   CLUSTER_ID=$(/opt/kafka/bin/kafka-storage.sh random-uuid)   # once, on one machine
#   CLUSTER_ID=... ./format-storage.sh /etc/kafka/server.properties   # on every node
#
# A log dir that is already formatted is left alone (--ignore-formatted), so
# this is safe to re-run; one formatted with another cluster id makes the
# broker refuse to start, which is what you want.
set -euo pipefail

config=${1:?usage: CLUSTER_ID=... $0 /etc/kafka/server.properties}
: "${CLUSTER_ID:?set CLUSTER_ID to the cluster id shared by all three nodes (kafka-storage.sh random-uuid)}"
KAFKA_HOME=${KAFKA_HOME:-/opt/kafka}

"$KAFKA_HOME/bin/kafka-storage.sh" format \
  --cluster-id "$CLUSTER_ID" \
  --config "$config" \
  --ignore-formatted
