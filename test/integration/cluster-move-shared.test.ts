import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FailoverRecord } from '../../src/app/cluster-failover.ts';
import type { DiskOwnerRecord } from '../../src/cluster/disk-ownership-etcd.ts';
import type { Claim } from '../../src/cluster/placement.ts';
import { qemuPidsUnder } from '../helpers/cli.ts';
import { crashHost, type SimCluster, type SimHost, destroyKeepingLogs, etcdGet, instanceDirOn, listOn, localRecord, ok, requestOn, sharedDirCluster } from '../helpers/cluster-hosts.ts';
import { eventually } from '../helpers/daemon.ts';
import { ConsoleCounter } from '../helpers/console-counter.ts';
import { SerialShell } from '../helpers/serial-shell.ts';

/**
 * A live move of a failover candidate whose disk is on a shared-dir pool (one directory every netns host sees at the
 * same path), on three hosts (real daemons and etcd, the tiny guest): only its memory moves. The disk file stays,
 * the same path and inode; the target's QEMU opens it (QEMU's migration hands the image over: inactive on the
 * target until the switch-over), its claim in etcd names the target's QEMU, the instance is still a failover
 * candidate there (a crash of its new host restarts it elsewhere). A host without the pool is refused naming
 * `disks`; a cancelled move leaves the disk, its claim and the guest as they were.
 */

const TTL_S = 6;
const LAUNCH = ['--memory', '128M', '--seed', 'http', '--no-wait', '--cpu-model', 'qemu64', '--pool', 'shared'];
const MIB = 1024 * 1024;
// 12 MiB into the guest's 16 MiB disk, past the marker at 1 MiB.
const WRITE_12M = 'dd if=/dev/urandom of=/dev/vda bs=1048576 seek=2 count=12 conv=fsync 2>&1; echo rc=$?';


