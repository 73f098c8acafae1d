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
  'dependencies (and the optional peer, only in chanlayer/otel) are exactly what the built package imports, and the types its .d.ts need',
  { skip: !existsSync(join(root, 'dist/index.js')) && 'run npm run build first' },
  () => {
    const needed = new Set<string>();
    const packageOf = (spec: string): string => {
      const parts = spec.split('/');
      return spec.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
    };
    /** A package without its own typings is typed by `@types/<name>`. */
    const typesOf = (name: string): string => {
      const pkg = JSON.parse(
        readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8'),
      ) as { types?: string; typings?: string };
      return pkg.types || pkg.typings ? name : `@types/${name}`;
    };
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        const declaration = entry.name.endsWith('.d.ts');
        if (!declaration && !entry.name.endsWith('.js')) continue;
        for (const [, spec] of readFileSync(path, 'utf8').matchAll(/from '([^'.][^']*)'/g)) {
          if (spec!.startsWith('node:')) continue;
          const name = packageOf(spec!);
          needed.add(declaration ? typesOf(name) : name);
          if (pkg.peerDependencies[name] !== undefined) peerUsers.add(entry.name);
        }
      }
    };
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      peerDependencies: Record<string, string>;
    };
    /** Built files importing an (optional) peer dependency: only the subpath export may. */
    const peerUsers = new Set<string>();
    walk(join(root, 'dist'));
    assert.deepEqual(
      [...needed].sort(),
      [...Object.keys(pkg.dependencies), ...Object.keys(pkg.peerDependencies)].sort(),
    );
    assert.deepEqual([...peerUsers].sort(), ['otel.d.ts', 'otel.js']);
  },
);
