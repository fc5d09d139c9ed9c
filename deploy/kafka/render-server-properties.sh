#!/usr/bin/env bash
# Renders server.properties for one node of the 3-node KRaft cluster.
#
#   render-server-properties.sh NODE_ID HOST_1 HOST_2 HOST_3 > /etc/kafka/server.properties
#
# NODE_ID is 1, 2 or 3; HOST_n is how clients and the other nodes reach node
# n (its DNS name). Every node gets the same host list, so every node has the
# same controller.quorum.voters.
set -euo pipefail

if [ $# -ne 4 ]; then
  echo "usage: $0 NODE_ID HOST_1 HOST_2 HOST_3" >&2
  exit 2
fi
node_id=$1
shift
hosts=("$@")
case $node_id in
  1 | 2 | 3) ;;
  *) echo "$0: NODE_ID must be 1, 2 or 3, got '$node_id'" >&2; exit 2 ;;
esac

voters=
for i in 1 2 3; do
  voters+="${voters:+,}$i@${hosts[$((i - 1))]}:9093"
done
node_host=${hosts[$((node_id - 1))]}

template=$(dirname "$0")/server.properties.tmpl
sed -e "s/{{NODE_ID}}/$node_id/g" \
    -e "s/{{NODE_HOST}}/$node_host/g" \
    -e "s/{{QUORUM_VOTERS}}/$voters/g" "$template"
