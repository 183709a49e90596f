#!/usr/bin/python3
"""The anchor for scripts/bench/60-beat.sh: Debian's Celery beat scheduler
(celery.beat.Scheduler, the loop `celery beat` runs) with the same 10,000
entries, sending to kombu's in-memory transport.

    bench_celery_beat.py lag WINDOW_SECONDS   every-10s entries, due times spread
    bench_celery_beat.py idle WINDOW_SECONDS  hourly crontab entries, none due

Prints JSON: p50/p99 dispatch lag in ms (lag) or CPU percent (idle).
"""
import json
import resource
import sys
import time
from datetime import timedelta

from celery import Celery
from celery.beat import Scheduler
from celery.schedules import crontab

N, PERIOD = 10000, 10.0
mode, window = sys.argv[1], float(sys.argv[2])
app = Celery("bench", broker="memory://", set_as_current=True)
app.conf.beat_max_loop_interval = 300
lags = []
measuring = [False]


class BenchScheduler(Scheduler):
    def apply_entry(self, entry, producer=None):
        if measuring[0]:
            due = entry.last_run_at + entry.schedule.run_every
            lags.append((self.app.now() - due).total_seconds())
        return super().apply_entry(entry, producer=producer)


def schedule():
    if mode == "lag":
        return {f"e-{i}": {"task": "bench.noop", "schedule": timedelta(seconds=PERIOD)} for i in range(N)}
    return {f"cron-{i}": {"task": "bench.noop", "schedule": crontab(minute=0)} for i in range(N)}


app.conf.beat_schedule = schedule()
s = BenchScheduler(app, lazy=False)
if mode == "lag":
    now = app.now()
    for i, e in enumerate(s.schedule.values()):
        e.last_run_at = now - timedelta(seconds=PERIOD) + timedelta(seconds=1 + i * PERIOD / N)
    s._heap = None  # rebuild with the new times

cpu0 = None
start = time.monotonic()
measuring[0] = True
if mode == "idle":
    time.sleep(1)
    r = resource.getrusage(resource.RUSAGE_SELF)
    cpu0, t0 = r.ru_utime + r.ru_stime, time.monotonic()
while time.monotonic() - start < window:
    # What celery.beat.Service.start does: tick, then sleep what it says.
    interval = s.tick()
    if interval:
        time.sleep(min(interval, max(0, window - (time.monotonic() - start))))
if mode == "lag":
    lags.sort()
    print(json.dumps({"p50": 1000 * lags[len(lags) // 2], "p99": 1000 * lags[int(0.99 * (len(lags) - 1))],
                      "dispatch_per_s": len(lags) / window}))
else:
    r = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"cpu_pct": 100 * (r.ru_utime + r.ru_stime - cpu0) / (time.monotonic() - t0)}))
