"""Helpers for scripts/bench/10-worker.sh, run with Debian's Celery.

  publish QUEUE N        send N celeriac.noop tasks with send_task; prints tasks/s
                         (CONFIRM=1: with publisher confirms)
  drainrate QUEUE N      wait while QUEUE drains; prints tasks/s from the first
                         message taken to the queue being empty
  lateness PORT N        wait until the worker serving /metrics on PORT has
                         started N ETA tasks; prints how late they started,
                         from its celeriac_eta_lateness_seconds histogram
"""
import os
import sys
import time
import urllib.request

from celery import Celery

app = Celery("bench", broker=os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"))
app.conf.task_serializer = "json"
if os.environ.get("CONFIRM") == "1":  # publisher confirms, as celeriac always uses
    app.conf.broker_transport_options = {"confirm_publish": True}


@app.task(name="celeriac.noop")
def noop():
    return None


def publish(queue, n):
    start = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for _ in range(n):
            app.send_task("celeriac.noop", queue=queue, producer=producer)
    print("%.1f" % (n / (time.perf_counter() - start)))


def drainrate(queue, n):
    with app.connection_for_read() as conn:
        ch = conn.default_channel
        t0 = None
        deadline = time.time() + 600
        while time.time() < deadline:
            ready = ch.queue_declare(queue=queue, passive=True).message_count
            now = time.perf_counter()
            if t0 is None and ready < n:
                t0 = now
            if ready == 0:
                print("%.1f" % (n / (now - t0)))
                return
            time.sleep(0.01)
    sys.exit("queue did not drain")


def lateness(port, n):
    deadline = time.time() + 180
    while True:
        text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port).read().decode()
        buckets = {}  # upper bound in seconds -> cumulative count
        for line in text.splitlines():
            if line.startswith("celeriac_eta_lateness_seconds_bucket"):
                le = line.split('le="')[1].split('"')[0]
                buckets[float(le)] = float(line.rsplit(" ", 1)[1])
        started = buckets.get(float("inf"), 0)
        if started >= n:
            break
        if time.time() > deadline:
            sys.exit("only %d of %d ETA tasks started" % (started, n))
        time.sleep(0.5)
    p99 = min(le for le, c in buckets.items() if c >= 0.99 * started)
    print("%.1f%% within 100 ms, p99 ≤ %g ms" % (100 * buckets[0.1] / started, p99 * 1000))


if __name__ == "__main__":
    {"publish": publish, "drainrate": drainrate, "lateness": lateness}[sys.argv[1]](sys.argv[2], int(sys.argv[3]))
