// Package dashboards holds the Grafana dashboards of accesslog-exporter
// (*.json in this directory) and the tests that keep them correct without a
// Grafana: every query parses as PromQL once Grafana's variables are
// substituted, every metric it names is one the exporter really exposes (or
// a recording rule of prometheus/rules), and every query returns data from a
// live Prometheus scraping the exporter on generated traffic.
//
// The package has no code: import the JSON files into Grafana (Dashboards >
// New > Import) and pick the Prometheus and Loki data sources.
package dashboards
