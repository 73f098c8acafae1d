/**
 * The chat demo in a real browser: Debian's Chromium (/usr/bin/chromium) driven by
 * playwright-core (no browser download), headless, fresh profile.
 *
 *  (a) `npm start` as is (one process, in-memory layer): two tabs in one room see each other.
 *  (b) two demo processes on two ports sharing one real redis-server (one configured with
 *      `--redis URL`, the other with a Django-style CHANNEL_LAYERS block): typed in the page of
 *      one, shown in the page of the other.
 *  (c) Django interop: `group_send` from Python's channels_redis to the room's group shows up
 *      in both pages.
 *
 * Screenshots go to .test-artifacts/. Demo processes are stopped (SIGTERM, then checked for a
 * clean exit) in `after`; they also stop on their own if this process dies (stdin watch).
 */
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { startRedis, type RedisGroup } from './harness/redis.ts';

const execFileAsync = promisify(execFile);
const ROOT = path.join(import.meta.dirname, '..');
const ARTIFACTS = path.join(ROOT, '.test-artifacts');
const CHROMIUM = '/usr/bin/chromium';
const PYTHON = '/usr/bin/python3';
const CHROME_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** /usr/bin/chromium, installed with apt-get when missing and possible; else the skip reason. */
function chromiumOrSkipReason(): string | undefined {
  if (fs.existsSync(CHROMIUM)) return undefined;
  const root = process.getuid?.() === 0;
  const apt = spawnSync('sh', ['-c', 'command -v apt-get'], { encoding: 'utf8' }).status === 0;
  if (root && apt) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'chromium'], {
      stdio: 'inherit',
      env,
    });
    if (fs.existsSync(CHROMIUM)) return undefined;
  }
  return `${CHROMIUM} is missing and apt-get is not available${root ? '' : ' to this non-root user'}: install Debian's chromium package to run the browser test`;
}

const skip = chromiumOrSkipReason();

// ---- demo processes -------------------------------------------------------------------------

interface Demo {
  url: string;
  child: ChildProcess;
  output(): string;
  /** SIGTERM and wait for the exit; resolves the exit code (SIGKILL after 10 s → null). */
  stop(): Promise<number | null>;
}

const demos = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of demos) child.kill('SIGKILL');
});

/** `npm start` without npm: the same server file, PORT=0 so the OS picks a free port. */
async function startDemo(args: string[], extraEnv: Record<string, string> = {}): Promise<Demo> {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', CHAT_DEMO_EXIT_WITH_STDIN: '1' };
  delete env.CHANNEL_LAYERS;
  Object.assign(env, extraEnv);
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join('examples', 'chat', 'server.ts'), ...args],
    { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  demos.add(child);
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      demos.delete(child);
      resolve(code);
    }),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (): void => {
      const m = /chanlayer chat demo listening on (http:\/\/127\.0\.0\.1:\d+\/)\n/.exec(out);
      if (m) {
        child.stdout!.removeListener('data', onData);
        resolve(m[1]!);
      }
    };
    child.stdout!.on('data', onData);
    void exited.then((code) =>
      reject(new Error(`demo exited (${code}) before listening:\n${out}`)),
    );
  });
  return {
    url,
    child,
    output: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
      try {
        return await exited;
      } finally {
        clearTimeout(kill);
      }
    },
  };
}

// ---- browser --------------------------------------------------------------------------------

let context: BrowserContext;
let profileDir: string;
const pageErrors: string[] = [];

async function openChat(url: string, room: string): Promise<Page> {
  const page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(`${page.url()}: ${err.message}`));
  await page.goto(`${url}?room=${encodeURIComponent(room)}`);
  await page.locator('#status[data-state="open"]').waitFor();
  return page;
}

async function say(page: Page, text: string): Promise<void> {
  await page.fill('#message', text);
  await page.press('#message', 'Enter');
}

function line(page: Page, text: string) {
  return page.locator('#messages li', { hasText: text });
}

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

