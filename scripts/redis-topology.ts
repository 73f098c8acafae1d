/**
 * Start throwaway Redis processes on 127.0.0.1 for trying chanlayer by hand.
 *
 *   npx tsx scripts/redis-topology.ts sentinel [--master-name mymaster] [--down-after 1000] [--failover-timeout 3000]
 *   npx tsx scripts/redis-topology.ts servers [N] [--password PW]
 *   npx tsx scripts/redis-topology.ts cluster [--masters 3] [--replicas 1] [--node-timeout 1000]
 *
 * Add --pubsub to print a RedisPubSubChannelLayer config instead of RedisChannelLayer.
 * Prints the addresses and a CHANNEL_LAYERS snippet; reads commands on stdin
 * (`kill`, `restart`, and for a cluster `migrate`, `add`); Ctrl-C stops everything. Processes come from the test
 * harness, so they also die if this script is killed.
 */
import readline from 'node:readline';
import { parseArgs } from 'node:util';
import { startCluster, type Cluster, type ClusterNode } from '../test/harness/cluster.ts';
import {
  startRedis,
  startSentinelTopology,
  type RedisServer,
  type SentinelTopology,
} from '../test/harness/redis.ts';

const USAGE = `usage: npx tsx scripts/redis-topology.ts sentinel [--master-name NAME] [--down-after MS] [--failover-timeout MS] [--pubsub]
       npx tsx scripts/redis-topology.ts servers [N] [--password PW] [--pubsub]
       npx tsx scripts/redis-topology.ts cluster [--masters N] [--replicas N] [--node-timeout MS] [--pubsub]`;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'master-name': { type: 'string', default: 'mymaster' },
    'down-after': { type: 'string', default: '1000' },
    'failover-timeout': { type: 'string', default: '3000' },
    password: { type: 'string' },
    masters: { type: 'string', default: '3' },
    replicas: { type: 'string', default: '1' },
    'node-timeout': { type: 'string', default: '1000' },
    pubsub: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

const [mode, countArg = '1'] = positionals;
if (values.help || (mode !== 'sentinel' && mode !== 'servers' && mode !== 'cluster')) {
  console.error(USAGE);
  process.exit(values.help ? 0 : 2);
}

const backend = values.pubsub ? 'chanlayer.RedisPubSubChannelLayer' : 'chanlayer.RedisChannelLayer';
const channelLayers = (hosts: unknown[]): string =>
  `CHANNEL_LAYERS='${JSON.stringify({ default: { BACKEND: backend, CONFIG: { hosts } } })}'`;
const now = (): string => new Date().toISOString().slice(11, 23);
const describe = (s: RedisServer): string => `${s.url}  (pid ${s.pid ?? 'down'})`;

let stop: () => Promise<void>;
let onCommand: (cmd: string, args: string[]) => Promise<void>;

