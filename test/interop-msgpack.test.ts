/**
 * The whole msgpack type matrix (test/interop/matrix.ts) between chanlayer and channels_redis
 * 4.0.0, each direction a separate test, through the real layers on real redis-servers:
 * int64/uint64 edges exact (bigint beyond 2^53), bytes, floats incl. ±inf/nan/-0.0, unicode,
 * nested and empty containers, every msgpack width boundary.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RedisChannelLayer, RedisPubSubChannelLayer } from '../lib/index.ts';
import {
  checkNodeReceived,
  checkPythonReceived,
  nodeMatrixMessage,
  pythonMatrixMessage,
} from './interop/matrix.ts';
import { type PythonPeer, redisAndPeer, soon } from './interop/peer.ts';

const env = redisAndPeer(3);

const CORE_SETUPS = [
  { name: 'core, 1 host', hosts: 1, keys: undefined },
  { name: 'core, 3 hosts, Fernet', hosts: 3, keys: ['matrix secret'] },
];

for (const setup of CORE_SETUPS) {
  describe(`msgpack matrix, ${setup.name}`, () => {
    const prefix = `mx${setup.hosts}${setup.keys ? 'f' : ''}.`;
    let node: RedisChannelLayer;
    let py: Awaited<ReturnType<PythonPeer['core']>>;

    before(async () => {
      const hosts = env.redis.urls.slice(0, setup.hosts);
      node = new RedisChannelLayer({
        hosts,
        prefix,
        ...(setup.keys ? { symmetricEncryptionKeys: setup.keys } : {}),
      });
      py = await env.peer.core(
        { hosts, prefix, ...(setup.keys ? { symmetric_encryption_keys: setup.keys } : {}) },
        { brpopTimeout: 1 },
      );
    });
    after(async () => {
      await node?.close();
      await py?.close();
    });

    it('Python → Node, process-local channel: every value arrives with the exact JS type', async () => {
      const ch = await node.newChannel();
      await py.sendTagged(ch, pythonMatrixMessage());
      checkNodeReceived(await node.receive(ch, soon()));
    });

    it('Node → Python, process-local channel: every value arrives with the exact Python type', async () => {
      const ch = await py.newChannel();
      await node.send(ch, nodeMatrixMessage());
      checkPythonReceived(await py.receiveTagged(ch));
    });

    it('Python → Node, group_send (one entry per channel key, __asgi_channel__ list)', async () => {
      const a = await node.newChannel();
      const b = await node.newChannel();
      await node.groupAdd('matrix', a);
      await node.groupAdd('matrix', b);
      await py.groupSendTagged('matrix', pythonMatrixMessage());
      checkNodeReceived(await node.receive(a, soon()));
      checkNodeReceived(await node.receive(b, soon()));
      await node.groupDiscard('matrix', a);
      await node.groupDiscard('matrix', b);
    });

    it('Node → Python, groupSend', async () => {
      const a = await py.newChannel();
      await py.groupAdd('matrix2', a);
      await node.groupSend('matrix2', nodeMatrixMessage());
      checkPythonReceived(await py.receiveTagged(a));
      await py.groupDiscard('matrix2', a);
    });
  });
}

describe('msgpack matrix, Pub/Sub, 2 hosts', () => {
  const prefix = 'mxps.';
  let node: RedisPubSubChannelLayer;
  let py: Awaited<ReturnType<PythonPeer['pubsub']>>;

  before(async () => {
    const hosts = env.redis.urls.slice(0, 2);
    node = new RedisPubSubChannelLayer({ hosts, prefix });
    py = await env.peer.pubsub({ hosts, prefix });
  });
  after(async () => {
    await node?.close();
    await py?.close();
  });

  it('Python → Node: every value arrives with the exact JS type', async () => {
    const ch = await node.newChannel();
    const got = node.receive(ch, soon());
    await py.sendTagged(ch, pythonMatrixMessage());
    checkNodeReceived(await got);
  });

  it('Node → Python: every value arrives with the exact Python type', async () => {
    const ch = await py.newChannel();
    await node.send(ch, nodeMatrixMessage());
    checkPythonReceived(await py.receiveTagged(ch));
  });

  it('Python → Node group_send, Node → Python groupSend', async () => {
    const nodeCh = await node.newChannel();
    const pyCh = await py.newChannel();
    await node.groupAdd('matrix', nodeCh);
    await py.groupAdd('matrix', pyCh);
    await py.groupSendTagged('matrix', pythonMatrixMessage());
    checkNodeReceived(await node.receive(nodeCh, soon()));
    assert.ok((await py.receiveTagged(pyCh)).t === 'map');
    await node.groupSend('matrix', nodeMatrixMessage());
    checkPythonReceived(await py.receiveTagged(pyCh));
    assert.ok(await node.receive(nodeCh, soon()));
  });
});
