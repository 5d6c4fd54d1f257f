#!/usr/bin/env bash
# Run the SDK smoke test (src/smoke.ts) against a throwaway Portcullis server: build the Go
# binary, create a fresh PostgreSQL database, serve on a free loopback port with a Redis key
# prefix of its own, wait for /readyz, run `npm run smoke`, and always stop the server, drop
# the database and delete the Redis keys afterwards.
#
# Needs: Go, Node 20+ with `npm ci` done here, psql, PostgreSQL on 127.0.0.1:5432 (trust auth
# for role postgres) and Redis on 127.0.0.1:6379. Override with PGHOST, PGPORT, PGUSER and
# REDIS_URL.
set -euo pipefail
cd "$(dirname "$0")"
sdk_dir=$(pwd)
repo_root=$(cd ../.. && pwd)
export PATH="$PATH:/usr/local/go/bin"

pg_host=${PGHOST:-127.0.0.1}
pg_port=${PGPORT:-5432}
pg_user=${PGUSER:-postgres}
redis_url=${REDIS_URL:-redis://127.0.0.1:6379/0}
db="pc_smoke_$$"
prefix="smoke:$$:"

need() { command -v "$1" >/dev/null 2>&1 || { echo "run-smoke: $1 not found; $2" >&2; exit 1; }; }
need go "install Go (see go.mod for the version)"
need node "install Node.js 20 or newer"
need npm "install npm"
need psql "apt-get install postgresql-client"
need curl "apt-get install curl"
[[ -d node_modules ]] || { echo "run-smoke: node_modules is missing; run 'npm ci' in $sdk_dir first" >&2; exit 1; }

psql_() { psql -h "$pg_host" -p "$pg_port" -U "$pg_user" -d postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
if ! psql_ -c 'SELECT 1' >/dev/null; then
  echo "run-smoke: PostgreSQL is not reachable at $pg_host:$pg_port as $pg_user (apt-get install postgresql, then start it)" >&2
  exit 1
fi

tmp=$(mktemp -d)
server_pid=""
db_created=""
cleanup() {
  local rc=$?
  set +e
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$server_pid" 2>/dev/null && kill -KILL "$server_pid"
    wait "$server_pid" 2>/dev/null
  fi
  if [[ -n "$db_created" ]]; then
    psql_ -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" && echo "run-smoke: dropped database $db"
  fi
  if command -v redis-cli >/dev/null 2>&1; then
    redis-cli -u "$redis_url" --scan --pattern "${prefix}*" 2>/dev/null |
      xargs -r -n 100 redis-cli -u "$redis_url" DEL >/dev/null 2>&1
  fi
  if [[ $rc -ne 0 && -s "$tmp/server.log" ]]; then
    echo "run-smoke: last lines of the server log:" >&2
    tail -n 30 "$tmp/server.log" >&2
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "run-smoke: building the server"
(cd "$repo_root" && go build -o "$tmp/portcullis" ./cmd/portcullis)

echo "run-smoke: building the SDK"
npm run --silent build

psql_ -c "CREATE DATABASE \"$db\""
db_created=1
echo "run-smoke: created database $db"

port=$(node -e 'const s = require("node:net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });')
base_url="http://127.0.0.1:$port"

DATABASE_URL="postgres://$pg_user@$pg_host:$pg_port/$db?sslmode=disable" \
REDIS_URL="$redis_url" \
PORTCULLIS_HTTP_ADDR="127.0.0.1:$port" \
PORTCULLIS_REDIS_PREFIX="$prefix" \
PORTCULLIS_ISSUER="$base_url" \
PORTCULLIS_ARGON2_MEMORY_KIB=64 \
PORTCULLIS_ARGON2_ITERATIONS=1 \
PORTCULLIS_HTTP_REQUEST_TIMEOUT=4s \
PORTCULLIS_HTTP_SHUTDOWN_TIMEOUT=5s \
  "$tmp/portcullis" serve >"$tmp/server.log" 2>&1 &
server_pid=$!
echo "run-smoke: started the server (pid $server_pid) on $base_url"

ready=""
for _ in $(seq 150); do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "run-smoke: the server exited before it was ready" >&2
    exit 1
  fi
  if curl -fsS -o /dev/null "$base_url/readyz" 2>/dev/null; then ready=1; break; fi
  sleep 0.2
done
[[ -n "$ready" ]] || { echo "run-smoke: $base_url/readyz did not answer 200 within 30s" >&2; exit 1; }
echo "run-smoke: server ready"

PORTCULLIS_URL="$base_url" npm run --silent smoke
