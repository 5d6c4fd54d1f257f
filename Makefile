# Portcullis. `make run` serves on :8080; `make test` runs every check CI runs.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO        ?= go
TOOL      := $(GO) tool -modfile=tools/go.mod
BIN       := bin/portcullis
# The same flags build the binary here and in the Dockerfile: static, reproducible, stripped.
BUILD_ENV := CGO_ENABLED=0
# VERSION names the build (portcullis version, traces, the start log): the tag or commit here.
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BUILD_FLAGS := -trimpath -ldflags="-s -w -X main.version=$(VERSION)"
PG_ADDR   := 127.0.0.1
PG_PORT   := 5432
REDIS_PORT := 6379

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

.PHONY: run
run: services build ## migrate and serve on :8080 against the local PostgreSQL and Redis
	@# exec: the server is make's child, so the SIGTERM make passes on reaches it (under `go run`
	@# the go command died of it and left the server running, orphaned).
	PORTCULLIS_CREATE_DATABASE=true exec $(BIN) serve

.PHONY: build
build: ## build the static binary into bin/portcullis
	$(BUILD_ENV) $(GO) build $(BUILD_FLAGS) -o $(BIN) ./cmd/portcullis

.PHONY: test
test: services check-generated check-tracked vet fmt-check lint-api check-observability contract sdk-ts bench-smoke ## generated code, no tracked binaries, vet, gofmt, spec lint, alert rules, contract, TS SDK, bench smoke, go test -race
	$(GO) test -race -count=1 ./...

.PHONY: lint-api
lint-api: ## lint api/openapi.yaml with Redocly CLI against our rules (tools/lint/redocly.yaml)
	@[ -d tools/lint/node_modules ] || npm ci --prefix tools/lint --no-audit --no-fund
	tools/lint/node_modules/.bin/redocly lint api/openapi.yaml --config tools/lint/redocly.yaml

.PHONY: check-observability
check-observability: ## promtool checks and rule unit tests of deploy/observability, and the dashboard's metric names
	deploy/observability/check.sh

.PHONY: e2e-telemetry
e2e-telemetry: services ## traces end to end through a real Jaeger (built from its Go module, cached)
	tools/e2e/telemetry.sh

.PHONY: test-all
test-all: test e2e-telemetry ## make test, then the Jaeger end-to-end check

.PHONY: contract
contract: services ## the real server behind Stoplight Prism, walked through every operation
	tools/contract/run.sh

.PHONY: test-short
test-short: ## unit tests only (no PostgreSQL or Redis needed)
	$(GO) test -short -count=1 ./...

.PHONY: vet
vet: ## go vet
	$(GO) vet ./...

.PHONY: check-tracked
check-tracked: ## fail when git tracks a built binary (ELF, Mach-O, PE) or a file over 2 MiB
	@bad=$$(git ls-files -z | while IFS= read -r -d '' f; do \
	  [ -f "$$f" ] || continue; \
	  case "$$(head -c 4 "$$f" | od -An -tx1 | tr -d ' \n')" in \
	    7f454c46|cffaedfe|cefaedfe|feedfacf|feedface|4d5a*) echo "$$f (a built binary)"; continue;; esac; \
	  [ "$$(wc -c < "$$f")" -le 2097152 ] || echo "$$f (over 2 MiB)"; \
	done); \
	if [ -n "$$bad" ]; then echo "tracked files that belong outside git:"; echo "$$bad"; exit 1; fi

.PHONY: fmt-check
fmt-check: ## fail when gofmt would change a hand-written file
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/') 2>&1 || true); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

TS_SDK := sdk/typescript

.PHONY: generate
generate: ## regenerate gen/ (oapi-codegen, sqlc) and the TypeScript SDK's types from the spec
	$(TOOL) oapi-codegen -config api/oapi-codegen.yaml api/openapi.yaml
	$(TOOL) sqlc generate
	@[ -d $(TS_SDK)/node_modules ] || npm ci --prefix $(TS_SDK) --no-audit --no-fund
	npm run --prefix $(TS_SDK) --silent generate

.PHONY: sdk-ts
sdk-ts: services ## build the TypeScript SDK under tsc --strict and run its smoke test against a live server
	@[ -d $(TS_SDK)/node_modules ] || npm ci --prefix $(TS_SDK) --no-audit --no-fund
	npm run --prefix $(TS_SDK) --silent build
	cd $(TS_SDK) && ./run-smoke.sh

.PHONY: check-generated
check-generated: ## fail when gen/ is stale or hand-edited
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	sed "s#^output: .*#output: $$tmp/api.gen.go#" api/oapi-codegen.yaml > "$$tmp/oapi-codegen.yaml"; \
	$(TOOL) oapi-codegen -config "$$tmp/oapi-codegen.yaml" api/openapi.yaml; \
	if ! diff -u gen/api/api.gen.go "$$tmp/api.gen.go" > "$$tmp/diff"; then \
	  head -40 "$$tmp/diff"; echo "gen/api is stale or hand-edited: run make generate"; exit 1; fi; \
	if ! $(TOOL) sqlc diff; then echo "gen/db is stale or hand-edited: run make generate"; exit 1; fi; \
	$(TOOL) sqlc vet; \
	[ -d $(TS_SDK)/node_modules ] || npm ci --prefix $(TS_SDK) --no-audit --no-fund >/dev/null; \
	if ! npm run --prefix $(TS_SDK) --silent check-generated; then echo "$(TS_SDK)/src/schema.d.ts is stale: run make generate"; exit 1; fi; \
	extra=$$(find gen -type f | grep -vxE 'gen/api/api\.gen\.go|gen/db/(db|models|[a-z_]+\.sql)\.go' || true); \
	if [ -n "$$extra" ]; then echo "hand-written files in gen/: $$extra"; exit 1; fi; \
	echo "gen/ is up to date"

