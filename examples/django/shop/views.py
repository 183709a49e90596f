import redis
from celery import chain
from celery.result import AsyncResult
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

import tasks
from shop.models import Calculation

# How long the result page waits for the Go worker before showing
# "pending" (the page can be reloaded).
RESULT_WAIT = 10


def _beat_credits():
    """The balance tasks.credit keeps for the account beat credits."""
    r = redis.Redis.from_url(settings.CELERY_RESULT_BACKEND)
    try:
        return int(r.get(settings.TOUR_LEDGER_PREFIX + "balance:beat") or 0)
    finally:
        r.close()


@login_required
def home(request):
    return render(
        request,
        "shop/home.html",
        {
            "calculations": Calculation.objects.filter(user=request.user)[:10],
            "beat_credits": _beat_credits(),
            "greeter_url": settings.TOUR_GREETER_URL,
        },
    )


@require_POST
@login_required
def enqueue(request):
    try:
        x, y = int(request.POST["x"]), int(request.POST["y"])
    except (KeyError, ValueError):
        return render(request, "shop/home.html", {"error": "x and y must be integers"}, status=400)
    # Two ordinary Celery calls. Nothing here knows the worker is Go.
    total = tasks.add.delay(x, y)
    scaled = chain(tasks.add.s(x, y), tasks.mul.s(10)).delay()
    calc = Calculation.objects.create(
        user=request.user, x=x, y=y, add_task_id=total.id, chain_task_id=scaled.id
    )
    return redirect("calculation", pk=calc.pk)


def _outcome(task_id):
    result = AsyncResult(task_id)
    try:
        value = result.get(timeout=RESULT_WAIT, propagate=False)
    except Exception:  # celery.exceptions.TimeoutError: still running
        return {"state": result.state, "value": None}
    return {"state": result.state, "value": value}


@login_required
def calculation(request, pk):
    # The row was written a moment ago, maybe by another gunicorn worker
    # through another connection: dbproxy's read-your-writes covers only
    # the connection that wrote. A transaction always goes to the primary,
    # so this read cannot miss the row on a replica that lags behind.
    with transaction.atomic():
        calc = get_object_or_404(Calculation, pk=pk, user=request.user)
    return render(
        request,
        "shop/calculation.html",
        {"calc": calc, "add": _outcome(calc.add_task_id), "chain": _outcome(calc.chain_task_id)},
    )
