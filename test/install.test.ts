/**
 * Every way a user can install chanlayer today gives a working package: an `npm pack` tarball,
 * a git URL (npm runs `prepare`, which builds dist/) and a local folder. Each dependent project
 * imports it as ESM, requires it from CommonJS (Node ≥ 20.19 loads ES modules through require)
 * and type-checks against its .d.ts with `skipLibCheck: false`, so every type the declarations
 * name must ship with the package. Without the optional peer @opentelemetry/api, `chanlayer`
 * works and only `chanlayer/otel` fails to load; the `chanlayer` command is installed and runs.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';

const root = resolve(import.meta.dirname, '..');
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const built = existsSync(join(root, 'dist/index.js'));
const made: string[] = [];
after(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

function tempDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `chanlayer-${name}-`));
  made.push(dir);
  return dir;
}

function npm(args: string[], cwd: string): string {
  return execFileSync('npm', [...args, '--no-audit', '--no-fund', '--prefer-offline'], {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** A dependent project with `spec` installed (and @types/node, which its tsconfig names). */
function dependent(spec: string): string {
  const dir = tempDir('dep');
  writeFileSync(join(dir, 'package.json'), '{"name":"dep","private":true,"type":"module"}');
  npm(['install', spec, '@types/node@20'], dir);
  return dir;
}

function checkDependent(dir: string): void {
  const esm = execFileSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { InMemoryChannelLayer } from 'chanlayer';
       const layer = new InMemoryChannelLayer();
       const ch = await layer.newChannel();
       await layer.send(ch, { type: 'hi' });
       console.log((await layer.receive(ch)).type);
       await layer.close();`,
    ],
    { cwd: dir, encoding: 'utf8' },
  );
  assert.equal(esm.trim(), 'hi');

  const cjs = execFileSync(
    process.execPath,
    ['-e', `console.log(typeof require('chanlayer').RedisChannelLayer)`],
    { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
  assert.equal(cjs.trim(), 'function');

  // @opentelemetry/api is an optional peer: not installed here, and only chanlayer/otel needs it.
  // (A local folder is installed as a link: it resolves from the checkout's node_modules.)
  assert.ok(!existsSync(join(dir, 'node_modules', '@opentelemetry', 'api')));
  if (!lstatSync(join(dir, 'node_modules', 'chanlayer')).isSymbolicLink()) {
    const otel = spawnSync(
      process.execPath,
      ['--input-type=module', '-e', `await import('chanlayer/otel')`],
      { cwd: dir, encoding: 'utf8' },
    );
    assert.notEqual(otel.status, 0);
    assert.match(otel.stderr, /Cannot find package '@opentelemetry\/api'/);
  }

  // The command, installed as npm installs a bin (executable, on node_modules/.bin).
  const help = execFileSync(join(dir, 'node_modules', '.bin', 'chanlayer'), ['--help'], {
    cwd: dir,
    encoding: 'utf8',
  });
  assert.match(help, /^usage: chanlayer <inspect\|top>/);

  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        target: 'ES2022',
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: ['node'],
      },
      files: ['main.ts'],
    }),
  );
  writeFileSync(
    join(dir, 'main.ts'),
    `import { RedisChannelLayer, WebSocketConsumer, ChannelFull, type ChannelLayer } from 'chanlayer';
     const layer: ChannelLayer = new RedisChannelLayer({ hosts: ['redis://127.0.0.1:6379'] });
     class Echo extends WebSocketConsumer {
       override async receiveJson(content: unknown): Promise<void> {
         await this.sendJson(content);
       }
     }
     export { layer, Echo, ChannelFull };`,
  );
  execFileSync(process.execPath, [tsc, '-p', dir], { cwd: dir, encoding: 'utf8' });
}

describe('installing chanlayer', { skip: !built && 'run npm run build first' }, () => {
  it('from an npm pack tarball (which carries LICENSE and no source maps)', () => {
    const packDir = tempDir('pack');
    npm(['pack', '--ignore-scripts', '--pack-destination', packDir, root], root);
    const [tarball] = readdirSync(packDir).filter((f) => f.endsWith('.tgz'));
    assert.ok(tarball, 'npm pack wrote a tarball');
    const listing = execFileSync('tar', ['-tzf', join(packDir, tarball)], { encoding: 'utf8' });
    assert.match(listing, /^package\/LICENSE$/m);
    assert.doesNotMatch(listing, /\.map$/m);
    checkDependent(dependent(join(packDir, tarball)));
  });

  it('from a git URL: npm builds dist/ through prepare', () => {
    checkDependent(dependent(`git+file://${root}`));
  });

  it('from a local folder', () => {
    checkDependent(dependent(root));
  });
});
