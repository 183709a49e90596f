"""Times Celery 5.2.6's Redis backend on the operations celeriac benchmarks
(the anchor for BenchmarkStore and BenchmarkWaitStored).

usage: bench_python.py REDIS_URL N   -> prints ns/op for store and get
"""
import sys
import time
import uuid

from celery import Celery
from celery.result import AsyncResult


def main():
    url, n = sys.argv[1], int(sys.argv[2])
    app = Celery("bench", broker="memory://", backend=url)
    app.conf.result_expires = 60
    b = app.backend
    prefix = "bench-py-" + uuid.uuid4().hex
    ids = ["%s-%d" % (prefix, i) for i in range(n)]
    t0 = time.perf_counter()
    for i in ids:
        b.store_result(i, 5, "SUCCESS")
    t1 = time.perf_counter()
    for i in ids:
        AsyncResult(i, app=app).get(timeout=10)
    t2 = time.perf_counter()
    print("store %d ns/op" % ((t1 - t0) / n * 1e9))
    print("get-stored %d ns/op" % ((t2 - t1) / n * 1e9))


if __name__ == "__main__":
    main()
