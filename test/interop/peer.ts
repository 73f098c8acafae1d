/**
 * Drives test/interop/peer.py: ONE long-lived /usr/bin/python3 process per test file running
 * Debian's channels_redis 4.0.0, spoken to in JSON lines. An interop test file starts it with
 * its redis-servers for all its tests:
 *
 *   const env = redisAndPeer(3);
 *   const py = await env.peer.core({ hosts: env.redis.urls, prefix: 'x' });
 *   await py.send('chat', { type: 'hello' });
 *
 * The child dies with us: it exits when its stdin closes (however this process ends), and
 * `stop()` / an 'exit' hook SIGKILL it if it has not.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startRedis, type RedisGroup } from '../harness/redis.ts';
import { tag, untag, type Tagged } from './tagged.ts';

export const PYTHON = '/usr/bin/python3';
export const PEER_SCRIPT = fileURLToPath(new URL('./peer.py', import.meta.url));

/** channels_redis `core.RedisChannelLayer` keyword arguments (snake_case, as in Django). */
export interface PyCoreConfig {
  hosts?: string[];
  prefix?: string;
  expiry?: number;
  group_expiry?: number;
  capacity?: number;
  channel_capacity?: Record<string, number>;
  symmetric_encryption_keys?: string[];
}

/** channels_redis `pubsub.RedisPubSubChannelLayer` keyword arguments (4.0.0 has no keys). */
export interface PyPubSubConfig {
  hosts?: string[];
  prefix?: string;
}

/** Receive options for a chanlayer receive in a test: give up after `ms` (a clear failure, not a hang). */
export function soon(ms = 20_000): { signal: AbortSignal } {
  return { signal: AbortSignal.timeout(ms) };
}

/** Starts `count` redis-servers and one Python peer before the calling test file's tests and
 * stops both after them; the returned object holds them once `before` has run. */
export function redisAndPeer(count: number): { redis: RedisGroup; peer: PythonPeer } {
  const env = {} as { redis: RedisGroup; peer: PythonPeer };
  before(async () => {
    [env.redis, env.peer] = await Promise.all([startRedis({ count }), PythonPeer.start()]);
  });
  after(async () => {
    await env.peer?.stop();
    await env.redis?.stop();
  });
  return env;
}

export class PeerError extends Error {
  override name = 'PeerError';
  constructor(
    /** The Python exception class name ('Timeout', 'InvalidToken', 'ChannelFull', …). */
    readonly type: string,
    message: string,
    readonly pythonTraceback?: string,
  ) {
    super(`${type}: ${message}`);
  }
}

interface Reply {
  id: number | null;
  ok: boolean;
  result?: unknown;
  error?: string;
  message?: string;
  traceback?: string;
}

type Message = Record<string, unknown>;

export class PythonPeer {
  readonly #proc: ChildProcessWithoutNullStreams;
  readonly #pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  readonly #exited: Promise<void>;
  readonly #killOnExit = (): void => void this.#proc.kill('SIGKILL');
  #nextId = 1;
  #layerCount = 0;
  #stderr = '';
  #dead: Error | undefined;

