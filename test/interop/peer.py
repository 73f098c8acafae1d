#!/usr/bin/python3
"""A channels_redis peer for chanlayer's interop tests, driven by JSON lines.

Run with the interpreter that has channels_redis 4.x, redis-py and msgpack (Debian:
/usr/bin/python3 with python3-channels-redis). One process serves a whole test file:

    stdin:  {"id": 1, "op": "layer", "name": "py", "kind": "core", "config": {...}}
    stdout: {"id": 1, "ok": true, "result": {...}}
            {"id": 2, "ok": false, "error": "InvalidToken", "message": "..."}

Every request runs as its own asyncio task, so a blocked `receive` never holds up a `send`
that would satisfy it. The process exits when stdin closes (its parent went away) or on
{"op": "exit"}.

Values cross the pipe in a tagged form, so Python's exact types survive JSON:
    {"t": "int", "v": "18446744073709551615"}   {"t": "float", "v": "-inf"}   (repr)
    {"t": "str", "v": "..."}   {"t": "bytes", "v": "00ff"}   {"t": "bool", "v": true}
    {"t": "nil"}   {"t": "list", "v": [...]}   {"t": "map", "v": [[key, value], ...]}

Operations (all take "id"; layer operations take "layer", the name given at creation):
    ping                                      -> {"python": ..., "channels_redis": ..., ...}
    layer     name kind=core|pubsub config [brpop_timeout]
                                              -> {"client_prefix": ...} (core)
    new_channel layer [prefix]                -> channel name; for pubsub, returns once Redis
                                                 lists the subscription
    send      layer channel message(tagged)
    receive   layer channel [timeout=30]      -> tagged message; error "Timeout" after timeout
    group_add / group_discard  layer group channel   (pubsub group_add waits like new_channel)
    group_send layer group message(tagged)
    listen    layer channel                   pubsub: subscribe a name not made by new_channel
                                                 (as receive does), return once Redis lists it
    flush / close  layer
    serialize layer message                   -> hex of layer.serialize(message)
    deserialize layer hex                     -> tagged layer.deserialize(bytes)
    pack message [use_bin_type=true]          -> hex of msgpack.packb
    unpack hex                                -> tagged msgpack.unpackb(raw=False)
    hash value n                              -> channels_redis.utils._consistent_hash
    redis url args                            -> tagged reply of one raw command
    exit
"""
import asyncio
import binascii
import json
import sys
import traceback

import msgpack
import redis
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer
from channels_redis.utils import _consistent_hash
from redis import asyncio as aioredis

try:
    from importlib.metadata import version as _dist_version
except ImportError:  # pragma: no cover
    _dist_version = None


# ---------------------------------------------------------------------------
# Tagged values


def tag(value):
    # bool before int: bool is a subclass of int.
    if value is None:
        return {"t": "nil"}
    if isinstance(value, bool):
        return {"t": "bool", "v": value}
    if isinstance(value, int):
        return {"t": "int", "v": str(value)}
    if isinstance(value, float):
        return {"t": "float", "v": repr(value)}
    if isinstance(value, str):
        return {"t": "str", "v": value}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"t": "bytes", "v": bytes(value).hex()}
    if isinstance(value, (list, tuple)):
        return {"t": "list", "v": [tag(v) for v in value]}
    if isinstance(value, dict):
        return {"t": "map", "v": [[tag(k), tag(v)] for k, v in value.items()]}
    raise TypeError(f"cannot tag a {type(value).__name__}")


def untag(node):
    t = node["t"]
    if t == "nil":
        return None
    if t == "bool":
        return bool(node["v"])
    if t == "int":
        return int(node["v"])
    if t == "float":
        return float(node["v"])
    if t == "str":
        return node["v"]
    if t == "bytes":
        return bytes.fromhex(node["v"])
    if t == "list":
        return [untag(v) for v in node["v"]]
    if t == "map":
        return {untag(k): untag(v) for k, v in node["v"]}
    raise ValueError(f"unknown tag {t!r}")


# ---------------------------------------------------------------------------
# State


class Timeout(Exception):
    pass


layers = {}  # name -> (kind, layer)
raw_clients = {}  # url -> aioredis.Redis (inspection only, never used by a layer)


def raw_client(url):
    if url not in raw_clients:
        raw_clients[url] = aioredis.Redis.from_url(url)
    return raw_clients[url]


def get_layer(req):
    try:
        return layers[req["layer"]]
    except KeyError:
        raise KeyError(f"no layer named {req['layer']!r}") from None


async def wait_subscribed(layer, name):
    """Return once the Redis server of `name`'s shard lists every channel the shard's
    pub/sub connection has subscribed (SUBSCRIBE is fire-and-forget in redis-py)."""
    loop_layer = layer._get_layer()
    shard = loop_layer._get_shard(name)
    writer = shard._pubsub.connection._writer
    host, port = writer.get_extra_info("sockname")[:2]
    addr = f"{host}:{port}"
    want = len(shard._subscribed_to)
    client = raw_client(shard.host["address"])
    for _ in range(2000):
        for entry in await client.client_list(_type="pubsub"):
            if entry.get("addr") == addr and int(entry.get("sub", 0)) >= want:
                return
        await asyncio.sleep(0.005)  # poll interval of a condition check, not a synchronization
    raise Timeout(f"Redis never listed {want} subscriptions for {addr}")


# ---------------------------------------------------------------------------
# Operations


