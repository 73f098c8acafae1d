/**
 * Fernet key rotation between chanlayer and channels_redis 4.0.0 (MultiFernet) through real
 * Redis, each direction a separate test: the first key encrypts, every key decrypts, so
 * `[new, old]` on one side and `[old]` or `[old, new]` on the other work in exactly the
 * directions MultiFernet allows — and a message under a key the reader lacks is skipped and
 * counted by chanlayer, with the next good message delivered.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { RedisChannelLayer } from '../lib/index.ts';
import { PeerError, type PyLayer, redisAndPeer, soon } from './interop/peer.ts';

const OLD = 'rotation old secret';
const NEW = 'rotation new secret ✓';

const env = redisAndPeer(3);

for (const count of [1, 3]) {
  describe(`Fernet rotation, ${count} host(s)`, () => {
    const prefix = `rot${count}:`;
    const warnings: string[] = [];
    const layers: RedisChannelLayer[] = [];
    const pyLayers: PyLayer[] = [];

    const nodeWith = (keys: string[] | undefined): RedisChannelLayer => {
      const layer = new RedisChannelLayer({
        hosts: env.redis.urls.slice(0, count),
        prefix,
        ...(keys ? { symmetricEncryptionKeys: keys } : {}),
        logger: { warn: (m: string) => void warnings.push(m) },
      });
      layers.push(layer);
      return layer;
    };
    const pyWith = async (keys: string[] | undefined): Promise<PyLayer> => {
      const layer = await env.peer.core({
        hosts: env.redis.urls.slice(0, count),
        prefix,
        ...(keys ? { symmetric_encryption_keys: keys } : {}),
      });
      pyLayers.push(layer);
      return layer;
    };

    after(async () => {
      await layers[0]?.flush();
      for (const l of layers) await l.close();
      for (const l of pyLayers) await l.close();
    });

    it('Python [old] → Node [new, old]: arrives (Node decrypts with its second key)', async () => {
      const node = nodeWith([NEW, OLD]);
      const py = await pyWith([OLD]);
      const ch = await node.newChannel();
      await py.send(ch, { type: 'rot', from: 'python-old' });
      assert.deepEqual(await node.receive(ch, soon()), { type: 'rot', from: 'python-old' });
      await py.groupAdd('rot-g1', ch);
      await py.groupSend('rot-g1', { type: 'rot.group' });
      assert.deepEqual(await node.receive(ch, soon()), { type: 'rot.group' });
    });

    it('Node [new, old] → Python [old, new]: arrives (Python decrypts with its second key)', async () => {
      const node = nodeWith([NEW, OLD]);
      const py = await pyWith([OLD, NEW]);
      const ch = await py.newChannel();
      await node.send(ch, { type: 'rot', from: 'node-new' });
      assert.deepEqual(await py.receive(ch), { type: 'rot', from: 'node-new' });
    });

    it('Node [new, old] → Python [old]: channels_redis cannot read it (InvalidToken) — deploy [old, new] first', async () => {
      const node = nodeWith([NEW, OLD]);
      const py = await pyWith([OLD]);
      const ch = await py.newChannel();
      await node.send(ch, { type: 'rot', from: 'node-new' });
      await assert.rejects(py.receive(ch, 10), (err: PeerError) => err.type === 'InvalidToken');
    });

    it('Node [old] → Python [new, old]: arrives', async () => {
      const node = nodeWith([OLD]);
      const py = await pyWith([NEW, OLD]);
      const ch = await py.newChannel();
      await node.send(ch, { type: 'rot', from: 'node-old' });
      assert.deepEqual(await py.receive(ch), { type: 'rot', from: 'node-old' });
    });

    it('Python [new, old] → Node [old, new]: arrives', async () => {
      const node = nodeWith([OLD, NEW]);
      const py = await pyWith([NEW, OLD]);
      const ch = await node.newChannel();
      await py.send(ch, { type: 'rot', from: 'python-new' });
      assert.deepEqual(await node.receive(ch, soon()), { type: 'rot', from: 'python-new' });
    });

    it('Python [new, old] → Node [old]: skipped and counted, the next readable message arrives', async () => {
      const node = nodeWith([OLD]);
      const pyNew = await pyWith([NEW, OLD]);
      const pyOld = await pyWith([OLD]);
      const ch = await node.newChannel();
      const before = node.stats().unreadable ?? 0;
      const seen = warnings.length;
      await pyNew.send(ch, { type: 'rot', from: 'unreadable' });
      await pyOld.send(ch, { type: 'rot', from: 'readable' });
      assert.deepEqual(await node.receive(ch, soon()), { type: 'rot', from: 'readable' });
      assert.equal(node.stats().unreadable, before + 1);
      const logged = warnings.slice(seen).join('\n');
      assert.match(logged, new RegExp(`${prefix}specific\\.${node.clientPrefix}!`));
      assert.ok(!logged.includes(OLD) && !logged.includes(NEW), 'no secret in the log');
    });

    it('Python without keys → Node with keys: skipped and counted, the next readable message arrives', async () => {
      const node = nodeWith([OLD]);
      const plain = await pyWith(undefined);
      const keyed = await pyWith([OLD]);
      const ch = await node.newChannel();
      const before = node.stats().unreadable ?? 0;
      await plain.send(ch, { type: 'rot', from: 'plain' });
      await keyed.send(ch, { type: 'rot', from: 'keyed' });
      assert.deepEqual(await node.receive(ch, soon()), { type: 'rot', from: 'keyed' });
      assert.equal(node.stats().unreadable, before + 1);
    });

    it('Node [old] group_send → Python members under [old] and [new, old]', async () => {
      const node = nodeWith([OLD]);
      const pyA = await pyWith([OLD]);
      const pyB = await pyWith([NEW, OLD]);
      const a = await pyA.newChannel();
      const b = await pyB.newChannel();
      await pyA.groupAdd('rot-g2', a);
      await pyB.groupAdd('rot-g2', b);
      await node.groupSend('rot-g2', { type: 'rot.group' });
      assert.deepEqual(await pyA.receive(a), { type: 'rot.group' });
      assert.deepEqual(await pyB.receive(b), { type: 'rot.group' });
    });
  });
}
