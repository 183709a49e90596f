#!/usr/bin/env bash
# The core worker benchmark, every row measured in this one run on this
# machine against the local RabbitMQ and Redis:
#   (a) ceiling: a bare amqp091-go consumer that only acks, with the worker's
#       default prefetch (default concurrency × 4)
#   (b) celeriac worker, default settings, draining N celeriac.noop tasks
#       published by Python Celery (no result backend)
#   (c) the same with Redis results (and so the exactly-once guard, on by default)
#   (c') the same with Redis results and --without-guard
#   (d) Celery 5.2.6's prefork worker -c 2 on the same load
#   (e) publish rate: celeriac send --count vs Python send_task, Python with
#       and without publisher confirms (celeriac always confirms), and the
#       broker's own ceiling for that message (ceiling -publish)
#   (f) celeriac worker RSS when idle
#   (g) RSS holding 100,000 tasks with a one-hour countdown
#   (h) how late ETA tasks start: ETA_H tasks with a 5 s countdown (held in
#       memory) and ETA_H/4 with 40 s (parked in RabbitMQ's delay ladder,
#       back 2 s early), read from the worker's celeriac_eta_lateness_seconds
# Drain rates count from the first message taken to the queue being empty.
# Drain rows (a)–(d) run REPS times, interleaved; the table shows medians.
# Knobs: N (default 20000), ETA_N (default 100000), ETA_H (default 1000),
# REPS (default 3).
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=/usr/bin/python3
N="${N:-20000}"
ETA_N="${ETA_N:-100000}"
ETA_H="${ETA_H:-1000}"
REPS="${REPS:-3}"
AMQP="${CELERIAC_TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672//}"
REDIS="${CELERIAC_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"
export CELERY_BROKER_URL="$AMQP" PYTHONDONTWRITEBYTECODE=1
tmp=$(mktemp -d)
q="bench_worker_$$"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  rabbitmqctl -q delete_queue "$q" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/celeriac" ./cmd/celeriac
go build -o "$tmp/ceiling" ./scripts/bench/ceiling
bench="$PY $(pwd)/scripts/bench/celery_bench.py"
cd scripts/bench

