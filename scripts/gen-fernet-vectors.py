#!/usr/bin/python3
"""Writes test/fixtures/fernet-vectors.json: Fernet tokens made by Python's `cryptography`
with channels_redis's key derivation, at a fixed time and IV, so the Node implementation
can be checked byte for byte.

Run with the interpreter that has cryptography and msgpack:
    /usr/bin/python3 scripts/gen-fernet-vectors.py
"""
import base64
import hashlib
import json
import pathlib

import cryptography
import msgpack
from cryptography.fernet import Fernet


def make_fernet(secret: str) -> Fernet:
    # Identical to channels_redis.core.RedisChannelLayer.make_fernet.
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode("utf8")).digest()))


TIME = 1700000000  # 2023-11-14T22:13:20Z
IV = bytes(range(16))

CASES = [
    # (secret, plaintext) — lengths around the AES block size exercise PKCS7 padding.
    ("chanlayer-golden-secret", b""),
    ("chanlayer-golden-secret", b"a" * 15),
    ("chanlayer-golden-secret", b"b" * 16),
    ("chanlayer-golden-secret", b"c" * 17),
    ("chanlayer-golden-secret", msgpack.packb({"type": "chat.message", "text": "héllo"}, use_bin_type=True)),
    ("clé secrète ✓", bytes(range(256))),  # non-ASCII secret: UTF-8 before hashing
]

vectors = []
for secret, plain in CASES:
    token = make_fernet(secret)._encrypt_from_parts(plain, TIME, IV)
    vectors.append(
        {
            "secret": secret,
            "time": TIME,
            "iv": IV.hex(),
            "plaintext": plain.hex(),
            "token": token.decode("ascii"),
        }
    )

out = pathlib.Path(__file__).resolve().parent.parent / "test" / "fixtures" / "fernet-vectors.json"
out.write_text(
    json.dumps(
        {
            "generator": "scripts/gen-fernet-vectors.py",
            "cryptography": cryptography.__version__,
            "vectors": vectors,
        },
        indent=2,
        ensure_ascii=False,
    )
    + "\n"
)
print(f"wrote {len(vectors)} vectors to {out}")
