"""Regenerates broker/testdata/messages/*.json with Debian's Celery 5.2.6.

Each fixture is a task message exactly as Celery builds it for publishing:
headers, properties, content type/encoding and the serialized body (base64).
Run: /usr/bin/python3 broker/testdata/gen_messages.py broker/testdata/messages
"""
import base64, datetime, json, os, sys

from celery import Celery, chain
from kombu import serialization, compression

app = Celery("fixtures", broker="memory://")
app.conf.task_protocol = 2
out = sys.argv[1]
os.makedirs(out, exist_ok=True)

@app.task(name="tasks.add")
def add(x, y):
    return x + y

@app.task(name="tasks.mul")
def mul(x, y):
    return x * y

NOW = datetime.datetime(2026, 11, 25, 18, 31, 19, 183361, tzinfo=datetime.timezone.utc)
TID = "11111111-2222-3333-4444-555555555555"


def save(name, headers, props, body, ser="json", comp=None, v1=False):
    ctype, cenc, data = serialization.dumps(body, serializer=ser)
    if isinstance(data, str):
        data = data.encode(cenc or "utf-8")
    if comp:
        data, ctype_c = compression.compress(data, comp)
        headers["compression"] = ctype_c
    doc = {"headers": headers, "properties": props, "content_type": ctype,
           "content_encoding": cenc, "body": base64.b64encode(data).decode()}
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True, default=str)


def v2(name, args, kwargs, ser="json", comp=None, **kw):
    m = app.amqp.as_task_v2(kw.pop("task_id", TID), kw.pop("task", "tasks.add"), args, kwargs, **kw)
    props = dict(m.properties)
    props.setdefault("priority", 0)
    save(name, dict(m.headers), props, m.body, ser, comp)


def v1(name, args, kwargs, **kw):
    m = app.amqp.as_task_v1(kw.pop("task_id", TID), kw.pop("task", "tasks.add"), args, kwargs, **kw)
    save(name, dict(m.headers), dict(m.properties), m.body)


v2("v2_simple", (2, 3), {})
v2("v2_kwargs_msgpack", (), {"x": 2, "y": 3, "big": 2**40, "f": 1.5, "s": "h\u00e9llo", "l": [1, None, True]}, ser="msgpack")
v2("v2_eta_expires", (2, 3), {}, eta=NOW + datetime.timedelta(seconds=10),
   expires=NOW + datetime.timedelta(seconds=60), time_limit=30, soft_time_limit=20, retries=2,
   root_id="root-1", parent_id="parent-1", group_id="group-1", group_index=3, shadow="shadowed")
v2("v2_compressed", (2, 3), {"pad": "x" * 200}, comp="zlib")
v2("v2_bz2", (2, 3), {}, comp="bzip2")
v2("v2_lzma", (2, 3), {}, comp="lzma")

c = chain(add.s(1, 2), mul.s(3), mul.s(4))
tasks, _ = c.prepare_steps((), {}, c.tasks)
first = tasks[-1]
rest = [dict(t) for t in reversed(tasks[:-1])]
v2("v2_chain", (1, 2), {}, chain=[dict(s) for s in tasks[:-1]], callbacks=[dict(mul.s(10).set(task_id="cb-1"))],
   errbacks=[dict(mul.s(0).set(task_id="eb-1"))])
v2("v2_chord_member", (5, 5), {}, group_id="chord-group", group_index=1,
   chord=dict(mul.s(2).set(task_id="chord-body-id")))

v1("v1_simple", (2, 3), {"z": 1}, eta=NOW, expires=NOW + datetime.timedelta(seconds=60), utc=True,
   group_id="group-1", retries=1, callbacks=[dict(mul.s(2))], time_limit=30, soft_time_limit=20)
print("ok")
