#!/usr/bin/env bash
# make e2e-telemetry: Jaeger (in memory, loopback only) and the real server on a fresh database,
# exporting its traces over OTLP/gRPC; then tools/e2e/telemetry checks the traces of a register,
# a login and a GET /api/v1/users/me that carries our own traceparent. See tools/e2e/README.md.
#
# Jaeger's ports are fixed: OTLP gRPC 127.0.0.1:4317, OTLP HTTP 127.0.0.1:4318, query API/UI
# 127.0.0.1:16686 (plus 16685 query gRPC and 13133 health). They must be free.
# Environment: JAEGER_BIN (use this binary instead of building one), E2E_KEEP=1 (keep Jaeger and
# the service running after the checks until Ctrl-C, to look at the traces in the UI).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."

JAEGER_VERSION=v1.76.0
jaeger_dir="${XDG_CACHE_HOME:-$HOME/.cache}/portcullis/jaeger-$JAEGER_VERSION"
jaeger_bin="${JAEGER_BIN:-$jaeger_dir/jaeger}"
jaeger_query=http://127.0.0.1:16686

tmp=$(mktemp -d)
db="pc_e2e_telemetry_$$"
service="portcullis-e2e-$$"
redis_prefix="e2e:$$:"

log() { printf '==> %s\n' "$*"; }
die() { printf 'FAIL  %s\n' "$*" >&2; exit 1; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

cleanup() {
  local status=$?
  set +e
  if [ -n "${api_pid:-}" ]; then
    kill -TERM "$api_pid" 2>/dev/null && wait "$api_pid" 2>/dev/null
  fi
  if [ -n "${jaeger_pid:-}" ]; then
    kill -TERM "$jaeger_pid" 2>/dev/null && wait "$jaeger_pid" 2>/dev/null
  fi
  if [ "$status" -ne 0 ]; then
    [ -s "$tmp/portcullis.log" ] && { echo "--- service log (tail)"; tail -30 "$tmp/portcullis.log"; }
    [ -s "$tmp/jaeger.log" ] && { echo "--- jaeger log (tail)"; tail -15 "$tmp/jaeger.log"; }
  fi
  if [ -n "${db_created:-}" ]; then
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  fi
  if command -v redis-cli >/dev/null; then
    redis-cli -h 127.0.0.1 -p 6379 --scan --pattern "${redis_prefix}*" 2>/dev/null |
      xargs -r redis-cli -h 127.0.0.1 -p 6379 del >/dev/null 2>&1
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- Jaeger -----------------------------------------------------------------------------------
# `go install github.com/jaegertracing/jaeger/cmd/jaeger@v1.76.0` is refused (its go.mod has a
# replace directive), so build inside the downloaded module itself, as its main module: exactly
# the dependency versions of its go.mod/go.sum. The build takes a few minutes, once.
if [ ! -x "$jaeger_bin" ]; then
  [ -z "${JAEGER_BIN:-}" ] || die "JAEGER_BIN=$JAEGER_BIN is not an executable"
  log "building Jaeger $JAEGER_VERSION into $jaeger_dir (first run only, a few minutes)"
  src=$(cd "$tmp" && GOWORK=off GOFLAGS=-mod=mod go mod download -json "github.com/jaegertracing/jaeger@$JAEGER_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  [ -d "$src/cmd/jaeger" ] || die "could not download github.com/jaegertracing/jaeger@$JAEGER_VERSION"
  mkdir -p "$jaeger_dir"
  (cd "$src" && GOWORK=off GOFLAGS=-mod=readonly CGO_ENABLED=0 \
    go build -trimpath -ldflags=-s -o "$jaeger_dir/jaeger.tmp" ./cmd/jaeger)
  mv "$jaeger_dir/jaeger.tmp" "$jaeger_bin"
fi

for p in 4317 4318 16685 16686 13133; do
  port_busy "$p" && die "127.0.0.1:$p is in use (another Jaeger or collector?); this test needs it free"
done
log "starting Jaeger ($jaeger_bin --config tools/e2e/jaeger.yaml)"
"$jaeger_bin" --config "$here/jaeger.yaml" >"$tmp/jaeger.log" 2>&1 &
jaeger_pid=$!
for _ in $(seq 1 150); do
  curl -fsS "$jaeger_query/api/services" >/dev/null 2>&1 && break
  kill -0 "$jaeger_pid" 2>/dev/null || die "Jaeger exited at start"
  sleep 0.2
done
curl -fsS "$jaeger_query/api/services" >/dev/null || die "Jaeger's query API did not answer within 30s"

# --- the service ------------------------------------------------------------------------------
log "creating database $db"
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db" >/dev/null
db_created=1

log "building the service"
go build -o "$tmp/portcullis" ./cmd/portcullis

api_port=$(free_port)
metrics_port=$(free_port)
base="http://127.0.0.1:$api_port"
log "starting the service on $base as $service"
env DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db?sslmode=disable" \
  PORTCULLIS_HTTP_ADDR="127.0.0.1:$api_port" \
  PORTCULLIS_METRICS_ADDR="127.0.0.1:$metrics_port" \
  PORTCULLIS_REDIS_PREFIX="$redis_prefix" \
  PORTCULLIS_ARGON2_MEMORY_KIB=64 PORTCULLIS_ARGON2_ITERATIONS=1 \
  PORTCULLIS_SHUTDOWN_DRAIN=0s \
  OTEL_SERVICE_NAME="$service" \
  OTEL_TRACES_EXPORTER=otlp \
  OTEL_EXPORTER_OTLP_PROTOCOL=grpc \
  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 \
  OTEL_TRACES_SAMPLER=always_on \
  OTEL_BSP_SCHEDULE_DELAY=200 \
  "$tmp/portcullis" serve >"$tmp/portcullis.log" 2>&1 &
api_pid=$!
for _ in $(seq 1 150); do
  curl -fsS "$base/readyz" >/dev/null 2>&1 && break
  kill -0 "$api_pid" 2>/dev/null || die "the service exited at start"
  sleep 0.2
done
curl -fsS "$base/readyz" >/dev/null || die "the service was not ready within 30s"

# --- the checks -------------------------------------------------------------------------------
log "checking traces"
status=0
(cd "$here" && GOWORK=off go run ./telemetry -base "$base" -jaeger "$jaeger_query" -service "$service" ${E2E_VERBOSE:+-v}) || status=$?

if [ "${E2E_KEEP:-}" = 1 ]; then
  log "E2E_KEEP=1: Jaeger UI on $jaeger_query (service $service), API on $base; Ctrl-C to stop"
  wait "$api_pid" || true
fi
exit "$status"
