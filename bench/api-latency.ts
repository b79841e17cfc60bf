/**
 * Benchmark: REST API latency (p50/p99) of `GET /instances` and `GET /instances/{name}` with 1,000 defined
 * (not running) instances and 50 concurrent clients on the daemon's UNIX socket, side by side with the same
 * calls made in-process on the core (the floor: what the API adds is HTTP, JSON and scheduling), plus the
 * daemon's memory (RSS) with 1,000 instances defined, and a list right after a change (the daemon caches the
 * serialized list between changes, so this is the rebuild). Writes bench/results/api-latency.json.
 * Usage: node bench/api-latency.ts [instances=1000] [clients=50]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { statePaths } from '../src/lib/paths.ts';
import { reconcile } from '../src/app/reconcile.ts';
import { createCoreContext } from '../src/core/context.ts';
import { InstanceService } from '../src/instances/service.ts';
import { startDaemon } from '../test/helpers/daemon.ts';
import { testGuest } from '../test/helpers/test-guest.ts';
import { writeResult } from './results.ts';

const count = Number(process.argv[2] ?? 1000);
const concurrency = Number(process.argv[3] ?? 50);
const guest = testGuest();

const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const summary = (xs: number[]) => ({ n: xs.length, p50Ms: +percentile(xs, 50).toFixed(2), p99Ms: +percentile(xs, 99).toFixed(2), maxMs: +Math.max(...xs).toFixed(2) });
const rssKiB = (pid: number, field = 'VmRSS') => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);

function get(agent: Agent, socket: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request({ socketPath: socket, path, agent }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - t0) : reject(new Error(`${path}: ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

function patch(socket: string, path: string, body: unknown): Promise<void> {
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(JSON.stringify(body));
    const req = request({ socketPath: socket, path, method: 'PATCH', headers: { 'content-type': 'application/json', 'content-length': payload.length } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`PATCH ${path}: ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** `clients` loops, each doing `perClient` requests one after the other; returns every latency and the wall time. */
async function load(socket: string, perClient: number, path: (client: number, n: number) => string, clients = concurrency): Promise<{ latencies: number[]; wallMs: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const latencies: number[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let n = 0; n < perClient; n++) latencies.push(await get(agent, socket, path(c, n)));
    }),
  );
  agent.destroy();
  return { latencies, wallMs: performance.now() - t0 };
}

async function main(): Promise<void> {
  const home = mkdtempSync(join(tmpdir(), 'virtnode-bench-api-'));
  try {
    const paths = statePaths(home);
    const service = new InstanceService(createCoreContext(paths, { reconcile }));
    const names = Array.from({ length: count }, (_, i) => `vm-${String(i).padStart(4, '0')}`);
    const t0 = performance.now();
    for (const name of names) await service.create({ name, memory: '128M', kernel: guest.kernel, initrd: guest.initrd, cmdline: guest.cmdline });
    const defineMs = performance.now() - t0;

    // The floor: the same reads in-process, one after the other.
    const inProcessList: number[] = [];
    const inProcessInfo: number[] = [];
    for (let i = 0; i < 20; i++) {
      const a = performance.now();
      await service.list();
      inProcessList.push(performance.now() - a);
    }
    for (let i = 0; i < 500; i++) {
      const a = performance.now();
      await service.get(names[(i * 7919) % count]!);
      inProcessInfo.push(performance.now() - a);
    }

    const daemon = await startDaemon(home);
    const pid = daemon.child.pid!;
    const idleRssKiB = rssKiB(pid);
    await load(daemon.socket, 2, () => '/instances'); // warm-up
    const list = await load(daemon.socket, 4, () => '/instances');
    const info = await load(daemon.socket, 40, (c, n) => `/instances/${names[(c * 40 + n) * 7919 % count]}`);
    // One client alone: the API's own cost per request, against the in-process floor.
    const listAlone = await load(daemon.socket, 20, () => '/instances', 1);
    const infoAlone = await load(daemon.socket, 500, (_c, n) => `/instances/${names[(n * 7919) % count]}`, 1);
    // The list is served from a cache between changes: this is its cost right after one (a policy change).
    const afterChange: number[] = [];
    const listAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    for (let n = 0; n < 20; n++) {
      await patch(daemon.socket, `/instances/${names[n]}`, { autostart: n % 2 === 0 });
      afterChange.push(await get(listAgent, daemon.socket, '/instances'));
    }
    listAgent.destroy();
    const loadedRssKiB = rssKiB(pid);
    const peakRssKiB = rssKiB(pid, 'VmHWM');
    await daemon.stop('SIGTERM');

    const listApi = summary(list.latencies);
    const infoApi = summary(info.latencies);
    const listFloor = summary(inProcessList);
    const infoFloor = summary(inProcessInfo);
    const result = {
      benchmark: 'api-latency',
      date: new Date().toISOString(),
      host: { load1: Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]) },
      instances: count,
      clients: concurrency,
      defineAllMs: Math.round(defineMs),
      list: {
        api: listApi,
        requestsPerSecond: +((list.latencies.length / list.wallMs) * 1000).toFixed(1),
        oneClient: summary(listAlone.latencies),
        oneClientRightAfterAChange: summary(afterChange),
        inProcess: listFloor,
        oneClientToInProcessP50: +(percentile(listAlone.latencies, 50) / listFloor.p50Ms).toFixed(2),
      },
      info: {
        api: infoApi,
        requestsPerSecond: +((info.latencies.length / info.wallMs) * 1000).toFixed(1),
        oneClient: summary(infoAlone.latencies),
        inProcess: infoFloor,
        oneClientToInProcessP50: +(percentile(infoAlone.latencies, 50) / infoFloor.p50Ms).toFixed(2),
      },
      daemonMemory: { idleRssMiB: +(idleRssKiB / 1024).toFixed(1), afterLoadRssMiB: +(loadedRssKiB / 1024).toFixed(1), peakRssMiB: +(peakRssKiB / 1024).toFixed(1) },
      note: 'api: 50 concurrent clients, so p50/p99 include queueing behind the others (one thread serves them); oneClient: the same requests one at a time; list.oneClientRightAfterAChange: a list asked for right after a PATCH, so the daemon rebuilds it (the list is cached between changes); inProcess: the core called directly, one at a time (list: service.list() only, no views or JSON)',
    };
    writeResult('api-latency', result);
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

await main();