  private constructor(proc: ChildProcessWithoutNullStreams, ready: () => void) {
    this.#proc = proc;
    process.once('exit', this.#killOnExit);
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-32_768);
    });
    const lines = createInterface({ input: proc.stdout, crlfDelay: Infinity });
    lines.on('line', (line) => {
      let reply: Reply;
      try {
        reply = JSON.parse(line) as Reply;
      } catch {
        this.#stderr += `\n[unparsable stdout line] ${line.slice(0, 500)}`;
        return;
      }
      if (reply.id === null) {
        ready();
        return;
      }
      const waiter = this.#pending.get(reply.id);
      if (!waiter) return;
      this.#pending.delete(reply.id);
      if (reply.ok) waiter.resolve(reply.result);
      else
        waiter.reject(new PeerError(reply.error ?? 'Error', reply.message ?? '', reply.traceback));
    });
    this.#exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        process.removeListener('exit', this.#killOnExit);
        this.#dead = new Error(
          `python peer exited (code ${code}, signal ${signal})${this.stderrTail()}`,
        );
        for (const waiter of this.#pending.values()) waiter.reject(this.#dead);
        this.#pending.clear();
        resolve();
      });
    });
  }

  /** Spawn the peer and wait for its "ready" line. */
  static async start(): Promise<PythonPeer> {
    const proc = spawn(PYTHON, ['-u', PEER_SCRIPT], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1', PYTHONIOENCODING: 'utf-8' },
    });
    let peer: PythonPeer | undefined;
    await new Promise<void>((resolve, reject) => {
      proc.once('error', reject);
      peer = new PythonPeer(proc, resolve);
      void peer.#exited.then(() => reject(peer!.#dead));
    });
    return peer!;
  }

  get pid(): number | undefined {
    return this.#proc.pid;
  }

  stderrTail(): string {
    const tail = this.#stderr.trim();
    return tail ? `\n--- python stderr ---\n${tail.slice(-4000)}` : '';
  }

  /** One request; resolves with its result, rejects with a PeerError. */
  call<T = unknown>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    if (this.#dead) return Promise.reject(this.#dead);
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#proc.stdin.write(JSON.stringify({ id, op, ...args }) + '\n');
    });
  }

  /** A channels_redis core RedisChannelLayer. `brpopTimeout` overrides its 5 s BZPOPMIN wait. */
  async core(config: PyCoreConfig, opts: { brpopTimeout?: number } = {}): Promise<PyLayer> {
    const name = `core${++this.#layerCount}`;
    const { client_prefix } = await this.call<{ client_prefix: string }>('layer', {
      name,
      kind: 'core',
      config,
      ...(opts.brpopTimeout === undefined ? {} : { brpop_timeout: opts.brpopTimeout }),
    });
    return new PyLayer(this, name, 'core', client_prefix);
  }

  /** A channels_redis pubsub RedisPubSubChannelLayer. */
  async pubsub(config: PyPubSubConfig): Promise<PyLayer> {
    const name = `pubsub${++this.#layerCount}`;
    await this.call('layer', { name, kind: 'pubsub', config });
    return new PyLayer(this, name, 'pubsub', undefined);
  }

  /** channels_redis.utils._consistent_hash(value, n). */
  hash(value: string, n: number): Promise<number> {
    return this.call<number>('hash', { value, n });
  }

  crc32(value: string): Promise<number> {
    return this.call<number>('crc32', { value });
  }

  /** msgpack.packb(message, use_bin_type=True), as bytes. */
  async pack(message: Tagged): Promise<Buffer> {
    return Buffer.from(await this.call<string>('pack', { message }), 'hex');
  }

  /** msgpack.unpackb(bytes, raw=False), tagged. */
  unpack(bytes: Uint8Array): Promise<Tagged> {
    return this.call<Tagged>('unpack', { hex: Buffer.from(bytes).toString('hex') });
  }

  versions(): Promise<Record<string, string | null>> {
    return this.call('ping');
  }

  /** Close stdin (the peer closes its layers and exits), SIGKILL after 5 s. Idempotent. */
  async stop(): Promise<void> {
    if (this.#proc.exitCode === null && this.#proc.signalCode === null) {
      this.#proc.stdin.end();
      const timer = setTimeout(() => this.#proc.kill('SIGKILL'), 5000);
      await this.#exited;
      clearTimeout(timer);
    }
  }
}

export class PyLayer {
  constructor(
    readonly peer: PythonPeer,
    readonly name: string,
    readonly kind: 'core' | 'pubsub',
    /** core only: the uuid hex inside this layer's `…!` channel names. */
    readonly clientPrefix: string | undefined,
  ) {}

  send(channel: string, message: Message): Promise<void> {
    return this.sendTagged(channel, tag(message));
  }

  sendTagged(channel: string, message: Tagged): Promise<void> {
    return this.peer.call('send', { layer: this.name, channel, message });
  }

  /** Receive and convert to the JS value docs/wire-protocol.md says it must arrive as in Node. */
  async receive(channel: string, timeoutSeconds = 30): Promise<Message> {
    return untag(await this.receiveTagged(channel, timeoutSeconds)) as Message;
  }

  /** Receive with Python's exact types. Rejects PeerError 'Timeout' after `timeoutSeconds`. */
  receiveTagged(channel: string, timeoutSeconds = 30): Promise<Tagged> {
    return this.peer.call<Tagged>('receive', {
      layer: this.name,
      channel,
      timeout: timeoutSeconds,
    });
  }

  newChannel(prefix?: string): Promise<string> {
    return this.peer.call<string>('new_channel', {
      layer: this.name,
      ...(prefix === undefined ? {} : { prefix }),
    });
  }

  /** Pub/Sub: subscribe to a name this layer did not create; resolves once Redis lists it. */
  listen(channel: string): Promise<void> {
    return this.peer.call('listen', { layer: this.name, channel });
  }

  groupAdd(group: string, channel: string): Promise<void> {
    return this.peer.call('group_add', { layer: this.name, group, channel });
  }

  groupDiscard(group: string, channel: string): Promise<void> {
    return this.peer.call('group_discard', { layer: this.name, group, channel });
  }

  groupSend(group: string, message: Message): Promise<void> {
    return this.groupSendTagged(group, tag(message));
  }

  groupSendTagged(group: string, message: Tagged): Promise<void> {
    return this.peer.call('group_send', { layer: this.name, group, message });
  }

  flush(): Promise<void> {
    return this.peer.call('flush', { layer: this.name });
  }

  close(): Promise<void> {
    return this.peer.call('close', { layer: this.name });
  }

  /** layer.serialize(message): what this layer would store/publish. */
  async serialize(message: Tagged): Promise<Buffer> {
    return Buffer.from(
      await this.peer.call<string>('serialize', { layer: this.name, message }),
      'hex',
    );
  }

  /** layer.deserialize(bytes), tagged. */
  deserialize(bytes: Uint8Array): Promise<Tagged> {
    return this.peer.call<Tagged>('deserialize', {
      layer: this.name,
      hex: Buffer.from(bytes).toString('hex'),
    });
  }
}
