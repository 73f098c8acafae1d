/**
 * Real Redis processes for tests: standalone servers and a Sentinel topology
 * (master + replica + three sentinels), all on 127.0.0.1 and free ports.
 *
 *   const redis = await startRedis({ count: 3 });
 *   after(() => redis.stop());
 *
 * Every process is cleaned up on `stop()`, on normal/uncaught exit, on
 * SIGINT/SIGTERM/SIGHUP, and even when this process is SIGKILLed (see WATCHDOG).
 * With REDIS_TEST_LOG_DIR set, `stop()` first copies each server's output.log there
 * (as redis-server-PORT.log, redis-sentinel-PORT.log) to look into a failed run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, LOOPBACK } from './ports.ts';
import { waitFor } from './wait.ts';

export { freePort, LOOPBACK };

export interface RedisServer {
  readonly host: string;
  readonly port: number;
  /** `redis://127.0.0.1:PORT` (no credentials). */
  readonly url: string;
  /** Pid of the running redis-server / redis-sentinel; undefined while it is down. */
  readonly pid: number | undefined;
  /** Its private temp dir (working dir, output.log, sentinel.conf). */
  readonly dir: string;
  /** Send `signal` (default SIGKILL: a crash) and wait for the exit. Escalates to SIGKILL after 5 s. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /**
   * Kill it if running, start it again on the same port, wait until it answers. With
   * `replicaOf`, it starts as a replica of that loopback port (replacing its own `--replicaof`,
   * also for later restarts), so it is never a master, not even for the moment before a REPLICAOF.
   */
  restart(opts?: { replicaOf?: number }): Promise<void>;
  /** Kill it and remove its temp dir. Idempotent. */
  stop(): Promise<void>;
}

export interface RedisGroup {
  servers: RedisServer[];
  urls: string[];
  stop(): Promise<void>;
}

export interface SentinelTopology {
  masterName: string;
  /** Sentinel addresses in the shape chanlayer's `hosts` Sentinel entry takes. */
  sentinels: [string, number][];
  /** The servers as started; after a failover `replica` is the master. */
  master: RedisServer;
  replica: RedisServer;
  sentinelServers: RedisServer[];
  /** Port of the master most sentinels currently report. */
  currentMasterPort(): Promise<number>;
  /** Waits until every sentinel reports the same master and that server says it is master. */
  settledMasterPort(timeoutMs?: number): Promise<number>;
  /** SIGKILL the current master (as reported by the sentinels). */
  killMaster(): Promise<{ killedAt: number; port: number }>;
  /** Poll all sentinels until any reports a master other than `oldPort`; promotedAt = first seen. */
  waitForNewMaster(
    oldPort: number,
    timeoutMs?: number,
  ): Promise<{ port: number; promotedAt: number }>;
  stop(): Promise<void>;
}

export interface StartRedisOptions {
  count?: number;
  /** Extra redis-server arguments, e.g. `['--maxmemory', '10mb']`. */
  args?: string[];
  /** Sets `requirepass`; readiness checks authenticate with it. */
  password?: string;
  /** An ACL user besides `default` (which stays all-powerful for the harness): see userArgs. */
  user?: string;
}

export interface SentinelTopologyOptions {
  masterName?: string;
  /** Default 2000; see DOWN_AFTER_MS for why not less. */
  downAfterMs?: number;
  failoverTimeoutMs?: number;
  /** An ACL user on master and replica alike (a failover promotes the replica): see userArgs. */
  user?: string;
}

/**
 * `--user` config arguments for an ACL user given as `ACL SETUSER` takes it after the command
 * name, e.g. `'app on >pw ~asgi* &* +@all -@dangerous'` (split on spaces, as redis-cli does). Part
 * of the server's configuration, so the user is still there after `restart()`.
 */
export function userArgs(user: string | undefined): string[] {
  return user === undefined ? [] : ['--user', ...user.split(' ').filter(Boolean)];
}

const START_TIMEOUT_MS = 10_000;

