/**
 * InMemoryChannelLayer: every semantic of the API — capacity and channelCapacity,
 * fractional expiry and groupExpiry, FIFO, several waiters, process-specific channels, groups,
 * AbortSignal (including 1,000 receives aborted at random moments), flush, close, message
 * copying, bounded memory, deleteChannel and stats.
 *
 * No sleeps stand in for synchronization: tests await promises; expiry tests use 0.1 s and poll
 * the observable state against a deadline.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { afterEach, describe, it } from 'node:test';
import { ChannelFull, InvalidChannelName, LayerClosed, WrongClientPrefix } from '../lib/errors.ts';
import { InMemoryChannelLayer, type InMemoryOptions } from '../lib/layers/in-memory.ts';
import type { Message } from '../lib/types.ts';
import { fill } from './harness/fill.ts';
import { waitFor } from './harness/wait.ts';

type N = Message & { n: number };

const open: InMemoryChannelLayer[] = [];
function makeLayer(options: InMemoryOptions = {}): InMemoryChannelLayer {
  const layer = new InMemoryChannelLayer(options);
  open.push(layer);
  return layer;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((l) => l.close()));
});

/** Tracks a promise's outcome so a test can assert it has not settled yet. */
function track<T>(p: Promise<T>): {
  settled: boolean;
  value?: T;
  error?: unknown;
  promise: Promise<T>;
} {
  const t: { settled: boolean; value?: T; error?: unknown; promise: Promise<T> } = {
    settled: false,
    promise: p,
  };
  p.then(
    (v) => Object.assign(t, { settled: true, value: v }),
    (e: unknown) => Object.assign(t, { settled: true, error: e }),
  );
  return t;
}

/**
 * Settles with `work`, or fails once `started` is done and `finished()` has not come true within
 * a few seconds — so a lost message fails the test with a report instead of hanging it.
 */
async function settleOrReport(
  work: Promise<unknown>,
  started: Promise<unknown>,
  finished: () => boolean,
  report: () => string,
): Promise<void> {
  await Promise.race([
    work,
    started.then(() => waitFor(finished, { what: report, timeoutMs: 10_000 })).then(() => work),
  ]);
}

function missing(got: number[], n: number): string {
  const seen = new Set(got);
  const lost = Array.from({ length: n }, (_, i) => i).filter((i) => !seen.has(i));
  return `all ${n} messages; ${got.length} received, missing ${lost.slice(0, 20).join(', ')}`;
}

