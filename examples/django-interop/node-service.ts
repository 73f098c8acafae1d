/**
 * The Node half of the Django interop example (README.md, "Talking to Django"): a Node service that
 * sits in the same channel layer as a Django project, on the same Redis.
 *
 *   node --import tsx examples/django-interop/node-service.ts &    # in either order: the
 *   /usr/bin/python3 examples/django-interop/django_side.py         # Django side waits for it
 *
 * Environment (both processes): REDIS_URL (default redis://127.0.0.1:6379) and
 * CHANNEL_LAYER_SECRET (default "change-me"; any string, the same on both sides).
 *
 * It joins the group "chat" with a channel of its own. It answers a `chat.hello` with
 * `chat.ready` (how the Django side knows it has joined) and every `chat.message` with
 * `chat.reply`, both to the sender's `reply_to` channel; a `chat.bye` ends it.
 * In your own project, import from 'chanlayer' instead of '../../lib/index.ts'.
 */
import { channelLayers, getChannelLayer } from '../../lib/index.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const SECRET = process.env.CHANNEL_LAYER_SECRET ?? 'change-me';

// Django's CHANNEL_LAYERS block, as JSON: the same BACKEND path and snake_case CONFIG keys.
channelLayers.configure({
  default: {
    BACKEND: 'channels_redis.core.RedisChannelLayer',
    CONFIG: {
      hosts: [REDIS_URL],
      prefix: 'asgi',
      symmetric_encryption_keys: [SECRET],
    },
  },
});

const layer = getChannelLayer()!;
const me = await layer.newChannel();
await layer.groupAdd('chat', me);
console.log(`node: READY ${me}`);

for (;;) {
  const message = await layer.receive(me);
  if (message.type === 'chat.hello') {
    await layer.send(String(message.reply_to), { type: 'chat.ready' });
  } else if (message.type === 'chat.message') {
    const blob = message.blob as Uint8Array; // Python bytes arrive as Uint8Array
    console.log(
      `node: chat.message ${JSON.stringify(message.text)} (${blob.length} bytes attached) from Django`,
    );
    await layer.send(String(message.reply_to), {
      type: 'chat.reply',
      text: String(message.text).toUpperCase(),
      by: 'node',
      big: 2n ** 64n - 1n, // arrives in Python as the int 18446744073709551615
    });
  } else if (message.type === 'chat.bye') {
    break;
  }
}

await layer.groupDiscard('chat', me);
await layer.close();
console.log('node: bye');
