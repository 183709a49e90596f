"""The project's tasks, as Python declares them.

The Go worker (examples/worker) registers the same names and consumes the
queue; these bodies run only if a Python worker is started on the queue
too (`celery -A tour worker -Q celery`), which is how a task moves back to
Python in a rollback (docs/migration.md). Python callers do not change:
add.delay(2, 3) sends the same message either way.
"""
from celery import shared_task


class TemporaryError(Exception):
    """A failure worth retrying (the Go side's ErrTemporary)."""


@shared_task(name="tasks.add")
def add(x, y):
    return x + y


@shared_task(name="tasks.mul")
def mul(x, y):
    return x * y


@shared_task(name="tasks.order_total")
def order_total(order):
    lines = order.get("lines", [])
    total = sum(line["qty"] * line["unit_cents"] for line in lines)
    total -= total * order.get("discount_pct", 0) // 100
    return {"id": order["id"], "items": sum(line["qty"] for line in lines), "total_cents": total}


@shared_task(
    name="tasks.fetch_status",
    autoretry_for=(TemporaryError,),
    retry_backoff=1,
    retry_backoff_max=60,
    max_retries=5,
)
def fetch_status(url):
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        if e.code >= 500:
            raise TemporaryError(str(e))
        return e.code
    except OSError as e:
        raise TemporaryError(str(e))


@shared_task(name="tasks.credit")
def credit(account, amount):
    # The Go version fences this write with the exactly-once guard's token
    # (examples/worker/ledger.go); Python has no such guard, so keep this
    # task on the Go worker.
    raise NotImplementedError("tasks.credit runs on the Go worker")
