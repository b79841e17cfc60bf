import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Claim } from '../../src/cluster/placement.ts';
import { qemuPidsUnder } from '../helpers/cli.ts';
import { type SimCluster, type SimHost, destroyKeepingLogs, diedAtFailpoint, etcdGet, formCluster, instanceDirOn, listOn, localRecord, ok, statusOn, tinyGuestHosts } from '../helpers/cluster-hosts.ts';
import { eventually } from '../helpers/daemon.ts';
import { ConsoleCounter } from '../helpers/console-counter.ts';

/**
 * Live moves that a daemon's death interrupts once the guest runs on the target (netns, real daemons and etcd, the
 * tiny guest), each daemon killed with SIGKILL at a fail point (src/lib/failpoint.ts, CLUSTER_FAILPOINTS):
 * - the source's daemon after the target answered `resume` and before its adopt step: the target adopts the guest
 *   on its own; the restarted source keeps nothing of it;
 * - the target's daemon after it resumed the guest and before it answered (the source's `resume` gets no answer):
 *   the source asks the target what became of the move; the restarted target has the guest, and the move ends;
 * - the source's daemon again, back before the target adopts on its own: the source sends the adopt step itself.
 * Each time the guest runs once, on the target, recorded there, its claim naming it, its counter going on.
 */

const LAUNCH = ['--memory', '128M', '--seed', 'http', '--no-wait', '--cpu-model', 'qemu64'];
/** The target adopts on its own this soon after the guest ran there (20 s unless told). */
const ADOPT_WAIT_MS = 2_000;

