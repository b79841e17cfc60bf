import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EtcdKv } from '../../src/cluster/etcd-kv.ts';
import { type AliveRecord, type HostRecord, KEYS } from '../../src/cluster/model.ts';
import { type Claim, type HostUsage, PLACEMENT_KEYS, moveClaim, place, releaseClaim } from '../../src/cluster/placement.ts';
import { isVirtnodeError } from '../../src/lib/errors.ts';
import { startTestEtcd, type TestEtcd } from '../helpers/etcd.ts';

const MIB = 1024 * 1024;
const RATIOS = { cpu: 1, memory: 1 };

function hostRecords(name: string, zone: string): { host: HostRecord; alive: AliveRecord } {
  const now = new Date().toISOString();
  return {
    host: { name, address: `10.0.0.${name.slice(1)}`, apiUrl: `https://10.0.0.${name.slice(1)}:7443`, etcdMember: true, joinedAt: now },
    alive: {
      name,
      since: now,
      updatedAt: now,
      capacity: { cpus: 2, memoryBytes: 1024 * MIB, pools: [{ name: 'default', capacityBytes: 10_000 * MIB, availableBytes: 5000 * MIB }], accelerator: 'tcg', cpuFlags: [] },
      use: { instances: 0, running: 0, cpus: 0, memoryBytes: 0 },
      labels: { zone },
    },
  };
}

