/**
 * Benchmark: the cluster's etcd and placement claims. Three etcd members (Debian's /usr/bin/etcd, plain HTTP on
 * loopback) and three hosts recorded as online; measures each member's memory (RSS) idle and after the claims,
 * the latency of one placement claim (read hosts and usage, choose, revision-guarded transaction) made one at a
 * time, and of 20 claims at once into room for 6 (the losers re-read and are refused). Writes
 * bench/results/cluster-etcd.json. Usage (as root, in a private netns is fine): node bench/cluster-etcd.ts [claims=200]
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { EtcdKv } from '../src/cluster/etcd-kv.ts';
import { KEYS } from '../src/cluster/model.ts';
import { PLACEMENT_KEYS, place, releaseClaim } from '../src/cluster/placement.ts';
import { startTestEtcd } from '../test/helpers/etcd.ts';
import { writeResult } from './results.ts';

const claims = Number(process.argv[2] ?? 200);
const MIB = 1024 * 1024;
const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const summary = (xs: number[]) => ({ n: xs.length, p50Ms: +percentile(xs, 50).toFixed(2), p99Ms: +percentile(xs, 99).toFixed(2), maxMs: +Math.max(...xs).toFixed(2) });
const rssMiB = (pid: number) => +(Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024).toFixed(1);

const etcd = await startTestEtcd(3, { electionMs: 1000 });
const kv = new EtcdKv({ urls: etcd.clientUrls });
try {
  await new Promise((r) => setTimeout(r, 2000));
  const idle = etcd.members.map((m) => rssMiB(m.child.pid!));
  const now = new Date().toISOString();
  const seed = (cpus: number) =>
    kv.txn(
      [],
      ['h1', 'h2', 'h3'].flatMap((name) => [
        { put: KEYS.host(name), value: JSON.stringify({ name, address: '10.0.0.1', apiUrl: 'https://10.0.0.1:7443', etcdMember: true, joinedAt: now }) },
        { put: KEYS.alive(name), value: JSON.stringify({ name, since: now, updatedAt: now, labels: {}, use: { instances: 0, running: 0, cpus: 0, memoryBytes: 0 }, capacity: { cpus, memoryBytes: 1024 * 1024 * MIB, pools: [], accelerator: 'tcg', cpuFlags: [] } }) },
      ]),
    );
  await seed(10_000);
  const sequential: number[] = [];
  for (let i = 0; i < claims; i++) {
    const t0 = performance.now();
    await place(kv, { instance: `s${i}`, cpus: 1, memoryBytes: 64 * MIB, diskBytes: 0 }, { cpu: 1, memory: 1 });
    sequential.push(performance.now() - t0);
  }
  const afterClaims = etcd.members.map((m) => rssMiB(m.child.pid!));
  for (let i = 0; i < claims; i++) await releaseClaim(kv, `s${i}`);
  await seed(2);
  for (const h of ['h1', 'h2', 'h3']) await kv.txn([], [{ delete: PLACEMENT_KEYS.usage(h) }]);
  const clients = Array.from({ length: 5 }, () => new EtcdKv({ urls: etcd.clientUrls }));
  const concurrent: number[] = [];
  const t0 = performance.now();
  const results = await Promise.allSettled(
    Array.from({ length: 20 }, async (_, i) => {
      const t = performance.now();
      try {
        return await place(clients[i % 5]!, { instance: `c${i}`, cpus: 1, memoryBytes: 64 * MIB, diskBytes: 0 }, { cpu: 1, memory: 1 });
      } finally {
        concurrent.push(performance.now() - t);
      }
    }),
  );
  const wallMs = performance.now() - t0;
  for (const c of clients) await c.close();
  const result = {
    etcd: { version: '3.4 (Debian etcd-server)', members: 3, rssMiBIdle: idle, rssMiBAfterClaims: afterClaims },
    sequentialClaim: summary(sequential),
    concurrent20IntoRoomFor6: { placed: results.filter((r) => r.status === 'fulfilled').length, refused: results.filter((r) => r.status === 'rejected').length, wallMs: +wallMs.toFixed(1), perCall: summary(concurrent) },
  };
  writeResult('cluster-etcd', result);
  console.log(JSON.stringify(result, null, 2));
} finally {
  await kv.close();
  await etcd.stop();
}
