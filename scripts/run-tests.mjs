// Runs test/**/*.test.ts with node:test under tsx. Files run two at a time (each starts its own
// Redis servers on free ports); a per-test timeout keeps a hung test from hanging the run.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';

const args = process.argv.slice(2);
const files = args.length
  ? args
  : readdirSync('test', { recursive: true })
      .map(String)
      .filter((f) => f.endsWith('.test.ts'))
      .map((f) => `test/${f}`)
      .sort();

const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=180000', ...files],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
