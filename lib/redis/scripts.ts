/**
 * Lua scripts as first-class commands. Each `lib/scripts/<name>.lua` is defined on a client
 * with ioredis `defineCommand` (EVALSHA, falling back to EVAL on NOSCRIPT) and called with a
 * dynamic key count, so one script serves any number of keys.
 */
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

const cache = new Map<string, string>();

function source(name: string): string {
  let lua = cache.get(name);
  if (lua === undefined) {
    lua = readFileSync(new URL(`../scripts/${name}.lua`, import.meta.url), 'utf8');
    cache.set(name, lua);
  }
  return lua;
}

type ScriptFn = (numKeys: number, ...args: Array<string | Buffer | number>) => Promise<unknown>;

export function runScript(
  client: Redis,
  name: string,
  keys: ReadonlyArray<string | Buffer>,
  args: ReadonlyArray<string | Buffer | number>,
): Promise<unknown> {
  const commands = client as unknown as Record<string, ScriptFn | undefined>;
  let fn = commands[name];
  if (fn === undefined) {
    client.defineCommand(name, { lua: source(name) });
    fn = commands[name]!;
  }
  return fn.call(client, keys.length, ...keys, ...args);
}
