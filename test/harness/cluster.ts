/**
 * A real Redis Cluster for tests: redis-server processes in cluster mode on free loopback ports
 * (client and bus port both picked free, never port + 10000), slots assigned, replicas attached,
 * and fault helpers: kill, restart, promotion timing, live slot migration, a new master.
 *
 *   const cluster = await startCluster({ masters: 3, replicasPerMaster: 1 });
 *   after(() => cluster.stop());
 *
 * Readiness is polled (CLUSTER INFO, CLUSTER NODES, INFO replication on every live node) until
 * every node agrees; nothing waits on a sleep. Processes come from ./redis.ts, so they die with
 * this process however it ends.
 */
import calculateSlot from 'cluster-key-slot';
import { LOOPBACK, freePort } from './ports.ts';
import { launchServer, redisCommand, stopAll, type RedisServer, type Reply } from './redis.ts';
import { waitFor } from './wait.ts';

export const SLOTS = 16384;

export interface ClusterOptions {
  masters?: number;
  replicasPerMaster?: number;
  /** `cluster-node-timeout`: how long a node must be unreachable before failover starts. */
  nodeTimeoutMs?: number;
  /** `cluster-require-full-coverage`: with `no` (default) healthy masters serve while one fails. */
  requireFullCoverage?: boolean;
  /** Extra redis-server arguments for every node, e.g. `['--maxmemory', '10mb']`. */
  args?: string[];
}

/** A node as started; its role changes with failovers, so ask `view()` / `masters()` for it. */
export interface ClusterNode {
  readonly server: RedisServer;
  readonly host: string;
  readonly port: number;
  readonly busPort: number;
  /** The node's cluster id (kept across restarts: nodes.conf lives in the server's dir). */
  readonly id: string;
}

/** One node as the cluster sees it (a line of CLUSTER NODES). */
export interface NodeView {
  id: string;
  port: number;
  role: 'master' | 'replica';
  /** The master's id, for a replica. */
  masterId: string | undefined;
  /** Flagged `fail` by the cluster (a majority of masters agreed it is down). */
  failed: boolean;
  /** Inclusive slot ranges it serves (migrating/importing markers left out). */
  slots: [number, number][];
}

export interface Promotion {
  /** The replica that is now master of the killed node's slots. */
  node: ClusterNode;
  killedAt: number;
  promotedAt: number;
  /** promotedAt − killedAt. */
  ms: number;
}

export interface Cluster {
  /** Every node started (killed ones included); `addMaster` appends. */
  readonly nodes: ClusterNode[];
  /** `[host, port]` of every node: the shape of chanlayer's `{ cluster }` hosts entry. */
  startupNodes(): [string, number][];
  /** The cluster as one live node sees it. */
  view(): Promise<NodeView[]>;
  /** Live masters owning slots, as the cluster sees them now. */
  masters(): Promise<ClusterNode[]>;
  /** Live replicas of `master`. */
  replicasOf(master: ClusterNode): Promise<ClusterNode[]>;
  /** The master serving `slot` now. */
  ownerOf(slot: number): Promise<ClusterNode>;
  /**
   * Waits until the cluster is healthy and every live node agrees on it: state:ok everywhere,
   * the same view of roles, masters, slots and failed nodes on each, no node half-known
   * (handshake, fail?), every slot served by a live master, every live replica in sync.
   */
  settled(timeoutMs?: number): Promise<void>;
  /** SIGKILL `node`; the kill time is kept for `promotedWithin`. */
  kill(node: ClusterNode): Promise<{ killedAt: number }>;
  /**
   * Waits until one of the killed master's replicas is master (its own CLUSTER NODES says
   * `myself,master` and lists the killed node's first slot), polling every 25 ms.
   */
  promotedWithin(killed: ClusterNode, timeoutMs?: number): Promise<Promotion>;
  /**
   * Starts a killed node again on its port with its nodes.conf. A master whose slots went to a
   * replica comes back as that replica's replica (Redis demotes it); returns once settled.
   */
  restart(node: ClusterNode): Promise<void>;
  /**
   * Live resharding of one slot, as `redis-cli --cluster reshard` does it: SETSLOT IMPORTING on
   * `to`, MIGRATING on the owner, MIGRATE … KEYS in batches until the slot is empty, then
   * SETSLOT NODE on `to`, the old owner and every other master; returns once all nodes agree.
   */
  migrateSlot(
    slot: number,
    to: ClusterNode,
    opts?: { batchSize?: number },
  ): Promise<{ from: ClusterNode; keys: number }>;
  /** A new empty master joined by CLUSTER MEET, known to every node, settled, ready for slots. */
  addMaster(): Promise<ClusterNode>;
  /** Kill every node and remove their dirs. */
  stop(): Promise<void>;
}

