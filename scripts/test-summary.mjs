// node:test reporter for `npm test`'s terminal: one line per test file (passed / failed / skipped /
// todo), every failure in full, then the runner's own totals as the last lines (CI reads them).
// The complete TAP log goes to a file through a second reporter (scripts/run-tests.mjs), which
// names it in CHANLAYER_TEST_LOG.
import { relative } from 'node:path';
import { inspect } from 'node:util';

const counts = new Map();
const failures = [];

function fileCounts(file) {
  let c = counts.get(file);
  if (!c) counts.set(file, (c = { passed: 0, failed: 0, skipped: 0, todo: 0 }));
  return c;
}

function line(file, c) {
  const parts = [`${c.passed} passed`];
  for (const key of ['failed', 'skipped', 'todo']) if (c[key]) parts.push(`${c[key]} ${key}`);
  return `${c.failed ? '✗' : '✓'} ${relative(process.cwd(), file)}  ${parts.join(', ')}\n`;
}

export default async function* summary(source) {
  const totals = [];
  for await (const { type, data } of source) {
    const file = data?.file;
    const leaf = data?.details?.type !== 'suite';
    if (type === 'test:pass' && leaf && file && data.name !== file) {
      const c = fileCounts(file);
      if (data.todo !== undefined) c.todo++;
      else if (data.skip !== undefined) c.skipped++;
      else c.passed++;
    } else if (type === 'test:fail' && (leaf || data.name === file) && file) {
      const c = fileCounts(file);
      if (data.todo !== undefined) c.todo++;
      else {
        c.failed++;
        failures.push({ file, name: data.name, error: data.details?.error });
      }
    } else if (type === 'test:diagnostic' && data.nesting === 0 && !file) {
      totals.push(`# ${data.message}\n`);
    }
  }
  // At the end, sorted: a file's own completion event can come before its results are reported.
  for (const file of [...counts.keys()].sort()) yield line(file, counts.get(file));
  for (const { file, name, error } of failures) {
    yield `\nFAILED ${relative(process.cwd(), file)} › ${name}\n`;
    yield `${inspect(error, { depth: 6 })}\n`;
  }
  yield `\nfull log: ${process.env.CHANLAYER_TEST_LOG ?? "the tap reporter's destination"}\n`;
  yield* totals;
}
