import datetime
import json

from django.contrib.auth import authenticate, login
from django.http import HttpResponse, JsonResponse
from django.urls import path


def plain(v):
    """Session values as JSON, with Python types spelled out."""
    if isinstance(v, datetime.datetime):
        return {"datetime": v.isoformat()}
    if isinstance(v, (list, tuple)):
        return [plain(i) for i in v]
    if isinstance(v, dict):
        return {k: plain(i) for k, i in v.items()}
    return v


def do_login(request):
    user = authenticate(request, username=request.POST["username"], password=request.POST["password"])
    if user is None:
        return HttpResponse(status=403)
    login(request, user)
    if request.POST.get("expiry_minutes"):
        # A datetime expiry: only pickle-serialized sessions can hold one.
        request.session.set_expiry(datetime.timedelta(minutes=int(request.POST["expiry_minutes"])))
    request.session["cart"] = ["Zoë ☃", 3, 2.5, True, None]
    return JsonResponse({"user_id": user.pk})


def whoami(request):
    body = {
        "user_id": request.user.pk if request.user.is_authenticated else None,
        "session": plain(dict(request.session.items())),
        "expiry_age": request.session.get_expiry_age(),
    }
    return JsonResponse(body)


def set_value(request):
    request.session[request.POST["key"]] = json.loads(request.POST["value"])
    return JsonResponse({"ok": True})


def auth(request):
    """The check a Django view would do for forward auth (benchmark anchor)."""
    if not request.user.is_authenticated:
        return HttpResponse(status=401)
    resp = HttpResponse(status=200)
    resp["X-User-Id"] = str(request.user.pk)
    return resp


urlpatterns = [
    path("login", do_login),
    path("whoami", whoami),
    path("set", set_value),
    path("auth", auth),
]
