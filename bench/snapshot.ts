/**
 * A private copy of lib/ for the length of a run. The checkout is shared with engineers editing
 * lib/ while a 6-minute bench runs: without a copy, runs of one bench would test different
 * code, or fail mid-way on a half-saved file. The copy lives outside the repository (no stray
 * files in anyone's `git status`, nothing for tsc or eslint to pick up), with a package.json
 * marking it ESM and a symlink to the project's node_modules so its imports resolve as before.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export interface LibSnapshot {
  /** `file:` URL of the copy's index.ts, what the workers import. */
  index: string;
  /** sha256 over the copied files (path and content), to tell snapshots apart in the JSON. */
  hash: string;
  remove(): void;
}

export function snapshotLib(root: string): LibSnapshot {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chanlayer-bench-lib-'));
  fs.cpSync(path.join(root, 'lib'), path.join(dir, 'lib'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), '{ "type": "module" }\n');
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  const hash = createHash('sha256');
  const walk = (d: string): void => {
    for (const e of fs
      .readdirSync(d, { withFileTypes: true })
      .sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else hash.update(`${path.relative(dir, p)}\0`).update(fs.readFileSync(p));
    }
  };
  walk(path.join(dir, 'lib'));
  return {
    index: pathToFileURL(path.join(dir, 'lib', 'index.ts')).href,
    hash: hash.digest('hex').slice(0, 12),
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