/**
 * The cluster slot of `key` (CRC16 of the key or of its hash tag, modulo 16384): the function
 * ioredis and the layer place keys by (test/cluster-harness.test.ts checks it against Redis).
 */
export const slotOf: (key: string | Buffer) => number = calculateSlot;

/** Parse CLUSTER NODES; `myself` is dropped from the flags so views from any node compare equal. */
export function parseClusterNodes(text: string): (NodeView & { flags: string[] })[] {
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const [id = '', address = '', flagText = '', master = '-', , , , , ...slotFields] =
        line.split(' ');
      const flags = flagText.split(',').filter((f) => f !== 'myself');
      return {
        id,
        port: Number(/:(\d+)@/.exec(address)?.[1]),
        role: flags.includes('slave') ? 'replica' : 'master',
        masterId: master === '-' ? undefined : master,
        failed: flags.includes('fail'),
        flags,
        slots: slotFields
          .filter((f) => !f.startsWith('['))
          .map((f): [number, number] => {
            const [lo, hi = lo] = f.split('-').map(Number) as [number, number?];
            return [lo, hi];
          }),
      };
    });
}

const clusterNodesOf = async (port: number): Promise<ReturnType<typeof parseClusterNodes>> =>
  parseClusterNodes(String(await redisCommand(port, ['CLUSTER', 'NODES'])));

const infoField = (reply: Reply, field: string): string | undefined =>
  new RegExp(`^${field}:(.*)\r?$`, 'm').exec(String(reply))?.[1];

const servesSlot = (v: NodeView, slot: number): boolean =>
  v.slots.some(([lo, hi]) => lo <= slot && slot <= hi);