fill() { $bench publish "$q" "$N" >/dev/null; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
worker() { # extra flags…; runs a worker in the background, sets $wpid
  "$tmp/celeriac" worker -b "$AMQP" -Q "$q" -l warning "$@" >"$tmp/worker.log" 2>&1 &
  wpid=$!; pids+=("$wpid")
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
drain_celeriac() { # extra flags…
  fill
  worker "$@"
  $bench drainrate "$q" "$N"
  stop "$wpid"
}

# Declare the queue as Celery does, once, so every row starts alike.
$bench publish "$q" 1 >/dev/null
"$tmp/ceiling" -url "${AMQP%/}" -queue "$q" -n 1 >/dev/null

prefetch=$(( ( $(nproc) * 4 > 8 ? $(nproc) * 4 : 8 ) * 4 ))
# Measured like every other row: from the first message taken to the queue
# being empty, by the same poller.
drain_ceiling() {
  fill
  "$tmp/ceiling" -url "${AMQP%/}" -queue "$q" -n "$N" -prefetch "$prefetch" >/dev/null &
  local cpid=$!
  $bench drainrate "$q" "$N"
  wait "$cpid"
}
drain_celery() {
  fill
  $PY -m celery -A celery_bench worker -P prefork -c 2 -Q "$q" -l warning \
    --without-gossip --without-mingle --without-heartbeat >"$tmp/celery.log" 2>&1 &
  local cpid=$!
  $bench drainrate "$q" "$N"
  kill -TERM "$cpid"; wait "$cpid" 2>/dev/null || true
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
# Each drain row REPS times, interleaved so that drift on a shared machine
# hits every row alike; the table shows the medians.
as=() bs=() cs=() c2s=() ds=()
for _ in $(seq "$REPS"); do
  as+=("$(drain_ceiling)")
  bs+=("$(drain_celeriac)")
  cs+=("$(drain_celeriac --result-backend "$REDIS")")
  c2s+=("$(drain_celeriac --result-backend "$REDIS" --without-guard)")
  ds+=("$(drain_celery)")
done
a=$(median "${as[@]}") b=$(median "${bs[@]}") c=$(median "${cs[@]}") c2=$(median "${c2s[@]}") d=$(median "${ds[@]}")

purge() { rabbitmqctl -q purge_queue "$q" >/dev/null; }
pub_ceiling() {
  purge
  "$tmp/celeriac" send celeriac.noop -b "$AMQP" --queue "$q" >/dev/null 2>&1
  "$tmp/ceiling" -url "${AMQP%/}" -queue "$q" -n "$N" -publish
}
pub_go() {
  purge
  "$tmp/celeriac" send celeriac.noop -b "$AMQP" --queue "$q" --count "$N" 2>/dev/null | sed -E 's/.*\(([0-9.]+) tasks\/s\).*/\1/'
}
pub_py() { purge; $bench publish "$q" 5000; }
pub_pyc() { purge; CONFIRM=1 $bench publish "$q" 2000; }
ecs=() egs=() eps=() epcs=()
for _ in $(seq "$REPS"); do
  ecs+=("$(pub_ceiling)") egs+=("$(pub_go)") eps+=("$(pub_py)") epcs+=("$(pub_pyc)")
done
e_ceil=$(median "${ecs[@]}") e_go=$(median "${egs[@]}") e_py=$(median "${eps[@]}") e_pyc=$(median "${epcs[@]}")
purge

worker
for _ in $(seq 1 100); do grep -q . "/proc/$wpid/status" && break; sleep 0.02; done
sleep 3 # let the idle worker settle before reading its RSS
f=$(rss_kb "$wpid")
stop "$wpid"

"$tmp/celeriac" send celeriac.noop -b "$AMQP" --queue "$q" --countdown 3600 --count "$ETA_N" >/dev/null 2>&1
worker
$bench drainrate "$q" "$ETA_N" >/dev/null
sleep 2
g=$(rss_kb "$wpid")
stop "$wpid"

rabbitmqctl -q purge_queue "$q" >/dev/null
port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
worker --http "127.0.0.1:$port"
"$tmp/celeriac" send celeriac.noop -b "$AMQP" --queue "$q" --countdown 5 --count "$ETA_H" >/dev/null 2>&1
"$tmp/celeriac" send celeriac.noop -b "$AMQP" --queue "$q" --countdown 40 --count $((ETA_H / 4)) >/dev/null 2>&1
h=$($bench lateness "$port" $((ETA_H + ETA_H / 4)))
stop "$wpid"

ratio() { $PY -c "print('%.2f' % ($1 / $2))"; }
mb() { $PY -c "print('%.1f' % ($1 / 1024))"; }
cat <<TABLE
| row | measure | value | ratio | target |
|---|---|---|---|---|
| (a) bare amqp091-go consumer, ack only | tasks/s | $a | 1.00 (anchor) | |
| (b) celeriac worker, no results | tasks/s | $b | $(ratio "$b" "$a") × (a) | ≥ 0.85 |
| (c) celeriac worker, Redis results, guard on | tasks/s | $c | $(ratio "$c" "$a") × (a) | ≥ 0.60 (guard ≥ 0.50) |
| (c') celeriac worker, Redis results, guard off | tasks/s | $c2 | $(ratio "$c2" "$a") × (a) | |
| (d) Celery 5.2.6 prefork -c 2, no results | tasks/s | $d | $(ratio "$d" "$a") × (a); celeriac (b) = $(ratio "$b" "$d") × Celery | |
| (e) publish: celeriac send (confirmed) vs Python send_task (unconfirmed, Celery's default) | tasks/s | $e_go vs $e_py | $(ratio "$e_go" "$e_py") × Python | ≥ 10 |
| (e') publish: both with publisher confirms | tasks/s | $e_go vs $e_pyc | $(ratio "$e_go" "$e_pyc") × Python | |
| (e'') publish ceiling: bare amqp091-go, same message, confirmed, all in flight | tasks/s | $e_ceil | celeriac send = $(ratio "$e_go" "$e_ceil") × ceiling; ceiling = $(ratio "$e_ceil" "$e_py") × Python | |
| (f) celeriac worker idle | RSS MB | $(mb "$f") | | ≤ 15 |
| (g) holding $ETA_N tasks with 1 h countdown | RSS MB | $(mb "$g") | | ≤ 150 |
| (h) ETA tasks started after their ETA, 5 s and 40 s countdowns | lateness | $h | | within 100 ms |

N=$N no-op tasks per drain row, median of $REPS interleaved runs (all: a ${as[*]}; b ${bs[*]}; c ${cs[*]}; c' ${c2s[*]}; d ${ds[*]}); prefetch $prefetch for (a)–(c'); $(nproc) CPUs; RabbitMQ $(rabbitmqctl version 2>/dev/null), Celery $($PY -c 'import celery; print(celery.__version__)').
TABLE
