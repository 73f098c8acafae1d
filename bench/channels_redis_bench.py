"""channels_redis side of the chanlayer benchmark (bench/run.ts starts it).

One process per scenario run, like the chanlayer worker: the orchestrator passes the same
ScenarioParams JSON (bench/types.ts) as argv[1], and this prints one line
`BENCH_RESULT <json>` with the same metric names. Every scenario mirrors its TypeScript
twin in bench/scenarios/ line for line: same message, same clock points, same warm-up.

    /usr/bin/python3 bench/channels_redis_bench.py '<params json>'
    /usr/bin/python3 bench/channels_redis_bench.py --versions

With `replyTo` in the JSON (PongerParams, bench/types.ts) it is the ponger process of a
`*-pingpong-2proc` run instead, started by the pinger's process.
"""

import asyncio
import json
import os
import sys
import time

RESULT_MARK = "BENCH_RESULT "
PONGER_READY = "PONGER_READY "
PAYLOAD = "x" * 100
END = "bench.end"
GROUP = "bench.group"
# Same as BENCH_CAPACITY in bench/scenarios/index.ts: measure delivery, never ChannelFull.
BENCH_CAPACITY = 1_000_000
# Same as MAX_BACKLOG in bench/scenarios/stream.ts.
MAX_BACKLOG = 1024

now = time.perf_counter  # seconds; figures are reported in ms like the Node side


def bench_message(i):
    return {"type": "bench.msg", "i": i, "payload": PAYLOAD}


