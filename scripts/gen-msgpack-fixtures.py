#!/usr/bin/python3
"""Writes test/fixtures/msgpack-python.json: what Python's msgpack (the channels_redis peer)
produces for a set of messages, so test/serde.test.ts can compare chanlayer's bytes with
Python's even where no Python is installed. The test also re-runs these same literals against
/usr/bin/python3 live and fails if this file is stale.

Each case is (name, python_literal, js_encodes): `python_literal` is evaluated here and packed
with `msgpack.packb(value, use_bin_type=True)`; `js_encodes` says whether the JS value in the
test (same name) must encode to exactly these bytes. It is False only where JS cannot express
the Python value (a float with an integral value such as 1.0 is an int in JS).

Run: /usr/bin/python3 scripts/gen-msgpack-fixtures.py   (needs Debian's python3-msgpack)
"""
import json
import os
import sys

import msgpack

CASES = [
    # name, python literal, JS encodes to the same bytes
    ("small-message", "{'type': 'chat.message', 'text': 'hello'}", True),
    ("ints-positive-edges",
     "{'type': 't', 'v': [0, 1, 127, 128, 255, 256, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32,"
     " 2**40, 2**53 - 1, 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1]}", True),
    ("ints-negative-edges",
     "{'type': 't', 'v': [-1, -32, -33, -128, -129, -32768, -32769, -2**31, -2**31 - 1, -2**40,"
     " -(2**53 - 1), -2**53, -2**53 - 1, -2**63]}", True),
    ("uint64-max", "{'type': 't', 'n': 18446744073709551615}", True),
    ("int64-min", "{'type': 't', 'n': -9223372036854775808}", True),
    ("floats", "{'type': 't', 'v': [0.5, -0.5, 1.5, 3.141592653589793, 1e-300, 1e300, -2.5e-7]}", True),
    ("infinities", "{'type': 't', 'pos': float('inf'), 'neg': float('-inf')}", True),
    ("nan", "{'type': 't', 'nan': float('nan')}", True),
    ("float-integral", "{'type': 't', 'one': 1.0, 'big': 1e20, 'negzero': -0.0}", False),
    ("bytes", "{'type': 't', 'empty': b'', 'b': b'\\x00\\x01\\xfe\\xff', 'bin8max': bytes(range(255))}", True),
    ("bytes-256", "{'type': 't', 'bin16': bytes(range(256))}", True),
    ("strings",
     "{'type': 't', 'empty': '', 's31': 'x' * 31, 's32': 'y' * 32, 's255': 'z' * 255,"
     " 's256': 'w' * 256, 'unicode': 'héllo wörld ✓ 日本語 😀', 'nul': 'a\\x00b'}", True),
    ("nested",
     "{'type': 't', 'list': [1, [2, [3, [4, []]]], {'a': {'b': {'c': None}}}],"
     " 'map': {'k': [True, False, None], 'e': {}}}", True),
    ("empty-containers", "{'type': 't', 'l': [], 'm': {}, 'n': None}", True),
    ("booleans-null", "{'type': 't', 't': True, 'f': False, 'n': None}", True),
    ("array16-map16",
     "{'type': 't', 'a15': list(range(15)), 'a16': list(range(16)),"
     " 'm15': {('k%02d' % i): i for i in range(15)}, 'm16': {('k%02d' % i): i for i in range(16)}}", True),
    ("unicode-keys", "{'type': 't', 'clé': 1, '日本': [2], '': 3}", True),
    ("proto-key", "{'type': 't', '__proto__': {'polluted': True}}", True),
    ("asgi-style",
     "{'type': 'websocket.send', 'text': None, 'bytes': b'\\x89PNG', 'headers': [[b'host', b'example.com']],"
     " 'status': 200, 'more_body': False}", True),
]


def main():
    out = []
    for name, literal, js_encodes in CASES:
        value = eval(literal, {"__builtins__": {"float": float, "bytes": bytes, "range": range, "list": list}})
        out.append({
            "name": name,
            "python": literal,
            "jsEncodes": js_encodes,
            "hex": msgpack.packb(value, use_bin_type=True).hex(),
        })
    doc = {
        "generator": "scripts/gen-msgpack-fixtures.py",
        "msgpack": ".".join(map(str, msgpack.version)),
        "cases": out,
    }
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "test", "fixtures", "msgpack-python.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print(f"wrote {len(out)} cases to {os.path.normpath(path)}", file=sys.stderr)


if __name__ == "__main__":
    main()
