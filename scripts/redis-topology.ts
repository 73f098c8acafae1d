/**
 * Start throwaway Redis processes on 127.0.0.1 for trying chanlayer by hand.
 *
 *   npx tsx scripts/redis-topology.ts sentinel [--master-name mymaster] [--down-after 1000] [--failover-timeout 3000]
 *   npx tsx scripts/redis-topology.ts servers [N] [--password PW]
 *
 * Add --pubsub to print a RedisPubSubChannelLayer config instead of RedisChannelLayer.
 * Prints the addresses and a CHANNEL_LAYERS snippet; reads commands on stdin
 * (`kill`, `restart`); Ctrl-C stops everything. Processes come from the test
 * harness, so they also die if this script is killed.
 */
import readline from 'node:readline';
import { parseArgs } from 'node:util';
import {
  startRedis,
  startSentinelTopology,
  type RedisServer,
  type SentinelTopology,
} from '../test/harness/redis.ts';

const USAGE = `usage: npx tsx scripts/redis-topology.ts sentinel [--master-name NAME] [--down-after MS] [--failover-timeout MS] [--pubsub]
       npx tsx scripts/redis-topology.ts servers [N] [--password PW] [--pubsub]`;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'master-name': { type: 'string', default: 'mymaster' },
    'down-after': { type: 'string', default: '1000' },
    'failover-timeout': { type: 'string', default: '3000' },
    password: { type: 'string' },
    pubsub: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

const [mode, countArg = '1'] = positionals;
if (values.help || (mode !== 'sentinel' && mode !== 'servers')) {
  console.error(USAGE);
  process.exit(values.help ? 0 : 2);
}

const backend = values.pubsub ? 'chanlayer.RedisPubSubChannelLayer' : 'chanlayer.RedisChannelLayer';
const channelLayers = (hosts: unknown[]): string =>
  `CHANNEL_LAYERS='${JSON.stringify({ default: { BACKEND: backend, CONFIG: { hosts } } })}'`;
const now = (): string => new Date().toISOString().slice(11, 23);
const describe = (s: RedisServer): string => `${s.url}  (pid ${s.pid ?? 'down'})`;

let stop: () => Promise<void>;
let onCommand: (cmd: string, arg?: string) => Promise<void>;

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
  onCommand = async (cmd, arg) => {
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
  const [cmd = '', arg] = line.trim().split(/\s+/);
  if (cmd) onCommand(cmd, arg).catch((err: Error) => console.error(err.message));
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
