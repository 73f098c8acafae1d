/** Tests of the Redis process harness itself (test/harness/redis.ts). */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Redis } from 'ioredis';
import {
  redisCommand,
  startRedis,
  startSentinelTopology,
  type RedisServer,
} from './harness/redis.ts';
import { waitFor } from './harness/wait.ts';

const HARNESS_URL = pathToFileURL(path.join(import.meta.dirname, 'harness', 'redis.ts')).href;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    assert.equal((err as NodeJS.ErrnoException).code, 'ESRCH');
    return false;
  }
}

/** After an awaited stop() the servers must already be gone: no polling. */
function assertGone(pids: number[], dirs: string[]): void {
  for (const pid of pids) assert.equal(isAlive(pid), false, `pid ${pid} still alive`);
  for (const dir of dirs) assert.equal(fs.existsSync(dir), false, `${dir} still exists`);
}

function pidsOf(servers: RedisServer[]): number[] {
  return servers.map((s) => {
    assert.ok(s.pid, `${s.url} has no pid`);
    return s.pid;
  });
}

/** Run ESM `code` in a child Node (with tsx) from the repo root; resolves its stdout lines as they come. */
function runChild(code: string, env: NodeJS.ProcessEnv = process.env) {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    cwd: path.join(import.meta.dirname, '..'),
    env,
    stdio: ['pipe', 'pipe', 'pipe'], // stderr kept for failure messages, not test output
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const firstLine = new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    void exited.then(() =>
      reject(new Error(`child exited before printing; stdout: ${out}\nstderr: ${stderr}`)),
    );
  });
  return { child, exited, firstLine };
}

describe('startRedis', () => {
  test('one server answers PING, also through ioredis on its url', async () => {
    const redis = await startRedis();
    try {
      assert.equal(redis.servers.length, 1);
      const [server] = redis.servers;
      assert.match(server!.url, /^redis:\/\/127\.0\.0\.1:\d+$/);
      assert.deepEqual(redis.urls, [server!.url]);
      assert.equal(await redisCommand(server!.port, ['PING']), 'PONG');
      const client = new Redis(server!.url, { lazyConnect: true });
      await client.connect();
      assert.equal(await client.ping(), 'PONG');
      await client.quit();
    } finally {
      const pids = pidsOf(redis.servers);
      await redis.stop();
      assertGone(
        pids,
        redis.servers.map((s) => s.dir),
      );
    }
  });

  test('three servers on distinct ports; stop leaves no process or dir', async () => {
    const redis = await startRedis({ count: 3 });
    const pids = pidsOf(redis.servers);
    try {
      assert.equal(new Set(redis.servers.map((s) => s.port)).size, 3);
      assert.equal(new Set(pids).size, 3);
      for (const s of redis.servers) assert.equal(await redisCommand(s.port, ['PING']), 'PONG');
    } finally {
      await redis.stop();
    }
    assertGone(
      pids,
      redis.servers.map((s) => s.dir),
    );
    await redis.stop(); // idempotent
  });

  test('password and extra args are applied', async () => {
    const redis = await startRedis({ password: 's3cret', args: ['--maxmemory', '12mb'] });
    try {
      const { port } = redis.servers[0]!;
      await assert.rejects(redisCommand(port, ['PING']), /NOAUTH/);
      assert.equal(await redisCommand(port, ['PING'], { password: 's3cret' }), 'PONG');
      const maxmemory = await redisCommand(port, ['CONFIG', 'GET', 'maxmemory'], {
        password: 's3cret',
      });
      assert.deepEqual(maxmemory, ['maxmemory', String(12 * 1024 * 1024)]);
    } finally {
      await redis.stop();
    }
  });

  test('kill then restart on the same port', async () => {
    const redis = await startRedis();
    try {
      const server = redis.servers[0]!;
      const { port, pid } = server;
      await server.kill();
      assert.equal(server.pid, undefined);
      assert.equal(isAlive(pid!), false);
      await assert.rejects(redisCommand(port, ['PING']), /ECONNREFUSED/);
      await server.restart();
      assert.equal(server.port, port);
      assert.notEqual(server.pid, pid);
      assert.equal(await redisCommand(port, ['PING']), 'PONG');
      await server.kill('SIGTERM'); // graceful shutdown path
      await server.restart();
      assert.equal(await redisCommand(port, ['PING']), 'PONG');
    } finally {
      await redis.stop();
    }
  });

  test('a missing redis-server is one clear line', async () => {
    const code = `
      const { startRedis } = await import(${JSON.stringify(HARNESS_URL)});
      try { await startRedis(); console.log('started?!'); }
      catch (err) { console.log(JSON.stringify(err.message)); }`;
    const { firstLine, exited } = runChild(code, { ...process.env, PATH: '/nonexistent' });
    const message = JSON.parse(await firstLine) as string;
    await exited;
    assert.doesNotMatch(message, /\n/);
    assert.match(
      message,
      /redis-server not found.*install Debian's redis-server and redis-sentinel/,
    );
  });
});

