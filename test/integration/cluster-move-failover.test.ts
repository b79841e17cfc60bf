import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FailoverRecord } from '../../src/app/cluster-failover.ts';
import type { DiskOwnerRecord } from '../../src/cluster/disk-ownership-etcd.ts';
import type { Claim } from '../../src/cluster/placement.ts';
import { qemuPidsUnder } from '../helpers/cli.ts';
import { type SimCluster, type SimHost, destroyKeepingLogs, diedAtFailpoint, etcdGet, instanceDirOn, listOn, localRecord, ok, sharedDirCluster, statusOn } from '../helpers/cluster-hosts.ts';
import { eventually } from '../helpers/daemon.ts';
import { ConsoleCounter } from '../helpers/console-counter.ts';

/**
 * Live moves of a failover candidate (restart on-failure, its disk on a shared-dir pool) that a daemon's death
 * interrupts, on three netns hosts (real daemons and etcd, the tiny guest, lease TTL 6 s):
 * - the source's daemon dies (SIGKILL at `move.after-resume`) once the guest runs on the target, and its lease then
 *   expires: the claim carries the move's mark, so failover asks the target (which runs the guest) and holds; the
 *   target adopts the guest on its own (after its 20 s adopt wait, well after the lease went). Never a copy on the
 *   third host;
 * - the target's daemon dies (`move.target-before-cont`) after it removed its incoming marker, before its `cont`:
 *   its restarted daemon adopts the guest, still paused, and resumes it; the source's move ends, the downtime
 *   measured from the target's own resume (or said unknown), never a guess.
 * Each time the guest runs once, on the target, its counter going on.
 */

const TTL_S = 6;
const LAUNCH = ['--memory', '128M', '--seed', 'http', '--no-wait', '--cpu-model', 'qemu64', '--pool', 'shared'];


