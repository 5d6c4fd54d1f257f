#!/usr/bin/env bash
# Checks the observability config in this folder. Run from anywhere:
#   deploy/observability/check.sh
# Needs promtool (Debian: apt-get install prometheus) and python3. PyYAML is optional:
# without it the YAML-only checks are skipped with a message.
# Exits non-zero if any check fails.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")" || exit 1

if ! command -v promtool >/dev/null 2>&1; then
	echo "promtool missing: apt-get install prometheus"
	exit 1
fi
if ! command -v python3 >/dev/null 2>&1; then
	echo "python3 missing: apt-get install python3"
	exit 1
fi

failures=0
step() { printf '\n== %s\n' "$*"; }
run() {
	if "$@"; then
		echo "ok: $*"
	else
		echo "FAILED: $*"
		failures=$((failures + 1))
	fi
}

echo "$(promtool --version 2>&1 | head -n 1)"

step "prometheus config"
run promtool check config prometheus/prometheus.yml

step "alert rules"
run promtool check rules prometheus/alerts.yml

step "alert rule unit tests"
run promtool test rules prometheus/alerts_test.yml

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

step "dashboard JSON, datasources and metric names"
# Parses the dashboard, checks its structure and datasource uids, checks that every
# Prometheus query uses only the service's metrics (plus go_*, process_*, up), and writes
# the queries (Grafana variables substituted) as a rule file so promtool checks their syntax.
run python3 - "$tmp/dashboard_queries.yml" <<'PY'
import json, re, sys

DASH = "grafana/dashboards/portcullis.json"
DATASOURCES = "grafana/provisioning/datasources/datasources.yml"
ALERTS = "prometheus/alerts.yml"

ALLOWED = {
    "portcullis_http_requests_total",
    "portcullis_http_request_duration_seconds_bucket",
    "portcullis_http_request_duration_seconds_sum",
    "portcullis_http_request_duration_seconds_count",
    "portcullis_auth_registrations_total",
    "portcullis_auth_logins_total",
    "portcullis_auth_refreshes_total",
    "portcullis_auth_refresh_reuse_total",
    "portcullis_sessions_revoked_total",
    "portcullis_sessions_active",
    "portcullis_dependency_up",
    "portcullis_ready",
    "portcullis_db_pool_connections",
    "portcullis_db_pool_acquire_wait_seconds_total",
    "portcullis_redis_cached_reads_total",
    "portcullis_password_hash_duration_seconds_bucket",
    "portcullis_password_hash_duration_seconds_sum",
    "portcullis_password_hash_duration_seconds_count",
    "portcullis_password_hash_wait_seconds_bucket",
    "portcullis_password_hash_wait_seconds_sum",
    "portcullis_password_hash_wait_seconds_count",
    "portcullis_password_hashes_running",
    "portcullis_password_hashes_queued",
    "up",
}
ALLOWED_PREFIXES = ("go_", "process_")
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
            "group_right", "offset", "bool", "atan2", "inf", "nan", "start", "end"}

errors = []

def metric_names(expr):
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)   # string literals
    if "__name__" in e:
        errors.append("query selects by __name__, cannot check its metric names: %r" % expr)
    e = re.sub(r"\{[^}]*\}", " ", e)                          # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)                         # range / subquery brackets
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\{[^}]*\}|\$\w+", " ", e)                  # leftover Grafana variables
    names = set()
    for m in re.finditer(r"(?<![\w.:])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", e):
        tok, call = m.group(1), m.group(2)
        if call or tok.lower() in KEYWORDS:
            continue                                           # function/aggregation, keyword
        names.add(tok)
    return names

def check_names(where, expr):
    names = metric_names(expr)
    if not names:
        errors.append("%s: no metric name found in %r" % (where, expr))
    for n in sorted(names):
        if n not in ALLOWED and not n.startswith(ALLOWED_PREFIXES):
            errors.append("%s: unknown metric %r in %r" % (where, n, expr))

def grafana_to_promql(expr):
    e = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "1h")
    e = re.sub(r"\$\{[^}]*\}|\$\w+", ".*", e)                 # template variables (in regex matchers)
    return e

# datasource uids from the provisioning file (plain-text parse: PyYAML is optional)
uids = {}
cur = {}
for line in open(DATASOURCES):
    m = re.match(r"\s*(-\s+)?(name|uid|type):\s*(\S+)", line)
    if m:
        if m.group(1):
            cur = {}
        cur[m.group(2)] = m.group(3).strip("\"'")
        if "uid" in cur and "type" in cur:
            uids[cur["uid"]] = cur["type"]
if not uids:
    errors.append("%s: no datasource uids found" % DATASOURCES)

try:
    with open(DASH) as f:
        dash = json.load(f)
except ValueError as e:
    print("  error: %s is not valid JSON: %s" % (DASH, e))
    sys.exit(1)

for key in ("uid", "title", "panels", "schemaVersion"):
    if key not in dash:
        errors.append("dashboard has no %r" % key)
if not 36 <= dash.get("schemaVersion", 0) <= 41:
    errors.append("unexpected schemaVersion %r" % dash.get("schemaVersion"))

def all_panels(panels):
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))

def ds_uid(ds, where):
    if ds is None:
        return None
    if isinstance(ds, str):                                    # legacy: datasource by name
        errors.append("%s: datasource given by name %r, use {type, uid}" % (where, ds))
        return None
    uid = ds.get("uid")
    if uid in ("-- Grafana --", "grafana") or uid is None:
        return uid
    if uid not in uids:
        errors.append("%s: datasource uid %r is not provisioned (%s)" % (where, uid, sorted(uids)))
    elif ds.get("type") and ds["type"] != uids[uid]:
        errors.append("%s: datasource %r has type %r, provisioned as %r" % (where, uid, ds["type"], uids[uid]))
    return uid

