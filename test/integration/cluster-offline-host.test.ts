import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAILOVER_KEYS, type FailoverRecord } from '../../src/app/cluster-failover.ts';
import type { Claim } from '../../src/cluster/placement.ts';
import { qemuPidsUnder } from '../helpers/cli.ts';
import {
  crashHost,
  destroyKeepingLogs,
  etcdGet,
  listOn,
  localRecord,
  ok,
  requestOn,
  type SimCluster,
  type SimHost,
  sharedDirCluster,
} from '../helpers/cluster-hosts.ts';
import { eventually } from '../helpers/daemon.ts';

/**
 * A host that dies, on three simulated hosts (netns, real daemons and etcd members, the tiny guest under TCG) sharing
 * a shared-dir pool: its instances stay in `list` (state unknown, from etcd) and `info` says why; a stopped failover
 * candidate moves to a live host (stopped) and starts there; the host back forgets its copy. A failover whose chosen
 * host cannot start the instance (the pool is not there on that host) goes on to the third host.
 */

const TTL_S = 6;
const LAUNCH = ['--memory', '128M', '--seed', 'http', '--no-wait'];

describe('instances of a dead host (3 netns hosts, real etcd, shared-dir pool, tiny guest)', () => {
  let sim: SimCluster;
  let h: SimHost[];
  const shared = mkdtempSync(join(tmpdir(), 'virtnode-offline-host-'));
  const pool = join(shared, 'pool');
  const record = (x: SimHost, name: string) => etcdGet<FailoverRecord>(x, FAILOVER_KEYS.record(name));
  const byName = async (x: SimHost, name: string) => (await listOn(x)).filter((i) => i.name === name);

  beforeAll(async () => {
    sim = await sharedDirCluster(shared, TTL_S);
    h = sim.hosts;
    for (const x of h) await ok(x, ['pool', 'create', 'shared', '--type', 'shared-dir', '--path', pool]);
  }, 180_000);

  afterAll(async () => {
    await destroyKeepingLogs(sim, 'cluster-offline-host');
    rmSync(shared, { recursive: true, force: true });
  });

  it('lists a dead host’s instances as unknown, moves its stopped candidate to a live host, and the host back forgets its copy', async () => {
    const [h1, h2, h3] = h as [SimHost, SimHost, SimHost];
    await ok(h1, ['launch', 'tiny', '--name', 'plain', ...LAUNCH, '--target', 'h1']);
    await ok(h2, ['launch', 'tiny', '--name', 'cand', ...LAUNCH, '--target', 'h1', '--pool', 'shared']);
    await ok(h2, ['set', 'cand', 'restart=on-failure']);
    await ok(h3, ['stop', '--force', 'cand']);
    await eventually(() => {
      const r = record(h2, 'cand');
      return r?.host === 'h1' && !r.running && r.instance.state === 'stopped' ? true : undefined;
    }, 20_000, 'a record of the stopped candidate');
    expect(qemuPidsUnder(h1.home)).toHaveLength(1);

    await crashHost(h1);
    // plain stays listed, with its host and state unknown, from its claim in etcd.
    // (Until its lease expires, it is unknown because h1 does not answer; then because h1 is offline.)
    const plain = await eventually(async () => (await byName(h2, 'plain')).find((i) => i.state === 'unknown' && i.reason?.includes('offline') === true), 30_000, 'plain listed as unknown');
    expect(plain).toMatchObject({ host: 'h1', type: 'vm', cpus: 1, memoryMiB: 128, reason: 'host h1 is offline (it holds no cluster lease)' });
    const table = await ok(h3, ['list']);
    expect(table).toMatch(/^plain\s+h1\s+vm\s+unknown\s+1\s+128 MiB\s.*host h1 is offline/m);
    // info says the host is offline (not a 404); REST too; an action is refused naming the host.
    const info = await h3.cli(['info', 'plain']);
    expect(info.code).toBe(0);
    expect(info.stdout).toMatch(/State:\s+unknown \(host h1 is offline \(it holds no cluster lease\)\)/);
    const got = await requestOn(h2, 'GET', '/instances/plain');
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ name: 'plain', host: 'h1', state: 'unknown' });
    const start = await h2.cli(['start', 'plain']);
    expect(start.code).toBe(4);
    expect(start.stderr).toContain('plain: its host h1 is offline (it holds no cluster lease): only that host can act on it');

    // The stopped candidate moves to a live host and stays stopped there (its record names it, with its whole view).
    const moved = await eventually(async () => (await byName(h3, 'cand')).find((i) => i.host !== 'h1' && i.state === 'stopped'), 30_000, 'cand moved to a live host');
    expect(['h2', 'h3']).toContain(moved.host);
    expect(moved.reason).toBe('moved from h1 while stopped (its lease expired): start it here when wanted');
    expect(etcdGet<Claim>(h2, '/virtnode/claims/cand')?.host).toBe(moved.host);
    const owner = h.find((x) => x.name === moved.host)!;
    expect(qemuPidsUnder(owner.home)).toEqual([]);
    // It starts there, asked on any host.
    await ok(h2, ['start', 'cand']);
    expect(qemuPidsUnder(owner.home)).toHaveLength(1);

    // h1 comes back: it forgets its stopped copy of cand (now another host's), and answers for plain itself again.
    await h1.startDaemon();
    // (The copy goes first, then the mark that asked for it: a crash in between leaves the mark to do it again.)
    await eventually(() => (localRecord(h1, 'cand') === undefined && etcdGet(h2, FAILOVER_KEYS.left('h1', 'cand')) === undefined ? true : undefined), 40_000, 'h1 forgets its copy of cand, then its mark');
    expect(qemuPidsUnder(h1.home)).toEqual([]);
    const back = await eventually(async () => {
      const all = await listOn(h1);
      const p = all.find((i) => i.name === 'plain');
      return p !== undefined && p.state !== 'unknown' ? all : undefined;
    }, 40_000, 'plain answered by h1 again');
    expect(back.filter((i) => i.name === 'cand').map((i) => [i.host, i.state])).toEqual([[moved.host, 'running']]);
    expect(h.reduce((n, x) => n + qemuPidsUnder(x.home).length, 0)).toBe(1);
    await ok(h1, ['delete', '--force', 'cand']);
    await ok(h1, ['delete', '--force', 'plain']);
    expect(h.flatMap((x) => qemuPidsUnder(x.home))).toEqual([]);
  }, 300_000);

  it('a failover the chosen host cannot start (its pool is not there) goes on to the third host, never two copies', async () => {
    const [h1, h2, h3] = h as [SimHost, SimHost, SimHost];
    await ok(h1, ['launch', 'tiny', '--name', 'f2', ...LAUNCH, '--target', 'h1', '--pool', 'shared']);
    await ok(h1, ['set', 'f2', 'restart=on-failure']);
    await eventually(() => (record(h2, 'f2')?.running === true && record(h2, 'f2')?.host === 'h1' ? true : undefined), 20_000, 'a record of the running candidate');
    // Room claimed on h3 (a stopped instance keeps its claim), so that the scheduler chooses h2 first.
    await ok(h3, ['launch', 'tiny', '--name', 'filler', ...LAUNCH, '--target', 'h3']);
    await ok(h3, ['stop', '--force', 'filler']);
    // On h2 the shared pool is not there: an empty tmpfs over it in h2's mount namespace (its daemon's and QEMUs').
    const pid = String(h2.daemon!.pid);
    execFileSync('nsenter', ['-t', pid, '-m', 'mount', '-t', 'tmpfs', 'tmpfs', pool]);
    let most = 0;
    const sampler = setInterval(() => (most = Math.max(most, h.reduce((n, x) => n + qemuPidsUnder(x.home).length, 0))), 100);
    try {
      await crashHost(h1);
      const to = await eventually(() => (qemuPidsUnder(h3.home).length === 1 ? true : undefined), 60_000, 'f2 started on h3');
      expect(to).toBe(true);
      await h2.logged('"msg":"failover: the adopted instance did not start"');
      await h2.logged('"msg":"failover: instance passed on to another host (it did not start here)"');
      await eventually(() => (localRecord(h2, 'f2') === undefined ? true : undefined), 20_000, 'h2 forgets its copy');
      expect(etcdGet<Claim>(h3, '/virtnode/claims/f2')?.host).toBe('h3');
      const listed = await eventually(async () => (await byName(h2, 'f2')).find((i) => i.state === 'running'), 30_000, 'f2 listed running');
      expect(listed.host).toBe('h3');
      expect(qemuPidsUnder(h2.home)).toEqual([]);
      expect(most).toBe(1);
    } finally {
      clearInterval(sampler);
      execFileSync('nsenter', ['-t', pid, '-m', 'umount', pool]);
    }
    await ok(h2, ['delete', '--force', 'f2']);
    await ok(h2, ['delete', '--force', 'filler']);
  }, 300_000);
});
