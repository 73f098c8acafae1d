#!/usr/bin/python3
"""Writes test/fixtures/wire-vectors.json: golden byte vectors of the channels_redis 4.x wire
format, computed by channels_redis 4.0.0, msgpack 1.0 and cryptography themselves, so that
chanlayer (test/wire-vectors.test.ts) -- or an implementation in any other language -- can be
checked byte for byte. docs/wire-protocol.md explains every section.

Run with the interpreter that has channels_redis (Debian: python3-channels-redis):
    /usr/bin/python3 scripts/gen-wire-vectors.py            # writes the fixture
    /usr/bin/python3 scripts/gen-wire-vectors.py --stdout   # prints it (the test compares)
Output is deterministic (fixed times, IVs, nonces, uuids, and a seeded random prefix).

Sections
  msgpack    value -> msgpack.packb(value, use_bin_type=True), the body of every message.
             "value" is the tagged form of test/interop/tagged.ts; large values are given as a
             "gen" recipe and their bytes as length + head + sha256 instead of full hex.
             "node_encodes": false marks the few Python values JavaScript cannot tell apart
             from another (the float 1.0 is the number 1, which chanlayer writes as an int).
  placement  crc32 and channels_redis.utils._consistent_hash(name, n) for n = 1..5.
  keys       Redis key names for channels and groups (core), Redis channel names (Pub/Sub),
             and new_channel() names with uuid4 fixed.
  core       complete ZSET members as channels_redis writes them: 12-byte random prefix (from a
             seeded random.getrandbits, channels_redis's own call) + msgpack body, for send to a
             normal channel, send to a process-local channel, and group_send entries.
  fernet     the same with symmetric_encryption_keys: prefix + Fernet token at a fixed time/IV.
  pubsub     Pub/Sub payloads (channels_redis 4.0 pubsub serialize: bare msgpack).
  secretbox  chanlayer's Node-only NaCl secretbox tokens, from an independent pure-Python
             XSalsa20-Poly1305 below (channels_redis has no secretbox).
"""
import base64
import binascii
import hashlib
import json
import pathlib
import random
import struct
import sys
import uuid
from importlib.metadata import version

import cryptography
import msgpack
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubLoopLayer
from channels_redis.utils import _consistent_hash
from cryptography.fernet import Fernet, MultiFernet

# The tagged value form (test/interop/tagged.ts) is written by the interop peer's own tag().
sys.dont_write_bytecode = True  # no __pycache__ left in test/interop/
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "test" / "interop"))
from peer import tag  # noqa: E402


def generate(recipe):
    """Large values, described instead of spelled out (same recipes in the TS test)."""
    kind, count = recipe["kind"], recipe["count"]
    if kind == "str":
        return recipe["unit"] * count
    if kind == "bytes":
        return bytes(i & 0xFF for i in range(count))
    if kind == "list":
        return [i & 0x7F for i in range(count)]
    if kind == "map":
        return {f"k{i}": i & 0x7F for i in range(count)}
    raise ValueError(kind)


def pack(value):
    return msgpack.packb(value, use_bin_type=True)


def encoded(data):
    if len(data) <= 1024:
        return {"hex": data.hex()}
    return {"length": len(data), "head": data[:16].hex(), "sha256": hashlib.sha256(data).hexdigest()}


# ---------------------------------------------------------------------------
# msgpack samples

P = 2
INTS = [
    0, 1, 127, 128, 255, 256, 65535, 65536, P**31 - 1, P**31, P**32 - 1, P**32,
    P**53 - 1, P**53, P**53 + 1, P**63 - 1, P**63, P**64 - 1,
    -1, -31, -32, -33, -127, -128, -129, -32768, -32769, -(P**31), -(P**31) - 1,
    -(P**32), -(P**53) + 1, -(P**53), -(P**53) - 1, -(P**63),
]