describe('live moves of a failover candidate whose source or target daemon dies (3 netns hosts, shared-dir pool, tiny guest)', () => {
  let sim: SimCluster;
  let h: SimHost[];
  const counter = new ConsoleCounter();
  const shared = mkdtempSync(join(tmpdir(), 'virtnode-move-failover-'));
  let uuid = '';
  // Every 100 ms: the most QEMUs seen at once on the host that is neither source nor target of the move.
  let sampler: NodeJS.Timeout | undefined;

  beforeAll(async () => {
    sim = await sharedDirCluster(shared, TTL_S);
    h = sim.hosts;
    for (const x of h) await ok(x, ['pool', 'create', 'shared', '--type', 'shared-dir', '--path', join(shared, 'pool')]);
  }, 180_000);
  afterAll(async () => {
    clearInterval(sampler);
    counter.release();
    await destroyKeepingLogs(sim, 'cluster-move-failover');
    rmSync(shared, { recursive: true, force: true });
  });

  const everyHostOnline = async (via: SimHost) =>
    eventually(async () => ((await statusOn(via)).hosts.every((x) => x.state === 'online') ? true : undefined), 60_000, 'every host online');

  async function runsOnceOn(where: SimHost): Promise<void> {
    for (const x of h.filter((y) => y.daemon !== undefined)) {
      const listed = (await listOn(x)).filter((i) => i.name === 'c1');
      expect(listed.map((i) => [i.host, i.state, i.uuid])).toEqual([[where.name, 'running', uuid]]);
    }
    const claim = etcdGet<Claim>(where, '/virtnode/claims/c1');
    expect(claim?.host).toBe(where.name);
    expect(claim?.moving).toBeUndefined();
    // Its disk stays on the shared pool, and its owner in etcd moved with the claim (to the QEMU that runs it).
    const disk = join(shared, 'pool', 'c1.disk0.qcow2');
    expect((localRecord(where, 'c1') as { spec: { disks: Array<{ path: string }> } }).spec.disks.map((d) => d.path)).toEqual([disk]);
    expect(etcdGet<DiskOwnerRecord>(where, `/virtnode/disks/${encodeURIComponent(disk)}`)).toMatchObject({ host: where.name, instance: 'c1', process: { pid: qemuPidsUnder(where.home)[0] } });
    expect(localRecord(where, 'c1')).toBeDefined();
    expect(h.map((x) => qemuPidsUnder(x.home).length)).toEqual(h.map((x) => (x === where ? 1 : 0)));
    for (const x of h) if (x !== where) expect([x.name, existsSync(instanceDirOn(x, 'c1')), localRecord(x, 'c1')]).toEqual([x.name, false, undefined]);
  }

  it('the source daemon dies after the guest runs on the target and its lease expires: failover holds (the claim is marked moving); the target adopts it; never a third copy', async () => {
    const [h1, h2, h3] = h as [SimHost, SimHost, SimHost];
    // h1's daemon dies, from now on, once a target answered `resume`. Restarted before c1 is a candidate: a daemon
    // that stops gives up its lease, which fails its candidates over.
    await h1.stopDaemon();
    await h1.startDaemon([], { VIRTNODE_FAILPOINT: 'move.after-resume' });
    await everyHostOnline(h2);
    await ok(h1, ['launch', 'tiny', '--name', 'c1', ...LAUNCH, '--target', 'h1']);
    await ok(h1, ['set', 'c1', 'restart=on-failure']);
    uuid = (await listOn(h1)).find((i) => i.name === 'c1')!.uuid;
    await eventually(() => {
      const r = etcdGet<FailoverRecord>(h2, '/virtnode/failover/c1');
      return r?.host === 'h1' && r.running ? true : undefined;
    }, 30_000, 'c1 a failover candidate of h1');
    await counter.start(instanceDirOn(h1, 'c1'));

    let third = 0;
    sampler = setInterval(() => (third = Math.max(third, qemuPidsUnder(h3.home).length)), 100);
    counter.release();
    const move = h1.cli(['move', 'c1', '--to', 'h2'], { timeoutMs: 180_000 });
    await diedAtFailpoint(h1);
    const diedAt = Date.now();
    expect((await move).code).not.toBe(0);
    // The claim still names h1, marked as moving to h2; h1's lease goes (its daemon is dead).
    expect(etcdGet<Claim>(h2, '/virtnode/claims/c1')).toMatchObject({ host: 'h1', moving: { to: 'h2' } });
    await eventually(() => (etcdGet(h2, '/virtnode/alive/h1') === undefined ? true : undefined), (TTL_S + 10) * 1000, "h1's lease to expire");
    const lostAt = Date.now();
    // Failover saw the dead host's candidate, asked the move's target, and held.
    await eventually(() => (h.some((x) => x.output().includes('failover held: the guest runs (or is resuming) on the target of its live move')) ? true : undefined), 20_000, 'failover to hold');
    await eventually(() => (etcdGet<Claim>(h2, '/virtnode/claims/c1')?.host === 'h2' && localRecord(h2, 'c1') !== undefined ? true : undefined), 60_000, 'h2 to adopt c1 on its own');
    console.log(`h1's lease went ${lostAt - diedAt} ms after its daemon died; h2 adopted the guest ${Date.now() - lostAt} ms after that (its adopt wait is 20 s); failover held meanwhile`);
    expect(etcdGet<Claim>(h2, '/virtnode/claims/c1')?.moving).toBeUndefined();
    // A few failover passes later still nothing on h3.
    await new Promise((r) => setTimeout(r, 3_000));
    clearInterval(sampler);
    expect(third).toBe(0);
    expect(h.every((x) => !x.output().includes('failover: instance placed on a live host'))).toBe(true);
    await counter.goesOn(instanceDirOn(h2, 'c1'));

    await h1.startDaemon();
    await eventually(() => (qemuPidsUnder(h1.home).length === 0 && !existsSync(instanceDirOn(h1, 'c1')) && localRecord(h1, 'c1') === undefined ? true : undefined), 60_000, 'h1 to forget c1');
    await everyHostOnline(h1);
    await runsOnceOn(h2);
    await counter.goesOn(instanceDirOn(h2, 'c1'));
  }, 420_000);

  it('the target daemon dies between removing its incoming marker and its cont: its restarted daemon adopts the paused guest and resumes it; the move ends', async () => {
    const [h2, h3] = [h[1]!, h[2]!];
    await h3.stopDaemon();
    await h3.startDaemon([], { VIRTNODE_FAILPOINT: 'move.target-before-cont' });
    await everyHostOnline(h2);
    counter.release();
    const move = h2.cli(['move', 'c1', '--to', 'h3'], { timeoutMs: 240_000 });
    await diedAtFailpoint(h3);
    // The guest is paused on both hosts now: on h2 (the switch), on h3 (no cont yet, no daemon).
    expect(qemuPidsUnder(h3.home)).toHaveLength(1);
    await h3.startDaemon();
    const r = await move;
    console.log(`move with the target dead before its cont: exit ${r.code}: ${r.stdout.trim()} ${r.stderr.trim()}`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Moved c1 from h2 to h3 in \d+\.\d s, downtime (\d+ ms|unknown)\n/);
    const downtime = /downtime (\d+) ms/.exec(r.stdout)?.[1];
    await h3.logged('its QEMU was still paused (the daemon died before its cont): resumed');
    await eventually(() => (qemuPidsUnder(h2.home).length === 0 && !existsSync(instanceDirOn(h2, 'c1')) ? true : undefined), 30_000, 'h2 to keep nothing of c1');
    await runsOnceOn(h3);
    await counter.goesOn(instanceDirOn(h3, 'c1'));
    if (downtime !== undefined) console.log(`reported downtime ${downtime} ms (the guest was paused until h3's daemon came back and resumed it)`);

    counter.release();
    await ok(h3, ['delete', '--force', 'c1']);
    expect(etcdGet(h3, '/virtnode/claims/c1')).toBeUndefined();
    expect(h.flatMap((x) => qemuPidsUnder(x.home))).toEqual([]);
    for (const x of h) expect(existsSync(instanceDirOn(x, 'c1'))).toBe(false);
  }, 420_000);
});
