import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Static } from 'typebox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EvacuationResult } from '../../src/api/contracts/cluster.ts';
import type { InstanceView } from '../../src/api/schemas.ts';
import type { Claim } from '../../src/cluster/placement.ts';
import type { Instance } from '../../src/instances/model.ts';
import { processCmdline } from '../../src/lib/proc.ts';
import { queryMemorySizeSummary } from '../../src/qmp/commands.ts';
import { QmpConnection } from '../../src/qmp/connection.ts';
import { openDb } from '../../src/store/db.ts';
import { statePaths } from '../../src/lib/paths.ts';
import { qemuPidsUnder } from '../helpers/cli.ts';
import { type SimCluster, type SimHost, destroyKeepingLogs, etcdGet, formCluster, instanceDirOn, localRecord, ok, requestOn, tinyGuestHosts } from '../helpers/cluster-hosts.ts';
import { numbers } from '../helpers/console-counter.ts';
import { SerialShell } from '../helpers/serial-shell.ts';

/**
 * QEMU 7.2 (Debian 12's) under TCG loses what a guest writes during a live move when its RAM is a multiple of
 * 256 KiB (README, "live moves"): virtnode starts such guests with 8 KiB more RAM per block and records it, the
 * move's target starts with the same, and a guest whose RAM is not padded is refused a live move. Two simulated
 * hosts (netns, real daemons and etcd), the tiny guest under TCG.
 */

const LAUNCH = ['--seed', 'http', '--no-wait', '--cpu-model', 'qemu64'];
const MIB = 1024 * 1024;
/** 32 MiB rewritten without pause from two random sources, and a counter, in sessions of their own (off the console's job control). */
const BUSY =
  'dd if=/dev/urandom of=/run/s1 bs=1M count=16 2>/dev/null; dd if=/dev/urandom of=/run/s2 bs=1M count=16 2>/dev/null; ' +
  "setsid sh -c 'while :; do cat /run/s1 /run/s2 > /run/busy; cat /run/s2 /run/s1 > /run/busy; done' </dev/null >/dev/null 2>&1 & " +
  "setsid sh -c 'i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 1; done' </dev/null >/dev/null 2>&1 &";
const OOPS = /Oops|BUG:|general protection|exited with irqs disabled|Kernel panic|stack-protector/;

/** The `-m` value of the instance's QEMU on `h`, and the RAM its QEMU says the guest booted with. */
async function qemuMemory(h: SimHost, name: string): Promise<{ m: string; baseBytes: number }> {
  const [pid] = qemuPidsUnder(h.home);
  expect(pid).toBeDefined();
  const argv = processCmdline(pid!);
  const qmp = await QmpConnection.connect(join(instanceDirOn(h, name), 'qmp-query.sock'), { timeoutMs: 5_000 });
  try {
    return { m: argv[argv.indexOf('-m') + 1]!, baseBytes: (await queryMemorySizeSummary(qmp))['base-memory'] };
  } finally {
    qmp.close();
  }
}

async function viewOn(h: SimHost, name: string): Promise<InstanceView> {
  return JSON.parse(await ok(h, ['info', name, '--format', 'json'])) as InstanceView;
}

