import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crashHost, destroyKeepingLogs, formCluster, ok, type SimCluster, type SimHost, createSimHosts, statusOn } from '../helpers/cluster-hosts.ts';
import { eventually } from '../helpers/daemon.ts';

/**
 * Quorum-loss recovery on three simulated hosts (netns, real daemons, each running an etcd member): two hosts die
 * (daemon and etcd member SIGKILLed), the survivor's member has no quorum, and `cluster recover` on it makes it a
 * one-member cluster on its own data. Refused while the quorum stands.
 */
describe('cluster recover after losing 2 of 3 etcd members (netns hosts, real etcd)', () => {
  let sim: SimCluster;
  let h: SimHost[];

  beforeAll(async () => {
    sim = await createSimHosts(3);
    h = sim.hosts;
    await Promise.all(h.map((x) => x.startDaemon()));
    await formCluster(h);
  }, 120_000);

  afterAll(async () => {
    await destroyKeepingLogs(sim, 'cluster-recover');
  });

  it('is refused while etcd has its quorum, and nothing changes', async () => {
    const r = await h[0]!.cli(['cluster', 'recover']);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('error: recover: etcd has its quorum: there is nothing to recover');
    expect((await statusOn(h[1]!)).etcd.members.map((m) => m.name).sort()).toEqual(['h1', 'h2', 'h3']);
  }, 60_000);

  it('makes the last surviving member a one-member cluster with the data it had; the lost hosts are then removed', async () => {
    const [h1, h2, h3] = h as [SimHost, SimHost, SimHost];
    await ok(h1, ['cluster', 'add', 'later']); // a record written before the loss (a join token)
    await crashHost(h2);
    await crashHost(h3);
    // Without its quorum, h1 cannot renew its lease: it fences itself.
    await eventually(() => (h1.output().includes('"msg":"fenced: cluster lease lost') ? true : undefined), 20_000, 'h1 fenced');
    expect((await statusOn(h1)).fenced).toBeDefined();
    const started = Date.now();
    const out = await ok(h1, ['cluster', 'recover']);
    console.log(`cluster recover took ${Date.now() - started} ms`);
    expect(out).toBe("Recovered: h1 runs the cluster's only etcd member now; remove the lost hosts with `virtnode cluster remove HOST` (h2, h3)\n");
    const s = await eventually(async () => {
      const x = await statusOn(h1);
      return x.fenced === undefined && x.hosts.find((y) => y.name === 'h1')?.state === 'online' ? x : undefined;
    }, 30_000, 'h1 online again, not fenced');
    expect(s.etcd.members.map((m) => m.name)).toEqual(['h1']);
    expect(s.etcd.leader).toBe('h1');
    // The data is what h1's member had: the hosts, and they go offline as their leases expire.
    expect(s.hosts.map((x) => x.name)).toEqual(['h1', 'h2', 'h3']);
    await eventually(async () => ((await statusOn(h1)).hosts.filter((x) => x.state === 'offline').length === 2 ? true : undefined), 30_000, 'h2 and h3 offline');
    await ok(h1, ['cluster', 'remove', 'h2']);
    await ok(h1, ['cluster', 'remove', 'h3']);
    expect((await statusOn(h1)).hosts.map((x) => x.name)).toEqual(['h1']);
    // It writes again, and a second recover is refused (the one-member cluster has its quorum).
    expect((await ok(h1, ['cluster', 'add', 'h5'])).trim()).not.toBe('');
    expect((await h1.cli(['cluster', 'recover'])).code).toBe(4);
    // The daemon restarts on the recovered member as usual.
    await h1.stopDaemon();
    await h1.startDaemon();
    await eventually(async () => ((await statusOn(h1)).hosts.find((x) => x.name === 'h1')?.state === 'online' ? true : undefined), 30_000, 'h1 online after a restart');
  }, 180_000);
});
