#!/usr/bin/env bash
# Forward-auth throughput: `celeriac sessions` answering GET /auth for a
# logged-in Django session, against a minimal Django view doing the same
# check (SessionMiddleware + AuthenticationMiddleware, 200 with X-User-Id or
# 401) served by gunicorn with 2 sync workers. Both sides read the same
# session and the same auth_user row in the same PostgreSQL, in the same
# run, driven by wrk over loopback. Prints a Markdown table.
#
# Knobs: DURATION (seconds per run, default 10), CONNS (default 32).
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=/usr/bin/python3
DURATION="${DURATION:-10}"
CONNS="${CONNS:-32}"
PG_URL="${CELERIAC_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}"
REDIS_URL="${CELERIAC_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"
SECRET="bench-secret-$(date +%s)"

for p in wrk psql; do command -v "$p" >/dev/null || { echo "30-sessions: $p not installed" >&2; exit 1; }; done
$PY -c 'import django, django_redis, gunicorn' || { echo "30-sessions: needs python3-django, python3-django-redis, python3-gunicorn" >&2; exit 1; }

tmp=$(mktemp -d)
db="bench_sessions_$$"
prefix="bench_sessions_$$"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  redis-cli -u "$REDIS_URL" --scan --pattern "$prefix:*" 2>/dev/null | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url
  for _ in $(seq 1 200); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)
    [ "$code" != "000" ] && return 0
    sleep 0.05
  done
  echo "30-sessions: $1 did not come up" >&2; return 1
}

go build -o "$tmp/celeriac" ./cmd/celeriac
psql -q "$PG_URL" -c "CREATE DATABASE $db" >/dev/null
DB_URL=$($PY -c 'import sys,urllib.parse as u; p=u.urlparse(sys.argv[1]); print(p._replace(path="/"+sys.argv[2]).geturl())' "$PG_URL" "$db")
eval "$($PY - "$PG_URL" "$db" <<'PYEOF'
import sys, urllib.parse as u
p = u.urlparse(sys.argv[1])
print(f"export DJ_DB_HOST={p.hostname or '127.0.0.1'} DJ_DB_PORT={p.port or 5432} DJ_DB_USER={p.username or 'postgres'} DJ_DB_PASSWORD={p.password or ''} DJ_DB_NAME={sys.argv[2]}")
PYEOF
)"
export PYTHONDONTWRITEBYTECODE=1 DJ_SECRET_KEY="$SECRET" DJ_KEY_PREFIX="$prefix" DJ_REDIS_URL="$REDIS_URL"
tool=sessions/testdata/djsite/tool.py
$PY $tool migrate >/dev/null
$PY $tool adduser bench bench-password >/dev/null

# engine label | Django SESSION_ENGINE | cache | celeriac flags
declare -A cookie
cookie[signed]=$(DJ_SESSION_ENGINE=django.contrib.sessions.backends.signed_cookies $PY $tool login bench bench-password | jq -r .cookie)
cookie[redis]=$(DJ_SESSION_ENGINE=django.contrib.sessions.backends.cache DJ_CACHE=redis $PY $tool login bench bench-password | jq -r .cookie)

# cpu_ticks PID -> user+system clock ticks of PID and its children
# (gunicorn's workers), read from /proc.
cpu_ticks() {
  local t=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}
HZ=$(getconf CLK_TCK)

# measure URL COOKIE PID -> "req/s p99 cpu-µs-per-request"
# The server's own CPU time per request does not depend on how busy the
# shared machine is, unlike req/s.
measure() {
  curl -sf -o /dev/null -H "Cookie: sessionid=$2" "$1" || { echo "30-sessions: $1 refused the session" >&2; exit 1; }
  wrk -t2 -c"$CONNS" -d2s -H "Cookie: sessionid=$2" "$1" >/dev/null # warm-up
  local before after
  before=$(cpu_ticks "$3")
  out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -H "Cookie: sessionid=$2" "$1")
  after=$(cpu_ticks "$3")
  if grep -q "Non-2xx" <<<"$out"; then echo "30-sessions: non-2xx answers from $1" >&2; echo "$out" >&2; exit 1; fi
  rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  cpu=$(awk -v d=$((after - before)) -v hz="$HZ" -v n="$reqs" 'BEGIN{printf "%.0f", d / hz * 1e6 / n}')
  echo "$rps $p99 $cpu"
}

start_celeriac() { # port flags...
  local port=$1; shift
  DJANGO_SECRET_KEY="$SECRET" "$tmp/celeriac" sessions --listen "127.0.0.1:$port" --database "$DB_URL" --log-level error "$@" &
  pids+=($!)
  wait_http "http://127.0.0.1:$port/healthz"
}
stop_last() { kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'; }

start_django() { # port engine cache
  DJ_SESSION_ENGINE=$2 DJ_CACHE=$3 $PY -m gunicorn --chdir sessions/testdata/djsite -w 2 \
    -b "127.0.0.1:$1" --log-level warning wsgi:application &
  pids+=($!)
  wait_http "http://127.0.0.1:$1/auth"
}

load=$(cut -d' ' -f1 /proc/loadavg)
rows=()
run_engine() { # label key django_engine cache celeriac_flags...
  local label=$1 key=$2 djengine=$3 cache=$4; shift 4
  local p
  p=$(free_port); start_django "$p" "$djengine" "$cache"
  read -r d_rps d_p99 d_cpu < <(measure "http://127.0.0.1:$p/auth" "${cookie[$key]}" "${pids[-1]}")
  stop_last
  p=$(free_port); start_celeriac "$p" "$@"
  read -r c_rps c_p99 c_cpu < <(measure "http://127.0.0.1:$p/auth" "${cookie[$key]}" "${pids[-1]}")
  stop_last
  p=$(free_port); start_celeriac "$p" "$@" --user-cache-ttl 5s
  read -r t_rps t_p99 t_cpu < <(measure "http://127.0.0.1:$p/auth" "${cookie[$key]}" "${pids[-1]}")
  stop_last
  rows+=("| $label | $c_rps | $d_rps | $(awk -v a="$c_rps" -v b="$d_rps" 'BEGIN{printf "%.1f×", a/b}') | $c_p99 | $d_p99 | $c_cpu | $d_cpu |")
  rows+=("| $label, \`--user-cache-ttl 5s\` | $t_rps | $d_rps | $(awk -v a="$t_rps" -v b="$d_rps" 'BEGIN{printf "%.1f×", a/b}') | $t_p99 | $d_p99 | $t_cpu | $d_cpu |")
}

run_engine "signed_cookies" signed django.contrib.sessions.backends.signed_cookies locmem --engine signed_cookies
run_engine "cache (Redis, django-redis pickle)" redis django.contrib.sessions.backends.cache redis \
  --engine cache --redis "$REDIS_URL" --cache-key-prefix "$prefix"

echo "Forward auth, GET /auth with a logged-in session: wrk -t2 -c$CONNS -d${DURATION}s on loopback, $(nproc) cores shared by wrk, the server, PostgreSQL and Redis (load average before the run: $load). Django: 3.2 under gunicorn (2 sync workers), CONN_MAX_AGE=600. CPU µs/req: the server process's own user+system time per request."
echo
echo "| engine | celeriac req/s | Django req/s | ratio | celeriac p99 | Django p99 | celeriac CPU µs/req | Django CPU µs/req |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
