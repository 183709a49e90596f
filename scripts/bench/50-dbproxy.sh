#!/usr/bin/env bash
# celeriac dbproxy vs Debian's PgBouncer vs a direct connection: pgbench
# against the local PostgreSQL (127.0.0.1:5432, trust), 100 clients over 20
# server connections, transaction pooling on both poolers, same run.
# Workloads: select-only (-S) with the simple and extended protocols, and
# the TPC-B-like default script. Prints a Markdown table of TPS and average
# latency (medians of the rounds) with the ratio to PgBouncer.
# Ports 18096 (dbproxy) and 18097 (PgBouncer).
#
# Knobs: BENCH_DURATION (10, seconds), BENCH_ROUNDS (3), BENCH_CLIENTS (100),
# BENCH_POOL (20), BENCH_PG (postgres://postgres@127.0.0.1:5432).
set -euo pipefail
cd "$(dirname "$0")/../.."

duration=${BENCH_DURATION:-10}
rounds=${BENCH_ROUNDS:-3}
clients=${BENCH_CLIENTS:-100}
pool=${BENCH_POOL:-20}
pg=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
dport=18096
bport=18097
db=celeriac_bench_dbproxy
pgbouncer=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
pgbin=$(ls -d /usr/lib/postgresql/*/bin | tail -n1)
for p in "$pgbin/pgbench" "$pgbin/psql" "$pgbouncer"; do
  [ -x "$p" ] || { echo "50-dbproxy: $p not installed (scripts/test-deps.sh)" >&2; exit 1; }
done
pghost=$(echo "$pg" | sed -E 's|.*@([^:/]+).*|\1|')
pgport=$(echo "$pg" | sed -E 's|.*:([0-9]+).*|\1|')

tmp=$(mktemp -d)
chmod 755 "$tmp"
[ "$(id -u)" -ne 0 ] || chown postgres "$tmp" # PgBouncer drops root and writes its log here
dpid=""
bpid=""
cleanup() {
  for p in $dpid $bpid; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  "$pgbin/psql" "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

bin=bin/celeriac
if [ ! -x "$bin" ]; then
  CGO_ENABLED=0 go build -trimpath -o "$tmp/celeriac" ./cmd/celeriac
  bin=$tmp/celeriac
fi

"$pgbin/psql" "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
"$pgbin/pgbench" -i -q -s 10 "$pg/$db" >/dev/null 2>&1

# Plain TCP to the server on both poolers: loopback needs no TLS.
"$bin" dbproxy --primary "$pg/postgres?sslmode=disable" --listen "127.0.0.1:$dport" --pool-mode transaction \
  --pool-size "$pool" --auth-type trust 2>"$tmp/dbproxy.log" &
dpid=$!

cat > "$tmp/pgbouncer.ini" <<INI
[databases]
* = host=$pghost port=$pgport
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bport
unix_socket_dir =
auth_type = trust
auth_file = $tmp/userlist.txt
pool_mode = transaction
server_tls_sslmode = disable
default_pool_size = $pool
max_client_conn = 1000
logfile = $tmp/pgbouncer.log
pidfile = $tmp/pgbouncer.pid
INI
echo '"postgres" ""' > "$tmp/userlist.txt"
chmod 644 "$tmp"/*
if [ "$(id -u)" -eq 0 ]; then
  "$pgbouncer" -u postgres "$tmp/pgbouncer.ini" 2>>"$tmp/pgbouncer.err" &
else
  "$pgbouncer" "$tmp/pgbouncer.ini" 2>>"$tmp/pgbouncer.err" &
fi
bpid=$!

for port in $dport $bport; do
  for _ in $(seq 1 100); do
    "$pgbin/psql" "postgres://postgres@127.0.0.1:$port/$db?sslmode=disable" -Atqc "SELECT 1" >/dev/null 2>&1 && break
    sleep 0.1
  done
done

# run TARGET-URL CLIENTS ARGS... -> "tps latency_ms"
run() {
  local url=$1 n=$2; shift 2
  { "$pgbin/pgbench" -n -T "$duration" -c "$n" -j 2 "$@" "$url" 2>&1 || true; } |
    awk '/^latency average/ {lat=$4} /^tps/ {tps=$3} END {printf "%.0f %.2f\n", tps, lat}'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# PostgreSQL's max_connections (100 by default) does not admit 100 direct
# clients, so the direct column uses as many clients as the pool has
# server connections: what the server sees behind either pooler.
echo "| workload | direct PG, $pool clients: tps (ms) | PgBouncer tps (ms) | dbproxy tps (ms) | dbproxy / PgBouncer |"
echo "|---|---|---|---|---|"
for w in "select-only simple:-S -M simple" "select-only extended:-S -M extended" "TPC-B-like simple:-M simple"; do
  label=${w%%:*}
  args=${w#*:}
  declare -A tps=() lat=()
  for target in direct pgbouncer dbproxy; do
    n=$clients
    case $target in
      direct) url="$pg/$db" n=$pool ;;
      pgbouncer) url="postgres://postgres@127.0.0.1:$bport/$db?sslmode=disable" ;;
      dbproxy) url="postgres://postgres@127.0.0.1:$dport/$db?sslmode=disable" ;;
    esac
    : > "$tmp/r"
    for _ in $(seq 1 "$rounds"); do
      # shellcheck disable=SC2086
      run "$url" "$n" $args >> "$tmp/r"
    done
    tps[$target]=$(cut -d' ' -f1 "$tmp/r" | median)
    lat[$target]=$(cut -d' ' -f2 "$tmp/r" | median)
  done
  ratio=$(awk -v a="${tps[dbproxy]}" -v b="${tps[pgbouncer]}" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}')
  echo "| $label | ${tps[direct]} (${lat[direct]}) | ${tps[pgbouncer]} (${lat[pgbouncer]}) | ${tps[dbproxy]} (${lat[dbproxy]}) | $ratio |"
done
echo
echo "_${clients} pgbench clients (-j 2), pool of ${pool} server connections in transaction mode, scale 10, ${duration}s x ${rounds} rounds (median), $(nproc) cores; latency = pgbench's average._"