def percentile_sorted(values, p):
    """Nearest-rank percentile, as bench/stats.ts computes it."""
    if not values:
        return float("nan")
    rank = -(-p * len(values) // 100)  # ceil
    return values[min(len(values) - 1, max(0, int(rank) - 1))]


class Watchdog:
    """Cancels the watched tasks when nothing progressed for `stall` seconds.

    One checker per run rather than wait_for() around each receive: wait_for wraps every
    call in an extra task, which would add cost to exactly the path being measured.
    """

    def __init__(self, stall):
        self.stall = stall
        self.last = now()
        self.tasks = []
        self.checker = asyncio.ensure_future(self._check())

    def progress(self):
        self.last = now()

    def watch(self, task):
        self.tasks.append(task)
        return task

    async def _check(self):
        while True:
            await asyncio.sleep(min(0.25, self.stall / 4))
            if now() - self.last > self.stall:
                for task in self.tasks:
                    task.cancel()
                return

    def stop(self):
        self.checker.cancel()


async def stream(layer, channel, inflight, seconds, stall):
    """Send→receive throughput; see bench/scenarios/stream.ts."""
    wd = Watchdog(stall)
    t0 = now()
    deadline = t0 + seconds
    st = {"sent": 0, "received": 0, "t_last": t0, "expected": None}
    # Set by the receiver once the backlog is below MAX_BACKLOG / 2 (see stream.ts).
    drained = asyncio.Event()

    async def receiver():
        try:
            while st["expected"] is None or st["received"] < st["expected"]:
                m = await layer.receive(channel)
                wd.progress()
                if m["type"] == END:
                    st["expected"] = m["sent"]
                else:
                    st["received"] += 1
                    st["t_last"] = now()
                    if st["sent"] - st["received"] < MAX_BACKLOG / 2:
                        drained.set()
        except asyncio.CancelledError:
            # A stall after the end marker means lost messages (reported); before, a failure.
            if st["expected"] is None:
                raise

    rtask = wd.watch(asyncio.ensure_future(receiver()))

    async def sender():
        while now() < deadline:
            while st["sent"] - st["received"] >= MAX_BACKLOG:
                drained.clear()
                await drained.wait()
            i = st["sent"]
            st["sent"] += 1
            await layer.send(channel, bench_message(i))
            wd.progress()

    await asyncio.gather(*(sender() for _ in range(inflight)))
    send_s = now() - t0
    await layer.send(channel, {"type": END, "sent": st["sent"]})
    await rtask
    wd.stop()
    elapsed = st["t_last"] - t0
    return {
        "sent": st["sent"],
        "received": st["received"],
        "elapsedMs": elapsed * 1000,
        "sendMs": send_s * 1000,
        "lost": st["sent"] - st["received"],
    }


async def stream_scenario(layer, channel, inflight, p):
    warm = None
    if p["warmup"] > 0:
        warm = await stream(layer, channel, inflight, p["warmup"], p["stallSeconds"])
    r = await stream(layer, channel, inflight, p["duration"], p["stallSeconds"])
    return {
        "metrics": {"throughput": r["received"] / r["elapsedMs"] * 1000},
        "info": {
            **r,
            "sendRate": r["sent"] / r["sendMs"] * 1000,
            # Every message this process moved, warm-up included (Redis work per message).
            "messages": (warm["received"] if warm else 0) + r["received"],
        },
    }


async def ponger(layer, src, dst, on_message=None):
    """Echoes every message received on `src` to `dst` until the end marker."""
    while True:
        m = await layer.receive(src)
        if on_message:
            on_message()
        if m["type"] == END:
            return
        await layer.send(dst, m)


async def pinger(layer, back, out, p, wd):
    """Timed round trips: send to `out`, await `back`; ends the ponger with the end marker."""
    samples = []
    trips = 0
    start = now()
    measure_from = start + p["warmup"]
    end = measure_from + p["duration"]
    i = 0
    while True:
        t = now()
        if t >= end:
            break
        await layer.send(out, bench_message(i))
        await layer.receive(back)
        wd.progress()
        trips += 1
        if t >= measure_from:
            samples.append((now() - t) * 1000)
        i += 1
    await layer.send(out, {"type": END})
    samples.sort()
    return {
        "metrics": {"p50": percentile_sorted(samples, 50), "p99": percentile_sorted(samples, 99)},
        "info": {
            "samples": len(samples),
            "max": samples[-1] if samples else None,
            "messages": 2 * trips,
        },
    }


async def watched(p, ping_layer, a, b, pong):
    """Runs the pinger (on `ping_layer`, A ← B) and `pong` (an awaitable) under one watchdog."""
    wd = Watchdog(p["stallSeconds"])
    ptask = wd.watch(asyncio.ensure_future(pong))
    result = await wd.watch(asyncio.ensure_future(pinger(ping_layer, a, b, p, wd)))
    await ptask
    wd.stop()
    return result


async def ping_pong_scenario(layer, p):
    """Round trip over two process-local channels; see bench/scenarios/pingpong.ts."""
    return await two_layer_ping_pong(layer, layer, p)


async def two_layer_ping_pong(ping_layer, pong_layer, p):
    """Pinger and ponger each on their own layer, in this process; see pingpong.ts."""
    a = await ping_layer.new_channel()
    b = await pong_layer.new_channel()
    return await watched(p, ping_layer, a, b, ponger(pong_layer, b, a))


async def cross_process_ping_pong(layer, kind, p):
    """The ponger in a child process (this script with `replyTo`); see pingpong.ts."""
    a = await layer.new_channel()
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        json.dumps(
            {"kind": kind, "hosts": p["hosts"], "replyTo": a, "stallSeconds": p["stallSeconds"]}
        ),
        stdin=asyncio.subprocess.PIPE,  # a lifeline: the ponger exits when this process does
        stdout=asyncio.subprocess.PIPE,
    )
    line = (await child.stdout.readline()).decode()
    if not line.startswith(PONGER_READY):
        raise SystemExit(f"ponger did not start: {line!r}")
    b = line[len(PONGER_READY) :].strip()

    async def remote():
        code = await child.wait()
        if code != 0:
            raise SystemExit(f"ponger exit {code}")

    return await watched(p, layer, a, b, remote())


async def ponger_process(p):
    """The child side of cross_process_ping_pong: echo to `replyTo` until the end marker."""
    loop = asyncio.get_running_loop()
    # Exit when the parent goes: its end of our stdin closes.
    loop.add_reader(sys.stdin.fileno(), lambda: sys.stdin.buffer.read1() or os._exit(1))
    layer = make_layer(p["kind"], p["hosts"])
    try:
        b = await layer.new_channel()
        print(PONGER_READY + b, flush=True)
        wd = Watchdog(p["stallSeconds"])
        await wd.watch(asyncio.ensure_future(ponger(layer, b, p["replyTo"], wd.progress)))
        wd.stop()
    finally:
        await close_layer(p["kind"], layer)


