#!/usr/bin/env bash
# Redis broker transport: publish and consume+ack rates of celeriac's
# broker/redis against kombu 5.2's Redis transport (what Celery uses), on
# the same Redis, the same message (a Celery protocol-2 task message), in
# the same run. Publishing goes through a direct exchange (binding lookup +
# LPUSH) one message at a time; consuming uses prefetch 8 with kombu's ack
# emulation (unacked hash + index) on both sides. Prints a Markdown table.
#
# Knobs: N (messages per measurement, default 20000).
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=/usr/bin/python3
N="${N:-20000}"
REDIS_URL="${CELERIAC_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"
$PY -c 'import kombu, redis' || { echo "55-redis-transport: needs python3-kombu and python3-redis" >&2; exit 1; }

go_out=$(CELERIAC_TEST_REDIS_URL="$REDIS_URL" go test -run '^$' -bench '^Benchmark(Publish|Consume)$' -benchtime "${N}x" ./broker/redis/ 2>/dev/null)
go_pub=$(awk '/^BenchmarkPublish/ {for (i=1;i<=NF;i++) if ($(i+1)=="msgs/s") print $i}' <<<"$go_out")
go_con=$(awk '/^BenchmarkConsume/ {for (i=1;i<=NF;i++) if ($(i+1)=="msgs/s") print $i}' <<<"$go_out")
[ -n "$go_pub" ] && [ -n "$go_con" ] || { echo "55-redis-transport: Go benchmark failed:" >&2; echo "$go_out" >&2; exit 1; }

read -r py_pub py_con < <($PY - "$REDIS_URL" "$N" <<'PYEOF'
import sys, time, uuid
from kombu import Connection, Exchange, Queue

url, n = sys.argv[1], int(sys.argv[2])
name = "bench_kombu_" + uuid.uuid4().hex[:8]
tid = "6d1c5f2e-0000-4000-8000-000000000000"
headers = {"lang": "py", "task": "tasks.add", "id": tid, "shadow": None, "eta": None, "expires": None,
           "group": None, "group_index": None, "retries": 0, "timelimit": [None, None], "root_id": tid,
           "parent_id": None, "argsrepr": "(2, 3)", "kwargsrepr": "{}", "origin": "bench@host",
           "ignore_result": False}
body = [[2, 3], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
ex = Exchange(name, "direct", durable=True)
q = Queue(name, ex, name, durable=True)
with Connection(url) as conn:
    ch = conn.channel()
    q(ch).declare()
    prod = conn.Producer(ch, exchange=ex, routing_key=name, serializer="json")
    t = time.perf_counter()
    for _ in range(n):
        prod.publish(body, headers=headers, correlation_id=tid, reply_to="bench", delivery_mode=2)
    pub = n / (time.perf_counter() - t)
    got = 0
    def on(body, message):
        global got
        message.ack()
        got += 1
    t = time.perf_counter()
    with conn.Consumer(q, callbacks=[on], prefetch_count=8, accept=["json"]):
        while got < n:
            conn.drain_events(timeout=10)
    con = n / (time.perf_counter() - t)
    q(ch).delete()
print(f"{pub:.0f} {con:.0f}")
PYEOF
)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "| Redis transport, $N messages | kombu 5.2 (msgs/s) | celeriac (msgs/s) | ratio |"
echo "|---|---:|---:|---:|"
printf '| publish (direct exchange) | %.0f | %.0f | %sx |\n' "$py_pub" "$go_pub" "$(ratio "$go_pub" "$py_pub")"
printf '| consume + ack, prefetch 8 | %.0f | %.0f | %sx |\n' "$py_con" "$go_con" "$(ratio "$go_con" "$py_con")"