describe('chat demo in Chromium', { skip }, () => {
  before(async () => {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    profileDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chanlayer-chromium-'));
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROME_ARGS,
    });
    context.setDefaultTimeout(15_000);
  });

  after(async () => {
    await context?.close();
    if (profileDir) fs.rmSync(profileDir, { recursive: true, force: true });
    assert.deepEqual(pageErrors, [], 'no JavaScript error on any page');
  });

  test('(a) npm start, in-memory layer: two tabs in one room see each other', async () => {
    const demo = await startDemo([]);
    try {
      const tab1 = await openChat(demo.url, 'lobby');
      const tab2 = await openChat(demo.url, 'lobby');
      const elsewhere = await openChat(demo.url, 'other');
      assert.equal(await tab1.title(), 'lobby · chanlayer chat');
      await tab1.locator('#server', { hasText: 'InMemoryChannelLayer' }).waitFor();

      await say(tab1, 'hello from tab 1');
      await line(tab2, 'hello from tab 1').waitFor();
      await line(tab1, 'hello from tab 1').waitFor(); // the group includes the sender
      await say(tab2, 'and hello back from tab 2');
      await line(tab1, 'and hello back from tab 2').waitFor();

      // Rooms are separate groups: 'other' sees its own message, never the lobby's.
      await say(elsewhere, 'only in other');
      await line(elsewhere, 'only in other').waitFor();
      assert.equal(await elsewhere.locator('#messages li').count(), 1);
      assert.equal(await line(tab1, 'only in other').count(), 0);

      await screenshot(tab1, 'a-in-memory-tab1');
      await screenshot(tab2, 'a-in-memory-tab2');

      // Ctrl-C / SIGTERM: sockets are closed with 1001 ("going away") and the process exits 0.
      assert.equal(await demo.stop(), 0, demo.output());
      await tab1.locator('#status[data-state="closed"]', { hasText: '1001' }).waitFor();
      assert.match(demo.output(), /SIGTERM: shutting down\nstopped\n/);
      await Promise.all([tab1.close(), tab2.close(), elsewhere.close()]);
    } finally {
      await demo.stop();
    }
  });

  describe('two processes, one Redis', () => {
    let redis: RedisGroup;
    let demoA: Demo;
    let demoB: Demo;
    let pageA: Page;
    let pageB: Page;

    before(async () => {
      redis = await startRedis();
      const { host, port } = redis.servers[0]!;
      // A is configured with the flag, B with a Django CHANNEL_LAYERS block pasted as JSON.
      [demoA, demoB] = await Promise.all([
        startDemo(['--redis', redis.urls[0]!]),
        startDemo([], {
          CHANNEL_LAYERS: JSON.stringify({
            default: {
              BACKEND: 'channels_redis.core.RedisChannelLayer',
              CONFIG: { hosts: [[host, port]] },
            },
          }),
        }),
      ]);
      assert.notEqual(demoA.url, demoB.url);
      pageA = await openChat(demoA.url, 'lobby');
      pageB = await openChat(demoB.url, 'lobby');
    });

    after(async () => {
      const codes = await Promise.all([demoA?.stop(), demoB?.stop()]);
      await redis?.stop();
      for (const code of codes) if (code !== undefined) assert.equal(code, 0);
    });

    test('(b) typed in the page of process A, shown in the page of process B (and back)', async () => {
      await pageA.locator('#server', { hasText: 'RedisChannelLayer' }).waitFor();
      await pageB.locator('#server', { hasText: 'RedisChannelLayer' }).waitFor();
      await say(pageA, 'from A on another port');
      await line(pageB, 'from A on another port').waitFor();
      await say(pageB, 'B answers through Redis');
      await line(pageA, 'B answers through Redis').waitFor();
      await screenshot(pageA, 'b-redis-process-a');
      await screenshot(pageB, 'b-redis-process-b');
    });

    test('(c) a group_send from Django (channels_redis) shows up in both pages', async () => {
      const text = 'hello from Django channels_redis';
      // What a Django view does (the seed note): group_send to the room's group.
      const { stdout } = await execFileAsync(
        PYTHON,
        [
          path.join(ROOT, 'test', 'fixtures', 'django_chat_send.py'),
          redis.urls[0]!,
          'chat_lobby',
          text,
        ],
        { timeout: 30_000 },
      );
      assert.equal(stdout.trim(), 'sent');
      await line(pageA, text).waitFor();
      await line(pageB, text).waitFor();
      await screenshot(pageA, 'c-django-process-a');
      await screenshot(pageB, 'c-django-process-b');
    });
  });
});
