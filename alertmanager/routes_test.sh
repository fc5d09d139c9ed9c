#!/usr/bin/env bash
# Proves where every alert of prometheus/rules is delivered, with
# `amtool config routes test`, and that the templates render.
# Each case: the receivers expected (comma-separated, in route order), then
# the alert's labels as the rules set them. Run by `make alertmanager-test`;
# prometheus/rules_test.go checks that every alert has a case here.
set -euo pipefail
cd "$(dirname "$0")"
cfg=alertmanager.yml

amtool check-config "$cfg" >/dev/null

cases=(
  # nginx and SLO alerts: team web
  "webhook,web-ticket alertname=NginxHigh5xxRatio severity=warning team=web job=accesslog-exporter vhost=shop.example.com"
  "webhook,web-ticket alertname=NginxLatencyObjectiveBreached severity=warning team=web job=accesslog-exporter vhost=shop.example.com"
  "webhook,web-page alertname=NginxTrafficStopped severity=critical team=web job=accesslog-exporter vhost=shop.example.com"
  "webhook,web-ticket alertname=NginxUpstreamErrorSurge severity=warning team=web job=accesslog-exporter vhost=shop.example.com"
  "webhook,web-ticket alertname=NginxClientClosedSurge severity=warning team=web job=accesslog-exporter vhost=shop.example.com"
  "webhook,web-page alertname=NginxAvailabilityBudgetBurnFast severity=critical team=web slo=availability job=accesslog-exporter vhost=shop.example.com"
  "webhook,web-ticket alertname=NginxAvailabilityBudgetBurnSlow severity=warning team=web slo=availability job=accesslog-exporter vhost=shop.example.com"
  "webhook,web-page alertname=NginxLatencyBudgetBurnFast severity=critical team=web slo=latency job=accesslog-exporter vhost=shop.example.com"
  "webhook,web-ticket alertname=NginxLatencyBudgetBurnSlow severity=warning team=web slo=latency job=accesslog-exporter vhost=shop.example.com"
  # the exporter itself: team observability
  "webhook,observability-ticket alertname=AccessLogExporterDown severity=warning team=observability job=accesslog-exporter instance=exporter-2:9717"
  "webhook,observability-page alertname=AccessLogExporterAbsent severity=critical team=observability job=accesslog-exporter"
  "webhook,observability-ticket alertname=AccessLogParseErrorRatioHigh severity=warning team=observability job=accesslog-exporter"
  "webhook,observability-ticket alertname=AccessLogEventDelayHigh severity=warning team=observability job=accesslog-exporter"
  "webhook,observability-ticket alertname=AccessLogLokiPushFailing severity=warning team=observability job=accesslog-exporter instance=exporter-1:9717"
  "webhook,observability-ticket alertname=AccessLogLokiEntriesDropped severity=warning team=observability job=accesslog-exporter reason=in_flight_full outcome=dropped"
  "webhook,observability-ticket alertname=AccessLogSeriesOverflow severity=warning team=observability job=accesslog-exporter metric=accesslog_http_requests_total"
  "webhook,observability-page alertname=AccessLogRecordsNotConsumed severity=critical team=observability job=accesslog-exporter"
  "webhook,observability-ticket alertname=AccessLogLogPathLagHigh severity=warning team=observability job=accesslog-exporter sink=logs consumergroup=accesslog-exporter-loki topic=nginxlog"
  "webhook,observability-page alertname=AccessLogLogPathNearRetention severity=critical team=observability job=accesslog-exporter sink=logs consumergroup=accesslog-exporter-loki topic=nginxlog"
  "webhook,observability-ticket alertname=KafkaHealthPollFailing severity=warning team=observability job=accesslog-exporter instance=exporter-2:9717"
  # the Kafka cluster: team kafka
  "webhook,kafka-ticket alertname=KafkaConsumerGroupLagHigh severity=warning team=kafka job=accesslog-exporter consumergroup=accesslog-exporter topic=nginxlog"
  "webhook,kafka-ticket alertname=KafkaConsumerGroupLagSecondsHigh severity=warning team=kafka job=accesslog-exporter consumergroup=accesslog-exporter topic=nginxlog"
  "webhook,kafka-ticket alertname=KafkaUnderReplicatedPartitions severity=warning team=kafka job=accesslog-exporter topic=nginxlog"
  "webhook,kafka-page alertname=KafkaUnderMinISRPartitions severity=critical team=kafka job=accesslog-exporter topic=nginxlog"
  "webhook,kafka-page alertname=KafkaOfflinePartitions severity=critical team=kafka job=accesslog-exporter topic=nginxlog"
  "webhook,kafka-page alertname=KafkaBrokersMissing severity=critical team=kafka job=accesslog-exporter"
  "webhook,kafka-ticket alertname=KafkaTopicDurabilityRisk severity=warning team=kafka job=accesslog-exporter topic=__consumer_offsets"
  # anything without a team still reaches someone
  "webhook,default alertname=SomethingElse severity=critical"
)

fail=0
for c in "${cases[@]}"; do
  want=${c%% *} labels=${c#* }
  # shellcheck disable=SC2086 # labels are words on purpose
  if ! out=$(amtool config routes test --config.file="$cfg" --verify.receivers="$want" $labels 2>&1); then
    echo "FAIL: $labels: want $want, got: $out" >&2
    fail=1
  fi
done

for t in accesslog.title accesslog.text accesslog.wechat accesslog.email.html; do
  if ! amtool template render --template.glob='templates/*.tmpl' --template.text="{{ template \"$t\" . }}" >/dev/null; then
    echo "FAIL: template $t does not render" >&2
    fail=1
  fi
done

[ "$fail" -eq 0 ] || exit 1
echo "alertmanager: ${#cases[@]} routing cases and 4 templates OK"
