import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterStatusView, EvacuationResult, RebalanceResult } from '../../src/api/contracts/cluster.ts';
import type { Claim } from '../../src/cluster/placement.ts';
import type { HostRecord } from '../../src/cluster/model.ts';
import { statePaths } from '../../src/lib/paths.ts';
import type { Static } from 'typebox';
import { qemuPidsUnder } from '../helpers/cli.ts';
import { type SimCluster, type SimHost, destroyKeepingLogs, etcdGet, formCluster, listOn, ok, requestOn, statusOn, tinyGuestHosts } from '../helpers/cluster-hosts.ts';
import { eventually } from '../helpers/daemon.ts';
import { SerialShell } from '../helpers/serial-shell.ts';

/**
 * `cluster evacuate`, `cluster restore` and `cluster rebalance` across three simulated hosts (netns, real daemons
 * and etcd members, the tiny guest): refusals that change nothing, a host emptied of three running guests asked on
 * another host (no reboot, nothing left, out of placement), the guests brought back, and a plan that evens out the
 * hosts, first as a dry run that changes nothing, then made.
 */

const LAUNCH = ['tiny', '--memory', '128M', '--seed', 'http', '--no-wait', '--cpu-model', 'qemu64'];
const RUNNING = ['m1', 'm2', 'm3'];
type Evacuation = Static<typeof EvacuationResult>;
type Rebalance = Static<typeof RebalanceResult>;

const dirOf = (h: SimHost, name: string) => statePaths(h.home).instanceDir(name);

/**
 * The guest's uptime in seconds, read on its console on the host that runs it (then the console is let go). Once
 * it moved, its console log there starts after the boot: the shell is opened without waiting for the boot's end.
 */
async function uptime(h: SimHost, name: string, moved = true): Promise<number> {
  const shell = moved ? await SerialShell.open(dirOf(h, name)) : await SerialShell.whenReady(dirOf(h, name), 120_000);
  try {
    const out = (await shell.run('cat /proc/uptime')).output;
    return Number(/(\d+\.\d+) \d+\.\d+/.exec(out)![1]);
  } finally {
    shell.close();
  }
}

/** Where each instance runs, as a host other than `h` sees it. */
async function placement(h: SimHost): Promise<Record<string, string>> {
  return Object.fromEntries((await listOn(h)).map((i) => [i.name, `${i.host}:${i.state}`]));
}

const hostState = (s: ClusterStatusView, name: string) => s.hosts.find((x) => x.name === name)?.state;