describe('live moves whose source or target daemon dies once the guest runs on the target (netns, real daemons and etcd, the tiny guest)', () => {
  let sim: SimCluster;
  let h: SimHost[];
  const counter = new ConsoleCounter();
  let uuid = '';

  beforeAll(async () => {
    sim = await tinyGuestHosts(3, { env: { VIRTNODE_MOVE_ADOPT_WAIT_MS: String(ADOPT_WAIT_MS), VIRTNODE_MOVE_STATUS_MS: '120000' } });
    h = sim.hosts;
    await formCluster(h);
  }, 180_000);
  afterAll(async () => {
    counter.release();
    await destroyKeepingLogs(sim, 'cluster-move-crash');
  });

  /** Once, running on `where`, the same VM, from every host whose daemon runs; one QEMU of it in the cluster. */
  async function runsOnceOn(where: SimHost): Promise<void> {
    for (const x of h.filter((y) => y.daemon !== undefined)) {
      const listed = (await listOn(x)).filter((i) => i.name === 'c1');
      expect(listed.map((i) => [i.host, i.state, i.uuid])).toEqual([[where.name, 'running', uuid]]);
    }
    expect(etcdGet<Claim>(where, '/virtnode/claims/c1')?.host).toBe(where.name);
    expect(localRecord(where, 'c1')).toBeDefined();
    expect(h.map((x) => qemuPidsUnder(x.home).length)).toEqual(h.map((x) => (x === where ? 1 : 0)));
    for (const x of h) if (x !== where) expect([x.name, existsSync(instanceDirOn(x, 'c1')), localRecord(x, 'c1')]).toEqual([x.name, false, undefined]);
  }

  it('the source daemon dies after the target resumed the guest, before adopt: the target adopts it on its own; the restarted source keeps nothing', async () => {
    const [h1, h2] = h as [SimHost, SimHost];
    await ok(h1, ['launch', 'tiny', '--name', 'c1', ...LAUNCH, '--target', 'h1']);
    uuid = (await listOn(h1)).find((i) => i.name === 'c1')!.uuid;
    await counter.start(instanceDirOn(h1, 'c1'));

    // h1's daemon again, now dying right after the target answered `resume`.
    await h1.stopDaemon();
    await h1.startDaemon([], { VIRTNODE_FAILPOINT: 'move.after-resume' });
    await eventually(async () => ((await statusOn(h2)).hosts.every((x) => x.state === 'online') ? true : undefined), 30_000, 'every host online again');
    const move = h1.cli(['move', 'c1', '--to', 'h2'], { timeoutMs: 180_000 });
    await diedAtFailpoint(h1);
    expect((await move).code).not.toBe(0);
    // The paused copy stays on h1 (its daemon is dead); the guest runs on h2, which adopts it on its own.
    expect(qemuPidsUnder(h1.home)).toHaveLength(1);
    const adoptedIn = Date.now();
    await eventually(() => (etcdGet<Claim>(h2, '/virtnode/claims/c1')?.host === 'h2' && localRecord(h2, 'c1') !== undefined ? true : undefined), 60_000, 'h2 to adopt c1 on its own');
    console.log(`the target adopted the guest on its own ${Date.now() - adoptedIn} ms after the source's daemon died (adopt wait ${ADOPT_WAIT_MS} ms)`);
    for (const x of [h2, h[2]!]) {
      const listed = (await listOn(x)).filter((i) => i.name === 'c1');
      expect(listed.map((i) => [i.host, i.state, i.uuid])).toEqual([['h2', 'running', uuid]]);
    }
    await counter.goesOn(instanceDirOn(h2, 'c1'));

    // The source comes back (dying, from now on, where a target answers `resume`: the next test's point).
    await h1.startDaemon([], { VIRTNODE_FAILPOINT: 'move.target-after-resume' });
    await eventually(() => (qemuPidsUnder(h1.home).length === 0 && !existsSync(instanceDirOn(h1, 'c1')) && localRecord(h1, 'c1') === undefined ? true : undefined), 60_000, 'h1 to forget c1');
    await runsOnceOn(h2);
    await counter.goesOn(instanceDirOn(h2, 'c1'));
  }, 420_000);

  it('the target daemon dies after it resumed the guest, before it answered: the source asks, the restarted target has it; it runs once, on the target', async () => {
    const [h1, h2] = h as [SimHost, SimHost];
    await eventually(async () => ((await statusOn(h2)).hosts.every((x) => x.state === 'online') ? true : undefined), 30_000, 'every host online');
    counter.release();
    const move = h2.cli(['move', 'c1', '--to', 'h1'], { timeoutMs: 240_000 });
    await diedAtFailpoint(h1);
    // Both copies are there now: the guest running on h1 (no record, no daemon), paused on h2.
    expect(qemuPidsUnder(h1.home)).toHaveLength(1);
    expect(qemuPidsUnder(h2.home)).toHaveLength(1);
    await h1.startDaemon();
    const r = await move;
    console.log(`move with the target's answer lost: exit ${r.code}: ${r.stdout.trim()} ${r.stderr.trim()}`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Moved c1 from h2 to h1 in /);
    // The downtime is the target's own resume against the source's stop (it resumed the guest at once, before it
    // died), not the time the source's asking took (which the restart of the target's daemon is in).
    const downtime = /, downtime (\d+) ms/.exec(r.stdout)?.[1];
    expect(downtime).toBeDefined();
    expect(Number(downtime)).toBeLessThan(2_000);
    await eventually(() => (qemuPidsUnder(h2.home).length === 0 && !existsSync(instanceDirOn(h2, 'c1')) ? true : undefined), 30_000, 'h2 to keep nothing of c1');
    await runsOnceOn(h1);
    await counter.goesOn(instanceDirOn(h1, 'c1'));
  }, 420_000);

  it('the source daemon dies after resume and comes back before the target adopts on its own: the source sends the adopt step itself', async () => {
    const [h1, h2] = h as [SimHost, SimHost];
    // h2 (the target now) waits 10 minutes for an adopt step; h1 (the source) dies after `resume` again.
    await h2.stopDaemon();
    await h2.startDaemon([], { VIRTNODE_MOVE_ADOPT_WAIT_MS: '600000' });
    await h1.stopDaemon();
    await h1.startDaemon([], { VIRTNODE_FAILPOINT: 'move.after-resume' });
    await eventually(async () => ((await statusOn(h[2]!)).hosts.every((x) => x.state === 'online') ? true : undefined), 30_000, 'every host online again');
    counter.release();
    const move = h1.cli(['move', 'c1', '--to', 'h2'], { timeoutMs: 180_000 });
    await diedAtFailpoint(h1);
    expect((await move).code).not.toBe(0);
    await h1.startDaemon();
    await eventually(() => (qemuPidsUnder(h1.home).length === 0 && !existsSync(instanceDirOn(h1, 'c1')) ? true : undefined), 60_000, 'h1 to settle the move');
    await h1.logged('move settled: the guest runs on the target, which adopted it now');
    await runsOnceOn(h2);
    await counter.goesOn(instanceDirOn(h2, 'c1'));
    // Gone for good from every host, with nothing left.
    counter.release();
    await ok(h1, ['delete', '--force', 'c1']);
    expect(etcdGet(h1, '/virtnode/claims/c1')).toBeUndefined();
    expect(h.flatMap((x) => qemuPidsUnder(x.home))).toEqual([]);
    for (const x of h) expect(existsSync(instanceDirOn(x, 'c1'))).toBe(false);
  }, 420_000);
});
