/**
 * Benchmark: a cluster of three simulated hosts (network namespaces on one bridge, real daemons and etcd members,
 * the tiny guest under TCG) and a fourth, standalone host (its own state directory and daemon, not in the cluster),
 * all on this machine, in one run:
 * - placement latency: `virtnode launch tiny --no-wait --target h2` asked on h1 (forwarded to h2) and a scheduled
 *   launch (no --target, asked on h1), from the request to the CLI's answer (a --no-wait launch answers once QEMU
 *   runs the guest on the chosen host; checked), against the same launch on the standalone host; interleaved, the
 *   order rotating each round; medians and ratios cluster/standalone;
 * - a live `virtnode move` of an idle tiny guest (128 MiB, booted) h1 → h2 → h1 ...: the total time and downtime
 *   virtnode reports, and the CLI's wall time; medians (the comparison with the same move done by hand is
 *   bench/migration.ts's);
 * - failover: an on-failure tiny guest on a shared-dir pool; its host's daemon, QEMUs and etcd member are killed
 *   (SIGKILL); the time from the kill to the guest's QEMU running on another host, against the lease TTL (one round:
 *   a round costs a host); the etcd members' memory (RSS) before and after.
 * Writes bench/results/cluster.json. Usage (root, in a private network namespace; needs `ip netns` and the tiny
 * guest, VIRTNODE_TEST_GUEST_DIR):
 *   unshare --net -- bash -c 'ip link set lo up && node bench/cluster.ts [rounds=5]'
 * BENCH_PARTS=move (or placement,move,failover; default all) runs only those parts.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { FAILOVER_KEYS, type FailoverRecord } from '../src/app/cluster-failover.ts';
import { qemuPidsUnder } from '../test/helpers/cli.ts';
import { crashHost, type SimCluster, type SimHost, etcdGet, formCluster, instanceDirOn, listOn, ok, tinyGuestHosts } from '../test/helpers/cluster-hosts.ts';
import { eventually } from '../test/helpers/daemon.ts';
import { SerialShell } from '../test/helpers/serial-shell.ts';
import { writeResult } from './results.ts';

const rounds = Number(process.argv[2] ?? 5);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`rounds: expected a whole number of at least 1, got ${process.argv[2]}`);
const TTL_S = 6;
const PARTS = new Set((process.env['BENCH_PARTS'] ?? 'placement,move,failover').split(','));
const LAUNCH = ['--memory', '128M', '--seed', 'http', '--no-wait', '--cpu-model', 'qemu64'];
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const stats = (xs: number[]) => ({ n: xs.length, medianMs: Math.round(median(xs)), minMs: Math.round(Math.min(...xs)), maxMs: Math.round(Math.max(...xs)), samplesMs: xs.map(Math.round) });
const rssMiB = (pid: number | undefined) => (pid === undefined ? undefined : +(Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024).toFixed(1));
const etcdRss = (hosts: SimHost[]) => Object.fromEntries(hosts.map((x) => [x.name, rssMiB(x.etcdPid())]));

const shared = mkdtempSync(join(tmpdir(), 'virtnode-bench-cluster-'));
let sim: SimCluster | undefined;
try {
  mkdirSync(join(shared, 'pool'));
  mkdirSync(join(shared, 'base'));
  const setupStart = performance.now();
  sim = await tinyGuestHosts(4, { templateDisk: join(shared, 'base', 'tiny.qcow2'), env: { VIRTNODE_CLUSTER_LEASE_TTL: String(TTL_S) } });
  const [h1, h2, h3, alone] = sim.hosts as [SimHost, SimHost, SimHost, SimHost];
  const cluster = [h1, h2, h3];
  await formCluster(cluster);
  for (const x of cluster) await ok(x, ['pool', 'create', 'shared', '--type', 'shared-dir', '--path', join(shared, 'pool')]);
  const setupMs = performance.now() - setupStart;
  await new Promise((r) => setTimeout(r, 2000));
  const etcdIdle = etcdRss(cluster);

  // 1. Placement latency, interleaved with the standalone launch.
  let placement;
  if (PARTS.has('placement')) {
    const kinds = {
      targeted: { on: h1, args: ['--target', 'h2'] },
      scheduled: { on: h1, args: [] as string[] },
      standalone: { on: alone, args: [] as string[] },
    } as const;
    const times: Record<keyof typeof kinds, number[]> = { targeted: [], scheduled: [], standalone: [] };
    const scheduledTo: string[] = [];
    const order = Object.keys(kinds) as (keyof typeof kinds)[];
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < order.length; k++) {
        const kind = order[(r + k) % order.length]!;
        const { on, args } = kinds[kind];
        const name = `p${kind[0]}${r}`;
        const t0 = performance.now();
        await ok(on, ['launch', 'tiny', '--name', name, ...LAUNCH, ...args]);
        times[kind].push(performance.now() - t0);
        const host = kind === 'standalone' ? alone.name : kind === 'targeted' ? 'h2' : (await listOn(h1)).find((i) => i.name === name)?.host;
        if (kind === 'scheduled') scheduledTo.push(host ?? '?');
        const runsOn = sim.hosts.find((x) => x.name === host);
        if (runsOn === undefined || qemuPidsUnder(runsOn.home).length !== 1) throw new Error(`${name}: no QEMU on ${host} after the launch answered`);
        await ok(on, ['delete', '--force', name]);
      }
    }
    placement = {
      what: 'virtnode launch tiny --no-wait (128 MiB, seed http) as a CLI process through a daemon, to its answer: QEMU running the guest on the chosen host',
      targetedForwarded: stats(times.targeted),
      scheduled: { ...stats(times.scheduled), chosenHosts: scheduledTo },
      standalone: stats(times.standalone),
      ratioTargetedToStandalone: +(median(times.targeted) / median(times.standalone)).toFixed(2),
      ratioScheduledToStandalone: +(median(times.scheduled) / median(times.standalone)).toFixed(2),
    };
    console.log(JSON.stringify({ placement }, null, 2));
  }

  // 2. Live moves of an idle, booted guest back and forth.
  let move;
  if (PARTS.has('move')) {
    await ok(h1, ['launch', 'tiny', '--name', 'm1', ...LAUNCH, '--target', 'h1']);
    (await SerialShell.whenReady(instanceDirOn(h1, 'm1'), 120_000)).close();
    await new Promise((r) => setTimeout(r, 2000));
    const moves: { from: string; to: string; wallMs: number; totalMs: number; downtimeMs: number; switchover?: Record<string, number> }[] = [];
    let from = h1;
    for (let r = 0; r < rounds; r++) {
      const to = from === h1 ? h2 : h1;
      const t0 = performance.now();
      const out = await ok(from, ['move', 'm1', '--to', to.name]);
      const wallMs = performance.now() - t0;
      const m = /^Moved m1 from (\S+) to (\S+) in (\d+(?:\.\d+)?) s, downtime (\d+) ms$/m.exec(out);
      if (m === null) throw new Error(`move: unexpected answer: ${out}`);
      // Where the downtime went, as `move` prints it: "switch-over after the source stopped: source done 20 ms, ...".
      const steps = /switch-over after the source stopped: (.*)$/m.exec(out)?.[1];
      const switchover = steps === undefined ? undefined : Object.fromEntries([...steps.matchAll(/([a-z ]+) (\d+) ms/g)].map((x) => [x[1]!.trim(), Number(x[2])]));
      moves.push({ from: m[1]!, to: m[2]!, wallMs: Math.round(wallMs), totalMs: Math.round(Number(m[3]) * 1000), downtimeMs: Number(m[4]), ...(switchover === undefined ? {} : { switchover }) });
      if (qemuPidsUnder(to.home).length !== 1 || qemuPidsUnder(from.home).length !== 0) throw new Error(`move ${from.name} -> ${to.name}: QEMUs not where expected`);
      from = to;
      await new Promise((r) => setTimeout(r, 1000));
    }
    await ok(h1, ['delete', '--force', 'm1']);
    move = {
      what: 'virtnode move m1 --to HOST, live, idle tiny guest (128 MiB, booted), asked on the source host; total and downtime as virtnode reports them (total to 0.1 s)',
      byHandComparison: 'bench/migration.ts (the migration engine against the same move by hand with two QEMUs and raw QMP, same machine)',
      downtime: { n: moves.length, medianMs: median(moves.map((x) => x.downtimeMs)) },
      total: { n: moves.length, medianMs: median(moves.map((x) => x.totalMs)) },
      cliWall: stats(moves.map((x) => x.wallMs)),
      moves,
    };
    console.log(JSON.stringify({ move }, null, 2));
  }

  // 3. Failover of an on-failure guest on the shared-dir pool when its host dies.
  let failover;
  let etcdBeforeKill;
  let etcdSurvivors;
  if (PARTS.has('failover')) {
    await ok(h1, ['launch', 'tiny', '--name', 'f1', ...LAUNCH, '--target', 'h1', '--pool', 'shared']);
    await ok(h1, ['set', 'f1', 'restart=on-failure']);
    await eventually(() => {
      const rec = etcdGet<FailoverRecord>(h2, FAILOVER_KEYS.record('f1'));
      return rec?.host === 'h1' && rec.running && rec.failover === undefined && qemuPidsUnder(h1.home).length === 1 ? true : undefined;
    }, 30_000, 'failover record of f1 on h1');
    etcdBeforeKill = etcdRss(cluster);
    const survivors = [h2, h3];
    let most = 0;
    const sampler = setInterval(() => (most = Math.max(most, cluster.reduce((n, x) => n + qemuPidsUnder(x.home).length, 0))), 100);
    try {
      const killedAt = performance.now();
      await crashHost(h1);
      const to = await eventually(() => survivors.find((x) => qemuPidsUnder(x.home).length === 1), 60_000, 'f1 started on a survivor');
      const qemuMs = performance.now() - killedAt;
      await eventually(async () => ((await listOn(h2)).find((i) => i.name === 'f1' && i.state === 'running' && i.host === to.name) ? true : undefined), 60_000, 'f1 listed running');
      const listedMs = performance.now() - killedAt;
      failover = {
        what: 'SIGKILL of h1 (daemon, QEMUs, etcd member) to the on-failure guest (shared-dir pool) running on another host',
        rounds: 1,
        leaseTtlMs: TTL_S * 1000,
        toHost: to.name,
        killToQemuMs: Math.round(qemuMs),
        killToListedRunningMs: Math.round(listedMs),
        ratioToLeaseTtl: +(qemuMs / (TTL_S * 1000)).toFixed(2),
        mostQemusAtOnce: Math.max(most, 1),
      };
    } finally {
      clearInterval(sampler);
    }
    etcdSurvivors = etcdRss(survivors);
    console.log(JSON.stringify({ failover }, null, 2));
  }

  const result = {
    date: new Date().toISOString(),
    loadAverage: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number),
    hosts: '3 cluster hosts + 1 standalone, network namespaces on one machine, real daemons and etcd members, tiny guest under TCG',
    setupMs: Math.round(setupMs),
    rounds,
    placement,
    move,
    failover,
    etcdRssMiB: { idle: etcdIdle, beforeKill: etcdBeforeKill, survivorsAfterFailover: etcdSurvivors },
  };
  writeResult('cluster', result);
  console.log(JSON.stringify(result, null, 2));
} finally {
  await sim?.destroy();
  rmSync(shared, { recursive: true, force: true });
}
