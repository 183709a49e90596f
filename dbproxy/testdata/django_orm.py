"""Django's ORM through dbproxy (psycopg2, simple-query protocol).

Usage: django_orm.py HOST PORT DB USER PASSWORD. Prints one line per check
and "ok" at the end; any failure raises.
"""
import sys

import django
from django.conf import settings

host, port, db, user, password = sys.argv[1:6]
settings.configure(
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": db,
            "USER": user,
            "PASSWORD": password,
            "HOST": host,
            "PORT": port,
            # Transaction pooling: WITH HOLD cursors would outlive the
            # server connection.
            "DISABLE_SERVER_SIDE_CURSORS": True,
        }
    },
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
    USE_TZ=False,  # the connection then runs in TIME_ZONE, set by a SET
    TIME_ZONE="Asia/Tokyo",
)
django.setup()

from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

call_command("migrate", verbosity=0)


def standby():
    with connection.cursor() as c:
        c.execute("SELECT pg_is_in_recovery()")
        return c.fetchone()[0]


User.objects.create(username="alice", email="a@example.com")
# Read-your-writes: the row is there at once, whichever server answers.
assert User.objects.filter(username="alice").exists(), "own write not visible"
print("read after write ok")

with transaction.atomic():
    u = User.objects.select_for_update().get(username="alice")
    u.first_name = "Alice"
    u.save()
    assert not standby(), "transaction ran on a standby"
print("atomic ok")

assert User.objects.get(username="alice").first_name == "Alice"
Group.objects.bulk_create([Group(name="g%d" % i) for i in range(50)])
assert len(list(Group.objects.all().iterator())) == 50
print("iterator ok")

with connection.cursor() as c:
    c.execute("SHOW TimeZone")
    print("timezone", c.fetchone()[0])
print("ok")