/*
 * DOWN_AFTER_MS must clearly exceed Sentinel's 1 s ping period. On +switch-master a sentinel
 * resets its link and starts the down-after clock at once, but it reconnects only 1 s after its
 * last reconnect attempt, and it was retrying the dead old master every second: the first PING
 * to the new master can leave a full second after the switch. With down-after 1000 that master
 * was already "down" (+sdown); the three sentinels switch within a few ms of each other, so two
 * or three at once (+odown), and a failover of the master just promoted started. Usually it
 * aborted (-failover-abort-no-good-slave); when the old master had been rejoined as a healthy
 * replica by then, it was promoted straight back, and a test waiting for it to be a replica
 * timed out (issue 14: "sentinel :36455 sees []"). Measured with down-after 1000: 18 of 30 runs
 * of the core-layer Sentinel tests had such a +sdown/+odown and 17 such aborted failovers;
 * killing the master and rejoining it at once got it promoted back in 2 of 25 rounds. With 2000:
 * none in 34 runs of test/failover.test.ts (no aborted failover either), 0 of 20 rounds.
 */
const DOWN_AFTER_MS = 2000;

/** Start `count` standalone redis-servers on free loopback ports. */
export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisGroup> {
  const { count = 1, args = [], password, user } = opts;
  const extra = [
    ...(password === undefined ? [] : ['--requirepass', password]),
    ...userArgs(user),
    ...args,
  ];
  const servers = await startAll(
    Array.from(
      { length: count },
      () => () => launch('redis-server', (port, dir) => serverArgs(port, dir, extra), password),
    ),
  );
  return {
    servers,
    urls: servers.map((s) => s.url),
    stop: () => stopAll(servers),
  };
}