# (name, value, node_encodes, note)
MSGPACK = [(f"int {n}", n, True, None) for n in INTS]
MSGPACK += [
    ("float 0.5", 0.5, True, None),
    ("float 0.1", 0.1, True, None),
    ("float -1.5", -1.5, True, None),
    ("float 5e-324", 5e-324, True, "smallest subnormal"),
    ("float max", 1.7976931348623157e308, True, None),
    ("float inf", float("inf"), True, None),
    ("float -inf", float("-inf"), True, None),
    ("float nan", float("nan"), True, "Python writes the quiet NaN 7ff8000000000000"),
    ("float 2**64", float(P**64), True, "integral but beyond uint64: stays float64 in JS too"),
    ("float 1.0", 1.0, False, "JS reads 1; chanlayer writes the number 1 as int 0x01"),
    ("float -0.0", -0.0, True, "JS -0 is written as a float, keeping the sign"),
    ("float 2**53", float(P**53), False, "JS reads 9007199254740992; chanlayer writes an int"),
    ("true", True, True, None),
    ("false", False, True, None),
    ("nil", None, True, None),
    ("str empty", "", True, None),
    ("str fixstr 31", "a" * 31, True, None),
    ("str str8 32", "a" * 32, True, None),
    ("str 2-byte x16 (32 bytes)", "é" * 16, True, "length counts UTF-8 bytes, not characters"),
    ("str unicode", "héllo ☃ 😀 日本", True, None),
    ("str nul", "a\x00b", True, None),
    ("str str8 255", "a" * 255, True, None),
    ("str str16 256", {"kind": "str", "unit": "a", "count": 256}, True, None),
    ("str str16 65535", {"kind": "str", "unit": "a", "count": 65535}, True, None),
    ("str str32 65536", {"kind": "str", "unit": "a", "count": 65536}, True, None),
    ("bin empty", b"", True, None),
    ("bin 00ff", b"\x00\xff", True, None),
    ("bin bin8 255", {"kind": "bytes", "count": 255}, True, None),
    ("bin bin16 256", {"kind": "bytes", "count": 256}, True, None),
    ("bin bin32 65536", {"kind": "bytes", "count": 65536}, True, None),
    ("list empty", [], True, None),
    ("list fixarray 15", list(range(15)), True, None),
    ("list array16 16", list(range(16)), True, None),
    ("list array32 65536", {"kind": "list", "count": 65536}, True, None),
    ("map empty", {}, True, None),
    ("map fixmap 15", {f"k{i}": i for i in range(15)}, True, None),
    ("map map16 16", {f"k{i}": i for i in range(16)}, True, None),
    ("map map32 65536", {"kind": "map", "count": 65536}, True, None),
    ("nested", {"a": [{"b": [[], {}, ""]}], "c": {"d": None}}, True, None),
    ("message chat", {"type": "chat.message", "text": "héllo"}, True, None),
    (
        "message with every type",
        {"type": "x", "i": -5, "u": P**64 - 1, "f": 0.25, "s": "☃", "b": b"\x01", "l": [True, None], "m": {}},
        True,
        None,
    ),
]


def msgpack_section():
    out = []
    for name, value, node_encodes, note in MSGPACK:
        entry = {"name": name}
        if isinstance(value, dict) and "kind" in value:
            entry["gen"] = value
            data = pack(generate(value))
        else:
            entry["python"] = repr(value)
            entry["value"] = tag(value)
            data = pack(value)
        entry.update(encoded(data))
        entry["node_encodes"] = node_encodes
        if note:
            entry["note"] = note
        # The bytes read back to the same value.
        assert pack(msgpack.unpackb(data, raw=False)) == data or name == "float nan"
        out.append(entry)
    return out


# ---------------------------------------------------------------------------
# Placement and names

PLACEMENT_NAMES = [
    "a",
    "asgi",
    "test",
    "chat",
    "room-42",
    "room-1",
    "room-2",
    "lobby",
    "x",
    "notifications",
    "a.b-c_d",
    "specific.6f1ed002ab5595859014ebf0951522d9!",
    "specific.6f1ed002ab5595859014ebf0951522d9!3b1f5a1c5e0d4f0e9c1f2a3b4c5d6e7f",
    "specific.6f1ed002ab5595859014ebf0951522d9!0123456789abcdef0123456789abcdef",
    "asgi__group__chat",
    "asgispecific.5a1e8c0d6c7a4f93b1b2c3d4e5f60718",
    "x" * 99,
]


