/**
 * `chanlayer/otel`: a layer's metrics through `@opentelemetry/api` (an optional peer dependency,
 * imported only here, so `chanlayer` itself installs and runs without it).
 *
 * - every `stats()` counter as an observable counter, read once per collection: `sent` and
 *   `received` under the messaging semantic conventions' names (`messaging.client.sent.messages`,
 *   `messaging.client.consumed.messages`), the others as `chanlayer.<snake_case name>`;
 * - `chanlayer.queue.wait` (s): how long a message waited in its Redis queue (core layer: the
 *   time it left the queue minus the send time its score holds);
 * - `chanlayer.group_send.fan_out` ({channel}): members a `groupSend` sends to.
 *
 * Every point carries `messaging.system` (`redis`, or `chanlayer_in_memory`) plus the caller's
 * attributes. No per-channel attribute: channel names are unbounded (one per consumer).
 */
import {
  metrics,
  type Attributes,
  type BatchObservableCallback,
  type MeterProvider,
  type ObservableCounter,
} from '@opentelemetry/api';
import type { CounterName, LayerObserver, LayerStats } from './layers/base.ts';
import { InMemoryChannelLayer } from './layers/in-memory.ts';

/** What `instrumentLayer` needs of a layer: every chanlayer layer has both. */
export interface InstrumentableLayer {
  stats(): LayerStats;
  observe(observer: LayerObserver): () => void;
}

export interface InstrumentOptions {
  /** Default: the global one (`metrics.getMeterProvider()`). */
  meterProvider?: MeterProvider;
  /** Added to every data point, e.g. `{ 'chanlayer.layer.alias': 'default' }`. */
  attributes?: Attributes;
}

export interface Instrumentation {
  /** Stops reporting: the counters' callback is removed and the histograms get no more values. */
  stop(): void;
}

/** Counters with a messaging semantic-conventions name, and the operation they count. */
const SEMCONV: Partial<Record<string, { name: string; operation: string }>> = {
  sent: { name: 'messaging.client.sent.messages', operation: 'send' },
  received: { name: 'messaging.client.consumed.messages', operation: 'receive' },
};

/** Units of the counters that do not count messages. */
const UNITS: Partial<Record<CounterName, string>> = {
  groupSends: '{call}',
  disconnects: '{event}',
  reconnects: '{event}',
  failovers: '{event}',
};

/** Queue wait buckets (s): from sub-millisecond hand-overs to the default 60 s expiry. */
const WAIT_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 15, 60,
];
const FAN_OUT_BUCKETS = [0, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10_000, 100_000];

const snakeCase = (name: string): string => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** Reports `layer`'s counters and histograms until `stop()`. */
export function instrumentLayer(
  layer: InstrumentableLayer,
  options: InstrumentOptions = {},
): Instrumentation {
  const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter('chanlayer');
  const base: Attributes = {
    'messaging.system': layer instanceof InMemoryChannelLayer ? 'chanlayer_in_memory' : 'redis',
    ...options.attributes,
  };
  // Derived from stats() itself, so a counter added to the layers is exported without a change here.
  const counters = Object.keys(layer.stats()).map((counter) => {
    const semconv = SEMCONV[counter];
    const instrument = meter.createObservableCounter(
      semconv?.name ?? `chanlayer.${snakeCase(counter)}`,
      {
        unit: UNITS[counter as CounterName] ?? '{message}',
        description: `chanlayer stats().${counter}`,
      },
    );
    const attributes = semconv ? { ...base, 'messaging.operation.name': semconv.operation } : base;
    return { counter: counter as CounterName, instrument, attributes };
  });
  const observables: ObservableCounter[] = counters.map((c) => c.instrument);
  const collect: BatchObservableCallback = (result) => {
    const stats = layer.stats();
    for (const { counter, instrument, attributes } of counters) {
      result.observe(instrument, stats[counter], attributes);
    }
  };
  meter.addBatchObservableCallback(collect, observables);

  const wait = meter.createHistogram('chanlayer.queue.wait', {
    unit: 's',
    description: 'Time a message waited in its Redis queue: taken out minus sent (its score)',
    advice: { explicitBucketBoundaries: WAIT_BUCKETS },
  });
  const fanOut = meter.createHistogram('chanlayer.group_send.fan_out', {
    unit: '{channel}',
    description: 'Members a groupSend sends to',
    advice: { explicitBucketBoundaries: FAN_OUT_BUCKETS },
  });
  const unobserve = layer.observe({
    // A sender's clock ahead of ours would make a negative wait: recorded as 0.
    queueWait: (ms) => wait.record(Math.max(0, ms) / 1000, base),
    groupFanOut: (members) => fanOut.record(members, base),
  });

  let stopped = false;
  return {
    stop() {
      if (stopped) return;
      stopped = true;
      meter.removeBatchObservableCallback(collect, observables);
      unobserve();
    },
  };
}
