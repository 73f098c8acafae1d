/**
 * The least-privilege ACL user exactly as README's "A least-privilege Redis user" section shows
 * it: tests run as this user, so the documented line is the tested one.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

const README = fs.readFileSync(path.resolve(import.meta.dirname, '../../README.md'), 'utf8');
const line = /^ACL SETUSER (.+)$/m.exec(README);
assert.ok(line, 'README.md shows an `ACL SETUSER …` line');

/** The rules after `ACL SETUSER`, as README shows them. */
export const README_USER = line[1]!;
export const README_USERNAME = README_USER.split(' ')[0]!;
export const README_PASSWORD = README_USER.split(' ')
  .find((rule) => rule.startsWith('>'))!
  .slice(1);