/** Master + replica + three sentinels (quorum 2), ready to fail over. */
export async function startSentinelTopology(
  opts: SentinelTopologyOptions = {},
): Promise<SentinelTopology> {
  const {
    masterName = 'mymaster',
    downAfterMs = DOWN_AFTER_MS,
    failoverTimeoutMs = 3000,
    user,
  } = opts;
  // Default diskless-sync delay is 5 s; both nodes may be a master at some point.
  const fastSync = ['--repl-diskless-sync-delay', '0', ...userArgs(user)];
  const started: Instance[] = [];
  try {
    const master = await launch('redis-server', (port, dir) => serverArgs(port, dir, fastSync));
    started.push(master);
    const replica = await launch('redis-server', (port, dir) =>
      serverArgs(port, dir, [...fastSync, '--replicaof', LOOPBACK, String(master.port)]),
    );
    started.push(replica);
    await waitFor(
      async () =>
        /master_link_status:up\r\n/.test(
          String(await redisCommand(replica.port, ['INFO', 'replication'])),
        ),
      { what: `replica :${replica.port} in sync with master :${master.port}` },
    );

    const sentinelConf = (port: number, dir: string): string[] => {
      const file = path.join(dir, 'sentinel.conf');
      // Sentinel rewrites this file (ids, discovered peers), so it lives in the writable temp dir.
      fs.writeFileSync(
        file,
        [
          `port ${port}`,
          `bind ${LOOPBACK}`,
          `dir ${dir}`,
          'sentinel resolve-hostnames no',
          `sentinel announce-ip ${LOOPBACK}`,
          `sentinel monitor ${masterName} ${LOOPBACK} ${master.port} 2`,
          `sentinel down-after-milliseconds ${masterName} ${downAfterMs}`,
          `sentinel failover-timeout ${masterName} ${failoverTimeoutMs}`,
          `sentinel parallel-syncs ${masterName} 1`,
          '',
        ].join('\n'),
      );
      return [file];
    };
    const sentinelServers = await startAll(
      [1, 2, 3].map(() => () => launch('redis-sentinel', sentinelConf)),
    );
    started.push(...sentinelServers);

    // A failover only works once every sentinel knows its two peers (votes) and has
    // seen the replica healthy (a candidate); otherwise the first kill aborts with
    // -failover-abort-no-good-slave and the retry waits 2 × failover-timeout.
    await waitFor(
      async () => {
        for (const s of sentinelServers) {
          const m = toMap(await redisCommand(s.port, ['SENTINEL', 'MASTER', masterName]));
          if (m.flags !== 'master' || m['num-other-sentinels'] !== '2' || m['num-slaves'] !== '1') {
            return false;
          }
          const replicas = await redisCommand(s.port, ['SENTINEL', 'REPLICAS', masterName]);
          const r = (replicas as Reply[]).map(toMap).find((x) => x.port === String(replica.port));
          if (r?.flags !== 'slave' || r['master-link-status'] !== 'ok') return false;
        }
        return true;
      },
      { timeoutMs: 30_000, what: 'sentinels to see master, replica and each other' },
    );

    // Every sentinel's view, asked in parallel: the failover leader switches first and
    // the others learn within a hello period, so "any" sees a switch earliest.
    const masterPorts = async (): Promise<number[]> => {
      const answers = await Promise.allSettled(
        sentinelServers.map((s) =>
          redisCommand(s.port, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName]),
        ),
      );
      return answers.flatMap((a) =>
        a.status === 'fulfilled' && Array.isArray(a.value) ? [Number(a.value[1])] : [],
      );
    };
    const currentMasterPort = async (): Promise<number> => {
      const ports = await masterPorts();
      if (ports.length === 0) throw new Error('no sentinel answered GET-MASTER-ADDR-BY-NAME');
      // Mid-failover the sentinels may disagree; the majority view is the settled one.
      const votes = (p: number): number => ports.filter((x) => x === p).length;
      return ports.reduce((best, p) => (votes(p) > votes(best) ? p : best));
    };

    const settledMasterPort = async (timeoutMs = 30_000): Promise<number> => {
      let port = 0;
      await waitFor(
        async () => {
          const ports = await masterPorts();
          if (ports.length !== sentinelServers.length || new Set(ports).size !== 1) return false;
          port = ports[0]!;
          const role = await redisCommand(port, ['ROLE']).catch(() => null);
          return Array.isArray(role) && role[0] === 'master';
        },
        { timeoutMs, intervalMs: 50, what: 'every sentinel to report the same, live master' },
      );
      return port;
    };

    const topology: SentinelTopology = {
      masterName,
      sentinels: sentinelServers.map((s) => [s.host, s.port]),
      master,
      replica,
      sentinelServers,
      currentMasterPort,
      settledMasterPort,
      async killMaster() {
        const port = await currentMasterPort().catch(() => master.port);
        const victim = port === replica.port ? replica : master;
        const killedAt = Date.now();
        await victim.kill('SIGKILL');
        return { killedAt, port };
      },
      async waitForNewMaster(oldPort, timeoutMs = 30_000) {
        let port: number | undefined;
        await waitFor(
          async () => {
            port = (await masterPorts()).find((p) => p !== oldPort);
            return port !== undefined;
          },
          {
            timeoutMs,
            intervalMs: 25,
            what: `sentinels to report a master other than :${oldPort}`,
          },
        );
        return { port: port!, promotedAt: Date.now() };
      },
      // Sentinels first, so none of them starts a failover while the data nodes go away.
      stop: async () => {
        await stopAll(sentinelServers);
        await stopAll([replica, master]);
      },
    };
    return topology;
  } catch (err) {
    await stopAll(started);
    throw err;
  }
}

// ---------------------------------------------------------------------------
// Minimal RESP client: one short connection per call. Tests and readiness checks
// need a handful of commands; a raw socket has no reconnect logic to second-guess.

export type Reply = string | number | null | Error | Reply[];