describe('live moves of TCG guests on QEMU < 9.0: padded RAM (netns, real daemons and etcd, the tiny guest)', () => {
  let sim: SimCluster;
  let h1: SimHost;
  let h2: SimHost;
  const shells: SerialShell[] = [];
  beforeAll(async () => {
    sim = await tinyGuestHosts(2);
    [h1, h2] = sim.hosts as [SimHost, SimHost];
    await formCluster(sim.hosts);
  }, 180_000);
  afterAll(async () => {
    for (const s of shells) s.close();
    await destroyKeepingLogs(sim, 'cluster-move-tcg-pad');
  });

  it('an unpadded TCG guest (started before virtnode padded) is refused a live move naming `offline`, changing nothing; evacuation leaves it', async () => {
    await ok(h1, ['launch', 'tiny', '--name', 'old', '--memory', '128M', ...LAUNCH, '--target', 'h1']);
    const view = await viewOn(h1, 'old');
    expect(view.memoryMiB).toBe(128);
    expect(view.runtime).toMatchObject({ accel: 'tcg', qemuVersion: expect.stringMatching(/^[0-8]\./), memoryPadKiB: 8 });
    // Its record as virtnode before this change left it: no padding recorded.
    const db = openDb(statePaths(h1.home).db);
    try {
      db.prepare("UPDATE instances SET spec = json_remove(spec, '$.runtime.memoryPadKiB') WHERE name = ?").run('old');
    } finally {
      db.close();
    }
    const [pid] = qemuPidsUnder(h1.home);

    const r = await h1.cli(['move', 'old', '--to', 'h2']);
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/^error: offline: old cannot move live: it runs under TCG on QEMU 7\.2\.\d+ \(before 9\.0\) with memory in whole multiples of 256 KiB, where QEMU loses the guest's writes during a live move\n/);
    expect(r.stderr).toContain('move it stopped (--offline), or restart it (`virtnode restart old`) so virtnode pads its memory by 8 KiB, or run QEMU 9.0 or later on both hosts');
    const rest = await requestOn(h1, 'POST', '/instances/old/move', { host: 'h2' });
    expect([rest.status, rest.body.error?.field]).toEqual([409, 'offline']);

    const evacuation = JSON.parse(await ok(h1, ['cluster', 'evacuate', 'h1', '--format', 'json'])) as Static<typeof EvacuationResult>;
    expect(evacuation.instances).toEqual([expect.objectContaining({ name: 'old', result: 'stays', reason: expect.stringContaining('cannot move live: it runs under TCG on QEMU 7.2') })]);
    await ok(h1, ['cluster', 'restore', 'h1']);

    // Nothing changed: the same QEMU, nothing on h2, the claim on h1, still running.
    expect(qemuPidsUnder(h1.home)).toEqual([pid]);
    expect(qemuPidsUnder(h2.home)).toEqual([]);
    expect(etcdGet<Claim>(h1, '/virtnode/claims/old')?.host).toBe('h1');
    expect((localRecord(h1, 'old') as Instance).state).toBe('running');
    await ok(h1, ['delete', '--force', 'old']);
  }, 300_000);

  it('a guest launched with --memory 256M runs with 8 KiB more, rewrites 32 MiB through a live move, and goes on on the target with the same sizes', async () => {
    await ok(h1, ['launch', 'tiny', '--name', 'busy', '--memory', '256M', ...LAUNCH, '--target', 'h1']);
    const padded = { m: `${256 * 1024 + 8}K`, baseBytes: 256 * MIB + 8 * 1024 };
    expect(await qemuMemory(h1, 'busy')).toEqual(padded);
    const view = await viewOn(h1, 'busy');
    expect([view.memoryMiB, view.runtime?.memoryPadKiB]).toEqual([256, 8]);

    const shell = await SerialShell.whenReady(instanceDirOn(h1, 'busy'), 120_000);
    shells.push(shell);
    await shell.run(BUSY);
    const sums = [...(await shell.run('md5sum /run/s1 /run/s2')).output.matchAll(/[0-9a-f]{32}/g)].map((m) => m[0]);
    expect(sums).toHaveLength(2);
    await new Promise((r) => setTimeout(r, 2_000));
    expect((await shell.run('ps | grep -q "[c]at /run/s"')).status).toBe(0);
    const [countBefore] = numbers((await shell.run('cat /tmp/count')).output);
    shell.close();

    const out = await ok(h1, ['move', 'busy', '--to', 'h2']);
    expect(out).toMatch(/^Moved busy from h1 to h2 in /);
    console.log(`busy 256M (+8 KiB) move: ${out.trim().split('\n')[0]}`);

    // The target's QEMU has the source's sizes, and the record there keeps the padding.
    expect(await qemuMemory(h2, 'busy')).toEqual(padded);
    expect((localRecord(h2, 'busy') as Instance).spec.runtime?.memoryPadKiB).toBe(8);
    expect((await viewOn(h2, 'busy')).memoryMiB).toBe(256);

    // The guest goes on on h2: its loop runs, its counter went on, its files are whole, its kernel never oopsed.
    const there = await SerialShell.open(instanceDirOn(h2, 'busy'));
    shells.push(there);
    for (const wait of [0, 3_000]) {
      await new Promise((r) => setTimeout(r, wait));
      expect((await there.run('ps | grep -q "[c]at /run/s"', 20_000)).status).toBe(0);
    }
    const [countAfter] = numbers((await there.run('cat /tmp/count')).output);
    expect(countAfter).toBeGreaterThan(countBefore!);
    const sumsThere = (await there.run('md5sum /run/s1 /run/s2')).output;
    for (const sum of sums) expect(sumsThere).toContain(sum);
    expect(readFileSync(join(instanceDirOn(h2, 'busy'), 'console.log'), 'utf8')).not.toMatch(OOPS);
    there.close();
    await ok(h2, ['delete', '--force', 'busy']);
  }, 400_000);
});
