/**
 * `chanlayer/otel` against real layers on a real Redis, read through the OpenTelemetry SDK's
 * in-memory exporter: every stats() counter is exported with its value, the queue-wait histogram
 * holds the time messages really waited in Redis, the fan-out histogram the members per
 * groupSend, and stop() ends all of it. Also: the main entry never imports @opentelemetry.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import {
  AggregationTemporality,
  DataPointType,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
  type MetricData,
} from '@opentelemetry/sdk-metrics';
import { InMemoryChannelLayer, RedisChannelLayer } from '../lib/index.ts';
import { instrumentLayer } from '../lib/otel.ts';
import { startRedis, type RedisGroup } from './harness/redis.ts';

let redis: RedisGroup;
const layers: Array<RedisChannelLayer | InMemoryChannelLayer> = [];

before(async () => {
  redis = await startRedis();
});
after(async () => {
  await Promise.all(layers.map((l) => l.close()));
  await redis?.stop();
});

/** A MeterProvider whose metrics are read on demand (the export interval never fires). */
function sdk(): { provider: MeterProvider; collect(): Promise<MetricData[]> } {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  const provider = new MeterProvider({ readers: [reader] });
  return {
    provider,
    async collect() {
      exporter.reset();
      await reader.forceFlush();
      return exporter.getMetrics().flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics));
    },
  };
}

function metric(all: MetricData[], name: string): MetricData | undefined {
  return all.find((m) => m.descriptor.name === name);
}

/** The single data point of `name` whose attributes include `side`. */
function point(all: MetricData[], name: string, side: string) {
  const found = metric(all, name)?.dataPoints.filter((p) => p.attributes.side === side) ?? [];
  assert.equal(found.length, 1, `${name} has one point for side ${side}`);
  return found[0]!;
}

function histogram(all: MetricData[], name: string, side: string) {
  const m = metric(all, name);
  assert.equal(m?.dataPointType, DataPointType.HISTOGRAM, `${name} is a histogram`);
  return point(all, name, side).value as { count: number; sum: number; min?: number };
}