/** Run one command on 127.0.0.1:port (after AUTH if `password`); rejects on a Redis error reply. */
export async function redisCommand(
  port: number,
  args: string[],
  opts: { password?: string; timeoutMs?: number } = {},
): Promise<Reply> {
  const commands = opts.password === undefined ? [args] : [['AUTH', opts.password], args];
  const replies = await exchange(port, commands, opts.timeoutMs ?? 2000);
  for (const r of replies) if (r instanceof Error) throw r;
  return replies[replies.length - 1] ?? null;
}

function exchange(port: number, commands: string[][], timeoutMs: number): Promise<Reply[]> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, LOOPBACK);
    let buf = Buffer.alloc(0);
    const fail = (err: Error): void => {
      socket.destroy();
      reject(err);
    };
    socket.setTimeout(timeoutMs, () =>
      fail(new Error(`redis :${port} timed out after ${timeoutMs} ms`)),
    );
    socket.on('error', fail);
    socket.on('close', () => reject(new Error(`redis :${port} closed the connection`)));
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      const replies: Reply[] = [];
      let pos = 0;
      while (replies.length < commands.length) {
        const parsed = parseReply(buf, pos);
        if (!parsed) return; // incomplete; wait for more bytes
        replies.push(parsed[0]);
        pos = parsed[1];
      }
      socket.destroy();
      resolve(replies);
    });
    socket.write(
      commands
        .map(
          (c) => `*${c.length}\r\n` + c.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join(''),
        )
        .join(''),
    );
  });
}

function parseReply(buf: Buffer, pos: number): [Reply, number] | undefined {
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return undefined;
  const type = buf.toString('latin1', pos, pos + 1);
  const line = buf.toString('utf8', pos + 1, eol);
  let next = eol + 2;
  switch (type) {
    case '+':
      return [line, next];
    case '-':
      return [new Error(line), next];
    case ':':
      return [Number(line), next];
    case '$': {
      const n = Number(line);
      if (n < 0) return [null, next];
      if (buf.length < next + n + 2) return undefined;
      return [buf.toString('utf8', next, next + n), next + n + 2];
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return [null, next];
      const items: Reply[] = [];
      for (let i = 0; i < n; i++) {
        const item = parseReply(buf, next);
        if (!item) return undefined;
        items.push(item[0]);
        next = item[1];
      }
      return [items, next];
    }
    default:
      throw new Error(`unexpected RESP type byte ${JSON.stringify(type)}`);
  }
}