def placement_section():
    out = []
    for name in PLACEMENT_NAMES:
        crc = binascii.crc32(name.encode("utf8"))
        out.append(
            {
                "name": name,
                "crc32": crc,
                "low12": crc & 0xFFF,
                "index": {str(n): _consistent_hash(name, n) for n in range(1, 6)},
            }
        )
    return out


def non_local_name(layer, channel):
    return layer.non_local_name(channel) if "!" in channel else channel


class FixedUuid:
    """uuid.uuid4 replacement yielding a fixed sequence, to show new_channel()'s exact form."""

    def __init__(self, hexes):
        self.values = [uuid.UUID(h) for h in hexes]

    def __call__(self):
        return self.values.pop(0)


def keys_section():
    layer = RedisChannelLayer(hosts=["redis://127.0.0.1:6379"], prefix="asgi")
    channels = []
    for prefix in ("asgi", "myapp:"):
        layer.prefix = prefix
        for channel in (
            "test",
            "chat.room-1",
            "specific.6f1ed002ab5595859014ebf0951522d9!3b1f5a1c5e0d4f0e9c1f2a3b4c5d6e7f",
        ):
            key = prefix + non_local_name(layer, channel)
            channels.append(
                {
                    "prefix": prefix,
                    "channel": channel,
                    "non_local_name": non_local_name(layer, channel),
                    "channel_key": key,
                    "inflight_key": layer._backup_channel_name(key),
                }
            )
    groups = []
    for prefix in ("asgi", "myapp:"):
        layer.prefix = prefix
        for group in ("chat", "room-42"):
            groups.append({"prefix": prefix, "group": group, "group_key": layer._group_key(group).decode()})

    pubsub = []
    for prefix in ("asgi", "myapp."):
        loop_layer = RedisPubSubLoopLayer(hosts=["redis://127.0.0.1:6379"], prefix=prefix)
        for group in ("chat", "room-42"):
            pubsub.append(
                {"prefix": prefix, "group": group, "group_channel": loop_layer._get_group_channel_name(group)}
            )

    # new_channel() with uuid4 fixed: the exact shapes of both layers.
    real_uuid4 = uuid.uuid4
    try:
        uuid.uuid4 = FixedUuid(["6f1ed002ab5595859014ebf0951522d9", "3b1f5a1c5e0d4f0e9c1f2a3b4c5d6e7f"])
        core = RedisChannelLayer(hosts=["redis://127.0.0.1:6379"], prefix="asgi")
        import asyncio

        core_name = asyncio.run(core.new_channel())
        uuid.uuid4 = FixedUuid(["5a1e8c0d6c7a4f93b1b2c3d4e5f60718"])
        pubsub_layer = RedisPubSubLoopLayer(hosts=["redis://127.0.0.1:6379"], prefix="asgi")
        ps_name = f"{pubsub_layer.prefix}specific.{uuid.uuid4().hex}"  # new_channel() minus SUBSCRIBE
    finally:
        uuid.uuid4 = real_uuid4
    new_channel = [
        {"layer": "core", "client_prefix": "6f1ed002ab5595859014ebf0951522d9", "prefix": "specific", "name": core_name},
        {"layer": "pubsub", "prefix_setting": "asgi", "prefix": "specific.", "name": ps_name},
    ]
    return {"channels": channels, "groups": groups, "pubsub": pubsub, "new_channel": new_channel}


# ---------------------------------------------------------------------------
# Complete stored members (core) and published payloads (pubsub)

LOCAL = "specific.6f1ed002ab5595859014ebf0951522d9!3b1f5a1c5e0d4f0e9c1f2a3b4c5d6e7f"
LOCAL2 = "specific.6f1ed002ab5595859014ebf0951522d9!0123456789abcdef0123456789abcdef"
SEED = 20231114


