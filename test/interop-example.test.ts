/**
 * The "Talking to Django" example (examples/django-interop/, README.md, "Talking to Django") runs as
 * documented: the README's own commands, the Node service and the Django side as two real
 * processes on one redis-server.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { startRedis, type RedisGroup } from './harness/redis.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

let redis: RedisGroup;
const children: ChildProcess[] = [];

before(async () => {
  redis = await startRedis({ count: 1 });
});
after(async () => {
  for (const child of children) {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // The group is gone already.
    }
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
  }
  await redis?.stop();
});

/** Spawn, collect stdout lines, and resolve `exited` with the exit code. */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv) {
  // Its own process group, so `after` also ends what a shell started in the background.
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, detached: true, cwd: ROOT });
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

/** The README's shell block of "A two-process example", minus its `redis-server` line. */
function readmeCommands(): string {
  const readme = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8');
  const section = readme.slice(readme.indexOf('### A two-process example'));
  const block = /```sh\n([^]*?)```/.exec(section)?.[1];
  assert.ok(block, "README has the example's sh block");
  return block
    .split('\n')
    .filter((line) => !line.startsWith('redis-server'))
    .join('\n');
}

describe('examples/django-interop', () => {
  it("the README's commands, run as written: both sides start at once and talk both ways", async () => {
    // As in a shell: the Node service in the background, the Django side right after it
    // (no waiting for READY), then the shell waits for the Node job.
    const shell = run('bash', ['-e', '-c', `${readmeCommands()}\nwait`], {
      REDIS_URL: redis.urls[0]!,
    });
    assert.equal(await shell.exited, 0, shell.stderr());
    const from = (side: string) => shell.lines.filter((l) => l.startsWith(`${side}: `));
    assert.deepEqual(from('django'), [
      "django: chat.reply 'HELLO FROM DJANGO' by node, big=18446744073709551615",
    ]);
    const node = from('node');
    assert.match(node[0]!, /^node: READY specific\.[0-9a-f]{32}![0-9a-f]{32}$/);
    assert.deepEqual(node.slice(1), [
      'node: chat.message "hello from Django" (3 bytes attached) from Django',
      'node: bye',
    ]);
  });
});
