/**
 * The "Talking to Django" example (examples/django-interop/, README.md, "Talking to Django") runs as
 * documented: the Node service and the Django side as two real processes on one redis-server.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { startRedis, type RedisGroup } from './harness/redis.ts';
import { PYTHON } from './interop/peer.ts';

const dir = (file: string): string =>
  fileURLToPath(new URL(`../examples/django-interop/${file}`, import.meta.url));

let redis: RedisGroup;
const children: ChildProcess[] = [];

before(async () => {
  redis = await startRedis({ count: 1 });
});
after(async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  }
  await redis?.stop();
});

/** Spawn, collect stdout lines, and resolve `exited` with the exit code. */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv) {
  const child = spawn(cmd, args, { env: { ...process.env, ...env } });
  children.push(child);
  const lines: string[] = [];
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const rl = createInterface({ input: child.stdout! });
  const listeners: Array<(line: string) => void> = [];
  rl.on('line', (line) => {
    lines.push(line);
    listeners.forEach((l) => l(line));
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  /** Resolves with the first line matching `re` (rejects if the process exits first). */
  const line = (re: RegExp): Promise<string> => {
    const seen = lines.find((l) => re.test(l));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      listeners.push((l) => re.test(l) && resolve(l));
      void exited.then((code) =>
        reject(new Error(`${cmd} exited (${code}) before ${re}:\n${lines.join('\n')}\n${stderr}`)),
      );
    });
  };
  return { child, lines, exited, line, stderr: () => stderr };
}

describe('examples/django-interop', () => {
  it('Node service and Django side talk both ways through one Redis', async () => {
    const env = { REDIS_URL: redis.urls[0]!, CHANNEL_LAYER_SECRET: 'example secret' };
    const node = run(process.execPath, ['--import', 'tsx', dir('node-service.ts')], env);
    await node.line(/^node: READY specific\.[0-9a-f]{32}![0-9a-f]{32}$/);

    const django = run(PYTHON, [dir('django_side.py')], env);
    assert.equal(await django.exited, 0, django.stderr());
    assert.deepEqual(django.lines, [
      "django: chat.reply 'HELLO FROM DJANGO' by node, big=18446744073709551615",
    ]);

    assert.equal(await node.exited, 0, node.stderr());
    assert.deepEqual(node.lines.slice(1), [
      'node: chat.message "hello from Django" (3 bytes attached) from Django',
      'node: bye',
    ]);
  });
});
