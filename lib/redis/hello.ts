/**
 * What a server says about itself, asked without `INFO` or `ROLE` (both `@dangerous`: a
 * least-privilege ACL user such as `+@all -@dangerous` may not run them — README).
 *
 * `HELLO` with no argument (`@fast @connection`, allowed to every user, answered while loading)
 * gives the version and the role on Redis ≥ 6. Redis 5 has no `HELLO` — and no ACL, so there
 * `INFO` is always allowed and is asked instead.
 *
 * `useHelloReadyCheck` makes ioredis's per-connection ready check use the same: ioredis asks
 * `INFO`, and under such a user prints a console warning on every (re)connect and skips the
 * check — which on a Sentinel connection is also what verifies that the server reached is the
 * master. The check keeps that role verification, through HELLO.
 */
import { Command, type Redis } from 'ioredis';
import { replaceReadyCheck } from './ioredis-internals.ts';

export interface ServerHello {
  /** `[major, minor]`, if the server said. */
  version: [number, number] | undefined;
  /** `'master'` or `'slave'` (INFO's and ioredis's word for a replica). */
  role: string;
}

/** HELLO's reply in RESP2: `[name, value, name, value, …]`. */
function fromHello(reply: unknown): Map<string, string> {
  const out = new Map<string, string>();
  if (!Array.isArray(reply)) return out;
  for (let i = 0; i + 1 < reply.length; i += 2) out.set(String(reply[i]), String(reply[i + 1]));
  return out;
}

/** INFO's `name:value` lines. */
function fromInfo(info: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of info.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) out.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return out;
}

/**
 * One command, written at once: during the ready check (status 'connect') ioredis writes only
 * commands flagged `loading` and handshake commands, and its auto-pipeline would hold them.
 */
function ask(client: Redis, name: string, args: string[] = []): Promise<unknown> {
  const command = new Command(name, args, { replyEncoding: 'utf8' });
  void client.sendCommand(command);
  return command.promise;
}

/** Version and role of the server `client` talks to (HELLO; INFO before Redis 6). */
export async function serverHello(client: Redis): Promise<ServerHello> {
  let fields: Map<string, string>;
  try {
    fields = fromHello(await ask(client, 'hello'));
  } catch (err) {
    if (!/unknown command/i.test(String((err as Error)?.message))) throw err;
    const info = fromInfo(String(await ask(client, 'info', ['server'])));
    const replication = fromInfo(String(await ask(client, 'info', ['replication'])));
    fields = new Map([
      ['version', info.get('redis_version') ?? ''],
      ['role', replication.get('role') ?? ''],
    ]);
  }
  const parsed = /^(\d+)\.(\d+)/.exec(fields.get('version') ?? '');
  const role = fields.get('role') ?? '';
  return {
    version: parsed ? [Number(parsed[1]), Number(parsed[2])] : undefined,
    role: role === 'replica' ? 'slave' : role,
  };
}

/**
 * Replaces `client`'s ready check (ioredis-internals.ts) by a HELLO, whose role the Sentinel
 * connector verifies as it does INFO's. What it loses: INFO's `loading` flag — a server still
 * loading its dataset answers LOADING, which every path here already treats as connection
 * trouble to retry (reader) or report (commands).
 */
export function useHelloReadyCheck(client: Redis): void {
  replaceReadyCheck(client, (callback) => {
    serverHello(client).then(
      ({ role }) => callback(null, role ? { role } : {}),
      (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
    );
  });
}