describe('evacuating, restoring and rebalancing hosts of a cluster (netns, real daemons and etcd, the tiny guest)', () => {
  let sim: SimCluster;
  let h: SimHost[];
  const uptimes = new Map<string, number>();
  beforeAll(async () => {
    // Four vCPUs per host CPU: one host holds the three guests and a stopped one.
    sim = await tinyGuestHosts(3, { cpuOvercommit: 4 });
    h = sim.hosts;
    await formCluster(h);
  }, 180_000);
  afterAll(async () => {
    await destroyKeepingLogs(sim, 'cluster-evacuate');
  });

  it('bad input is refused naming the field and changes nothing', async () => {
    const [h1, h2] = h as [SimHost, SimHost];
    for (const name of RUNNING) await ok(h1, ['launch', ...LAUNCH, '--name', name, '--target', 'h1']);
    await ok(h1, ['launch', ...LAUNCH, '--name', 's1', '--target', 'h1']);
    await ok(h1, ['stop', '--force', 's1']);
    const pids = qemuPidsUnder(h1.home).sort();
    expect(pids).toHaveLength(3);
    const before = await placement(h2);

    const unknown = await h2.cli(['cluster', 'evacuate', 'h9']);
    expect([unknown.code, unknown.stderr]).toEqual([3, expect.stringContaining('error: host: no host h9 in the cluster')]);
    const rest = await requestOn(h2, 'POST', '/cluster/hosts/h9/evacuate');
    expect(rest.status).toBe(404);
    expect(rest.body.error).toMatchObject({ code: 'NOT_FOUND', field: 'host', message: 'host: no host h9 in the cluster' });
    const restoreUnknown = await requestOn(h2, 'POST', '/cluster/hosts/h9/restore');
    expect([restoreUnknown.status, restoreUnknown.body.error?.field]).toEqual([404, 'host']);
    const badName = await h2.cli(['cluster', 'evacuate', 'H_1']);
    expect([badName.code, badName.stderr]).toEqual([2, expect.stringContaining('error: host: "H_1" is not a host name')]);
    const threshold = await h2.cli(['cluster', 'rebalance', '--threshold', '0']);
    expect([threshold.code, threshold.stderr]).toEqual([2, expect.stringContaining('error: threshold: "0" is not a whole percentage from 1 to 100')]);
    const restThreshold = await requestOn(h2, 'POST', '/cluster/rebalance', { threshold: 500 });
    expect(restThreshold.status).toBe(400);

    expect(qemuPidsUnder(h1.home).sort()).toEqual(pids);
    expect(await placement(h2)).toEqual(before);
    expect(hostState(await statusOn(h2), 'h1')).toBe('online');
    expect(etcdGet<HostRecord>(h1, '/virtnode/hosts/h1')?.evacuated).toBeUndefined();
  }, 240_000);

  it('evacuates h1 when asked on h2: the running guests go live to h2 and h3, the stopped one offline, h1 is out of placement', async () => {
    const [h1, h2, h3] = h as [SimHost, SimHost, SimHost];
    for (const name of RUNNING) uptimes.set(name, await uptime(h1, name, false));

    const started = Date.now();
    const out = await ok(h2, ['cluster', 'evacuate', 'h1', '--format', 'json']);
    console.log(`evacuate h1 (3 running guests, asked on h2): ${Date.now() - started} ms`);
    const r = JSON.parse(out) as Evacuation;
    expect(r).toMatchObject({ host: 'h1', evacuated: true });
    expect(r.instances.map((i) => [i.name, i.result])).toEqual([['m1', 'moved'], ['m2', 'moved'], ['m3', 'moved'], ['s1', 'moved']]);
    const s1 = r.instances.find((i) => i.name === 's1')!;
    expect(s1.downtimeMs).toBeUndefined();
    // The scheduler spreads them over both hosts that can take them.
    const targets = r.instances.filter((i) => i.result === 'moved').map((i) => i.to);
    expect(new Set(targets)).toEqual(new Set(['h2', 'h3']));

    // h1 runs no QEMU; every guest runs where the report says, as another host sees it; none rebooted.
    expect(qemuPidsUnder(h1.home)).toEqual([]);
    const seen = await placement(h3);
    for (const i of r.instances.filter((x) => x.result === 'moved' && x.name !== 's1')) {
      expect(seen[i.name]).toBe(`${i.to}:running`);
      const host = h.find((x) => x.name === i.to)!;
      const now = await uptime(host, i.name);
      expect(now).toBeGreaterThan(uptimes.get(i.name)!);
      uptimes.set(i.name, now);
      expect(etcdGet<Claim>(h1, `/virtnode/claims/${i.name}`)).toMatchObject({ host: i.to, evacuatedFrom: 'h1' });
    }
    // The stopped one moved offline: stopped on its new host, nothing of it left on h1.
    expect(seen['s1']).toBe(`${s1.to}:stopped`);
    expect(etcdGet<Claim>(h1, '/virtnode/claims/s1')).toMatchObject({ host: s1.to, evacuatedFrom: 'h1' });
    expect(existsSync(dirOf(h1, 's1'))).toBe(false);

    expect(hostState(await statusOn(h3), 'h1')).toBe('evacuated');
    const refused = await h3.cli(['launch', ...LAUNCH, '--name', 'late', '--target', 'h1']);
    expect([refused.code, refused.stderr]).toEqual([4, expect.stringContaining('error: target: host h1 is evacuated (out of placement)')]);
    expect((await listOn(h2)).some((i) => i.name === 'late')).toBe(false);

    // A second evacuation is fine: nothing left to move.
    const again = await ok(h1, ['cluster', 'evacuate', 'h1']);
    expect(again).toContain('Evacuated h1 (out of placement): 0 moved, 0 stay, 0 failed');
    expect(qemuPidsUnder(h1.home)).toEqual([]);
  }, 300_000);

  it('restores h1 when asked on h3: the guests its evacuation moved come back (live, the stopped one offline), h1 takes work again', async () => {
    const [h1, h2, h3] = h as [SimHost, SimHost, SimHost];
    const out = await ok(h3, ['cluster', 'restore', 'h1']);
    console.log(out.trim());
    expect(out).toContain('Restored h1 (in placement again): 4 moved, 0 stay, 0 failed');
    expect(qemuPidsUnder(h1.home)).toHaveLength(3);
    expect([...qemuPidsUnder(h2.home), ...qemuPidsUnder(h3.home)]).toEqual([]);
    const seen = await placement(h2);
    for (const name of RUNNING) {
      expect(seen[name]).toBe('h1:running');
      const now = await uptime(h1, name);
      expect(now).toBeGreaterThan(uptimes.get(name)!);
      const claim = etcdGet<Claim>(h1, `/virtnode/claims/${name}`)!;
      expect([claim.host, claim.evacuatedFrom]).toEqual(['h1', undefined]);
    }
    expect(seen['s1']).toBe('h1:stopped');
    expect(etcdGet<Claim>(h1, '/virtnode/claims/s1')).toMatchObject({ host: 'h1' });
    expect(hostState(await statusOn(h2), 'h1')).toBe('online');
    // Restoring again: nothing to bring back.
    expect(await ok(h1, ['cluster', 'restore', 'h1'])).toBe('Restored h1 (in placement again): 0 moved, 0 stay, 0 failed; no instances to bring back\n');
  }, 300_000);

  it('rebalance --dry-run proposes moves off the busy h1 and changes nothing; rebalance makes them; then it says the cluster is balanced', async () => {
    const [h1, h2, h3] = h as [SimHost, SimHost, SimHost];
    const pids = qemuPidsUnder(h1.home).sort();
    const before = await placement(h3);

    const text = await ok(h2, ['cluster', 'rebalance', '--dry-run']);
    console.log(text.trim());
    expect(text).toContain('Plan (dry run, nothing changed): 2 move(s)');
    const dry = JSON.parse(await ok(h2, ['cluster', 'rebalance', '--dry-run', '--format', 'json'])) as Rebalance;
    expect(dry).toMatchObject({ dryRun: true, balanced: false, thresholdPercent: 10, spreadBeforePercent: 50, spreadAfterPercent: 12.5 });
    expect(dry.moves.map((m) => [m.name, m.from, m.to, m.result])).toEqual([
      ['m1', 'h1', 'h2', 'planned'],
      ['m2', 'h1', 'h3', 'planned'],
    ]);
    expect(dry.moves[0]!.reason).toMatch(/^h1 \(CPU 50%, memory [\d.]+%\) is the busiest, h2 \(CPU 0%, memory 0%\) the idlest that has room/);
    expect(qemuPidsUnder(h1.home).sort()).toEqual(pids);
    expect(await placement(h3)).toEqual(before);

    // Made over REST this time: an operation whose progress names each move.
    const started = await requestOn(h3, 'POST', '/cluster/rebalance', {});
    expect([started.status, started.body['kind'], started.body['target']]).toEqual([202, 'rebalance', 'cluster']);
    let done = await requestOn(h3, 'GET', `/operations/${started.body.id}/wait?timeout=60`);
    for (let i = 0; i < 4 && done.body['status'] === 'running'; i++) done = await requestOn(h3, 'GET', `/operations/${started.body.id}/wait?timeout=60`);
    expect(done.body['status']).toBe('succeeded');
    const entries = (done.body['progress'] as { entries: Array<{ phase: string; detail: string }> }).entries;
    expect(entries.filter((e) => e.phase === 'moving').map((e) => e.detail)).toEqual(['m1 from h1 to h2', 'm2 from h1 to h3']);
    // Asked on h3, each move runs on h1, its owner (the move's own phases stay there).
    expect(entries.filter((e) => e.phase === 'forwarded').map((e) => e.detail)).toEqual(['m1: to h1', 'm2: to h1']);
    const made = done.body['result'] as Rebalance;
    expect(made.moves.map((m) => [m.name, m.from, m.to, m.result])).toEqual([
      ['m1', 'h1', 'h2', 'moved'],
      ['m2', 'h1', 'h3', 'moved'],
    ]);
    const seen = await placement(h1);
    expect([seen['m1'], seen['m2'], seen['m3'], seen['s1']]).toEqual(['h2:running', 'h3:running', 'h1:running', 'h1:stopped']);
    expect([qemuPidsUnder(h1.home).length, qemuPidsUnder(h2.home).length, qemuPidsUnder(h3.home).length]).toEqual([1, 1, 1]);

    // Within a 20% threshold the cluster is balanced now: nothing would move.
    const balanced = await ok(h1, ['cluster', 'rebalance', '--dry-run', '--threshold', '20']);
    expect(balanced).toContain('No moves: balanced: the loads differ by 12.5%, within the threshold of 20%; nothing to move');
  }, 300_000);

  it('an offline host is refused (409): its instances move live, which needs its daemon', async () => {
    const [h1, , h3] = h as [SimHost, SimHost, SimHost];
    await h3.stopDaemon();
    await eventually(async () => (hostState(await statusOn(h1), 'h3') === 'offline' ? true : undefined), 20_000, 'h3 offline');
    const r = await h1.cli(['cluster', 'evacuate', 'h3']);
    expect([r.code, r.stderr]).toEqual([4, expect.stringContaining('error: host: h3 is offline (it holds no cluster lease): an evacuation moves instances live, which needs its daemon')]);
    const rest = await requestOn(h1, 'POST', '/cluster/hosts/h3/evacuate');
    expect([rest.status, rest.body.error?.code, rest.body.error?.field]).toEqual([409, 'CONFLICT', 'host']);
    expect(etcdGet<HostRecord>(h1, '/virtnode/hosts/h3')?.evacuated).toBeUndefined();
    expect(qemuPidsUnder(h3.home)).toHaveLength(1);
  }, 120_000);
});