def core_section(layer):
    """ZSET members exactly as channels_redis writes them, random prefix from a seeded PRNG."""
    random.seed(SEED)
    message = {"type": "chat.message", "text": "héllo", "n": 42}
    out = []

    # send() to a normal channel: the message as is.
    member = layer.serialize(message)
    out.append({"op": "send", "channel": "chat", "message": tag(message), "body": tag(message), "member": member.hex()})

    # send() to a process-local channel: __asgi_channel__ = the full channel name.
    body = dict(message.items())
    body["__asgi_channel__"] = LOCAL
    member = layer.serialize(body)
    out.append({"op": "send", "channel": LOCAL, "message": tag(message), "body": tag(body), "member": member.hex()})

    # group_send(): one member per channel key, __asgi_channel__ = every channel sharing it.
    _, by_key, _ = layer._map_channel_keys_to_connection([LOCAL, LOCAL2, "chat"], message)
    for key, member in by_key.items():
        body = layer.deserialize(member)
        out.append(
            {"op": "group_send", "channel_key": key, "message": tag(message), "body": tag(body), "member": member.hex()}
        )
    for entry in out:
        entry["random_prefix"] = entry["member"][:24]
    return out


def make_fernet(secret):
    # channels_redis's RedisChannelLayer.make_fernet, verbatim.
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode("utf8")).digest()))


def fernet_section():
    time_, iv = 1700000000, bytes(range(16))
    out = []
    for secrets, message in (
        (["chanlayer-golden-secret"], {"type": "chat.message", "text": "héllo"}),
        (["new ✓", "old"], {"type": "x", "__asgi_channel__": LOCAL}),
    ):
        layer = RedisChannelLayer(hosts=["redis://127.0.0.1:6379"], symmetric_encryption_keys=secrets)
        body = pack(message)
        token = make_fernet(secrets[0])._encrypt_from_parts(body, time_, iv)
        prefix = bytes(range(0xA0, 0xAC))
        member = prefix + token
        # channels_redis reads it back (MultiFernet over every key, ttl ignored by decrypt_at_time).
        multi = MultiFernet([make_fernet(s) for s in secrets])
        assert msgpack.unpackb(multi.decrypt_at_time(token, 70, time_), raw=False) == message
        assert layer.crypter is not None
        out.append(
            {
                "secrets": secrets,
                "fernet_key": base64.urlsafe_b64encode(hashlib.sha256(secrets[0].encode()).digest()).decode(),
                "time": time_,
                "iv": iv.hex(),
                "message": tag(message),
                "body": body.hex(),
                "token": token.decode("ascii"),
                "random_prefix": prefix.hex(),
                "member": member.hex(),
            }
        )
    return out


def pubsub_section():
    # channels_redis 4.0 pubsub: serialize = msgpack.packb(message) (use_bin_type defaults to True
    # in msgpack 1.0), no random prefix, no encryption.
    from channels_redis.pubsub import RedisPubSubChannelLayer

    layer = RedisPubSubChannelLayer(hosts=["redis://127.0.0.1:6379"])
    out = []
    for message in ({"type": "chat.message", "text": "héllo"}, {"type": "x", "b": b"\x00", "n": -(P**63)}):
        out.append({"message": tag(message), "payload": layer.serialize(message).hex()})
    return out


# ---------------------------------------------------------------------------
# XSalsa20-Poly1305 (NaCl crypto_secretbox), independent of chanlayer's tweetnacl


def _rotl(v, c):
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def _salsa_rounds(x):
    x = list(x)
    for _ in range(10):
        for a, b, c, d in ((0, 4, 8, 12), (5, 9, 13, 1), (10, 14, 2, 6), (15, 3, 7, 11)):
            x[b] ^= _rotl((x[a] + x[d]) & 0xFFFFFFFF, 7)
            x[c] ^= _rotl((x[b] + x[a]) & 0xFFFFFFFF, 9)
            x[d] ^= _rotl((x[c] + x[b]) & 0xFFFFFFFF, 13)
            x[a] ^= _rotl((x[d] + x[c]) & 0xFFFFFFFF, 18)
        for a, b, c, d in ((0, 1, 2, 3), (5, 6, 7, 4), (10, 11, 8, 9), (15, 12, 13, 14)):
            x[b] ^= _rotl((x[a] + x[d]) & 0xFFFFFFFF, 7)
            x[c] ^= _rotl((x[b] + x[a]) & 0xFFFFFFFF, 9)
            x[d] ^= _rotl((x[c] + x[b]) & 0xFFFFFFFF, 13)
            x[a] ^= _rotl((x[d] + x[c]) & 0xFFFFFFFF, 18)
    return x


_SIGMA = struct.unpack("<4I", b"expand 32-byte k")


