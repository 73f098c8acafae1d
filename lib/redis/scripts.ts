/**
 * Lua scripts as first-class commands. Each `lib/scripts/<name>.lua` is defined on a client
 * with ioredis `defineCommand` (EVALSHA, falling back to EVAL on NOSCRIPT) and called with a
 * dynamic key count, so one script serves any number of keys. `{ buffers: true }` returns bulk
 * replies as Buffers (binary payloads) instead of UTF-8 strings.
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

/**
 * The client command that runs script `name`: namespaced, so a script called e.g. `send` never
 * meets a method ioredis already has.
 */
export function scriptCommand(name: string): string {
  return `chanlayer_${name}`;
}

type ScriptFn = (numKeys: number, ...args: Array<string | Buffer | number>) => Promise<unknown>;

export function runScript(
  client: Redis,
  name: string,
  keys: ReadonlyArray<string | Buffer>,
  args: ReadonlyArray<string | Buffer | number>,
  opts: { buffers?: boolean } = {},
): Promise<unknown> {
  const commands = client as unknown as Record<string, ScriptFn | undefined>;
  const command = scriptCommand(name);
  if (commands[command] === undefined) client.defineCommand(command, { lua: source(name) });
  const fn = commands[opts.buffers ? `${command}Buffer` : command]!;
  return fn.call(client, keys.length, ...keys, ...args);
}
