#!/usr/bin/env bash
# celeriac beat vs Debian's Celery beat scheduler, same run, same machine:
# 10,000 entries. Lag: every-10s interval entries with due times spread
# evenly (~1,000 due a second), lag from due time to sent, p50/p99.
# Idle: 10,000 hourly crontab entries, none due, CPU while waiting.
# celeriac runs with the real Redis (run history, lease) and the in-memory
# broker; Celery's scheduler sends to kombu's in-memory transport.
# Targets: p99 <= 20 ms, idle CPU <= 1 %.
#
# Knobs: BEAT_BENCH_WINDOW (20s), BEAT_BENCH_IDLE (10s).
set -euo pipefail
cd "$(dirname "$0")/../.."

window=${BEAT_BENCH_WINDOW:-20s}
idle=${BEAT_BENCH_IDLE:-10s}
py=/usr/bin/python3

out=$(BEAT_BENCH_WINDOW=$window BEAT_BENCH_IDLE=$idle \
  go test -run '^$' -bench 'DispatchLag|IdleCPU' -benchtime 1x ./beat/ 2>&1) || { echo "$out" >&2; exit 1; }
metric() { echo "$out" | awk -v m="$1" '{for (i = 2; i <= NF; i++) if ($i == m) print $(i-1)}' | head -n1; }
g50=$(metric p50-ms); g99=$(metric p99-ms); grate=$(metric dispatch/s); gidle=$(metric idle-cpu-%)

secs() { echo "${1%s}"; }
lag=$("$py" beat/testdata/bench_celery_beat.py lag "$(secs "$window")")
cidle=$("$py" beat/testdata/bench_celery_beat.py idle "$(secs "$idle")")
field() { "$py" -c "import json,sys; print(round(json.loads(sys.argv[1])[sys.argv[2]], 3))" "$1" "$2"; }
c50=$(field "$lag" p50); c99=$(field "$lag" p99); crate=$(field "$lag" dispatch_per_s); cidle=$(field "$cidle" cpu_pct)

ratio() { "$py" -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print(f'{a / b:.3g}x' if b else 'n/a')" "$1" "$2"; }
echo "| 10,000 entries | celeriac beat | Celery beat 5.2.6 | celeriac / Celery | target |"
echo "|---|---|---|---|---|"
echo "| dispatch lag p50 (ms) | $g50 | $c50 | $(ratio "$g50" "$c50") | |"
echo "| dispatch lag p99 (ms) | $g99 | $c99 | $(ratio "$g99" "$c99") | <= 20 |"
echo "| dispatches/s sustained (~1000 due/s) | $grate | $crate | $(ratio "$grate" "$crate") | |"
echo "| idle CPU (%) | $gidle | $cidle | $(ratio "$gidle" "$cidle") | <= 1 |"