def _state(key, sixteen):
    k = struct.unpack("<8I", key)
    n = struct.unpack("<4I", sixteen)
    return [_SIGMA[0], *k[:4], _SIGMA[1], *n, _SIGMA[2], *k[4:], _SIGMA[3]]


def _hsalsa20(key, nonce16):
    x = _salsa_rounds(_state(key, nonce16))
    return struct.pack("<8I", *(x[i] for i in (0, 5, 10, 15, 6, 7, 8, 9)))


def _xsalsa20_stream(key, nonce24, length):
    subkey = _hsalsa20(key, nonce24[:16])
    out = bytearray()
    counter = 0
    while len(out) < length:
        s = _state(subkey, nonce24[16:] + struct.pack("<Q", counter))
        x = _salsa_rounds(s)
        out += struct.pack("<16I", *((x[i] + s[i]) & 0xFFFFFFFF for i in range(16)))
        counter += 1
    return bytes(out[:length])


def _poly1305(key, msg):
    r = int.from_bytes(key[:16], "little") & 0x0FFFFFFC0FFFFFFC0FFFFFFC0FFFFFFF
    s = int.from_bytes(key[16:], "little")
    p = (1 << 130) - 5
    acc = 0
    for i in range(0, len(msg), 16):
        acc = (acc + int.from_bytes(msg[i : i + 16] + b"\x01", "little")) * r % p
    return ((acc + s) & ((1 << 128) - 1)).to_bytes(16, "little")


def secretbox(key, nonce, plain):
    """tag | ciphertext, as crypto_secretbox / tweetnacl nacl.secretbox."""
    stream = _xsalsa20_stream(key, nonce, 32 + len(plain))
    cipher = bytes(a ^ b for a, b in zip(plain, stream[32:]))
    return _poly1305(stream[:32], cipher) + cipher


def secretbox_section():
    out = []
    nonce = bytes(range(0x10, 0x28))
    for secret, plain in (
        ("chanlayer-golden-secret", b""),
        ("chanlayer-golden-secret", pack({"type": "chat.message", "text": "héllo"})),
        ("clé secrète ✓", bytes(range(256)) * 3),
    ):
        key = hashlib.sha256(secret.encode("utf8")).digest()
        token = b"\x01" + nonce + secretbox(key, nonce, plain)
        out.append({"secret": secret, "key": key.hex(), "nonce": nonce.hex(), "plaintext": plain.hex(), "token": token.hex()})
    return out


# ---------------------------------------------------------------------------


def to_json(value, indent=0, head=0):
    """json.dumps(indent=2), laid out as Prettier lays out JSON (so `prettier --check` passes):
    objects expanded, an array of scalars on one line when it fits in 100 columns."""
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [
            f'{pad}  {json.dumps(k, ensure_ascii=False)}: '
            + to_json(v, indent + 1, len(pad) + 4 + len(json.dumps(k, ensure_ascii=False)))
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        if all(not isinstance(v, (dict, list)) for v in value):
            inline = "[" + ", ".join(json.dumps(v, ensure_ascii=False) for v in value) + "]"
            if head + len(inline) + 1 <= 100:
                return inline
        items = [pad + "  " + to_json(v, indent + 1, len(pad) + 2) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(value, ensure_ascii=False)


def main():
    plain_layer = RedisChannelLayer(hosts=["redis://127.0.0.1:6379"], prefix="asgi")
    fixture = {
        "generator": "scripts/gen-wire-vectors.py",
        "doc": "docs/wire-protocol.md",
        "versions": {
            "python": sys.version.split()[0],
            "channels_redis": version("channels_redis"),
            "msgpack": ".".join(map(str, msgpack.version)),
            "cryptography": cryptography.__version__,
        },
        "msgpack": msgpack_section(),
        "placement": placement_section(),
        "keys": keys_section(),
        "core": core_section(plain_layer),
        "fernet": fernet_section(),
        "pubsub": pubsub_section(),
        "secretbox": secretbox_section(),
    }
    text = to_json(fixture) + "\n"
    if "--stdout" in sys.argv[1:]:
        sys.stdout.write(text)
        return
    out = pathlib.Path(__file__).resolve().parent.parent / "test" / "fixtures" / "wire-vectors.json"
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
