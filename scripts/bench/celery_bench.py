"""Helpers for scripts/bench/10-worker.sh, run with Debian's Celery.

  publish QUEUE N        send N celeriac.noop tasks with send_task; prints tasks/s
                         (CONFIRM=1: with publisher confirms)
  drainrate QUEUE N      wait while QUEUE drains; prints tasks/s from the first
                         message taken to the queue being empty
"""
import os
import sys
import time

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


if __name__ == "__main__":
    {"publish": publish, "drainrate": drainrate}[sys.argv[1]](sys.argv[2], int(sys.argv[3]))