describe('cleanup when the test process dies', () => {
  // Each child starts servers, prints them, then waits for a line on stdin (which
  // also keeps it alive) before doing its way of dying; signals come from outside.
  const cases = {
    SIGKILL: '', // only the shell watchdog can help
    SIGTERM: '', // signal hook, then death by the default action
    uncaught: "throw new Error('boom');", // 'exit' hook
    'forgotten stop': 'process.stdin.destroy();', // unref'd servers must not keep it alive
  } as const;

  for (const [how, action] of Object.entries(cases)) {
    test(`servers die and temp dirs go: ${how}`, async () => {
      const code = `
        const { startRedis } = await import(${JSON.stringify(HARNESS_URL)});
        const { servers } = await startRedis({ count: 2 });
        console.log(JSON.stringify(servers.map((s) => ({ pid: s.pid, dir: s.dir }))));
        process.stdin.once('data', () => { ${action} });`;
      const { child, firstLine, exited } = runChild(code);
      const servers = JSON.parse(await firstLine) as { pid: number; dir: string }[];
      assert.equal(servers.length, 2);
      for (const s of servers) assert.equal(isAlive(s.pid), true);

      if (how === 'SIGKILL' || how === 'SIGTERM') child.kill(how);
      else child.stdin.write('go\n');
      const { signal, code: status } = await exited;
      if (how === 'SIGKILL' || how === 'SIGTERM') assert.equal(signal, how);
      else assert.equal(status, how === 'uncaught' ? 1 : 0);

      await waitFor(() => servers.every((s) => !isAlive(s.pid) && !fs.existsSync(s.dir)), {
        timeoutMs: 5000,
        what: 'servers of the dead process to disappear',
      });
    });
  }
});

describe('startSentinelTopology', () => {
  test('fails over when the master is killed; stop leaves nothing', async () => {
    const topo = await startSentinelTopology({ masterName: 'harness' });
    const all = [topo.master, topo.replica, ...topo.sentinelServers];
    const pids = pidsOf(all);
    try {
      assert.equal(topo.masterName, 'harness');
      assert.equal(topo.sentinels.length, 3);
      for (const [host, port] of topo.sentinels) {
        assert.equal(host, '127.0.0.1');
        const addr = await redisCommand(port, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'harness']);
        assert.deepEqual(addr, ['127.0.0.1', String(topo.master.port)]);
      }
      assert.equal(await topo.currentMasterPort(), topo.master.port);

      const { killedAt, port: oldPort } = await topo.killMaster();
      assert.equal(oldPort, topo.master.port);
      assert.equal(topo.master.pid, undefined);
      const { port, promotedAt } = await topo.waitForNewMaster(oldPort, 30_000);
      assert.equal(port, topo.replica.port);
      const took = promotedAt - killedAt;
      // down-after 2 s + election + promotion; typically 3–5 s.
      assert.ok(took > 0 && took < 20_000, `failover took ${took} ms`);
      const info = String(await redisCommand(port, ['INFO', 'replication']));
      assert.match(info, /role:master/);

      // The old master can come back on its port (Sentinel demotes it to a replica
      // on its next INFO round, ~10 s later; not waited for here).
      await topo.master.restart();
      pids.push(topo.master.pid!);
      assert.equal(await redisCommand(topo.master.port, ['PING']), 'PONG');
    } finally {
      await topo.stop();
    }
    assertGone(
      pids,
      all.map((s) => s.dir),
    );
  });
});
