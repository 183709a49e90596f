"""Drives Debian's Celery 5.2.6 Redis result backend for celeriac's interop tests.

usage: celery_backend.py COMMAND REDIS_URL SERIALIZER [ARGS...]

  encode              print, per case, the document Celery writes (base64)
  get ID...           AsyncResult(ID).get() for each id; one JSON line each
  store               read JSON ops from stdin and store them with the backend
  save-group GID ID.. GroupResult(GID, [AsyncResult(ID)...]).save()
  restore-group GID   print GroupResult.restore(GID) as JSON
  chord               read JSON chord parts from stdin and run on_chord_part_return
                      for each; print a line per chord body fired (or failed)

Output is JSON lines on stdout; errors go to stderr with a non-zero exit.
"""
import base64
import json
import sys

from celery import Celery
from celery.app.task import Context
from celery.result import AsyncResult, GroupResult

DATE_DONE = "2024-05-01T12:00:00.123456"


class TaskError(Exception):
    pass


def make_app(url, serializer, extended=False):
    app = Celery("interop", broker="memory://", backend=url)
    app.conf.update(
        result_serializer=serializer,
        accept_content=["json", "msgpack"],
        result_accept_content=["json", "msgpack"],
        result_extended=extended,
    )
    return app


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def encode_cases(url, serializer):
    """Documents as Celery builds them in _store_result, date_done pinned."""
    cases = [
        ("success_int", "SUCCESS", 5, None, None, False),
        ("success_nested", "SUCCESS", {"a": "x", "b": [1, 2.5, None, True, "\u00e9"]}, None, None, False),
        ("success_float", "SUCCESS", 2.0, None, None, False),
        ("failure", "FAILURE", ValueError("bad value", 42), "Traceback (most recent call last):\n  boom\n", None, False),
        ("failure_celeriac", "FAILURE", TaskError("it broke"), None, None, False),
        ("revoked", "REVOKED", None, None, None, False),
        ("started", "STARTED", {"pid": 123, "hostname": "celery@host"}, None, None, False),
        ("retry", "RETRY", KeyError("k"), "tb", None, False),
        ("with_request", "SUCCESS", [1, "two"], None,
         dict(group="g1", parent_id="p1", children=["c1"]), False),
        ("extended", "SUCCESS", 3, None,
         dict(task="tasks.add", args=[1, 2], kwargs={"a": 1}, hostname="celery@host",
              retries=0, delivery_info={"routing_key": "celery"}, children=[]), True),
    ]
    for name, state, result, tb, req, extended in cases:
        app = make_app(url, serializer, extended)
        b = app.backend
        if name == "revoked":
            from celery.exceptions import TaskRevokedError
            result = TaskRevokedError("expired")
        if name == "failure_celeriac":
            # What a Python worker stores for an exception of an unimportable module.
            TaskError.__module__ = "celeriac"
        request = None
        if req is not None:
            req = dict(req)
            # Context.children is a read-only property over _children.
            req["_children"] = [AsyncResult(c, app=app) for c in req.pop("children", [])]
            request = Context(req)
        enc = b.encode_result(result, state)
        meta = b._get_result_meta(result=enc, state=state, traceback=tb, request=request)
        if meta["date_done"] is not None:
            meta["date_done"] = DATE_DONE
        meta["task_id"] = "t-" + name
        out({"case": name, "doc": base64.b64encode(_bytes(b.encode(meta))).decode()})
    # A chord member and a saved group, byte for byte.
    app = make_app(url, serializer)
    b = app.backend
    out({"case": "chord_member", "doc": base64.b64encode(_bytes(b.encode(
        [1, "t-1", "FAILURE", b.encode_result(ValueError("x"), "FAILURE")]))).decode()})
    g = GroupResult("g-1", [AsyncResult("a", app=app), GroupResult("g-2", [AsyncResult("b", app=app)], app=app)], app=app)
    out({"case": "group", "doc": base64.b64encode(_bytes(b.encode({"result": g.as_tuple()}))).decode()})


def _bytes(s):
    return s.encode() if isinstance(s, str) else s


def describe(value):
    """A JSON-able view of a result value."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def get(url, serializer, ids, timeout):
    app = make_app(url, serializer)
    for tid in ids:
        r = AsyncResult(tid, app=app)
        try:
            value = r.get(timeout=timeout)
            out({"id": tid, "state": r.state, "result": describe(value)})
        except Exception as e:  # noqa: BLE001 - report whatever Celery raises
            out({"id": tid, "state": r.state, "exc_type": type(e).__name__,
                 "exc_module": type(e).__module__, "message": str(e)})


def store(url, serializer):
    app = make_app(url, serializer)
    b = app.backend
    for op in json.load(sys.stdin):
        tid, state = op["id"], op["state"]
        if state == "FAILURE":
            cls = {"ValueError": ValueError, "KeyError": KeyError}.get(op["exc"], TaskError)
            b.mark_as_failure(tid, cls(*op["args"]), traceback=op.get("traceback"))
        elif state == "REVOKED":
            b.mark_as_revoked(tid, reason=op["reason"])
        else:
            b.store_result(tid, op.get("result"), state)
    out({"stored": True})


def save_group(url, serializer, gid, ids):
    app = make_app(url, serializer)
    children = []
    for i in ids:
        if ":" in i:  # nested group "gid:child,child"
            sub, kids = i.split(":", 1)
            children.append(GroupResult(sub, [AsyncResult(k, app=app) for k in kids.split(",")], app=app))
        else:
            children.append(AsyncResult(i, app=app))
    GroupResult(gid, children, app=app).save()
    out({"saved": gid})


def tree(r):
    if isinstance(r, GroupResult):
        return {"group": r.id, "children": [tree(c) for c in r.results]}
    return r.id


def restore_group(url, serializer, gid):
    app = make_app(url, serializer)
    g = GroupResult.restore(gid, app=app)
    out(None if g is None else tree(g))


def chord(url, serializer):
    """Each stdin op: {"op": "size", "gid", "size"} or
    {"op": "part", "gid", "id", "index", "state", "result"|"exc"}."""
    app = make_app(url, serializer)
    app.conf.task_always_eager = True

    @app.task(name="interop.body", shared=False)
    def body(results):
        out({"fired": body.request.id, "results": results})

    b = app.backend
    ops = json.load(sys.stdin)
    out({"start": True})  # the Go side starts its own parts now
    for op in ops:
        if op["op"] == "size":
            b.set_chord_size(op["gid"], op["size"])
            continue
        cb = body.s().set(task_id="body-" + op["gid"])
        req = Context(id=op["id"], group=op["gid"], group_index=op["index"], chord=cb)
        result = op.get("result")
        if op["state"] == "FAILURE":
            result = ValueError(*op["exc"])
        b.on_chord_part_return(req, op["state"], result)
    out({"done": True})


def main():
    cmd, url, serializer = sys.argv[1:4]
    args = sys.argv[4:]
    if cmd == "encode":
        encode_cases(url, serializer)
    elif cmd == "get":
        get(url, serializer, args, 20)
    elif cmd == "store":
        store(url, serializer)
    elif cmd == "save-group":
        save_group(url, serializer, args[0], args[1:])
    elif cmd == "restore-group":
        restore_group(url, serializer, args[0])
    elif cmd == "chord":
        chord(url, serializer)
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
