"""Drives the test Django site from the Go tests, one command per run.

    tool.py migrate
    tool.py adduser USERNAME PASSWORD [inactive]   -> {"user_id": N, "password": "<hash field>"}
    tool.py login USERNAME PASSWORD [EXPIRY_MINUTES] -> {"cookie": ..., "user_id": N}
    tool.py whoami COOKIE                           -> {"user_id": N|null, "session": {...}}
    tool.py set COOKIE KEY JSON                     -> {"cookie": <new value or same>}
    tool.py setpassword USERNAME PASSWORD
    tool.py setactive USERNAME 0|1

Output is one JSON line on stdout.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402


def out(v):
    sys.stdout.write(json.dumps(v) + "\n")


def client_with(cookie):
    c = Client()
    c.cookies[settings.SESSION_COOKIE_NAME] = cookie
    return c


def main(cmd, *args):
    if cmd == "migrate":
        for app in ("contenttypes", "auth", "sessions"):
            call_command("migrate", app, verbosity=0)
        out({"ok": True})
    elif cmd == "adduser":
        u = User.objects.create_user(args[0], password=args[1])
        if len(args) > 2 and args[2] == "inactive":
            u.is_active = False
            u.save()
        out({"user_id": u.pk, "password": u.password})
    elif cmd == "login":
        c = Client()
        data = {"username": args[0], "password": args[1]}
        if len(args) > 2:
            data["expiry_minutes"] = args[2]
        r = c.post("/login", data)
        if r.status_code != 200:
            raise SystemExit("login failed: %d" % r.status_code)
        out({"cookie": c.cookies[settings.SESSION_COOKIE_NAME].value, "user_id": r.json()["user_id"]})
    elif cmd == "whoami":
        r = client_with(args[0]).get("/whoami")
        out(r.json())
    elif cmd == "set":
        c = client_with(args[0])
        r = c.post("/set", {"key": args[1], "value": args[2]})
        if r.status_code != 200:
            raise SystemExit("set failed: %d" % r.status_code)
        out({"cookie": c.cookies[settings.SESSION_COOKIE_NAME].value})
    elif cmd == "setpassword":
        u = User.objects.get(username=args[0])
        u.set_password(args[1])
        u.save()
        out({"password": u.password})
    elif cmd == "setactive":
        User.objects.filter(username=args[0]).update(is_active=args[1] == "1")
        out({"ok": True})
    else:
        raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    main(*sys.argv[1:])
