"""Regenerates broker/testdata/repr.json: values and Python's repr of them.
Run: /usr/bin/python3 broker/testdata/gen_repr.py > broker/testdata/repr.json"""
import json
from celery.utils.saferepr import saferepr
# Dict keys are listed sorted: Go maps have no insertion order, so celeriac sorts.
values = [None, True, False, 0, -7, 2**40, 1.5, 2.0, 1e-05, 1e16, 123456789.0, 0.1,
          "plain", "it's", 'say "hi"', "both ' and \"", "tab\there", "new\nline", "h\u00e9llo",
          "back\\slash", "\u2603 snow", [], [1, "a", None], {"a": 1}, {"a": {"c": None}, "b": [1, 2]},
          "x" * 1100]
print(json.dumps([{"value": v, "repr": repr(v), "argsrepr": repr(tuple([v]))} for v in values], indent=1))