async def op_ping(req):
    versions = {"python": sys.version.split()[0], "msgpack": ".".join(map(str, msgpack.version))}
    versions["redis"] = redis.__version__
    if _dist_version is not None:
        for dist in ("channels_redis", "channels"):
            try:
                versions[dist] = _dist_version(dist)
            except Exception:  # noqa: BLE001 - version lookup is best effort
                versions[dist] = None
    return versions


async def op_layer(req):
    name = req["name"]
    kind = req.get("kind", "core")
    config = dict(req.get("config") or {})
    if name in layers:
        raise ValueError(f"layer {name!r} exists")
    if kind == "core":
        layer = RedisChannelLayer(**config)
        if "brpop_timeout" in req:
            layer.brpop_timeout = req["brpop_timeout"]
        layers[name] = ("core", layer)
        return {"client_prefix": layer.client_prefix}
    if kind == "pubsub":
        layer = RedisPubSubChannelLayer(**config)
        layers[name] = ("pubsub", layer)
        return {}
    raise ValueError(f"unknown layer kind {kind!r}")


async def op_new_channel(req):
    kind, layer = get_layer(req)
    args = [req["prefix"]] if "prefix" in req else []
    channel = await layer.new_channel(*args)
    if kind == "pubsub":
        await wait_subscribed(layer, channel)
    return channel


async def op_send(req):
    _, layer = get_layer(req)
    await layer.send(req["channel"], untag(req["message"]))


async def op_receive(req):
    _, layer = get_layer(req)
    try:
        message = await asyncio.wait_for(layer.receive(req["channel"]), req.get("timeout", 30))
    except asyncio.TimeoutError:
        raise Timeout(f"nothing on {req['channel']} within {req.get('timeout', 30)} s") from None
    return tag(message)


async def op_listen(req):
    """pubsub: subscribe to a channel this layer did not create (what `receive` does on first
    use) and return once Redis lists the subscription, so a publish cannot race it."""
    kind, layer = get_layer(req)
    if kind != "pubsub":
        raise ValueError("listen is for pubsub layers")
    loop_layer = layer._get_layer()
    if req["channel"] not in loop_layer.channels:
        await loop_layer._subscribe_to_channel(req["channel"])
    await wait_subscribed(layer, req["channel"])


async def op_group_add(req):
    kind, layer = get_layer(req)
    await layer.group_add(req["group"], req["channel"])
    if kind == "pubsub":
        await wait_subscribed(layer, layer._get_layer()._get_group_channel_name(req["group"]))


async def op_group_discard(req):
    _, layer = get_layer(req)
    await layer.group_discard(req["group"], req["channel"])


async def op_group_send(req):
    _, layer = get_layer(req)
    await layer.group_send(req["group"], untag(req["message"]))


async def op_flush(req):
    _, layer = get_layer(req)
    await layer.flush()


async def op_close(req):
    kind, layer = layers.pop(req["layer"])
    if kind == "core":
        await layer.close_pools()
    else:
        await layer.flush()


async def op_serialize(req):
    _, layer = get_layer(req)
    return layer.serialize(untag(req["message"])).hex()


async def op_deserialize(req):
    _, layer = get_layer(req)
    return tag(layer.deserialize(bytes.fromhex(req["hex"])))


async def op_pack(req):
    return msgpack.packb(untag(req["message"]), use_bin_type=req.get("use_bin_type", True)).hex()


async def op_unpack(req):
    return tag(msgpack.unpackb(bytes.fromhex(req["hex"]), raw=False))


async def op_hash(req):
    return _consistent_hash(req["value"], req["n"])


async def op_crc32(req):
    return binascii.crc32(req["value"].encode("utf8"))


async def op_redis(req):
    reply = await raw_client(req["url"]).execute_command(*req["args"])
    return tag(reply)


OPS = {name[3:]: fn for name, fn in globals().items() if name.startswith("op_")}


# ---------------------------------------------------------------------------
# Main loop


def write(obj):
    sys.stdout.write(json.dumps(obj, ensure_ascii=True, allow_nan=False) + "\n")
    sys.stdout.flush()


async def handle(req):
    rid = req.get("id")
    try:
        op = OPS[req["op"]]
    except KeyError:
        write({"id": rid, "ok": False, "error": "UnknownOp", "message": repr(req.get("op"))})
        return
    try:
        result = await op(req)
        write({"id": rid, "ok": True, "result": result})
    except asyncio.CancelledError:
        write({"id": rid, "ok": False, "error": "Cancelled", "message": "peer shutting down"})
        raise
    except BaseException as err:  # noqa: BLE001 - every failure goes back to the caller
        write(
            {
                "id": rid,
                "ok": False,
                "error": type(err).__name__,
                "message": str(err) or repr(err),
                "traceback": traceback.format_exc(),
            }
        )


async def shutdown(tasks):
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for kind, layer in list(layers.values()):
        try:
            await asyncio.wait_for(
                layer.close_pools() if kind == "core" else layer.flush(), 5
            )
        except BaseException:  # noqa: BLE001 - best effort on the way out
            pass
    layers.clear()
    for client in raw_clients.values():
        try:
            await client.close(close_connection_pool=True)
        except BaseException:  # noqa: BLE001
            pass


async def main():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=256 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tasks = set()
    write({"id": None, "ok": True, "result": "ready"})
    while True:
        line = await reader.readline()
        if not line:
            break  # stdin closed: the test process is gone or done
        line = line.strip()
        if not line:
            continue
        req = json.loads(line)
        if req.get("op") == "exit":
            write({"id": req.get("id"), "ok": True, "result": None})
            break
        task = asyncio.ensure_future(handle(req))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await shutdown(list(tasks))


if __name__ == "__main__":
    asyncio.run(main())
