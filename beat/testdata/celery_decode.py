#!/usr/bin/python3
"""Runs beat's messages through Debian's Celery worker code.

Reads JSON lines on stdin, each one message as the broker delivered it
(body in base64), builds kombu's Message from it and hands it to
celery.worker.request.Request — what a Celery worker does with a message
it receives — then executes the task and prints one JSON line per message.
"""
import base64
import json
import sys

from celery import Celery
from celery.worker.request import Request
from kombu.message import Message
from kombu.serialization import prepare_accept_content

app = Celery("interop", set_as_current=True)
app.conf.accept_content = ["json", "msgpack"]


@app.task(name="tasks.add")
def add(x, y):
    return x + y


@app.task(name="tasks.echo")
def echo(*args, **kwargs):
    return {"args": list(args), "kwargs": kwargs}


class Channel:
    """Enough of a channel for Request to acknowledge."""
    no_ack_consumers = None

    def __init__(self):
        self.acked = []

    def basic_ack(self, tag, multiple=False):
        self.acked.append(tag)


for line in sys.stdin:
    m = json.loads(line)
    ch = Channel()
    msg = Message(
        body=base64.b64decode(m["body"]), delivery_tag=1, channel=ch,
        content_type=m["content_type"], content_encoding=m["content_encoding"],
        headers=m["headers"], properties=m["properties"],
        delivery_info={"exchange": m["exchange"], "routing_key": m["routing_key"],
                       "priority": m["properties"].get("priority")},
        accept=prepare_accept_content(app.conf.accept_content),
    )
    task = app.tasks[msg.headers["task"]]
    acks = []
    req = Request(msg, app=app, task=task, on_ack=lambda *a: acks.append(1))
    result = req.execute()
    print(json.dumps({
        "id": req.id, "name": req.name, "args": list(req.args), "kwargs": req.kwargs,
        "result": result, "acked": acks == [1],
        "expires": req.expires.isoformat() if req.expires else None,
        "priority": msg.delivery_info.get("priority"),
    }), flush=True)
