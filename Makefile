# accesslog-exporter. `make run` and `make test` are the two commands a new
# machine needs; everything else they need is installed by the targets below
# into .tools/ (git-ignored) or the Go caches.

GO          ?= go
BIN         := bin
TOOLS       := $(CURDIR)/.tools
STATICCHECK := $(TOOLS)/staticcheck
STATICCHECK_VERSION := v0.8.2
BENCHSTAT   := $(TOOLS)/benchstat
BENCHSTAT_VERSION := v0.0.0-20260908200009-22c9c6c9d4da
FUZZTIME    ?= 5s
BENCHCOUNT  ?= 5
LISTEN      ?= 127.0.0.1:9717

VERSION  := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BRANCH   := $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -X github.com/prometheus/common/version.Version=$(VERSION) \
            -X github.com/prometheus/common/version.Revision=$(REVISION) \
            -X github.com/prometheus/common/version.Branch=$(BRANCH)

.PHONY: all build run replay test unit fuzz lint vet staticcheck bench bench-e2e clean victoriametrics victorialogs pushgateway deploy-tools

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# The main job on an embedded default: an in-process 3-broker Kafka fed by the
# traffic generator, consumed as a normal group member.
run: build
	$(BIN)/accesslog-exporter --kafka.embedded --web.listen-address=$(LISTEN)

# Replays the sample nginx log through the same parse and metrics path and
# prints the resulting metrics: how a log_format is checked against real lines.
replay: build
	$(BIN)/accesslog-exporter replay testdata/nginx-main-timed.log

test: lint unit fuzz deploy-test rules-test alertmanager-test dashboards-test

# A plain `go test ./...` installs nothing: a test whose external program is
# missing skips and names the target below that provides it
# (internal/testenv). Here every program is installed first, and
# ACCESSLOG_REQUIRE_EXTERNAL=1 turns such a skip into a failure.
unit: victoriametrics victorialogs pushgateway prometheus-tools deploy-tools
	ACCESSLOG_REQUIRE_EXTERNAL=1 \
	ACCESSLOG_VICTORIALOGS_BIN=$$(./scripts/install-victorialogs.sh) \
	ACCESSLOG_VM_BIN=$$(./scripts/install-victoriametrics.sh) \
	ACCESSLOG_PUSHGATEWAY_BIN=$$(./scripts/install-pushgateway.sh) \
	$(GO) test -race -count=1 -timeout 20m ./...

# Real receivers the tests start on loopback, built once into ~/.cache.
victoriametrics:
	./scripts/install-victoriametrics.sh >/dev/null

pushgateway:
	./scripts/install-pushgateway.sh >/dev/null

# VictoriaLogs, the real Loki-protocol store of the tests that need one
# (exporter/loki); the delivery-contract tests use lokitest's in-process
# receiver and need nothing installed.
victorialogs:
	./scripts/install-victorialogs.sh >/dev/null

deploy-tools:
	./scripts/install-deploy-tools.sh

# Short runs of every fuzz target; longer ones with FUZZTIME=5m.
fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

lint: vet staticcheck

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

staticcheck: $(STATICCHECK)
	$(STATICCHECK) ./...

$(STATICCHECK):
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# Every benchmark BENCHCOUNT times; benchstat prints the medians.
bench: $(BENCHSTAT)
	$(GO) test -run='^$$' -bench=. -benchmem -count=$(BENCHCOUNT) ./... | tee bench.out
	$(BENCHSTAT) bench.out

$(BENCHSTAT):
	GOBIN=$(TOOLS) $(GO) install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION)

bench-e2e: build
	./scripts/bench-e2e.sh

clean:
	rm -rf $(BIN)

# The whole system on 127.0.0.1 (deploy/local): kfake Kafka x3, nginx,
# Filebeat, the exporter, VictoriaLogs (the Loki-protocol log store),
# Prometheus, Alertmanager, a webhook recorder. First run builds Filebeat
# (~70 s) and VictoriaLogs (~40 s) into ~/.cache/accesslog-exporter.
.PHONY: stack-up stack-down e2e
stack-up:
	./deploy/local/stack-up.sh
stack-down:
	./deploy/local/stack-down.sh
# The end-to-end scenarios against that stack; stops it afterwards unless
# E2E_KEEP=1. Ledgers: deploy/local/.run/ledgers/. A test skipped for a
# missing program fails here (ACCESSLOG_REQUIRE_EXTERNAL=1).
E2E_TIMEOUT ?= 20m
e2e:
	./deploy/local/stack-up.sh
	rc=0; ACCESSLOG_REQUIRE_EXTERNAL=1 $(GO) test -tags e2e -count=1 -v -timeout $(E2E_TIMEOUT) ./deploy/local/... || rc=$$?; \
	if [ "$(E2E_KEEP)" != 1 ]; then ./deploy/local/stack-down.sh; fi; exit $$rc

# The chaos soak (deploy/local/soak): a fresh stack with two exporter
# replicas under steady load while seeded faults come and go; the ledger goes
# to deploy/local/.run/ledgers/. Replay a failure with the SEED it printed.
DURATION   ?= 3m
SEED       ?=
FAULT_RATE ?= 3
.PHONY: soak
soak:
	DURATION=$(DURATION) SEED=$(SEED) FAULT_RATE=$(FAULT_RATE) ./deploy/local/soak/run.sh

# deploy/: Kafka HA invariants, Filebeat records through the decoder, nginx
# -t, compose and Kubernetes checks, and the real keepalived failover between
# network namespaces (needs root; installs nginx, keepalived, iproute2).
.PHONY: deploy-test
deploy-test:
	./scripts/install-deploy-tools.sh
	ACCESSLOG_REQUIRE_EXTERNAL=1 $(GO) test -count=1 -timeout 10m ./deploy/...

# Prometheus rules, Alertmanager routing and Grafana dashboards (issue 7).
# The Debian binaries are installed once if missing.
.PHONY: rules-test alertmanager-test dashboards-test prometheus-tools
prometheus-tools:
	./scripts/install-prometheus.sh

rules-test: prometheus-tools
	promtool check rules prometheus/rules/*.yml
	cd prometheus/tests && promtool test rules *.yml
	promtool check config prometheus/prometheus.yml
	ACCESSLOG_REQUIRE_EXTERNAL=1 $(GO) test -count=1 ./prometheus/

alertmanager-test: prometheus-tools
	amtool check-config alertmanager/alertmanager.yml
	./alertmanager/routes_test.sh

dashboards-test: prometheus-tools
	ACCESSLOG_REQUIRE_EXTERNAL=1 $(GO) test -count=1 -timeout 5m ./dashboards/
