"""A Celery 5.2.6 application for celeriac's interop tests.

Configured from the environment so each test gets its own queue:
CELERY_BROKER_URL, CELERY_RESULT_BACKEND, QUEUE, SERIALIZER (json|msgpack),
PROTOCOL (1|2), COUNTER_REDIS (a redis:// URL for side-effect counters).
"""
import os

import redis
from celery import Celery

app = Celery("interop", broker=os.environ["CELERY_BROKER_URL"],
             backend=os.environ.get("CELERY_RESULT_BACKEND") or None)
app.conf.update(
    task_default_queue=os.environ.get("QUEUE", "celery"),
    accept_content=["json", "msgpack"],
    result_accept_content=["json", "msgpack"],
    task_serializer=os.environ.get("SERIALIZER", "json"),
    result_serializer="json",
    task_protocol=int(os.environ.get("PROTOCOL", "2")),
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
if os.environ.get("MAX_PRIORITY"):
    app.conf.task_queue_max_priority = int(os.environ["MAX_PRIORITY"])

_counter = None


def counter():
    global _counter
    if _counter is None:
        _counter = redis.Redis.from_url(os.environ["COUNTER_REDIS"])
    return _counter


@app.task(name="tasks.py_add")
def py_add(x, y):
    return x + y


@app.task(name="tasks.py_fail")
def py_fail(message):
    raise ValueError(message)


@app.task(name="tasks.py_echo")
def py_echo(*args, **kwargs):
    return {"args": list(args), "kwargs": kwargs}


@app.task(name="tasks.shared")
def shared(key):
    """Counts its executions per key; celeriac registers the same name."""
    # Both counts in one transaction: a test that sees the first sees the second.
    with counter().pipeline(transaction=True) as pipe:
        pipe.hincrby(os.environ["COUNTER_HASH"] + ":by", "python", 1)
        pipe.hincrby(os.environ["COUNTER_HASH"], key, 1)
        pipe.execute()
    return "python"


@app.task(name="tasks.py_retry", bind=True, max_retries=2)
def py_retry(self, key):
    n = counter().hincrby(os.environ["COUNTER_HASH"], key, 1)
    if self.request.retries < 2:
        raise self.retry(countdown=0.1, exc=KeyError(key))
    return {"retries": self.request.retries, "runs": n}


@app.task(name="celeriac.noop")
def noop():
    """The benchmark's no-op, so Celery's own worker can drain the same load."""
    return None