/** Lets every already-queued callback (microtasks and one macrotask turn) run. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const isAbortError = (err: unknown): boolean => err instanceof Error && err.name === 'AbortError';

describe('basics', () => {
  it('advertises the groups and flush extensions', () => {
    const layer = makeLayer();
    assert.deepEqual([...layer.extensions], ['groups', 'flush']);
  });

  it('a receive waits for a later send', async () => {
    const layer = makeLayer();
    const r = track(layer.receive('later'));
    await turn();
    assert.equal(r.settled, false);
    await layer.send('later', { type: 'hello', v: 1 });
    assert.deepEqual(await r.promise, { type: 'hello', v: 1 });
  });

  it('delivers every JS type the serializer carries', async () => {
    const layer = makeLayer();
    const m = {
      type: 't',
      big: 2n ** 64n - 1n,
      b: new Uint8Array([1, 2]),
      f: -0.5,
      inf: -Infinity,
      l: [null, true],
    };
    await layer.send('types', m);
    assert.deepStrictEqual(await layer.receive('types'), m);
  });

  it('is FIFO per channel, channels independent', async () => {
    const layer = makeLayer({ capacity: 1000 });
    for (let i = 0; i < 500; i++) {
      await layer.send('fifo.a', { type: 'a', n: i });
      await layer.send('fifo.b', { type: 'b', n: 1000 + i });
    }
    const a: number[] = [];
    const b: number[] = [];
    for (let i = 0; i < 500; i++) {
      b.push(((await layer.receive('fifo.b')) as N).n);
      a.push(((await layer.receive('fifo.a')) as N).n);
    }
    assert.deepEqual(
      a,
      Array.from({ length: 500 }, (_, i) => i),
    );
    assert.deepEqual(
      b,
      Array.from({ length: 500 }, (_, i) => 1000 + i),
    );
    assert.equal(layer.activeChannels, 0);
  });

  it('two layers do not share channels', async () => {
    const one = makeLayer();
    const two = makeLayer();
    await one.send('shared.name', { type: 'from-one' });
    await two.send('shared.name', { type: 'from-two' });
    assert.deepEqual(await two.receive('shared.name'), { type: 'from-two' });
    assert.deepEqual(await one.receive('shared.name'), { type: 'from-one' });
  });
});

describe('capacity', () => {
  it('rejects with ChannelFull over capacity; the message is not written; room frees up', async () => {
    const layer = makeLayer({ capacity: 3 });
    for (let i = 0; i < 3; i++) await layer.send('cap', { type: 't', n: i });
    await assert.rejects(layer.send('cap', { type: 't', n: 3 }), (err: unknown) => {
      assert.ok(err instanceof ChannelFull);
      assert.ok(err instanceof Error);
      assert.equal(err.channel, 'cap');
      assert.equal(err.capacity, 3);
      return true;
    });
    assert.equal(((await layer.receive('cap')) as N).n, 0);
    await layer.send('cap', { type: 't', n: 4 });
    await assert.rejects(layer.send('cap', { type: 't', n: 5 }), ChannelFull);
    const rest = [];
    for (let i = 0; i < 3; i++) rest.push(((await layer.receive('cap')) as N).n);
    assert.deepEqual(rest, [1, 2, 4]);
    assert.equal(layer.stats().capacityRejected, 2);
    assert.equal(layer.activeChannels, 0);
  });

  it('default capacity is 100', async () => {
    const layer = makeLayer();
    assert.equal(await fill(layer, 'default.cap'), 100);
  });

  it('channelCapacity globs (fnmatch: *, ?, [seq], [!seq]; dots literal; anchored)', async () => {
    const layer = makeLayer({
      capacity: 3,
      channelCapacity: { 'http.request': 7, 'http.*': 2, 'ws.?': 5, 'num[0-9]': 4, 'not[!0-9]': 6 },
    });
    const expect: Array<[string, number]> = [
      ['http.request', 7],
      ['http.response.body', 2],
      ['xhttp.other', 3], // anchored at the start
      ['httpXrequest', 3], // '.' is literal
      ['ws.a', 5],
      ['ws.ab', 3], // '?' is exactly one character
      ['num7', 4],
      ['numX', 3],
      ['notX', 6],
      ['not7', 3],
      ['other', 3],
    ];
    for (const [channel, cap] of expect) assert.equal(await fill(layer, channel), cap, channel);
  });

  it('channelCapacity as [RegExp | glob, n] pairs: first match wins', async () => {
    const layer = makeLayer({
      capacity: 3,
      channelCapacity: [
        [/^a\./, 1],
        ['a.*', 4],
        ['b.*', 2],
        [/^b\.long/, 9],
        [/x$/, 5],
      ],
    });
    const expect: Array<[string, number]> = [
      ['a.one', 1],
      ['b.longer', 2],
      ['c.x', 5],
      ['c', 3],
    ];
    for (const [channel, cap] of expect) assert.equal(await fill(layer, channel), cap, channel);
  });

  it('channelCapacity object form: the first key (insertion order) wins', async () => {
    const layer = makeLayer({ capacity: 3, channelCapacity: { 'x.*': 2, 'x.y*': 7 } });
    assert.equal(await fill(layer, 'x.yz'), 2);
  });

  it('a waiting receiver gets a message even when capacity is 1 and nothing is buffered', async () => {
    const layer = makeLayer({ capacity: 1 });
    const r = layer.receive('tight');
    await layer.send('tight', { type: 'a' });
    await layer.send('tight', { type: 'b' });
    assert.deepEqual(await r, { type: 'a' });
    assert.deepEqual(await layer.receive('tight'), { type: 'b' });
  });
});

describe('expiry (fractional seconds)', () => {
  it('an unread message expires after expiry=0.1 s; fresh ones still arrive', async () => {
    const layer = makeLayer({ expiry: 0.1 });
    const sentAt = Date.now();
    await layer.send('exp', { type: 'old' });
    await layer.send('exp.other', { type: 'old' });
    await waitFor(() => layer.stats().expired === 2 && layer.activeChannels === 0, {
      what: 'both messages to expire',
    });
    assert.ok(Date.now() - sentAt >= 100, 'not before 0.1 s');
    await layer.send('exp', { type: 'new' });
    assert.deepEqual(await layer.receive('exp'), { type: 'new' });
    assert.equal(layer.stats().received, 1);
  });

  it('a message read within expiry is delivered', async () => {
    const layer = makeLayer({ expiry: 0.1 });
    const sent = layer.send('exp', { type: 'in-time' });
    const got = layer.receive('exp'); // same tick: well within 0.1 s
    await sent;
    assert.deepEqual(await got, { type: 'in-time' });
    assert.equal(layer.stats().expired, 0);
  });

  it('expired messages free capacity', async () => {
    const layer = makeLayer({ expiry: 0.1, capacity: 1 });
    await layer.send('exp.cap', { type: 'first' });
    await assert.rejects(layer.send('exp.cap', { type: 'second' }), ChannelFull);
    await waitFor(() => layer.stats().expired === 1, { what: 'the first message to expire' });
    await layer.send('exp.cap', { type: 'third' });
    assert.deepEqual(await layer.receive('exp.cap'), { type: 'third' });
  });

  it('a receive started after expiry does not get the expired message', async () => {
    const layer = makeLayer({ expiry: 0.1 });
    await layer.send('exp.r', { type: 'stale' });
    await waitFor(() => layer.stats().expired === 1, { what: 'expiry' });
    const r = track(layer.receive('exp.r'));
    await turn();
    assert.equal(r.settled, false);
    await layer.send('exp.r', { type: 'fresh' });
    assert.deepEqual(await r.promise, { type: 'fresh' });
  });

  it('a group membership expires after groupExpiry=0.1 s', async (t) => {
    const layer = makeLayer({ groupExpiry: 0.1, capacity: 1000 });
    const addedAt = Date.now();
    await layer.groupAdd('gexp', 'gexp.member');
    await layer.groupSend('gexp', { type: 'while-member', n: 0 });
    if (layer.stats().groupDeliveries === 0 && Date.now() - addedAt >= 100) {
      return t.skip('event loop stalled past the expiry before the first groupSend');
    }
    assert.deepEqual(await layer.receive('gexp.member'), { type: 'while-member', n: 0 });
    let probes = 0;
    await waitFor(
      async () => {
        const before = layer.stats().groupDeliveries;
        await layer.groupSend('gexp', { type: 'probe', n: ++probes });
        return layer.stats().groupDeliveries === before;
      },
      { what: 'the membership to expire' },
    );
    assert.ok(Date.now() - addedAt >= 100, 'not before 0.1 s');
    await layer.send('gexp.member', { type: 'marker', n: -1 });
    // Every probe sent while a member arrives, in order; the one after expiry does not.
    const got: number[] = [];
    for (;;) {
      const m = (await layer.receive('gexp.member')) as N;
      if (m.type === 'marker') break;
      got.push(m.n);
    }
    assert.deepEqual(
      got,
      Array.from({ length: probes - 1 }, (_, i) => i + 1),
    );
  });

  it('groupAdd again refreshes the membership (expiry counts from the last add)', async (t) => {
    const layer = makeLayer({ groupExpiry: 1 });
    const t0 = Date.now();
    await layer.groupAdd('refresh', 'refresh.c');
    await waitFor(() => Date.now() - t0 >= 600, { what: '0.6 s' });
    const readdedAt = Date.now();
    await layer.groupAdd('refresh', 'refresh.c');
    await waitFor(() => Date.now() - t0 >= 1200, { what: '1.2 s' });
    const checkedAt = Date.now();
    await layer.groupSend('refresh', { type: 'still-member' });
    if (checkedAt - readdedAt >= 1000) return t.skip('event loop stalled for too long to tell');
    assert.deepEqual(await layer.receive('refresh.c'), { type: 'still-member' });
  });
});

describe('several waiters on one channel', () => {
  it('one message goes to one waiter, in waiter order', async () => {
    const layer = makeLayer();
    const r = [0, 1, 2].map(() => track(layer.receive('many')));
    await layer.send('many', { type: 't', n: 0 });
    assert.deepEqual(await r[0]!.promise, { type: 't', n: 0 });
    await turn();
    assert.equal(r[1]!.settled, false);
    assert.equal(r[2]!.settled, false);
    await layer.send('many', { type: 't', n: 1 });
    await layer.send('many', { type: 't', n: 2 });
    assert.deepEqual(await r[1]!.promise, { type: 't', n: 1 });
    assert.deepEqual(await r[2]!.promise, { type: 't', n: 2 });
    assert.equal(layer.activeChannels, 0);
  });

  it('an aborted waiter in the middle is skipped, not given a message', async () => {
    const layer = makeLayer();
    const ac = new AbortController();
    const first = layer.receive('mid');
    const middle = layer.receive('mid', { signal: ac.signal });
    const last = layer.receive('mid');
    ac.abort();
    await assert.rejects(middle, isAbortError);
    await layer.send('mid', { type: 't', n: 1 });
    await layer.send('mid', { type: 't', n: 2 });
    assert.deepEqual(await first, { type: 't', n: 1 });
    assert.deepEqual(await last, { type: 't', n: 2 });
  });

  it('waiters on different channels do not cross', async () => {
    const layer = makeLayer();
    const a = layer.receive('cross.a');
    const b = layer.receive('cross.b');
    await layer.send('cross.b', { type: 'b' });
    await layer.send('cross.a', { type: 'a' });
    assert.deepEqual(await a, { type: 'a' });
    assert.deepEqual(await b, { type: 'b' });
  });
});

describe('process-specific channels', () => {
  it("newChannel() gives unique 'specific.<client>!<id>' names that work", async () => {
    const layer = makeLayer();
    const names = await Promise.all(Array.from({ length: 100 }, () => layer.newChannel()));
    assert.equal(new Set(names).size, 100);
    const client = names[0]!.slice(0, names[0]!.indexOf('!') + 1);
    for (const name of names) {
      assert.match(name, /^specific\.[0-9a-f]+![0-9a-f]+$/);
      assert.ok(name.startsWith(client), 'one client prefix per layer');
      assert.ok(name.length < 100);
    }
    await layer.send(names[3]!, { type: 'to-specific' });
    assert.deepEqual(await layer.receive(names[3]!), { type: 'to-specific' });
  });

  it('newChannel(prefix) uses the prefix', async () => {
    const layer = makeLayer();
    const name = await layer.newChannel('my.consumer');
    assert.match(name, /^my\.consumer\.[0-9a-f]+![0-9a-f]+$/);
    const r = layer.receive(name);
    await layer.send(name, { type: 'x' });
    assert.deepEqual(await r, { type: 'x' });
  });

  it("receive on a '!' channel this layer did not create rejects with 'Wrong client prefix'", async () => {
    const layer = makeLayer();
    const other = makeLayer();
    const foreign = await other.newChannel();
    for (const channel of [foreign, 'specific.someoneelse!abc', 'x!']) {
      let p: Promise<unknown> | undefined;
      assert.doesNotThrow(() => {
        p = layer.receive(channel);
      });
      await assert.rejects(
        p!,
        (err: unknown) =>
          err instanceof WrongClientPrefix && /Wrong client prefix/.test(err.message),
      );
    }
    assert.equal(layer.activeChannels, 0);
    // Sending to it is allowed; the creator reads its own channel normally.
    await other.send(foreign, { type: 'mine' });
    assert.deepEqual(await other.receive(foreign), { type: 'mine' });
  });
});

describe('groups', () => {
  it('groupSend reaches every member; groupAdd is idempotent (one copy per member)', async () => {
    const layer = makeLayer();
    await layer.groupAdd('room', 'alice');
    await layer.groupAdd('room', 'alice');
    await layer.groupAdd('room', 'bob');
    await layer.groupSend('room', { type: 'hi' });
    await layer.send('alice', { type: 'marker' });
    assert.deepEqual(await layer.receive('alice'), { type: 'hi' });
    assert.deepEqual(await layer.receive('alice'), { type: 'marker' });
    assert.deepEqual(await layer.receive('bob'), { type: 'hi' });
    assert.equal(layer.stats().groupDeliveries, 2);
    assert.equal(layer.activeChannels, 0);
  });

  it('groupDiscard stops delivery; discarding a non-member or an unknown group resolves', async () => {
    const layer = makeLayer();
    await layer.groupAdd('room', 'alice');
    await layer.groupAdd('room', 'bob');
    await layer.groupDiscard('room', 'alice');
    await layer.groupDiscard('room', 'alice');
    await layer.groupDiscard('room', 'carol');
    await layer.groupDiscard('nosuchgroup', 'alice');
    await layer.groupSend('room', { type: 'after-discard' });
    await layer.send('alice', { type: 'marker' });
    assert.deepEqual(await layer.receive('alice'), { type: 'marker' });
    assert.deepEqual(await layer.receive('bob'), { type: 'after-discard' });
  });

  it('groupSend to an empty or unknown group resolves', async () => {
    const layer = makeLayer();
    await layer.groupSend('empty', { type: 'x' });
    await layer.groupAdd('g', 'c');
    await layer.groupDiscard('g', 'c');
    await layer.groupSend('g', { type: 'x' });
    assert.equal(layer.stats().groupSends, 2);
    assert.equal(layer.stats().groupDeliveries, 0);
    assert.equal(layer.activeChannels, 0);
  });

  it('groupSend never rejects ChannelFull: a full member is skipped and counted', async () => {
    const layer = makeLayer({ capacity: 1 });
    await layer.groupAdd('g', 'full');
    await layer.groupAdd('g', 'roomy');
    await layer.send('full', { type: 'occupant' });
    await layer.groupSend('g', { type: 'broadcast' });
    await layer.groupSend('g', { type: 'broadcast2' }); // now both are full
    const stats = layer.stats();
    assert.equal(stats.groupDropped, 3);
    assert.equal(stats.groupDeliveries, 1);
    assert.equal(stats.capacityRejected, 0, 'group drops are not send rejections');
    assert.deepEqual(await layer.receive('full'), { type: 'occupant' });
    assert.deepEqual(await layer.receive('roomy'), { type: 'broadcast' });
  });

  it('two members get independent copies', async () => {
    const layer = makeLayer();
    await layer.groupAdd('g', 'one');
    await layer.groupAdd('g', 'two');
    await layer.groupSend('g', { type: 't', nested: { list: [1, 2] }, b: new Uint8Array([7]) });
    const one = (await layer.receive('one')) as unknown as {
      nested: { list: number[] };
      b: Uint8Array;
    };
    const two = (await layer.receive('two')) as unknown as {
      nested: { list: number[] };
      b: Uint8Array;
    };
    assert.notEqual(one, two);
    one.nested.list.push(3);
    one.b[0] = 0;
    assert.deepStrictEqual(two.nested.list, [1, 2]);
    assert.deepStrictEqual(two.b, new Uint8Array([7]));
  });

  it('a member with a waiting receiver gets the group message at once', async () => {
    const layer = makeLayer();
    const c = await layer.newChannel();
    await layer.groupAdd('live', c);
    const r = layer.receive(c);
    await layer.groupSend('live', { type: 'pushed' });
    assert.deepEqual(await r, { type: 'pushed' });
  });
});

describe('AbortSignal on receive', () => {
  it('an already-aborted signal rejects with its reason, consuming nothing', async () => {
    const layer = makeLayer();
    await layer.send('ab', { type: 'kept' });
    const reason = new Error('custom reason');
    await assert.rejects(
      layer.receive('ab', { signal: AbortSignal.abort(reason) }),
      (err) => err === reason,
    );
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(
      layer.receive('ab', { signal: ac.signal }),
      (err) => err === ac.signal.reason && isAbortError(err),
    );
    assert.deepEqual(await layer.receive('ab'), { type: 'kept' });
  });

  it('abort while waiting rejects with AbortError; the next receive gets the message', async () => {
    const layer = makeLayer();
    const ac = new AbortController();
    const p = layer.receive('ab.wait', { signal: ac.signal });
    await turn();
    ac.abort();
    await assert.rejects(p, isAbortError);
    assert.equal(layer.activeChannels, 0);
    await layer.send('ab.wait', { type: 'next' });
    assert.deepEqual(await layer.receive('ab.wait'), { type: 'next' });
  });

  it('abort with a reason while waiting rejects with that reason', async () => {
    const layer = makeLayer();
    const ac = new AbortController();
    const p = layer.receive('ab.reason', { signal: ac.signal });
    const reason = { why: 'shutdown' };
    ac.abort(reason);
    await assert.rejects(p, (err) => err === reason);
  });

  it('abort after the message was handed over does not lose it', async () => {
    const layer = makeLayer();
    const ac = new AbortController();
    const p = layer.receive('ab.late', { signal: ac.signal });
    await layer.send('ab.late', { type: 'delivered' });
    ac.abort();
    assert.deepEqual(await p, { type: 'delivered' });
    await layer.send('ab.late', { type: 'second' });
    assert.deepEqual(await layer.receive('ab.late'), { type: 'second' });
  });

  it('AbortSignal.timeout works as a receive deadline', async () => {
    const layer = makeLayer();
    // AbortSignal.timeout's timer does not hold the event loop open, and neither does a pending
    // in-memory receive: keep the loop alive until the deadline fires.
    const keepAlive = setInterval(() => {}, 1000);
    try {
      await assert.rejects(
        layer.receive('ab.timeout', { signal: AbortSignal.timeout(20) }),
        (err: unknown) => err instanceof Error && err.name === 'TimeoutError',
      );
    } finally {
      clearInterval(keepAlive);
    }
    assert.equal(layer.activeChannels, 0);
  });

  it('1,000 receives aborted at random moments while 1,000 messages are sent: each received exactly once, in order', async (t) => {
    const seed = randomInt(2 ** 31);
    let s = seed;
    const rnd = (): number => {
      s = (Math.imul(s, 1103515245) + 12345) & 0x7fffffff;
      return s / 0x80000000;
    };
    const N = 1000;
    const layer = makeLayer({ capacity: N });
    const received: number[] = [];
    let aborted = 0;
    let abortedAfterHandOver = 0;
    let current: AbortController | undefined;
    let producerDone = false;

    const consumer = (async () => {
      while (received.length < N) {
        const ac = new AbortController();
        current = ac;
        const mode = rnd();
        if (mode < 0.15) ac.abort(); // already aborted when receive is called
        const p = layer.receive('stress', { signal: ac.signal });
        if (mode >= 0.15 && mode < 0.3)
          ac.abort(); // synchronously after the call
        else if (mode < 0.45) queueMicrotask(() => ac.abort());
        else if (mode < 0.6) setImmediate(() => ac.abort());
        else if (mode < 0.75)
          Promise.resolve().then(() => Promise.resolve().then(() => ac.abort()));
        // otherwise the producer may abort it, before or right after a send
        try {
          const m = (await p) as N;
          received.push(m.n);
          if (ac.signal.aborted) abortedAfterHandOver++;
        } catch (err) {
          assert.ok(isAbortError(err), `seed ${seed}: unexpected ${String(err)}`);
          aborted++;
        }
        // Once everything is sent, keep aborting some receives while draining the buffer.
        if (producerDone && rnd() < 0.5) await turn();
      }
    })();

    const producer = (async () => {
      for (let i = 0; i < N; i++) {
        const when = rnd();
        if (when < 0.15) current?.abort(); // just before the send
        const sending = layer.send('stress', { type: 'seq', n: i });
        if (when >= 0.15 && when < 0.3) current?.abort(); // same tick as the hand-over
        await sending;
        if (when >= 0.3 && when < 0.45) current?.abort(); // the waiter may already hold message i
        // Mostly let the consumer catch up (so most aborts hit a waiting receive), sometimes
        // not (so some receives find messages buffered).
        const pause = rnd();
        if (pause < 0.75) await turn();
        else if (pause < 0.9) await Promise.resolve();
      }
      producerDone = true;
    })();

    await settleOrReport(
      Promise.all([producer, consumer]),
      producer,
      () => received.length === N,
      () => `seed ${seed}: ${missing(received, N)}`,
    );
    assert.deepEqual(
      received,
      Array.from({ length: N }, (_, i) => i),
      `seed ${seed}`,
    );
    t.diagnostic(
      `seed ${seed}: ${aborted} aborted, ${abortedAfterHandOver} aborted after hand-over`,
    );
    assert.ok(aborted >= N, `seed ${seed}: only ${aborted} receives were aborted`);
    assert.ok(
      abortedAfterHandOver > 0,
      `seed ${seed}: the abort-after-hand-over race never happened`,
    );
    assert.equal(layer.stats().sent, N);
    assert.equal(layer.stats().received, N);
    assert.equal(layer.activeChannels, 0, 'no state left once drained');
  });

  it('several consumers with random aborts: every message exactly once, each consumer in order', async () => {
    const seed = randomInt(2 ** 31);
    let s = seed;
    const rnd = (): number => {
      s = (Math.imul(s, 1103515245) + 12345) & 0x7fffffff;
      return s / 0x80000000;
    };
    const N = 1000;
    const layer = makeLayer({ capacity: N });
    const all: number[] = [];
    const live = new Set<AbortController>();
    const consumers = Array.from({ length: 4 }, async () => {
      const mine: number[] = [];
      while (all.length < N) {
        const ac = new AbortController();
        live.add(ac);
        const p = layer.receive('multi', { signal: ac.signal });
        const mode = rnd();
        if (mode < 0.3) queueMicrotask(() => ac.abort());
        else if (mode < 0.6) setImmediate(() => ac.abort());
        try {
          const m = (await p) as N;
          mine.push(m.n);
          all.push(m.n);
        } catch (err) {
          assert.ok(isAbortError(err), `seed ${seed}: unexpected ${String(err)}`);
        } finally {
          live.delete(ac);
        }
      }
      // The last message is in: release the consumers still waiting.
      for (const other of live) other.abort();
      return mine;
    });
    const producer = (async () => {
      for (let i = 0; i < N; i++) {
        const sending = layer.send('multi', { type: 'seq', n: i });
        if (rnd() < 0.2) for (const ac of live) if (rnd() < 0.5) ac.abort();
        await sending;
        if (rnd() < 0.5) await turn();
      }
    })();
    const all4 = Promise.all(consumers);
    await settleOrReport(
      Promise.all([producer, all4]),
      producer,
      () => all.length === N,
      () => `seed ${seed}: ${missing(all, N)}`,
    );
    const per = await all4;
    const seen = [...all].sort((a, b) => a - b);
    assert.deepEqual(
      seen,
      Array.from({ length: N }, (_, i) => i),
      `seed ${seed}`,
    );
    assert.equal(per.flat().length, N);
    for (const mine of per) {
      assert.deepEqual(
        mine,
        [...mine].sort((a, b) => a - b),
        `seed ${seed}: a consumer saw messages out of order`,
      );
    }
    assert.equal(layer.activeChannels, 0);
  });
});

describe('flush', () => {
  it('empties buffers and groups; the layer stays usable; waiters keep waiting', async () => {
    const layer = makeLayer({ capacity: 2 });
    await layer.send('f.a', { type: 'gone' });
    await layer.send('f.a', { type: 'gone' });
    await layer.groupAdd('f.g', 'f.member');
    const waiter = track(layer.receive('f.w'));
    await layer.flush();
    assert.equal(waiter.settled, false);
    // Buffer gone (capacity free again), group gone.
    await layer.send('f.a', { type: 'after' });
    await layer.send('f.a', { type: 'after2' });
    assert.deepEqual(await layer.receive('f.a'), { type: 'after' });
    assert.deepEqual(await layer.receive('f.a'), { type: 'after2' });
    await layer.groupSend('f.g', { type: 'nobody' });
    await layer.send('f.member', { type: 'marker' });
    assert.deepEqual(await layer.receive('f.member'), { type: 'marker' });
    await turn();
    assert.equal(waiter.settled, false);
    await layer.send('f.w', { type: 'for-waiter' });
    assert.deepEqual(await waiter.promise, { type: 'for-waiter' });
    // Groups work again after flush.
    await layer.groupAdd('f.g', 'f.member');
    await layer.groupSend('f.g', { type: 'again' });
    assert.deepEqual(await layer.receive('f.member'), { type: 'again' });
    assert.equal(layer.activeChannels, 0);
  });
});

describe('close', () => {
  it('pending receives reject; every method then rejects saying the layer is closed', async () => {
    const layer = new InMemoryChannelLayer({ expiry: 0.1, groupExpiry: 0.1 });
    await layer.send('buffered', { type: 'x' });
    await layer.groupAdd('g', 'c');
    const pending = [layer.receive('p1'), layer.receive('p1'), layer.receive('p2')];
    await layer.close();
    for (const p of pending) {
      await assert.rejects(
        p,
        (err: unknown) => err instanceof LayerClosed && /closed/.test(err.message),
      );
    }
    assert.equal(layer.activeChannels, 0);
    const calls: Array<[string, () => Promise<unknown>]> = [
      ['send', () => layer.send('c', { type: 'x' })],
      ['receive', () => layer.receive('c')],
      ['newChannel', () => layer.newChannel()],
      ['groupAdd', () => layer.groupAdd('g', 'c')],
      ['groupDiscard', () => layer.groupDiscard('g', 'c')],
      ['groupSend', () => layer.groupSend('g', { type: 'x' })],
      ['flush', () => layer.flush()],
      ['deleteChannel', () => layer.deleteChannel('c')],
    ];
    for (const [name, call] of calls) {
      let p: Promise<unknown> | undefined;
      assert.doesNotThrow(() => {
        p = call();
      }, name);
      await assert.rejects(
        p!,
        (err: unknown) => err instanceof Error && /closed/i.test(err.message),
        name,
      );
    }
    // close() again is harmless.
    await layer.close();
  });
});

describe('message copying', () => {
  it('mutating a message after send does not reach the receiver', async () => {
    const layer = makeLayer();
    const m = { type: 't', nested: { x: 1, list: [1, 2] }, b: new Uint8Array([1, 2, 3]) };
    await layer.send('copy', m);
    m.nested.x = 99;
    m.nested.list.push(3);
    m.b[0] = 42;
    (m as Record<string, unknown>).extra = true;
    assert.deepStrictEqual(await layer.receive('copy'), {
      type: 't',
      nested: { x: 1, list: [1, 2] },
      b: new Uint8Array([1, 2, 3]),
    });
  });

  it('a message handed straight to a waiter is a copy too', async () => {
    const layer = makeLayer();
    const r = layer.receive('copy.w');
    const m = { type: 't', nested: { x: 1 } };
    await layer.send('copy.w', m);
    m.nested.x = 2;
    const got = (await r) as typeof m;
    assert.notEqual(got, m);
    assert.deepEqual(got, { type: 't', nested: { x: 1 } });
  });
});

describe('bounded memory', () => {
  it('activeChannels returns to 0 after traffic on many channels', async () => {
    const layer = makeLayer();
    for (let i = 0; i < 1000; i++) await layer.send(`mem.${i}`, { type: 't' });
    assert.equal(layer.activeChannels, 1000);
    for (let i = 0; i < 1000; i++) await layer.receive(`mem.${i}`);
    assert.equal(layer.activeChannels, 0);
    const waits = Array.from({ length: 500 }, (_, i) => layer.receive(`memw.${i}`));
    for (let i = 0; i < 500; i++) await layer.send(`memw.${i}`, { type: 't' });
    await Promise.all(waits);
    assert.equal(layer.activeChannels, 0);
  });

  it('... after aborted receives', async () => {
    const layer = makeLayer();
    const ac = new AbortController();
    setMaxListeners(1000, ac.signal); // one shutdown signal shared by many receives is fine
    const waits = Array.from({ length: 1000 }, (_, i) =>
      layer.receive(`mema.${i}`, { signal: ac.signal }),
    );
    assert.equal(layer.activeChannels, 1000);
    ac.abort();
    await Promise.allSettled(waits);
    assert.equal(layer.activeChannels, 0);
  });

  it('... after unread messages expire', async () => {
    const layer = makeLayer({ expiry: 0.1 });
    for (let i = 0; i < 500; i++) await layer.send(`meme.${i}`, { type: 't' });
    assert.equal(layer.activeChannels, 500);
    await waitFor(() => layer.activeChannels === 0, { what: 'expired channels to be dropped' });
    assert.equal(layer.stats().expired, 500);
  });

  it('... in entries too: a channel left without state is forgotten by the next sweep', async () => {
    const layer = makeLayer({ expiry: 0.1 });
    // Emptied channels keep their entry until a sweep (Mailboxes.vacate): it must come.
    const entries = (): number =>
      (layer as unknown as { mailboxes: { boxes: Map<string, unknown> } }).mailboxes.boxes.size;
    const waits = Array.from({ length: 100 }, (_, i) => layer.receive(`memv.${i}`));
    for (let i = 0; i < 100; i++) await layer.send(`memv.${i}`, { type: 't' });
    await Promise.all(waits);
    assert.equal(layer.activeChannels, 0);
    await waitFor(() => entries() === 0, { what: 'entries of emptied channels to be dropped' });
  });

  it('... after deleteChannel and flush', async () => {
    const layer = makeLayer();
    await layer.send('memd', { type: 't' });
    await layer.deleteChannel('memd');
    assert.equal(layer.activeChannels, 0);
    for (let i = 0; i < 10; i++) await layer.send(`memf.${i}`, { type: 't' });
    await layer.flush();
    assert.equal(layer.activeChannels, 0);
  });
});

describe('deleteChannel', () => {
  it('drops the buffer and leaves every group; the channel is usable afterwards', async () => {
    const layer = makeLayer({ capacity: 1 });
    const c = await layer.newChannel();
    await layer.groupAdd('g1', c);
    await layer.groupAdd('g2', c);
    await layer.groupAdd('g1', 'stays');
    await layer.send(c, { type: 'dropped' });
    await layer.deleteChannel(c);
    assert.equal(layer.stats().deletedDropped, 1);
    await layer.groupSend('g1', { type: 'g1' });
    await layer.groupSend('g2', { type: 'g2' });
    await layer.send(c, { type: 'marker' }); // capacity 1: the buffer really is empty
    assert.deepEqual(await layer.receive(c), { type: 'marker' });
    assert.deepEqual(await layer.receive('stays'), { type: 'g1' });
    assert.equal(layer.activeChannels, 0);
  });

  it('of an unknown channel resolves; a waiter on a deleted channel keeps waiting', async () => {
    const layer = makeLayer();
    await layer.deleteChannel('never.used');
    const w = track(layer.receive('del.w'));
    await layer.deleteChannel('del.w');
    await turn();
    assert.equal(w.settled, false);
    await layer.send('del.w', { type: 'late' });
    assert.deepEqual(await w.promise, { type: 'late' });
  });

  it('rejects a bad name', async () => {
    const layer = makeLayer();
    await assert.rejects(layer.deleteChannel('bad name'), InvalidChannelName);
  });
});

describe('stats', () => {
  it('counts sends, receives, group traffic, rejections, drops and expiry', async () => {
    const layer = makeLayer({ capacity: 1, expiry: 0.1 });
    const zero = layer.stats();
    for (const v of Object.values(zero)) assert.equal(v, 0);
    for (const key of [
      'sent',
      'received',
      'groupSends',
      'groupDeliveries',
      'capacityRejected',
      'groupDropped',
      'expired',
    ]) {
      assert.ok(key in zero, `stats() has ${key}`);
    }
    await layer.send('s.a', { type: 't' }); // sent 1
    await assert.rejects(layer.send('s.a', { type: 't' }), ChannelFull); // capacityRejected 1
    await layer.receive('s.a'); // received 1
    await layer.groupAdd('g', 's.a');
    await layer.groupAdd('g', 's.b');
    await layer.groupSend('g', { type: 't' }); // groupSends 1, deliveries 2
    await layer.groupSend('g', { type: 't' }); // groupSends 2, dropped 2
    await waitFor(() => layer.stats().expired === 2, { what: 'the group messages to expire' });
    const s = layer.stats();
    assert.equal(s.sent, 1);
    assert.equal(s.received, 1);
    assert.equal(s.capacityRejected, 1);
    assert.equal(s.groupSends, 2);
    assert.equal(s.groupDeliveries, 2);
    assert.equal(s.groupDropped, 2);
    assert.equal(s.expired, 2);
  });

  it('returns a copy', () => {
    const layer = makeLayer();
    const s = layer.stats();
    s.sent = 1000;
    assert.equal(layer.stats().sent, 0);
  });
});