if (mode === 'sentinel') {
  const topo: SentinelTopology = await startSentinelTopology({
    masterName: values['master-name'],
    downAfterMs: Number(values['down-after']),
    failoverTimeoutMs: Number(values['failover-timeout']),
  });
  console.log(`Sentinel topology "${topo.masterName}" (quorum 2)`);
  console.log(`  master    ${describe(topo.master)}`);
  console.log(`  replica   ${describe(topo.replica)}`);
  for (const s of topo.sentinelServers)
    console.log(`  sentinel  ${s.host}:${s.port}  (pid ${s.pid})`);
  console.log(`\n${channelLayers([{ sentinels: topo.sentinels, masterName: topo.masterName }])}\n`);
  console.log('Commands: "kill" kills the current master, "restart" restarts killed servers.');

  // Report failovers as the sentinels see them, so a user can time their client's recovery.
  let masterPort = topo.master.port;
  const watch = setInterval(() => {
    topo.currentMasterPort().then(
      (port) => {
        if (port !== masterPort) console.log(`${now()} master is now 127.0.0.1:${port}`);
        masterPort = port;
      },
      () => {}, // all sentinels busy or down: try again next tick
    );
  }, 250);
  stop = async () => {
    clearInterval(watch);
    await topo.stop();
  };
  onCommand = async (cmd) => {
    if (cmd === 'kill') {
      const { port } = await topo.killMaster();
      console.log(`${now()} killed master 127.0.0.1:${port}`);
    } else if (cmd === 'restart') {
      await restartDown([topo.master, topo.replica, ...topo.sentinelServers]);
    } else console.log('commands: kill, restart');
  };
} else if (mode === 'cluster') {
  const cluster: Cluster = await startCluster({
    masters: Number(values.masters),
    replicasPerMaster: Number(values.replicas),
    nodeTimeoutMs: Number(values['node-timeout']),
  });
  const describeNode = async (n: ClusterNode): Promise<string> => {
    const v = (await cluster.view()).find((x) => x.id === n.id);
    const role =
      v?.role === 'replica'
        ? `replica of :${cluster.nodes.find((m) => m.id === v.masterId)?.port}`
        : `master ${v?.slots.map(([lo, hi]) => `${lo}-${hi}`).join(',') || '(no slots)'}`;
    return `  ${n.server.url}  ${role}  (pid ${n.server.pid ?? 'down'}, id ${n.id.slice(0, 8)})`;
  };
  const list = async (): Promise<void> => {
    for (const n of cluster.nodes) console.log(await describeNode(n));
  };
  console.log('Redis Cluster');
  await list();
  console.log(`\n${channelLayers([{ cluster: cluster.startupNodes() }])}\n`);
  console.log(
    'Commands: "kill [PORT]" kills a master (default: the owner of slot 0) and times the promotion,\n' +
      '"restart" restarts killed nodes (a replaced master rejoins as a replica), "migrate SLOT PORT"\n' +
      'moves a slot live, "add" joins a new empty master, "nodes" lists the nodes.',
  );
  stop = () => cluster.stop();
  onCommand = async (cmd, [arg, arg2]) => {
    const byPort = (port: string | undefined): ClusterNode | undefined =>
      cluster.nodes.find((n) => n.port === Number(port));
    if (cmd === 'kill') {
      const victim = arg ? byPort(arg) : await cluster.ownerOf(0);
      if (!victim) return console.log(`no node on port ${arg}`);
      const wasMaster = (await cluster.masters()).includes(victim);
      await cluster.kill(victim);
      console.log(`${now()} killed ${victim.server.url}`);
      if (!wasMaster) return;
      const { node, ms } = await cluster.promotedWithin(victim);
      console.log(`${now()} ${node.server.url} is master after ${ms} ms`);
    } else if (cmd === 'restart') {
      for (const n of cluster.nodes.filter((x) => x.server.pid === undefined)) {
        await cluster.restart(n);
        console.log(`${now()} restarted${await describeNode(n)}`);
      }
    } else if (cmd === 'migrate') {
      const slot = Number(arg);
      const to = byPort(arg2);
      if (!to || !Number.isInteger(slot)) return console.log('usage: migrate SLOT PORT');
      const { from, keys } = await cluster.migrateSlot(slot, to);
      console.log(`${now()} slot ${slot} moved from :${from.port} to :${to.port} (${keys} keys)`);
    } else if (cmd === 'add') {
      const node = await cluster.addMaster();
      console.log(`${now()} added master ${node.server.url}`);
    } else if (cmd === 'nodes') {
      await list();
    } else console.log('commands: kill [PORT], restart, migrate SLOT PORT, add, nodes');
  };
} else {
  const count = Number(countArg);
  if (!Number.isInteger(count) || count < 1) {
    console.error(USAGE);
    process.exit(2);
  }
  const group = await startRedis({ count, password: values.password });
  group.servers.forEach((s, i) => console.log(`  [${i}] ${describe(s)}`));
  const auth = values.password === undefined ? '' : `:${encodeURIComponent(values.password)}@`;
  const hosts = group.servers.map((s) => `redis://${auth}${s.host}:${s.port}`);
  console.log(`\n${channelLayers(hosts)}\n`);
  console.log('Commands: "kill I" kills server I, "restart" restarts killed servers.');
  stop = () => group.stop();
  onCommand = async (cmd, [arg]) => {
    const server = group.servers[Number(arg)];
    if (cmd === 'kill' && server) {
      await server.kill();
      console.log(`${now()} killed ${server.url}`);
    } else if (cmd === 'restart') {
      await restartDown(group.servers);
    } else console.log(`commands: kill 0..${count - 1}, restart`);
  };
}

async function restartDown(servers: RedisServer[]): Promise<void> {
  for (const s of servers.filter((x) => x.pid === undefined)) {
    await s.restart();
    console.log(`${now()} restarted ${describe(s)}`);
  }
}

// The harness unrefs its processes so tests can't hang on them; here we want to stay up.
const keepAlive = setInterval(() => {}, 1 << 30);

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const [cmd = '', ...args] = line.trim().split(/\s+/);
  if (cmd) onCommand(cmd, args).catch((err: Error) => console.error(err.message));
});

let stopping = false;
const shutdown = (): void => {
  if (stopping) return;
  stopping = true;
  clearInterval(keepAlive);
  lines.close();
  stop().then(
    () => {
      console.log('stopped');
      process.exit(0);
    },
    (err: Error) => {
      console.error(err.message);
      process.exit(1);
    },
  );
};
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
