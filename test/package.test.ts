// The built package resolves as `chanlayer` from a dependent project (exports → dist).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';

const root = resolve(import.meta.dirname, '..');

test(
  'import from "chanlayer" works in a dependent project',
  { skip: !existsSync(join(root, 'dist/index.js')) && 'run npm run build first' },
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'chanlayer-dep-'));
    try {
      mkdirSync(join(dir, 'node_modules'));
      symlinkSync(root, join(dir, 'node_modules', 'chanlayer'), 'dir');
      writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
      writeFileSync(
        join(dir, 'main.js'),
        `import { InMemoryChannelLayer, ChannelFull, getChannelLayer } from 'chanlayer';
       const layer = new InMemoryChannelLayer({ capacity: 1 });
       const ch = await layer.newChannel();
       await layer.send(ch, { type: 'hello', n: 1 });
       const full = await layer.send(ch, { type: 'x' }).catch((e) => e instanceof ChannelFull);
       const got = await layer.receive(ch);
       await layer.close();
       console.log(JSON.stringify({ got, full, configured: getChannelLayer() !== undefined }));`,
      );
      const out = execFileSync(process.execPath, ['main.js'], { cwd: dir, encoding: 'utf8' });
      assert.deepEqual(JSON.parse(out), {
        got: { type: 'hello', n: 1 },
        full: true,
        configured: true,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'runtime dependencies are exactly the packages the built library imports',
  { skip: !existsSync(join(root, 'dist/index.js')) && 'run npm run build first' },
  () => {
    const imported = new Set<string>();
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (entry.name.endsWith('.js')) {
          for (const [, spec] of readFileSync(path, 'utf8').matchAll(/from '([^'.][^']*)'/g)) {
            if (spec!.startsWith('node:')) continue;
            const parts = spec!.split('/');
            imported.add(spec!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!);
          }
        }
      }
    };
    walk(join(root, 'dist'));
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    assert.deepEqual([...imported].sort(), Object.keys(pkg.dependencies).sort());
  },
);