describe('live move of an instance on a shared pool: only its memory moves (3 netns hosts, shared-dir pool, tiny guest)', () => {
  let sim: SimCluster;
  let h: SimHost[];
  const counter = new ConsoleCounter();
  const shared = mkdtempSync(join(tmpdir(), 'virtnode-move-shared-'));
  const pool = join(shared, 'pool');
  const disk = join(pool, 's1.disk0.qcow2');
  const diskKey = `/virtnode/disks/${encodeURIComponent(disk)}`;

  beforeAll(async () => {
    sim = await sharedDirCluster(shared, TTL_S);
    h = sim.hosts;
    // h3 has no such pool (yet).
    for (const x of h.slice(0, 2)) await ok(x, ['pool', 'create', 'shared', '--type', 'shared-dir', '--path', pool]);
  }, 180_000);
  afterAll(async () => {
    counter.release();
    await destroyKeepingLogs(sim, 'cluster-move-shared');
    rmSync(shared, { recursive: true, force: true });
  });

  it('a target without the shared pool is refused naming disks, nothing changed', async () => {
    const [h1, h2, h3] = h as [SimHost, SimHost, SimHost];
    await ok(h1, ['launch', 'tiny', '--name', 's1', ...LAUNCH, '--target', 'h1']);
    await ok(h1, ['set', 's1', 'restart=on-failure']);
    await eventually(() => (etcdGet<FailoverRecord>(h2, '/virtnode/failover/s1')?.running === true ? true : undefined), 30_000, 's1 a failover candidate of h1');
    expect(etcdGet<DiskOwnerRecord>(h1, diskKey)).toMatchObject({ host: 'h1', instance: 's1' });
    await counter.start(instanceDirOn(h1, 's1'));

    const refused = await h1.cli(['move', 's1', '--to', 'h3']);
    expect(refused.code).toBe(11);
    expect(refused.stderr).toContain(`disks: disk0 (${disk}) is on no shared pool of this host`);
    const rest = await requestOn(h1, 'POST', '/instances/s1/move', { host: 'h3' });
    expect(rest.status).toBe(501);
    expect(rest.body.error).toMatchObject({ code: 'HOST_UNSUPPORTED', field: 'disks' });
    expect(qemuPidsUnder(h3.home)).toEqual([]);
    expect(existsSync(instanceDirOn(h3, 's1'))).toBe(false);
    expect(etcdGet<Claim>(h1, '/virtnode/claims/s1')).toMatchObject({ host: 'h1' });
    // From now on h3 has the pool too (a failover may go there).
    await ok(h3, ['pool', 'create', 'shared', '--type', 'shared-dir', '--path', pool]);
  }, 240_000);

  it('a move cancelled midway leaves the disk, its claim and the guest on h1 as they were', async () => {
    const [h1, h2] = h as [SimHost, SimHost];
    const [pid] = qemuPidsUnder(h1.home);
    const owner = etcdGet<DiskOwnerRecord>(h1, diskKey);
    const ino = statSync(disk).ino;
    // Slowed down, so the cancel comes before the switch-over.
    const started = await requestOn(h1, 'POST', '/instances/s1/move', { host: 'h2', bandwidthMiBs: 1 });
    expect(started.status).toBe(202);
    await eventually(() => (qemuPidsUnder(h2.home).length === 1 ? true : undefined), 60_000, "the target's QEMU, waiting for the memory");
    const cancel = await requestOn(h1, 'DELETE', `/operations/${started.body.id}`);
    expect(cancel.status).toBe(202);
    const done = await requestOn(h1, 'GET', `/operations/${started.body.id}/wait?timeout=60`);
    expect(done.body['status']).toBe('cancelled');
    expect(qemuPidsUnder(h1.home)).toEqual([pid]);
    await eventually(() => (qemuPidsUnder(h2.home).length === 0 && !existsSync(instanceDirOn(h2, 's1')) ? true : undefined), 15_000, 'nothing left on h2');
    expect(statSync(disk).ino).toBe(ino);
    expect(etcdGet<DiskOwnerRecord>(h1, diskKey)).toEqual(owner);
    expect(etcdGet<Claim>(h1, '/virtnode/claims/s1')).toMatchObject({ host: 'h1' });
    expect(etcdGet<Claim>(h1, '/virtnode/claims/s1')?.moving).toBeUndefined();
    await counter.goesOn(instanceDirOn(h1, 's1'));
    // The guest still writes its disk (its image is active again on h1).
    const w = await counter.shell.run('echo still-mine | dd of=/dev/vda bs=512 seek=2048 conv=fsync 2>&1; echo rc=$?');
    expect(w.output).toContain('rc=0');
    // 12 MiB written, as the local-pool instance below does (whose move mirrors them).
    expect((await counter.shell.run(WRITE_12M)).output).toContain('rc=0');
  }, 180_000);

  it('a live move h1 -> h2 moves only memory: the same disk file, its claim and the failover record name h2, nothing left on h1', async () => {
    const [h1, h2] = h as [SimHost, SimHost];
    counter.release();
    const before = statSync(disk);
    const started = await requestOn(h1, 'POST', '/instances/s1/move', { host: 'h2' });
    expect(started.status).toBe(202);
    const done = await requestOn(h1, 'GET', `/operations/${started.body.id}/wait?timeout=180`);
    expect(done.body['status'], JSON.stringify(done.body)).toBe('succeeded');
    const result = done.body['result'] as { totalMs: number; downtimeMs: number | null; bytesSent: number; diskBytes: number; instance: { disks?: unknown } };
    console.log(`shared-pool move h1 -> h2: ${result.totalMs} ms in all, downtime ${result.downtimeMs} ms, memory ${Math.round(result.bytesSent / MIB)} MiB, disks ${result.diskBytes} bytes (the disk file is ${Math.round(before.size / MIB)} MiB)`);
    expect(result.diskBytes).toBe(0);

    const after = statSync(disk);
    expect([after.dev, after.ino]).toEqual([before.dev, before.ino]);
    const rec = localRecord(h2, 's1') as { spec: { disks: Array<{ path: string }> } } | undefined;
    expect(rec?.spec.disks.map((d) => d.path)).toEqual([disk]);
    // Nothing left on h1; h2's instance directory has no disk of its own.
    expect(qemuPidsUnder(h1.home)).toEqual([]);
    expect(existsSync(instanceDirOn(h1, 's1'))).toBe(false);
    expect(localRecord(h1, 's1')).toBeUndefined();
    expect(readdirSync(instanceDirOn(h2, 's1')).filter((f) => /\.(qcow2|raw)$/.test(f))).toEqual([]);
    const [qemu] = qemuPidsUnder(h2.home);
    expect(etcdGet<Claim>(h1, '/virtnode/claims/s1')).toMatchObject({ host: 'h2' });
    expect(etcdGet<DiskOwnerRecord>(h1, diskKey)).toMatchObject({ host: 'h2', instance: 's1', stateDir: h2.home, process: { pid: qemu } });
    await eventually(() => {
      const r = etcdGet<FailoverRecord>(h1, '/virtnode/failover/s1');
      return r?.host === 'h2' && r.running && r.disks.join() === disk ? true : undefined;
    }, 30_000, 's1 a failover candidate of h2');
    await counter.goesOn(instanceDirOn(h2, 's1'));
    const read = await counter.shell.run('dd if=/dev/vda bs=512 skip=2048 count=1 2>/dev/null | head -c 10; echo');
    expect(read.output).toContain('still-mine');
  }, 240_000);

  it('for comparison, in the same run: an instance on a local pool copies its disk (mirror)', async () => {
    const [h1, h2] = h as [SimHost, SimHost];
    await ok(h1, ['launch', 'tiny', '--name', 'l1', '--memory', '128M', '--seed', 'http', '--no-wait', '--cpu-model', 'qemu64', '--target', 'h1']);
    const shell = await SerialShell.whenReady(instanceDirOn(h1, 'l1'), 120_000);
    try {
      expect((await shell.run(WRITE_12M)).output).toContain('rc=0');
    } finally {
      shell.close();
    }
    try {
      const started = await requestOn(h1, 'POST', '/instances/l1/move', { host: 'h2' });
      const done = await requestOn(h1, 'GET', `/operations/${started.body.id}/wait?timeout=180`);
      expect(done.body['status'], JSON.stringify(done.body)).toBe('succeeded');
      const result = done.body['result'] as { totalMs: number; downtimeMs: number | null; bytesSent: number; diskBytes: number };
      console.log(`local-pool move h1 -> h2: ${result.totalMs} ms in all, downtime ${result.downtimeMs} ms, memory ${Math.round(result.bytesSent / MIB)} MiB, disks ${Math.round(result.diskBytes / MIB)} MiB mirrored`);
      expect(result.diskBytes).toBeGreaterThanOrEqual(12 * MIB);
    } finally {
      // Wherever it is (its owner answers a delete asked on any host).
      await ok(h2, ['delete', 'l1', '--force']);
    }
  }, 240_000);

  it('still a failover candidate: h2 crashes, s1 runs again on another host with the same disk', async () => {
    const h2 = h[1]!;
    const survivors = h.filter((x) => x !== h2);
    counter.release();
    await crashHost(h2);
    // The survivor whose QEMU holds the disk claim (pid 0 until its start hands the claim to its QEMU).
    const to = await eventually(() => {
      const owner = etcdGet<DiskOwnerRecord>(survivors[0]!, diskKey);
      const x = survivors.find((y) => y.name === owner?.host);
      return x !== undefined && owner!.process.pid !== 0 && qemuPidsUnder(x.home).includes(owner!.process.pid) ? x : undefined;
    }, 60_000, 's1 started on a survivor, holding its disk claim');
    const listed = await eventually(async () => (await listOn(to)).find((i) => i.name === 's1' && i.state === 'running'), 60_000, 's1 listed running');
    expect(listed.host).toBe(to.name);
    console.log(`after the move, h2's crash failed s1 over to ${to.name}`);
  }, 180_000);
});