describe('placement claims: revision-guarded transactions on real etcd (3 members)', () => {
  let etcd: TestEtcd;
  let kvs: EtcdKv[];
  beforeAll(async () => {
    etcd = await startTestEtcd(3, { electionMs: 500 });
    // Five clients, as five daemons placing at once.
    kvs = Array.from({ length: 5 }, () => new EtcdKv({ urls: etcd.clientUrls }));
  });
  afterAll(async () => {
    for (const kv of kvs ?? []) await kv.close();
    await etcd?.stop();
  });
  beforeEach(async () => {
    const kv = kvs[0]!;
    for (const prefix of ['/virtnode/']) {
      const { entries } = await kv.list(prefix);
      if (entries.length > 0) await kv.txn([], entries.map((e) => ({ delete: e.key })));
    }
    for (const [name, zone] of [['h1', 'a'], ['h2', 'a'], ['h3', 'b']] as const) {
      const { host, alive } = hostRecords(name, zone);
      await kv.txn([], [{ put: KEYS.host(name), value: JSON.stringify(host) }, { put: KEYS.alive(name), value: JSON.stringify(alive) }]);
    }
  });

  async function consistent(): Promise<Claim[]> {
    const kv = kvs[0]!;
    const claims = (await kv.list(PLACEMENT_KEYS.claims)).entries.map((e) => JSON.parse(e.value) as Claim);
    for (const h of ['h1', 'h2', 'h3']) {
      const mine = claims.filter((c) => c.host === h);
      const u = await kv.get(PLACEMENT_KEYS.usage(h));
      const usage = u === undefined ? { cpus: 0, memoryBytes: 0, instances: 0 } : (JSON.parse(u.value) as HostUsage);
      expect(usage.cpus).toBe(mine.reduce((n, c) => n + c.cpus, 0));
      expect(usage.instances).toBe(mine.length);
      expect(usage.cpus).toBeLessThanOrEqual(2);
    }
    return claims;
  }

  it('20 concurrent claims into room for 6: exactly 6 are placed, the other 14 get a clear error', async () => {
    const started = performance.now();
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => place(kvs[i % kvs.length]!, { instance: `vm${i}`, cpus: 1, memoryBytes: 256 * MIB, diskBytes: 100 * MIB }, RATIOS)));
    console.log(`20 concurrent claims: ${Math.round(performance.now() - started)} ms`);
    const placed = results.filter((r) => r.status === 'fulfilled').map((r) => (r as PromiseFulfilledResult<Claim>).value);
    const refused = results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason as Error);
    expect(placed).toHaveLength(6);
    expect(refused).toHaveLength(14);
    for (const e of refused) {
      expect(isVirtnodeError(e, 'CONFLICT')).toBe(true);
      expect(e.message).toMatch(/^no host has room for vm\d+ \(1 CPU\(s\), 256 MiB, 100 MiB disk in default\): h1 \(CPUs: 0 free of 2\), h2 \(CPUs: 0 free of 2\), h3 \(CPUs: 0 free of 2\)$/);
    }
    // Spread: two on each host.
    expect(['h1', 'h2', 'h3'].map((h) => placed.filter((c) => c.host === h).length)).toEqual([2, 2, 2]);
    expect((await consistent()).map((c) => c.instance).sort()).toEqual(placed.map((c) => c.instance).sort());
  });

  it('with the etcd leader SIGKILLed during 20 concurrent claims: never more than fit, no claim lost or doubled', async () => {
    const leaderId = await kvs[0]!.leader();
    const leader = (await kvs[0]!.members()).find((m) => m.id === leaderId)!;
    const survivors = etcd.clientUrls.filter((u) => !leader.clientUrls.includes(u));
    const clients = [0, 1, 2, 3].map(() => new EtcdKv({ urls: survivors.concat(leader.clientUrls), callTimeoutMs: 3000 }));
    try {
      const claims = Array.from({ length: 20 }, (_, i) => place(clients[i % clients.length]!, { instance: `k${i}`, cpus: 1, memoryBytes: 256 * MIB, diskBytes: 0 }, RATIOS));
      setTimeout(() => void etcd.kill(leader.name), 15);
      const results = await Promise.allSettled(claims);
      const placed = results.filter((r) => r.status === 'fulfilled').map((r) => (r as PromiseFulfilledResult<Claim>).value);
      const refused = results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason as Error);
      console.log(`leader killed: ${placed.length} placed, ${refused.length} refused: ${[...new Set(refused.map((e) => e.message.slice(0, 22)))].join(" | ")}`);
      expect(placed.length).toBeLessThanOrEqual(6);
      for (const e of refused) expect(e.message).toMatch(/^(no host has room for k\d+|etcd at .* did not answer)/);
      const survivor = new EtcdKv({ urls: survivors });
      kvs.push(survivor);
      kvs[0] = survivor;
      const stored = await consistent();
      // Every claim reported placed is stored, on the host reported, and nothing else is.
      expect(stored.map((c) => `${c.instance}@${c.host}`).sort()).toEqual(placed.map((c) => `${c.instance}@${c.host}`).sort());
    } finally {
      for (const c of clients) await c.close();
    }
  });

  it('labels, --target, anti-affinity groups, offline hosts, and releasing a claim', async () => {
    const kv = kvs[0]!;
    expect((await place(kv, { instance: 'b1', cpus: 1, memoryBytes: 64 * MIB, diskBytes: 0, labels: { zone: 'b' } }, RATIOS)).host).toBe('h3');
    expect((await place(kv, { instance: 't1', cpus: 1, memoryBytes: 64 * MIB, diskBytes: 0, target: 'h3' }, RATIOS)).host).toBe('h3');
    const full = await place(kv, { instance: 't2', cpus: 1, memoryBytes: 64 * MIB, diskBytes: 0, target: 'h3' }, RATIOS).catch((e: Error) => e);
    expect((full as Error).message).toMatch(/^no host has room for t2 .*: h3 \(CPUs: 0 free of 2\)$/);
    const nohost = await place(kv, { instance: 't3', cpus: 1, memoryBytes: 64 * MIB, diskBytes: 0, target: 'h9' }, RATIOS).catch((e: Error) => e);
    expect(isVirtnodeError(nohost, 'NOT_FOUND')).toBe(true);
    expect((nohost as Error).message).toBe('target: no host h9 in the cluster');
    // Group web: h1 and h2 have room (h3 is full), one member each.
    const web = [await place(kv, { instance: 'w1', cpus: 1, memoryBytes: 64 * MIB, diskBytes: 0, group: 'web' }, RATIOS), await place(kv, { instance: 'w2', cpus: 1, memoryBytes: 64 * MIB, diskBytes: 0, group: 'web' }, RATIOS)];
    expect(web.map((c) => c.host).sort()).toEqual(['h1', 'h2']);
    const again = await place(kv, { instance: 'w1', cpus: 1, memoryBytes: 64 * MIB, diskBytes: 0 }, RATIOS).catch((e: Error) => e);
    expect((again as Error).message).toMatch(/^instance w1 is placed on h[12] already$/);
    // h2 goes offline: its lease-bound record is gone.
    await kv.txn([], [{ delete: KEYS.alive('h2') }]);
    const off = await place(kv, { instance: 'x1', cpus: 2, memoryBytes: 64 * MIB, diskBytes: 0 }, RATIOS).catch((e: Error) => e);
    expect((off as Error).message).toMatch(/h1 \(CPUs: 1 free of 2\), h2 \(offline\), h3 \(CPUs: 0 free of 2\)$/);
    expect(await releaseClaim(kv, 'b1')).toBe(true);
    expect(await releaseClaim(kv, 'b1')).toBe(false);
    expect((await place(kv, { instance: 'b2', cpus: 1, memoryBytes: 64 * MIB, diskBytes: 0, labels: { zone: 'b' } }, RATIOS)).host).toBe('h3');
    const bad = await place(kv, { instance: 'z', cpus: 0, memoryBytes: 1, diskBytes: 0 }, RATIOS).catch((e: Error) => e);
    expect((bad as Error).message).toBe('cpus: 0 is not a whole number of at least 1');
  });

  it('a moved claim names the new host and its room goes with it; concurrent moves of one claim: one wins', async () => {
    const kv = kvs[0]!;
    await place(kv, { instance: 'm1', cpus: 1, memoryBytes: 64 * MIB, diskBytes: 5 * MIB, target: 'h1', group: 'g' }, RATIOS);
    const moved = await moveClaim(kv, 'm1', 'h1', 'h2');
    expect(moved).toMatchObject({ instance: 'm1', host: 'h2', cpus: 1, memoryBytes: 64 * MIB, group: 'g' });
    const usage = async (h: string) => JSON.parse((await kv.get(PLACEMENT_KEYS.usage(h)))!.value) as HostUsage;
    expect(await usage('h1')).toMatchObject({ cpus: 0, memoryBytes: 0, instances: 0, diskBytes: { default: 0 }, groups: { g: 0 } });
    expect(await usage('h2')).toMatchObject({ cpus: 1, memoryBytes: 64 * MIB, instances: 1, diskBytes: { default: 5 * MIB }, groups: { g: 1 } });
    await consistent();
    const stale = await moveClaim(kv, 'm1', 'h1', 'h3').catch((e: unknown) => e);
    expect(isVirtnodeError(stale, 'CONFLICT')).toBe(true);
    expect((stale as Error).message).toBe('instance m1 is placed on h2, not on h1');
    // Five daemons move it away from h2 at once: exactly one of them does it, the others are refused.
    const all = await Promise.allSettled(kvs.map((k, i) => moveClaim(k, 'm1', 'h2', i % 2 === 0 ? 'h1' : 'h3')));
    expect(all.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    await consistent();
    const none = await moveClaim(kv, 'nothere', 'h1', 'h2').catch((e: unknown) => e);
    expect(isVirtnodeError(none, 'INVALID_STATE')).toBe(true);
  });
});