.PHONY: migrate-up migrate-down migrate-status
migrate-up: ## apply pending migrations to DATABASE_URL
	$(GO) run ./cmd/portcullis migrate up
migrate-down: ## roll back the last migration
	$(GO) run ./cmd/portcullis migrate down
migrate-status: ## show migration state
	$(GO) run ./cmd/portcullis migrate status

.PHONY: bench
bench: services wrk ## load test of a real server (wrk, Go workers) against the targets; appends to bench/RESULTS.md (BENCH_FLAGS=-profile dir …)
	$(GO) -C tools/bench run . $(BENCH_FLAGS)

.PHONY: bench-smoke
bench-smoke: services wrk ## the load-test harness at tiny scale on a throwaway database, in about 20 s (part of make test)
	$(GO) -C tools/bench vet ./...
	$(GO) -C tools/bench test -count=1 ./...
	$(GO) -C tools/bench run . -smoke

.PHONY: wrk
wrk: ## install Debian's wrk (the HTTP load generator of make bench) when it is missing
	@command -v wrk >/dev/null || { echo "installing wrk (apt-get)"; \
	  $$([ "$$(id -u)" = 0 ] || echo sudo) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$([ "$$(id -u)" = 0 ] || echo sudo) apt-get install -y -qq wrk >/dev/null; }

.PHONY: bench-go
bench-go: services ## go test benchmarks: admin listing on 1,000,000 users (p50/p99 per scenario), tokens, password hashing (x/crypto's argon2id against the kept-memory pool), the per-IP limit for 100,000 clients (waiting for Redis against credit; a full GC holding their credits)
	$(GO) test -run '^$$' -bench BenchmarkAdminListUsers -benchtime 300x -timeout 20m ./internal/httpserver
	$(GO) test -run '^$$' -bench . -benchmem ./internal/tokens ./internal/password
	$(GO) test -run '^$$' -bench OWASP -cpu 2 -benchmem ./internal/argon2
	$(GO) test -run '^$$' -bench AllowManyClients -benchtime 400000x -cpu 2 ./internal/ratelimit
	$(GO) test -run '^$$' -bench GCWithManyCredits -cpu 2 ./internal/ratelimit

API_BASE ?= $(shell git describe --tags --abbrev=0 --match 'v*' 2>/dev/null || git merge-base HEAD origin/main 2>/dev/null || echo HEAD)
.PHONY: api-diff
api-diff: ## fail on a breaking API change against API_BASE (last v* tag, else main's merge base) unless info.version's major was raised
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	git show $(API_BASE):api/openapi.yaml > "$$tmp/base.yaml"; \
	major() { awk '/^info:/{i=1} i && /^  version:/{split($$2, v, "."); print v[1]; exit}' "$$1"; }; \
	echo "comparing api/openapi.yaml with $(API_BASE)"; \
	if $(TOOL) oasdiff breaking "$$tmp/base.yaml" api/openapi.yaml --fail-on ERR; then echo "no breaking change"; \
	elif [ "$$(major api/openapi.yaml)" -gt "$$(major "$$tmp/base.yaml")" ]; then echo "breaking changes allowed: info.version major raised"; \
	else echo "breaking change without a major version bump (info.version)"; exit 1; fi

FUZZTIME ?= 30s
.PHONY: fuzz
fuzz: services ## run every fuzz target for FUZZTIME each (make test runs their seed corpora)
	$(GO) test -run '^$$' -fuzz '^FuzzCheck$$' -fuzztime $(FUZZTIME) ./internal/strictjson
	$(GO) test -run '^$$' -fuzz '^FuzzValidateEmail$$' -fuzztime $(FUZZTIME) ./internal/users
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./internal/tokens
	$(GO) test -run '^$$' -fuzz '^FuzzParseHeader$$' -fuzztime $(FUZZTIME) ./internal/tokens
	$(GO) test -run '^$$' -fuzz '^FuzzVerifyMalformed$$' -fuzztime $(FUZZTIME) ./internal/password

.PHONY: docker
docker: ## build the container image (needs a Docker engine)
	docker build -t portcullis:dev .

.PHONY: services
services: ## start PostgreSQL and Redis where installed but stopped; say what is missing otherwise
	@if ! (exec 3<>/dev/tcp/$(PG_ADDR)/$(PG_PORT)) 2>/dev/null; then \
	  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then \
	    echo "starting PostgreSQL"; pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -1) main start; \
	  else echo "PostgreSQL is not installed or not on $(PG_ADDR):$(PG_PORT). Install it: apt-get install postgresql (or set DATABASE_URL / TEST_DATABASE_URL)"; exit 1; fi; \
	fi
	@if ! (exec 3<>/dev/tcp/127.0.0.1/$(REDIS_PORT)) 2>/dev/null; then \
	  if command -v redis-server >/dev/null; then \
	    echo "starting Redis"; mkdir -p /var/lib/redis /var/log/redis; \
	    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port $(REDIS_PORT) --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log; \
	  else echo "Redis is not installed or not on 127.0.0.1:$(REDIS_PORT). Install it: apt-get install redis-server (or set REDIS_URL)"; exit 1; fi; \
	fi
	@for i in $$(seq 1 30); do \
	  if (exec 3<>/dev/tcp/$(PG_ADDR)/$(PG_PORT)) 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/$(REDIS_PORT)) 2>/dev/null; then exit 0; fi; sleep 1; \
	done; echo "PostgreSQL or Redis did not come up within 30s"; exit 1
