/**
 * Each Lua script's header (its `-- KEYS[…]` and `-- ARGV[…]` lines) against the spec its typed
 * function builds the call from (lib/redis/script-calls.ts): the arguments the spec lays out,
 * with every value tagged by its slot name (and item number), must be the ones the header
 * lists, slot for slot, for calls of one to four items. And each script as Redis gets it has
 * its `@include` lines resolved.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { SCRIPTS } from '../lib/redis/script-calls.ts';
import { scriptArgs, scriptSource, type ScriptArg } from '../lib/redis/scripts.ts';

const LUA_DIR = new URL('../lib/scripts/', import.meta.url);
/** `-- KEYS[3j - 1]  name: description`: the slot's index expression and its name. */
const SLOT = /^--\s+(KEYS|ARGV)\[([^\]]+)\]\s+(\w+):/;

const files = readdirSync(LUA_DIR)
  .filter((f) => f.endsWith('.lua'))
  .map((f) => f.slice(0, -'.lua'.length))
  .sort();

/**
 * An index expression such as `1`, `3+n+i`, `3j - 1`, `2i + 1` (`1..n` means item i) as
 * `base + perItem * i`, for calls of `n` items (any letter but n is the item variable).
 */
function parseIndex(expr: string, n: number): { base: number; perItem: number } {
  const terms = expr.replace(/\s+/g, '').replace(/^1\.\.n$/, 'i');
  assert.match(terms, /^[+-]?\d*[a-z]?([+-]\d*[a-z]?)*$/, `index expression ${expr}`);
  let base = 0;
  let perItem = 0;
  for (const [, sign, coefficient, name] of terms.matchAll(/([+-]?)(\d*)([a-z]?)/g)) {
    if (coefficient === '' && name === '') continue;
    const factor = (sign === '-' ? -1 : 1) * (coefficient === '' ? 1 : Number(coefficient));
    if (name === '') base += factor;
    else if (name === 'n') base += factor * n;
    else perItem += factor;
  }
  return { base, perItem };
}

/** What the header says the call's arguments are, for `n` items: [key count, KEYS…, ARGV…]. */
function headerArgs(lua: string, n: number): ScriptArg[] {
  const slots = { KEYS: [] as string[], ARGV: [] as string[] };
  const place = (list: string[], at: number, tag: string): void => {
    assert.ok(at >= 1, `slot ${tag} at ${at}`);
    assert.equal(list[at - 1], undefined, `slot ${at} listed twice (${tag})`);
    list[at - 1] = tag;
  };
  for (const line of lua.split('\n')) {
    if (!line.startsWith('--')) break; // the header ends at the first line of code
    if (!/^--\s+(KEYS|ARGV)\[/.test(line)) continue;
    const match = SLOT.exec(line);
    assert.ok(match, `header line without a slot name: ${line}`);
    const [, kind, expr, name] = match as unknown as [string, 'KEYS' | 'ARGV', string, string];
    const { base, perItem } = parseIndex(expr, n);
    if (perItem === 0) place(slots[kind], base, name);
    else for (let i = 1; i <= n; i++) place(slots[kind], base + perItem * i, `${name}#${i}`);
  }
  for (const list of [slots.KEYS, slots.ARGV])
    assert.equal(
      list.findIndex((tag) => tag === undefined),
      -1,
      'a hole between slots',
    );
  return [slots.KEYS.length, ...slots.KEYS, ...slots.ARGV];
}

/** Values that are their own slot name: what a spec puts where. */
const tagged = (suffix: string): Record<string, string> =>
  new Proxy({}, { get: (_, name) => `${String(name)}${suffix}` });

describe('Lua scripts', () => {
  it('every script has a spec, every spec a script', () => {
    assert.deepEqual(SCRIPTS.map((s) => s.name).sort(), files);
  });

  for (const spec of SCRIPTS) {
    it(`${spec.name}.lua: the header lists the arguments the spec lays out`, () => {
      const lua = readFileSync(new URL(`${spec.name}.lua`, LUA_DIR), 'utf8');
      for (let n = 1; n <= 4; n++) {
        const items = Array.from({ length: n }, (_, i) => tagged(`#${i + 1}`));
        assert.deepEqual(scriptArgs(spec, tagged(''), items), headerArgs(lua, n), `${n} items`);
      }
    });
  }

  it('the source Redis gets has every @include resolved', () => {
    const shared = readFileSync(new URL('includes/is_queue.lua', LUA_DIR), 'utf8');
    for (const name of files) {
      const file = readFileSync(new URL(`${name}.lua`, LUA_DIR), 'utf8');
      const source = scriptSource(name);
      assert.doesNotMatch(source, /@include/, name);
      assert.equal(source.includes(shared), file.includes('@include "includes/is_queue.lua"'));
    }
  });

  it('the queue type check is written once, in the include', () => {
    for (const name of ['send', 'send_many', 'group_send']) {
      const file = readFileSync(new URL(`${name}.lua`, LUA_DIR), 'utf8');
      assert.doesNotMatch(file, /'TYPE'/, name);
      assert.ok(scriptSource(name).includes("redis.call('TYPE'"), name);
    }
  });
});