queries = []
ids = set()
for p in all_panels(dash.get("panels", [])):
    title = p.get("title", "?")
    if p.get("id") in ids:
        errors.append("duplicate panel id %r (%s)" % (p.get("id"), title))
    ids.add(p.get("id"))
    g = p.get("gridPos", {})
    if not all(k in g for k in "hwxy") or g["x"] + g["w"] > 24:
        errors.append("panel %r has a bad gridPos %r" % (title, g))
    if p.get("type") == "row":
        continue
    panel_uid = ds_uid(p.get("datasource"), "panel %r" % title)
    targets = p.get("targets", [])
    if not targets:
        errors.append("panel %r has no queries" % title)
    for t in targets:
        uid = ds_uid(t.get("datasource"), "panel %r" % title) or panel_uid
        expr = t.get("expr", "")
        if not expr.strip():
            errors.append("panel %r: empty query" % title)
        elif uids.get(uid) == "prometheus":
            check_names("panel %r" % title, expr)
            queries.append(("panel %s %s" % (title, t.get("refId")), expr))
        elif uids.get(uid) != "loki":
            errors.append("panel %r: query on unknown datasource %r" % (title, uid))

for v in dash.get("templating", {}).get("list", []):
    if v.get("type") != "query":
        continue
    q = v.get("query")
    q = q.get("query", "") if isinstance(q, dict) else (q or "")
    if uids.get(ds_uid(v.get("datasource"), "variable %r" % v.get("name"))) != "prometheus":
        continue
    m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\)\s*", q) or re.fullmatch(r"\s*query_result\((.*)\)\s*", q)
    inner = m.group(1) if m else q
    check_names("variable %r" % v.get("name"), inner)
    queries.append(("variable %s" % v.get("name"), inner))

# alert expressions use the same metric names (needs PyYAML; promtool already checks syntax)
try:
    import yaml
    for g in yaml.safe_load(open(ALERTS))["groups"]:
        for r in g["rules"]:
            check_names("alert %s" % r.get("alert", r.get("record")), r["expr"])
except ImportError:
    print("skip: metric names in %s (python3 yaml missing)" % ALERTS)

# dashboard queries -> a rule file, for `promtool check rules` to parse
with open(sys.argv[1], "w") as out:
    out.write("groups:\n  - name: dashboard_queries\n    rules:\n")
    for i, (where, expr) in enumerate(queries):
        out.write("      - record: dashboard:query_%d\n        expr: %s\n" % (i, json.dumps(grafana_to_promql(expr))))

print("dashboard: %d panels, %d Prometheus queries, datasources %s" % (len(ids), len(queries), sorted(uids)))
for e in errors:
    print("  error: " + e)
sys.exit(1 if errors else 0)
PY

step "dashboard PromQL syntax"
if [ -s "$tmp/dashboard_queries.yml" ]; then
	run promtool check rules "$tmp/dashboard_queries.yml"
else
	echo "FAILED: no dashboard queries extracted"
	failures=$((failures + 1))
fi

step "YAML files (promtail, grafana provisioning)"
if python3 -c 'import yaml' 2>/dev/null; then
	run python3 - <<'PY'
import sys, yaml

errors = []
for path in ("loki/promtail.yml",
             "grafana/provisioning/datasources/datasources.yml",
             "grafana/provisioning/dashboards/dashboards.yml"):
    try:
        with open(path) as f:
            doc = yaml.safe_load(f)
        if not isinstance(doc, dict):
            errors.append("%s: not a mapping" % path)
        else:
            print("valid YAML: %s" % path)
    except Exception as e:  # noqa: BLE001 - report any parse error
        errors.append("%s: %s" % (path, e))

# Promtail: request/trace/span/user ids must never become Loki labels (unbounded).
FORBIDDEN = {"request_id", "trace_id", "span_id", "user_id"}
def walk(node, path):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "labels" and isinstance(v, dict):
                bad = FORBIDDEN & set(v)
                if bad:
                    errors.append("loki/promtail.yml: %s turns %s into labels" % (path, sorted(bad)))
            walk(v, path + "." + str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            walk(v, "%s[%d]" % (path, i))
try:
    promtail = yaml.safe_load(open("loki/promtail.yml"))
    jobs = promtail.get("scrape_configs") or []
    if not jobs:
        errors.append("loki/promtail.yml: no scrape_configs")
    for job in jobs:
        if not job.get("pipeline_stages"):
            errors.append("loki/promtail.yml: job %s has no pipeline_stages" % job.get("job_name"))
    walk(promtail, "promtail")
except Exception as e:  # noqa: BLE001
    errors.append("loki/promtail.yml: %s" % e)

for e in errors:
    print("  error: " + e)
sys.exit(1 if errors else 0)
PY
else
	echo "skip: YAML checks of loki/promtail.yml and grafana/provisioning (python3 yaml missing: apt-get install python3-yaml)"
fi

if command -v promtail >/dev/null 2>&1; then
	step "promtail config syntax"
	run promtail -check-syntax -config.file loki/promtail.yml
fi

echo
if [ "$failures" -ne 0 ]; then
	echo "check.sh: $failures check(s) FAILED"
	exit 1
fi
echo "check.sh: all checks passed"