/** `['k1', 'v1', 'k2', 'v2']` (SENTINEL MASTER, REPLICAS entries) to an object. */
export function toMap(reply: Reply): Record<string, string> {
  const out: Record<string, string> = {};
  const flat = Array.isArray(reply) ? reply : [];
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = String(flat[i + 1]);
  return out;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// Processes.

/*
 * WATCHDOG: each server runs as the child of a tiny `sh` whose stdin is a pipe from
 * this Node process. Nothing ever writes to that pipe, so `read` blocks until Node's
 * end closes, which the kernel does however Node dies (exit, crash, SIGKILL). Then
 * the watcher SIGKILLs the server and removes its temp dir. Chosen over
 * PR_SET_PDEATHSIG (`setpriv`, Linux-only, not always installed) and a Node
 * watchdog (a second runtime per server): POSIX sh is everywhere and starts in 1 ms.
 * The sh prints the server's real pid first, so signals go to redis, not the shell.
 * When the server exits on its own the sh ends the idle watcher; the watcher ignores
 * that TERM once it has started killing, so the dir removal is never cut short.
 *
 * Non-interactive sh gives background jobs /dev/null as stdin, so the pipe is
 * saved as fd 3 first and handed to the watcher explicitly; the server itself gets
 * neither, so only Node holds the write end.
 */
const WATCHDOG = `
dir=$1; shift
exec 3<&0
"$@" </dev/null >>"$dir/output.log" 2>&1 3<&- &
child=$!
echo "$child"
{ while read -r _; do :; done; trap '' TERM; kill -9 "$child" 2>/dev/null; rm -rf "$dir"; } <&3 &
watcher=$!
wait "$child"; status=$?
kill "$watcher" 2>/dev/null
exit "$status"
`;

type Kind = 'redis-server' | 'redis-sentinel';

const live = new Set<Instance>();

class AddressInUse extends Error {}

class Instance implements RedisServer {
  readonly host = LOOPBACK;
  pid: number | undefined;
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly bin: string,
    readonly port: number,
    readonly dir: string,
    private readonly args: string[],
    private readonly password: string | undefined,
  ) {}

  private get logFile(): string {
    return path.join(this.dir, 'output.log');
  }

  get url(): string {
    return `redis://${LOOPBACK}:${this.port}`;
  }

  /** Spawn through the watchdog and wait until *our* process answers on the port. */
  async start(): Promise<void> {
    if (this.stopped) throw new Error(`redis :${this.port} was stopped`);
    installExitHooks();
    live.add(this);
    const logStart = sizeOf(this.logFile);
    const proc = spawn(
      '/bin/sh',
      ['-c', WATCHDOG, 'redis-watchdog', this.dir, this.bin, ...this.args],
      {
        stdio: ['pipe', 'pipe', 'ignore'],
        // Own process group: a terminal's Ctrl-C reaches only Node, which then stops
        // servers in order instead of them racing it.
        detached: true,
      },
    );
    this.proc = proc;
    let hasExited = false;
    this.exited = new Promise((resolve) =>
      proc.once('exit', () => {
        hasExited = true;
        this.pid = undefined;
        resolve();
      }),
    );
    // A forgotten stop() must not keep the test process alive; the exit hooks reap.
    proc.unref();
    (proc.stdin as net.Socket).unref();
    (proc.stdout as net.Socket).unref();

    const pid = await new Promise<number | undefined>((resolve) => {
      let out = '';
      const timer = setTimeout(() => resolve(undefined), START_TIMEOUT_MS);
      proc.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('\n')) {
          clearTimeout(timer);
          resolve(Number(out.trim()));
        }
      });
      void this.exited.then(() => {
        clearTimeout(timer);
        resolve(undefined);
      });
    });
    this.pid = pid;

    // Check the pid, not just PING: another process may own the port if our bind lost a race.
    try {
      await waitFor(
        async () =>
          hasExited ||
          String(
            await redisCommand(this.port, ['INFO', 'server'], {
              password: this.password,
              timeoutMs: 500,
            }),
          ).includes(`process_id:${pid}\r\n`),
        { what: `${path.basename(this.bin)} on :${this.port}` },
      );
      if (hasExited) throw new Error('it exited');
    } catch (err) {
      await this.kill('SIGKILL');
      const output = readFrom(this.logFile, logStart);
      if (/Address already in use/.test(output)) throw new AddressInUse(output);
      throw new Error(
        `${path.basename(this.bin)} on :${this.port} did not start: ${(err as Error).message}\n${output}`,
      );
    }
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const { proc, pid } = this;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const send = (sig: NodeJS.Signals): void => {
      try {
        // Without a pid (the shell never printed it) only the shell can be hit; its
        // watcher still reaps the server when Node exits.
        process.kill(pid ?? proc.pid!, sig);
      } catch {
        // Already gone (ESRCH): the exit event follows.
      }
    };
    send(signal);
    let escalate: NodeJS.Timeout | undefined;
    if (signal !== 'SIGKILL') escalate = setTimeout(() => send('SIGKILL'), 5000);
    // The timer also keeps the event loop alive while we wait on an unref'd child.
    const keepAlive = setInterval(() => {}, 1000);
    try {
      await this.exited;
    } finally {
      clearTimeout(escalate);
      clearInterval(keepAlive);
    }
  }

  async restart(opts: { replicaOf?: number } = {}): Promise<void> {
    await this.kill('SIGKILL');
    if (opts.replicaOf !== undefined) {
      const at = this.args.indexOf('--replicaof');
      if (at >= 0) this.args.splice(at, 3);
      this.args.push('--replicaof', LOOPBACK, String(opts.replicaOf));
    }
    // The port is ours by convention but not reserved; a stray client-side socket
    // can briefly hold it, so retry a little before giving up.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.start();
      } catch (err) {
        if (!(err instanceof AddressInUse) || attempt >= 20) throw err;
        await sleep(100);
      }
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.kill('SIGKILL');
    keepLog(this.logFile, `${path.basename(this.bin)}-${this.port}.log`);
    fs.rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }
}

