#!/usr/bin/python3
"""The Django half of the Django interop example (README.md, "Talking to Django").

A stand-alone script so it runs without a project: it configures Django with the same
CHANNEL_LAYERS block you would put in settings.py, then uses Channels' own
get_channel_layer(), exactly as a consumer's self.channel_layer would.

    node --import tsx examples/django-interop/node-service.ts &    # in either order: this
    /usr/bin/python3 examples/django-interop/django_side.py         # waits for the Node service

Needs Django, channels and channels_redis (Debian: python3-channels-redis).
"""
import asyncio
import os

import django
from django.conf import settings

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
SECRET = os.environ.get("CHANNEL_LAYER_SECRET", "change-me")

# --- what goes in settings.py -------------------------------------------------------------
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [REDIS_URL],
            "prefix": "asgi",
            "symmetric_encryption_keys": [SECRET],
        },
    },
}
# -------------------------------------------------------------------------------------------

settings.configure(CHANNEL_LAYERS=CHANNEL_LAYERS)
django.setup()

from channels.layers import get_channel_layer  # noqa: E402  (needs configured settings)


async def wait_for_node(layer, me, seconds=30):
    """The Node service may still be starting: a group_send before it joined reaches nobody.
    Ask the group until it answers (any extra answers are skipped below)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        await layer.group_send("chat", {"type": "chat.hello", "reply_to": me})
        try:
            if (await asyncio.wait_for(layer.receive(me), timeout=0.5))["type"] == "chat.ready":
                return
        except asyncio.TimeoutError:
            if asyncio.get_running_loop().time() > deadline:
                raise SystemExit(f"django: no Node service in group 'chat' after {seconds} s")


async def main():
    layer = get_channel_layer()
    me = await layer.new_channel()
    await wait_for_node(layer, me)
    await layer.group_send(
        "chat",
        {"type": "chat.message", "text": "hello from Django", "reply_to": me, "blob": b"\x00\x01\x02"},
    )
    reply = await asyncio.wait_for(layer.receive(me), timeout=10)
    while reply["type"] == "chat.ready":  # a late answer to an earlier hello
        reply = await asyncio.wait_for(layer.receive(me), timeout=10)
    print(f"django: {reply['type']} {reply['text']!r} by {reply['by']}, big={reply['big']}")
    await layer.group_send("chat", {"type": "chat.bye"})
    await layer.close_pools()


asyncio.run(main())
