"""Drives Celery 5.2.6 as a client for celeriac's interop tests.

Usage: client.py send NAME ARGS_JSON KWARGS_JSON [OPTIONS_JSON]
       client.py get ID
Prints one JSON object per result: {"id", "state", "result"} on success or
{"id", "state", "exc_type", "exc_module", "exc_message"} on failure.
"""
import json
import sys

from celeryapp import app


def outcome(res, timeout):
    try:
        value = res.get(timeout=timeout)
        return {"id": res.id, "state": res.state, "result": value}
    except Exception as exc:  # the re-raised task error
        return {"id": res.id, "state": res.state, "exc_type": type(exc).__name__,
                "exc_module": type(exc).__module__, "exc_message": str(exc)}


def main():
    cmd = sys.argv[1]
    if cmd == "send":
        name, args, kwargs = sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
        opts = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
        timeout = opts.pop("timeout", 20)
        via = opts.pop("via", "send_task")
        count = opts.pop("count", 1)
        if via == "delay":
            results = [app.tasks[name].apply_async(args, kwargs, **opts) for _ in range(count)]
        else:
            results = [app.send_task(name, args, kwargs, **opts) for _ in range(count)]
        for r in results:
            print(json.dumps(outcome(r, timeout)), flush=True)
    elif cmd == "get":
        print(json.dumps(outcome(app.AsyncResult(sys.argv[2]), 20)), flush=True)
    elif cmd == "publish":
        # Only publish; print the ids.
        name, args, kwargs = sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
        opts = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
        count = opts.pop("count", 1)
        ids = [app.send_task(name, args, kwargs, **opts).id for _ in range(count)]
        print(json.dumps(ids), flush=True)
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