async def group_scenario(layer, p):
    """groupSend to groupSize idle consumers; see bench/scenarios/group.ts."""
    members = [await layer.new_channel() for _ in range(p["groupSize"])]
    for m in members:
        await layer.group_add(GROUP, m)
    wd = Watchdog(p["stallSeconds"])
    times = []
    for i in range(p["warmupIterations"] + p["iterations"]):
        pending = [wd.watch(asyncio.ensure_future(layer.receive(m))) for m in members]
        await asyncio.sleep(0.02)
        t0 = now()
        await layer.group_send(GROUP, bench_message(i))
        await asyncio.gather(*pending)
        t = (now() - t0) * 1000
        wd.tasks.clear()
        wd.progress()
        if i >= p["warmupIterations"]:
            times.append(t)
    wd.stop()
    times.sort()
    return {
        "metrics": {"p50": percentile_sorted(times, 50), "p99": percentile_sorted(times, 99)},
        "info": {
            "rounds": len(times),
            "members": len(members),
            "messages": (p["warmupIterations"] + p["iterations"]) * len(members),
        },
    }


def make_layer(kind, hosts):
    if kind == "core":
        from channels_redis.core import RedisChannelLayer

        return RedisChannelLayer(hosts=hosts, capacity=BENCH_CAPACITY)
    from channels_redis.pubsub import RedisPubSubChannelLayer

    return RedisPubSubChannelLayer(hosts=hosts)


async def close_layer(kind, layer):
    if kind == "core":
        await layer.close_pools()
    else:
        # 4.0's Pub/Sub layer has no close(); flush() closes its connections.
        await layer.flush()


async def run(p):
    scenario = p["scenario"]
    kind = "pubsub" if scenario.startswith("pubsub-") else "core"
    layer = make_layer(kind, p["hosts"])
    try:
        if scenario == "core-seq":
            return await stream_scenario(layer, "bench.seq", 1, p)
        if scenario == "core-inflight":
            return await stream_scenario(layer, "bench.inflight", p["inflight"], p)
        if scenario == "core-local":
            return await stream_scenario(layer, await layer.new_channel(), 1, p)
        if scenario == "pubsub-inflight":
            return await stream_scenario(layer, await layer.new_channel(), p["inflight"], p)
        if scenario in ("core-pingpong", "pubsub-pingpong"):
            return await ping_pong_scenario(layer, p)
        if scenario.endswith("-pingpong-2proc"):
            return await cross_process_ping_pong(layer, kind, p)
        if scenario.endswith("-pingpong-2layer"):
            pong_layer = make_layer(kind, p["hosts"])
            try:
                return await two_layer_ping_pong(layer, pong_layer, p)
            finally:
                await close_layer(kind, pong_layer)
        if scenario == "core-group":
            return await group_scenario(layer, p)
        raise SystemExit(f"scenario {scenario} is chanlayer-only")
    finally:
        await close_layer(kind, layer)


def versions():
    import channels_redis
    import msgpack
    import redis
    from redis.utils import HIREDIS_AVAILABLE

    return {
        "python": sys.version.split()[0],
        "channels_redis": getattr(channels_redis, "__version__", "?"),
        "redis_py": redis.__version__,
        "msgpack": ".".join(map(str, msgpack.version)),
        "hiredis": bool(HIREDIS_AVAILABLE),
    }


def main():
    if sys.argv[1:] == ["--versions"]:
        print(RESULT_MARK + json.dumps(versions()))
        return
    p = json.loads(sys.argv[1])
    if "replyTo" in p:
        asyncio.run(ponger_process(p))
        return
    # Process CPU over the whole run (setup and warm-up too), as the Node worker reports it.
    cpu0 = time.process_time()
    result = asyncio.run(run(p))
    result.setdefault("info", {})["cpuMs"] = (time.process_time() - cpu0) * 1000
    print(RESULT_MARK + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