/** New instance on a fresh free port; picks another port if the bind loses a race. */
async function launch(
  kind: Kind,
  makeArgs: (port: number, dir: string) => string[],
  password?: string,
): Promise<Instance> {
  const bin = findBinary(kind);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `chanlayer-${kind}-`));
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const instance = new Instance(bin, port, dir, makeArgs(port, dir), password);
    try {
      await instance.start();
      return instance;
    } catch (err) {
      if (err instanceof AddressInUse && attempt < 5) {
        live.delete(instance); // already dead; the dir is reused by the next attempt
        continue;
      }
      await instance.stop();
      throw err;
    }
  }
}

/**
 * One redis-server on a fresh free port, with `extra(port, dir)` appended to the standard
 * arguments (loopback, no persistence): for topologies built in other harness modules.
 */
export function launchServer(extra: (port: number, dir: string) => string[]): Promise<RedisServer> {
  return launch('redis-server', (port, dir) => serverArgs(port, dir, extra(port, dir)));
}

/**
 * `--dir`: the server's own temp dir, never the cwd — a replica writes the RDB of its full sync
 * there as dump.rdb, and a server started later in the same cwd would load it (a fresh server
 * once came up holding another test's `asgi:processes`).
 */
function serverArgs(port: number, dir: string, extra: string[]): string[] {
  return [
    '--port',
    String(port),
    '--bind',
    LOOPBACK,
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    'no',
    ...extra,
  ];
}

/** Run the starters concurrently; if any fails, stop the ones that came up. */
async function startAll(starters: (() => Promise<Instance>)[]): Promise<Instance[]> {
  const results = await Promise.allSettled(starters.map((s) => s()));
  const ok = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await stopAll(ok);
    throw failed.reason;
  }
  return ok;
}

export async function stopAll(servers: RedisServer[]): Promise<void> {
  await Promise.all(servers.map((s) => s.stop()));
}

function keepLog(file: string, name: string): void {
  const dir = process.env.REDIS_TEST_LOG_DIR;
  if (!dir || !fs.existsSync(file)) return;
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(file, path.join(dir, name));
}

function sizeOf(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

/** The last lines written to `file` since byte `start` (this start attempt only). */
function readFrom(file: string, start: number): string {
  try {
    const text = fs.readFileSync(file).subarray(start).toString('utf8');
    return text.split('\n').slice(-15).join('\n') || '(no output)';
  } catch {
    return '(no output)';
  }
}

const binaries = new Map<Kind, string>();

function findBinary(name: Kind): string {
  const cached = binaries.get(name);
  if (cached) return cached;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      binaries.set(name, candidate);
      return candidate;
    } catch {
      // keep looking
    }
  }
  throw new Error(
    `${name} not found: install Debian's redis-server and redis-sentinel packages (apt-get install -y redis-server redis-sentinel); the test script normally installs them`,
  );
}

let hooksInstalled = false;

/** Kill and clean up synchronously: the only kind of work an 'exit' listener can do. */
function killAllSync(): void {
  for (const instance of live) {
    if (instance.pid !== undefined) {
      try {
        process.kill(instance.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    fs.rmSync(instance.dir, { recursive: true, force: true });
  }
  live.clear();
}

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  // 'exit' also runs after an uncaught exception or process.exit().
  process.once('exit', killAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killAllSync();
      // A listener replaces Node's default "die of the signal". If nobody else
      // handles it, restore that default and re-raise; otherwise the app decides.
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, onSignal);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, onSignal);
  }
}
