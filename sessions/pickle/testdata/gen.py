# Regenerates the pickle fixtures: /usr/bin/python3 testdata/gen.py testdata
# Each fixture is what a Django session cache can hold; "evil" ones must be
# refused by the Go decoder.
import datetime, os, pickle, sys
import pytz

out = sys.argv[1]
session = {
    "_auth_user_id": "42",
    "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
    "_auth_user_hash": "67e7c9adea230752f9c92526b4736242f80980e9e179ad4b5cf7252dbd871eeb",
    "_session_expiry": datetime.datetime(2024, 1, 2, 3, 4, 5, 678, tzinfo=pytz.utc),
    "cart": [1, 2.5, True, False, None, (1, "x"), "Zoë ☃ 😀", b"\x00\xff"],
    "big": 2**70, "neg": -5, "negbig": -(2**64), "i32": 2**31, "i16": 40000,
    "naive": datetime.datetime(2020, 2, 29, 23, 59, 59),
    "utc": datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone.utc),
    "plus2": datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
    "delta": datetime.timedelta(days=-1, seconds=5, microseconds=7),
    "nested": {"a": {"b": []}}, "long": "x" * 300,
}
for proto in (2, 3, 4, 5):
    with open(os.path.join(out, "session-p%d.pickle" % proto), "wb") as f:
        f.write(pickle.dumps(session, protocol=proto))

class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))

evil = {
    "os-system": pickle.dumps(Evil(), protocol=4),
    "os-system-p0": pickle.dumps(Evil(), protocol=0),
    "set": pickle.dumps({"a": {1, 2}}, protocol=4),
    "pytz-zone": pickle.dumps(datetime.datetime(2024, 1, 1, tzinfo=pytz.timezone("Europe/Paris")), protocol=4),
    "object": pickle.dumps({"e": ValueError("x")}, protocol=4),
}
for name, data in evil.items():
    with open(os.path.join(out, "evil-%s.pickle" % name), "wb") as f:
        f.write(data)