/** Start a cluster of `masters` × (1 + `replicasPerMaster`) nodes and wait until it is settled. */
export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const {
    masters: masterCount = 3,
    replicasPerMaster = 1,
    nodeTimeoutMs = 1000,
    requireFullCoverage = false,
    args = [],
  } = opts;
  if (masterCount < 1 || masterCount > SLOTS)
    throw new Error(`masters out of range: ${masterCount}`);

  const nodes: ClusterNode[] = [];
  /** Per killed node: when, and (for a master) a slot it served and its replicas then. */
  const kills = new Map<ClusterNode, { at: number; slot?: number; replicas: ClusterNode[] }>();
  const isLive = (n: ClusterNode): boolean => n.server.pid !== undefined;
  const live = (): ClusterNode[] => nodes.filter(isLive);
  const byId = (id: string): ClusterNode => {
    const node = nodes.find((n) => n.id === id);
    if (!node) throw new Error(`unknown cluster node ${id}`);
    return node;
  };
  const cmd = (node: ClusterNode, command: string[]): Promise<Reply> =>
    redisCommand(node.port, command);

  const startNode = async (): Promise<ClusterNode> => {
    // The bus port is chosen here; a clash with another process shows as a failed start.
    const busPort = await freePort();
    const server = await launchServer((_port, dir) => [
      '--dir',
      dir,
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      'nodes.conf',
      '--cluster-port',
      String(busPort),
      '--cluster-node-timeout',
      String(nodeTimeoutMs),
      '--cluster-require-full-coverage',
      requireFullCoverage ? 'yes' : 'no',
      // A replica may always take over, however long since it heard from its master.
      '--cluster-replica-validity-factor',
      '0',
      // Replicas stay where the test put them.
      '--cluster-allow-replica-migration',
      'no',
      '--cluster-announce-ip',
      LOOPBACK,
      '--repl-diskless-sync-delay',
      '0',
      ...args,
    ]);
    let id: string;
    try {
      id = String(await redisCommand(server.port, ['CLUSTER', 'MYID']));
    } catch (err) {
      await server.stop();
      throw err;
    }
    return { server, host: server.host, port: server.port, busPort, id };
  };

  /** CLUSTER MEET from a live member, then wait until every node knows every other. */
  const meet = async (newcomers: ClusterNode[], via: ClusterNode): Promise<void> => {
    for (const n of newcomers) {
      await cmd(via, ['CLUSTER', 'MEET', LOOPBACK, String(n.port), String(n.busPort)]);
    }
    await waitFor(
      async () => {
        for (const n of live()) {
          const seen = await clusterNodesOf(n.port);
          if (seen.length !== nodes.length) return false;
          if (seen.some((v) => v.flags.includes('handshake') || v.flags.includes('noaddr')))
            return false;
        }
        return true;
      },
      {
        timeoutMs: 30_000,
        intervalMs: 25,
        what: `${nodes.length} cluster nodes to know each other`,
      },
    );
  };

  const settled = async (timeoutMs = 30_000): Promise<void> => {
    let why = '';
    await waitFor(
      async () => {
        let reference: string | undefined;
        for (const n of live()) {
          const info = await cmd(n, ['CLUSTER', 'INFO']);
          if (infoField(info, 'cluster_state') !== 'ok') {
            why = `:${n.port} cluster_state ${infoField(info, 'cluster_state')}`;
            return false;
          }
          const seen = await clusterNodesOf(n.port);
          if (seen.length !== nodes.length) {
            why = `:${n.port} knows ${seen.length} of ${nodes.length} nodes`;
            return false;
          }
          const unsure = seen.find((v) => v.flags.some((f) => /handshake|noaddr|fail\?/.test(f)));
          if (unsure) {
            why = `:${n.port} sees :${unsure.port} as ${unsure.flags.join(',')}`;
            return false;
          }
          const key = JSON.stringify(
            seen
              .map(({ id, role, masterId, failed, slots }) => ({
                id,
                role,
                masterId,
                failed,
                slots,
              }))
              .sort((a, b) => a.id.localeCompare(b.id)),
          );
          if (reference !== undefined && key !== reference) {
            why = `:${n.port} disagrees with the first live node`;
            return false;
          }
          reference = key;
          const me = seen.find((v) => v.id === n.id);
          if (me?.role === 'replica' && seen.some((v) => v.id === me.masterId && !v.failed)) {
            const link = infoField(await cmd(n, ['INFO', 'replication']), 'master_link_status');
            if (link !== 'up') {
              why = `replica :${n.port} master_link_status ${link}`;
              return false;
            }
          }
        }
        const view: NodeView[] = reference === undefined ? [] : JSON.parse(reference);
        const served = view
          .filter((v) => v.role === 'master' && !v.failed)
          .flatMap((v) => v.slots)
          .reduce((sum, [lo, hi]) => sum + hi - lo + 1, 0);
        if (served !== SLOTS) {
          why = `${served} of ${SLOTS} slots served by live masters`;
          return false;
        }
        return true;
      },
      { timeoutMs, intervalMs: 25, what: () => `the cluster to settle (${why})` },
    );
  };

  const view = async (): Promise<NodeView[]> => {
    let lastError: unknown = new Error('no live node');
    for (const n of live()) {
      try {
        return (await clusterNodesOf(n.port)).map(({ flags: _flags, ...v }) => v);
      } catch (err) {
        lastError = err;
      }
    }
    throw lastError;
  };

  const cluster: Cluster = {
    nodes,
    startupNodes: () => nodes.map((n) => [n.host, n.port]),
    view,
    async masters() {
      return (await view())
        .filter((v) => v.role === 'master' && !v.failed && v.slots.length > 0)
        .map((v) => byId(v.id));
    },
    async replicasOf(master) {
      return (await view())
        .filter((v) => v.masterId === master.id && !v.failed)
        .map((v) => byId(v.id))
        .filter(isLive);
    },
    async ownerOf(slot) {
      const owner = (await view()).find((v) => v.role === 'master' && servesSlot(v, slot));
      if (!owner) throw new Error(`no master serves slot ${slot}`);
      return byId(owner.id);
    },
    settled,
    async kill(node) {
      // Taken before the kill, so promotedWithin works however late it is called.
      const before = await view().catch(() => []);
      const slot = before.find((v) => v.id === node.id)?.slots[0]?.[0];
      const replicas = before
        .filter((v) => v.masterId === node.id && !v.failed)
        .map((v) => byId(v.id));
      const at = Date.now();
      await node.server.kill('SIGKILL');
      kills.set(node, { at, slot, replicas });
      return { killedAt: at };
    },
    async promotedWithin(killed, timeoutMs = 30_000) {
      const kill = kills.get(killed);
      if (kill === undefined) throw new Error(`:${killed.port} was not killed by this cluster`);
      const { at: since, slot } = kill;
      if (slot === undefined) throw new Error(`:${killed.port} served no slots`);
      const candidates = kill.replicas.filter(isLive);
      let promoted: ClusterNode | undefined;
      await waitFor(
        async () => {
          const answers = await Promise.allSettled(candidates.map((c) => clusterNodesOf(c.port)));
          const at = answers.findIndex(
            (a, i) =>
              a.status === 'fulfilled' &&
              a.value.some(
                (v) => v.id === candidates[i]!.id && v.role === 'master' && servesSlot(v, slot),
              ),
          );
          promoted = candidates[at];
          return promoted !== undefined;
        },
        { timeoutMs, intervalMs: 25, what: `a replica of :${killed.port} to be promoted` },
      );
      const promotedAt = Date.now();
      return { node: promoted!, killedAt: since, promotedAt, ms: promotedAt - since };
    },
    async restart(node) {
      await node.server.restart();
      kills.delete(node);
      await settled();
    },
    async migrateSlot(slot, to, { batchSize = 100 } = {}) {
      const from = await cluster.ownerOf(slot);
      if (from === to) return { from, keys: 0 };
      await cmd(to, ['CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', from.id]);
      await cmd(from, ['CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', to.id]);
      let keys = 0;
      for (;;) {
        const batch = (await cmd(from, [
          'CLUSTER',
          'GETKEYSINSLOT',
          String(slot),
          String(batchSize),
        ])) as string[];
        if (batch.length === 0) break;
        await redisCommand(
          from.port,
          ['MIGRATE', to.host, String(to.port), '', '0', '5000', 'KEYS', ...batch],
          { timeoutMs: 10_000 },
        );
        keys += batch.length;
      }
      // Target first (it bumps its epoch and owns the slot), then the source, then the other
      // masters; replicas refuse SETSLOT ("only with masters") and learn it by gossip.
      const others = (await cluster.masters()).filter((m) => m !== to && m !== from);
      for (const m of [to, from, ...others]) {
        await cmd(m, ['CLUSTER', 'SETSLOT', String(slot), 'NODE', to.id]);
      }
      await waitFor(
        async () => {
          for (const n of live()) {
            const owner = (await clusterNodesOf(n.port)).find((v) => servesSlot(v, slot));
            if (owner?.id !== to.id) return false;
          }
          return true;
        },
        {
          timeoutMs: 30_000,
          intervalMs: 25,
          what: `every node to see slot ${slot} at :${to.port}`,
        },
      );
      return { from, keys };
    },
    async addMaster() {
      const via = live()[0];
      if (!via) throw new Error('no live node to join through');
      const node = await startNode();
      nodes.push(node);
      await meet([node], via);
      // A new master reports cluster_state:ok only ~2 s after start (Redis's writable delay);
      // until then it answers CLUSTERDOWN, MIGRATE into it included.
      await settled();
      return node;
    },
    stop: () => stopAll(nodes.map((n) => n.server)),
  };

  try {
    const perMaster = 1 + replicasPerMaster;
    // One at a time: each is in `nodes` (stopped on failure) as soon as it is up.
    for (let i = 0; i < masterCount * perMaster; i++) nodes.push(await startNode());
    const masters = nodes.slice(0, masterCount);
    // Distinct epochs before the nodes meet, as redis-cli does: no collision to resolve later.
    for (const [i, m] of masters.entries()) {
      await cmd(m, ['CLUSTER', 'SET-CONFIG-EPOCH', String(i + 1)]);
      const lo = Math.floor((i * SLOTS) / masterCount);
      const hi = Math.floor(((i + 1) * SLOTS) / masterCount) - 1;
      await cmd(m, ['CLUSTER', 'ADDSLOTSRANGE', String(lo), String(hi)]);
    }
    await meet(nodes.slice(1), nodes[0]!);
    for (const [i, replica] of nodes.slice(masterCount).entries()) {
      await cmd(replica, ['CLUSTER', 'REPLICATE', masters[i % masterCount]!.id]);
    }
    await settled();
    return cluster;
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}
