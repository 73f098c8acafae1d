// Runs test/**/*.test.ts with node:test under tsx. Files run two at a time (each starts its own
// Redis servers on free ports); a per-test timeout keeps a hung test from hanging the run.
// The terminal gets a summary (scripts/test-summary.mjs); the full TAP log goes to LOG.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';

const LOG = '.test-artifacts/test-log.tap';
mkdirSync('.test-artifacts', { recursive: true });

const args = process.argv.slice(2);
const files = args.length
  ? args
  : readdirSync('test', { recursive: true })
      .map(String)
      .filter((f) => f.endsWith('.test.ts'))
      .map((f) => `test/${f}`)
      .sort();

console.log(`running ${files.length} test files; a summary follows at the end`);
const result = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    '--test-concurrency=2',
    '--test-timeout=180000',
    '--test-reporter=./scripts/test-summary.mjs',
    '--test-reporter-destination=stdout',
    '--test-reporter=tap',
    `--test-reporter-destination=${LOG}`,
    ...files,
  ],
  { stdio: 'inherit', env: { ...process.env, CHANLAYER_TEST_LOG: LOG } },
);
process.exit(result.status ?? 1);
