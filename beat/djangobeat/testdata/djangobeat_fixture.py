#!/usr/bin/python3
"""Drives django-celery-beat's real models for the djangobeat tests.

    djangobeat_fixture.py migrate            create the tables (Debian's migrations)
    djangobeat_fixture.py initial            add the test's periodic tasks
    djangobeat_fixture.py add NAME           add an every-second task named NAME
    djangobeat_fixture.py disable NAME       disable a task through the ORM
    djangobeat_fixture.py dump               print the tasks' run history as JSON

The database comes from CELERIAC_DJANGO_DB_NAME (and _HOST/_PORT/_USER).
"""
import json
import os
import sys
from datetime import timedelta

import django
from django.conf import settings

settings.configure(
    DATABASES={"default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ["CELERIAC_DJANGO_DB_NAME"],
        "HOST": os.environ.get("CELERIAC_DJANGO_DB_HOST", "127.0.0.1"),
        "PORT": os.environ.get("CELERIAC_DJANGO_DB_PORT", "5432"),
        "USER": os.environ.get("CELERIAC_DJANGO_DB_USER", "postgres"),
    }},
    INSTALLED_APPS=["django_celery_beat"],
    USE_TZ=True,
    TIME_ZONE="UTC",
    DEFAULT_AUTO_FIELD="django.db.models.AutoField",
)
django.setup()

from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402
from django_celery_beat.models import (ClockedSchedule, CrontabSchedule,  # noqa: E402
                                       IntervalSchedule, PeriodicTask, SolarSchedule)


def every_second(name, **kw):
    sec, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    return PeriodicTask.objects.create(name=name, task="tasks." + name, interval=sec, **kw)


def initial():
    every_second("interval", args=json.dumps([1, 2]), kwargs=json.dumps({"a": "b"}),
                 queue=os.environ["CELERIAC_DJANGO_QUEUE"], priority=3,
                 headers=json.dumps({"x-origin": "django"}), expire_seconds=30)
    clock = ClockedSchedule.objects.create(clocked_time=timezone.now() - timedelta(seconds=1))
    PeriodicTask.objects.create(name="clocked", task="tasks.clocked", clocked=clock, one_off=True,
                                queue=os.environ["CELERIAC_DJANGO_QUEUE"])
    every_second("disabled", enabled=False, queue=os.environ["CELERIAC_DJANGO_QUEUE"])
    every_second("later", start_time=timezone.now() + timedelta(days=1),
                 queue=os.environ["CELERIAC_DJANGO_QUEUE"])
    cron, _ = CrontabSchedule.objects.get_or_create(minute="0", hour="3", day_of_week="mon-fri",
                                                    timezone="Europe/London")
    PeriodicTask.objects.create(name="nightly", task="tasks.nightly", crontab=cron)
    sun, _ = SolarSchedule.objects.get_or_create(event="sunset", latitude=51.5, longitude=-0.12)
    PeriodicTask.objects.create(name="sunset", task="tasks.sunset", solar=sun)


def main():
    cmd = sys.argv[1]
    if cmd == "migrate":
        call_command("migrate", "django_celery_beat", verbosity=0)
    elif cmd == "initial":
        initial()
    elif cmd == "add":
        every_second(sys.argv[2], queue=os.environ["CELERIAC_DJANGO_QUEUE"])
    elif cmd == "disable":
        t = PeriodicTask.objects.get(name=sys.argv[2])
        t.enabled = False
        t.save()
    elif cmd == "dump":
        out = {t.name: {"enabled": t.enabled, "total_run_count": t.total_run_count,
                        "last_run_at": t.last_run_at.isoformat() if t.last_run_at else None}
               for t in PeriodicTask.objects.all()}
        json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
