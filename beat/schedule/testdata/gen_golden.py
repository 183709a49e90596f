#!/usr/bin/python3
"""Writes golden next-run times computed by Debian's Celery (5.2.6).

Run with Debian's /usr/bin/python3 (python3-celery, python3-ephem):
    /usr/bin/python3 gen_golden.py > golden.json
Each case gives a schedule, a zone, the last run (UTC) and the next run
Celery computes (UTC, microsecond precision): last + remaining_estimate(last)
with "now" equal to the last run.

Two kinds of crontab result are left out because they are Celery 5.2.6 bugs
that celeriac does not copy: when the next run falls in a different UTC
offset than the last (pytz arithmetic keeps the old offset, so Celery fires
an hour off the wall time), and, for crontabs limited by day of month or
month, when the last run's local date differs from its UTC date (Celery's
_delta_to_next compares calendar days in UTC and skips a whole period).
"""
import json
import sys
from datetime import datetime, timedelta, timezone

from celery import Celery
from celery.schedules import crontab, schedule, solar

CRONTABS = [
    # minute, hour, day_of_week, day_of_month, month_of_year
    ("*", "*", "*", "*", "*"),
    ("*/15", "*", "*", "*", "*"),
    ("0", "*/3", "*", "*", "*"),
    ("0", "3", "mon-fri", "*", "*"),
    ("30", "8-17/2", "*", "*", "*"),
    ("1,13,30-45,50-59/2", "*", "*", "*", "*"),
    ("0", "0", "sun", "*", "*"),
    ("0", "0", "0", "*", "*"),
    ("0", "12", "sat,sun", "*", "*"),
    ("5", "4", "*", "1", "*"),
    ("0", "0", "*", "31", "*"),
    ("0", "0", "*", "29", "2"),
    ("0", "9", "*", "1-7", "*/3"),
    ("0", "9", "mon", "1-7", "*"),
    ("15", "22", "fri-mon", "*", "*"),
    ("59", "23", "*", "*", "12"),
    ("0", "0", "*", "2-30/2", "*"),
    ("45", "23-1", "*", "*", "*"),
    ("0", "6", "thursday", "*", "*"),
    ("*/7", "10", "*", "*", "*"),
]
ZONES = ["UTC", "Europe/London", "America/New_York", "Asia/Kolkata", "Australia/Sydney"]
LASTS = [
    "2026-01-15T10:07:23", "2026-02-28T23:59:00", "2026-06-30T00:00:00",
    "2026-12-31T23:45:10", "2027-07-04T12:00:59", "2028-02-28T08:59:59",
]
INTERVALS = [30, 90, 300, 3600, 5400, 86400, 2.5]
SOLAR = [
    ("sunrise", 51.5074, -0.1278), ("sunset", 51.5074, -0.1278),
    ("solar_noon", 40.7128, -74.006), ("dawn_civil", -33.8688, 151.2093),
    ("dusk_civil", 35.6762, 139.6503), ("dawn_nautical", 48.8566, 2.3522),
    ("dusk_nautical", -23.5505, -46.6333), ("dawn_astronomical", 19.4326, -99.1332),
    ("dusk_astronomical", 0.0, 0.0), ("sunrise", 64.1466, -21.9426),
    ("sunset", -54.8019, -68.303),
]


def utc(dt):
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def app_for(tz):
    app = Celery(set_as_current=False)
    app.conf.timezone = tz
    app.conf.enable_utc = True
    return app


def next_run(sched, last):
    sched.nowfun = lambda: last
    return last + sched.remaining_estimate(last)


def main():
    cases = []
    for tz in ZONES:
        app = app_for(tz)
        for fields in CRONTABS:
            for l in LASTS:
                last = app.timezone.localize(datetime.fromisoformat(l))
                c = crontab(*fields, app=app)
                nxt = next_run(c, last)
                if app.timezone.normalize(nxt).utcoffset() != last.utcoffset():
                    continue
                restricted = fields[3] != "*" or fields[4] != "*"
                if restricted and last.date() != last.astimezone(timezone.utc).date():
                    continue
                cases.append({"kind": "crontab", "fields": list(fields), "tz": tz,
                              "last": utc(last), "next": utc(nxt)})
    app = app_for("UTC")
    for tz in ["UTC", "Asia/Kolkata"]:
        app = app_for(tz)
        for secs in INTERVALS:
            for rel in (False, True):
                for l in LASTS:
                    last = app.timezone.localize(datetime.fromisoformat(l))
                    s = schedule(timedelta(seconds=secs), relative=rel, app=app)
                    cases.append({"kind": "every", "seconds": secs, "relative": rel, "tz": tz,
                                  "last": utc(last), "next": utc(next_run(s, last))})
    app = app_for("UTC")
    for ev, lat, lon in SOLAR:
        for l in LASTS:
            last = app.timezone.localize(datetime.fromisoformat(l))
            s = solar(ev, lat, lon, app=app)
            cases.append({"kind": "solar", "event": ev, "lat": lat, "lon": lon, "tz": "UTC",
                          "last": utc(last), "next": utc(next_run(s, last))})
    json.dump(cases, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
