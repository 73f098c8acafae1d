/**
 * Lua scripts as first-class commands. Each `lib/scripts/<name>.lua` is defined on a client
 * with ioredis `defineCommand` (EVALSHA, falling back to EVAL on NOSCRIPT) and called with a
 * dynamic key count, so one script serves any number of keys. `{ buffers: true }` returns bulk
 * replies as Buffers (binary payloads) instead of UTF-8 strings.
 *
 * A script's KEYS and ARGV are built from its `ScriptSpec`, the machine-readable copy of the
 * script's header (test/scripts.test.ts holds the two together); script-calls.ts has one typed
 * function per script. A `-- @include "<file>"` line is replaced by that file of `lib/scripts/`
 * when the source is loaded, so code shared by scripts is written once.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Command, type Redis } from 'ioredis';

export type ScriptArg = string | Buffer | number;

/**
 * Named slots of KEYS or ARGV, in order: `head` first, then for item 1..n (the call's list:
 * keys, messages) either its `rows` slots together (`ARGV[3j - 1]`, `ARGV[3j]`, …) or one block
 * of n per `columns` name (`ARGV[3 + i]`, `ARGV[3 + n + i]`).
 */
export interface Layout<F extends string, I extends string> {
  readonly head?: readonly F[];
  readonly rows?: readonly I[];
  readonly columns?: readonly I[];
}

/** A script: its file name (without `.lua`) and where its KEYS and ARGV come from. */
export interface ScriptSpec<F extends string = string, I extends string = string> {
  readonly name: string;
  readonly keys: Layout<F, I>;
  readonly argv: Layout<F, I>;
  /** Bulk replies as Buffers. */
  readonly buffers?: boolean;
}

const LUA_DIR = new URL('../scripts/', import.meta.url);
const INCLUDE = /^-- @include "([\w./-]+)"$/gm;
const cache = new Map<string, string>();

/** The source of script `name` as Redis runs it: its includes resolved, loaded once. */
export function scriptSource(name: string): string {
  let lua = cache.get(name);
  if (lua === undefined) {
    lua = readFileSync(new URL(`${name}.lua`, LUA_DIR), 'utf8').replace(INCLUDE, (_, file) =>
      readFileSync(new URL(file, LUA_DIR), 'utf8'),
    );
    cache.set(name, lua);
  }
  return lua;
}

/**
 * The client command that runs `spec`'s script: namespaced, so a script called e.g. `send`
 * never meets a method ioredis already has.
 */
export function scriptCommand(spec: ScriptSpec): string {
  return `chanlayer_${spec.name}`;
}

/** Appends `layout`'s slots to `out`: named values from `fixed`, per-item values from `items`. */
function lay<F extends string, I extends string>(
  out: ScriptArg[],
  layout: Layout<F, I>,
  fixed: Readonly<Record<F, ScriptArg>>,
  items: ReadonlyArray<Readonly<Record<I, ScriptArg>>>,
): void {
  if (layout.head) for (const name of layout.head) out.push(fixed[name]);
  if (layout.rows) for (const item of items) for (const name of layout.rows) out.push(item[name]);
  if (layout.columns)
    for (const name of layout.columns) for (const item of items) out.push(item[name]);
}

/**
 * The arguments of a call of `spec`'s script: the key count, KEYS, ARGV, from `fixed` values
 * and `items` (each item's values).
 */
export function scriptArgs<F extends string, I extends string>(
  spec: ScriptSpec<F, I>,
  fixed: Readonly<Record<F, ScriptArg>>,
  items: ReadonlyArray<Readonly<Record<I, ScriptArg>>>,
): [number, ...ScriptArg[]] {
  const args: [number, ...ScriptArg[]] = [0];
  lay(args, spec.keys, fixed, items);
  args[0] = args.length - 1;
  lay(args, spec.argv, fixed, items);
  return args;
}

/**
 * Defines `specs`' commands on `client`. Done for every script when a connection is made
 * (Shard): ioredis copies a client's commands into each auto-pipeline as it starts one, so a
 * command defined while one is pending is missing from it ("pipeline[functionName] is not a
 * function") when called in the same tick.
 */
export function defineScripts(client: Redis, specs: readonly ScriptSpec[]): void {
  for (const spec of specs)
    client.defineCommand(scriptCommand(spec), { lua: scriptSource(spec.name) });
}

type ScriptFn = (numKeys: number, ...args: ScriptArg[]) => Promise<unknown>;

/** Per spec: its command's name and the method that calls it (no strings built per call). */
const methods = new WeakMap<ScriptSpec, { command: string; method: string }>();

/** Runs `spec`'s script (see scriptArgs); its reply, undecoded. */
export function runScript<F extends string, I extends string>(
  client: Redis,
  spec: ScriptSpec<F, I>,
  fixed: Readonly<Record<F, ScriptArg>>,
  items: ReadonlyArray<Readonly<Record<I, ScriptArg>>> = [],
): Promise<unknown> {
  let names = methods.get(spec);
  if (names === undefined) {
    const command = scriptCommand(spec);
    names = { command, method: spec.buffers ? `${command}Buffer` : command };
    methods.set(spec, names);
  }
  const commands = client as unknown as Record<string, ScriptFn | undefined>;
  if (commands[names.command] === undefined) defineScripts(client, [spec]);
  return commands[names.method]!.apply(client, scriptArgs(spec, fixed, items));
}

/** Per spec: the SHA1 of its source (the EVALSHA argument). */
const shas = new WeakMap<ScriptSpec, string>();

/**
 * Runs `spec`'s script as runScript does, with plain EVALSHA (EVAL on NOSCRIPT) Commands: for a
 * call made seldom in a busy process (the liveness heartbeat). ioredis gives each defined script
 * a Command class of its own; the first one of a new class to reach ioredis's command path after
 * V8 optimised it for the hot path's classes deoptimises it, and a two-process ping-pong's p99
 * stayed about 1.3× for the rest of the run after each heartbeat (docs/performance.md "Liveness
 * and the ping-pong tail"). A plain Command is a class the hot path already uses.
 */
export function runScriptSeldom<F extends string>(
  client: Redis,
  spec: ScriptSpec<F, never>,
  fixed: Readonly<Record<F, ScriptArg>>,
): Promise<unknown> {
  const lua = scriptSource(spec.name);
  let sha = shas.get(spec);
  if (sha === undefined) {
    sha = createHash('sha1').update(lua).digest('hex');
    shas.set(spec, sha);
  }
  const args = scriptArgs(spec, fixed, []);
  const replyEncoding = spec.buffers ? null : 'utf8';
  const send = (command: Command): Promise<unknown> => {
    void client.sendCommand(command);
    return command.promise;
  };
  return send(new Command('evalsha', [sha, ...args], { replyEncoding })).catch((err: unknown) => {
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
    return send(new Command('eval', [lua, ...args], { replyEncoding }));
  });
}
