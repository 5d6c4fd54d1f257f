#!/usr/bin/env bash
# make contract: the real server on a fresh database, Stoplight Prism in front of it validating
# every request and response against api/openapi.yaml, and the contract walk through Prism.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
[ -d tools/contract/node_modules ] || npm ci --prefix tools/contract --no-audit --no-fund >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
api_port=$(free_port)
prism_port=$(free_port)
db="pc_contract_$$"
bin=$(mktemp -d)/portcullis
admin_pw="contract admin passphrase $$ $RANDOM"
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db?sslmode=disable"
export PORTCULLIS_HTTP_ADDR="127.0.0.1:$api_port" PORTCULLIS_REDIS_PREFIX="contract:$$:"
export PORTCULLIS_ARGON2_MEMORY_KIB=64 PORTCULLIS_ARGON2_ITERATIONS=1 PORTCULLIS_CREATE_DATABASE=true

cleanup() {
  [ -n "${prism_pid:-}" ] && kill "$prism_pid" 2>/dev/null || true
  [ -n "${api_pid:-}" ] && kill "$api_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$(dirname "$bin")"
}
trap cleanup EXIT

go build -o "$bin" ./cmd/portcullis
"$bin" serve >"$(dirname "$bin")/api.log" 2>&1 &
api_pid=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$api_port/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
printf '%s\n' "$admin_pw" | "$bin" admin create -email "contract-admin@example.com" -username contract_admin -password-stdin >/dev/null

tools/contract/node_modules/.bin/prism proxy api/openapi.yaml "http://127.0.0.1:$api_port" --errors \
  --host 127.0.0.1 --port "$prism_port" >"$(dirname "$bin")/prism.log" 2>&1 &
prism_pid=$!
for _ in $(seq 1 150); do curl -fsS "http://127.0.0.1:$prism_port/healthz" >/dev/null 2>&1 && break; sleep 0.2; done

status=0
PORTCULLIS_CONTRACT_URL="http://127.0.0.1:$prism_port" \
PORTCULLIS_CONTRACT_ADMIN_EMAIL="contract-admin@example.com" \
PORTCULLIS_CONTRACT_ADMIN_PASSWORD="$admin_pw" \
  go test -count=1 -run '^TestContractThroughPrism$' -v ./internal/httpserver || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- prism log (tail)"; tail -40 "$(dirname "$bin")/prism.log"
fi
exit "$status"