describe('chanlayer/otel', () => {
  test('every stats() counter, queue wait and group fan-out, until stop()', async () => {
    const { provider, collect } = sdk();
    const sender = new RedisChannelLayer({ hosts: redis.urls });
    const receiver = new RedisChannelLayer({ hosts: redis.urls });
    layers.push(sender, receiver);
    const s = instrumentLayer(sender, { meterProvider: provider, attributes: { side: 's' } });
    const r = instrumentLayer(receiver, { meterProvider: provider, attributes: { side: 'r' } });

    // Two messages that wait at least 200 ms in Redis before anyone asks for them.
    await sender.send('otel.work', { type: 'a' });
    await sender.send('otel.work', { type: 'b' });
    const WAITED_S = 0.2;
    await sleep(WAITED_S * 1000);
    const sentAt = Date.now();
    await receiver.receive('otel.work');
    await receiver.receive('otel.work');
    const upper = (Date.now() - sentAt) / 1000 + WAITED_S + 1;

    // A group of three channels of the receiver's queue, and an empty group.
    const members = await Promise.all([1, 2, 3].map(() => receiver.newChannel()));
    for (const m of members) await receiver.groupAdd('otel-room', m);
    await sender.groupSend('otel-room', { type: 'g' });
    await sender.groupSend('otel-nobody', { type: 'g' });
    for (const m of members) await receiver.receive(m);

    let all = await collect();
    for (const [layer, side] of [
      [sender, 's'],
      [receiver, 'r'],
    ] as const) {
      const stats = layer.stats();
      // Each counter under one name, with the value stats() has (no hand list: from stats()).
      const names = new Set<string>();
      for (const [counter, value] of Object.entries(stats)) {
        const name =
          counter === 'sent'
            ? 'messaging.client.sent.messages'
            : counter === 'received'
              ? 'messaging.client.consumed.messages'
              : `chanlayer.${counter.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}`;
        names.add(name);
        assert.equal(metric(all, name)?.dataPointType, DataPointType.SUM, name);
        const p = point(all, name, side);
        assert.equal(p.value, value, `${name} (${side})`);
        assert.equal(p.attributes['messaging.system'], 'redis');
      }
      assert.equal(names.size, Object.keys(stats).length);
    }
    assert.equal(point(all, 'messaging.client.sent.messages', 's').value, 2);
    assert.equal(
      point(all, 'messaging.client.sent.messages', 's').attributes['messaging.operation.name'],
      'send',
    );
    assert.equal(point(all, 'messaging.client.consumed.messages', 'r').value, 5);
    assert.equal(point(all, 'chanlayer.group_deliveries', 's').value, 3);

    // Queue wait: the two work messages waited ≥ 200 ms, the group message less than that.
    const wait = histogram(all, 'chanlayer.queue.wait', 'r');
    assert.equal(metric(all, 'chanlayer.queue.wait')!.descriptor.unit, 's');
    assert.equal(wait.count, 3, 'one wait per message taken out of Redis (the group entry: one)');
    assert.ok(wait.sum >= 2 * WAITED_S, `waits sum ${wait.sum} s ≥ 2 × ${WAITED_S}`);
    assert.ok(wait.sum < 2 * upper, `waits sum ${wait.sum} s is plausible`);
    // Fan-out: 3 members, then 0.
    const fan = histogram(all, 'chanlayer.group_send.fan_out', 's');
    assert.deepEqual([fan.count, fan.sum, fan.min], [2, 3, 0]);

    // stop(): counters no longer observed, and nothing new recorded.
    s.stop();
    r.stop();
    s.stop(); // idempotent
    await sender.send('otel.work', { type: 'c' });
    await receiver.receive('otel.work');
    all = await collect();
    // (A cumulative SDK keeps a stopped callback's last values: they must not move.)
    assert.equal(sender.stats().sent, 3);
    assert.equal(point(all, 'messaging.client.sent.messages', 's').value, 2);
    assert.equal(point(all, 'messaging.client.consumed.messages', 'r').value, 5);
    assert.equal(histogram(all, 'chanlayer.queue.wait', 'r').count, 3);
    await provider.shutdown();
  });

  test('in-memory layer: counters and fan-out, messaging.system says so', async () => {
    const { provider, collect } = sdk();
    const layer = new InMemoryChannelLayer();
    layers.push(layer);
    const handle = instrumentLayer(layer, { meterProvider: provider, attributes: { side: 'm' } });
    const ch = await layer.newChannel();
    await layer.groupAdd('g', ch);
    await layer.groupSend('g', { type: 'x' });
    await layer.receive(ch);
    const all = await collect();
    assert.equal(point(all, 'chanlayer.group_sends', 'm').value, 1);
    assert.equal(
      point(all, 'chanlayer.group_sends', 'm').attributes['messaging.system'],
      'chanlayer_in_memory',
    );
    assert.equal(histogram(all, 'chanlayer.group_send.fan_out', 'm').sum, 1);
    handle.stop();
    await provider.shutdown();
  });

  test('the main entry does not import @opentelemetry (it is an optional peer)', () => {
    // Every module reachable from lib/index.ts through static imports.
    const seen = new Set<string>();
    const visit = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      const source = readFileSync(file, 'utf8');
      for (const [, spec] of source.matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)) {
        assert.doesNotMatch(spec!, /^@opentelemetry\//, `${file} imports ${spec}`);
        if (spec!.startsWith('.')) visit(join(dirname(file), spec!));
      }
    };
    visit(resolve(import.meta.dirname, '../lib/index.ts'));
    assert.ok(seen.size > 20, `walked ${seen.size} modules`);
    assert.ok(!seen.has(resolve(import.meta.dirname, '../lib/otel.ts')));
  });
});
