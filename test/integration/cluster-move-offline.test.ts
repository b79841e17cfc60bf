import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Claim } from '../../src/cluster/placement.ts';
import type { Instance } from '../../src/instances/model.ts';
import { statePaths } from '../../src/lib/paths.ts';
import { openDb } from '../../src/store/db.ts';
import { InstanceRepository } from '../../src/store/instances.ts';
import { qemuPidsUnder } from '../helpers/cli.ts';
import { type SimCluster, type SimHost, destroyKeepingLogs, etcdGet, formCluster, instanceDirOn, listOn, localRecord, ok, statusOn, tinyGuestHosts } from '../helpers/cluster-hosts.ts';
import { eventually } from '../helpers/daemon.ts';
import { SerialShell } from '../helpers/serial-shell.ts';

/**
 * The offline move of a stopped VM across a cluster of three simulated hosts (netns, real daemons and etcd members,
 * the tiny guest): data written on its disk goes with it; the source keeps nothing; the claim follows; a running VM
 * with --offline is refused; a warm launch's chain arrives as one overlay of the image; a target whose daemon dies
 * mid-copy leaves the source intact and no partial files.
 */

const LAUNCH = ['--memory', '128M', '--seed', 'http', '--no-wait'];
const MIB = 1024 * 1024;
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

const instanceDirs = (h: SimHost) => (existsSync(statePaths(h.home).instances) ? readdirSync(statePaths(h.home).instances) : []);

describe('moving stopped instances between the hosts of a cluster (netns, real daemons and etcd, the tiny guest)', () => {
  let sim: SimCluster;
  let h: SimHost[];
  const work = mkdtempSync(join(tmpdir(), 'virtnode-move-offline-'));
  beforeAll(async () => {
    sim = await tinyGuestHosts(3, { cpuOvercommit: 4 });
    h = sim.hosts;
    await formCluster(h);
  }, 180_000);
  afterAll(async () => {
    await destroyKeepingLogs(sim, 'cluster-move-offline');
    rmSync(work, { recursive: true, force: true });
  });

  it('a running VM with --offline is refused naming the field and changes nothing', async () => {
    const [h1, h2] = h as [SimHost, SimHost];
    await ok(h1, ['launch', 'tiny', '--name', 'o1', ...LAUNCH, '--target', 'h1']);
    const [pid] = qemuPidsUnder(h1.home);
    const r = await h2.cli(['move', 'o1', '--to', 'h2', '--offline']);
    expect(r.code).toBe(5);
    expect(r.stderr).toContain('error: o1 is running; --offline moves only a stopped, defined or crashed VM');
    expect(qemuPidsUnder(h1.home)).toEqual([pid]);
    expect(existsSync(instanceDirOn(h2, 'o1'))).toBe(false);
    expect(etcdGet<Claim>(h1, '/virtnode/claims/o1')?.host).toBe('h1');
  }, 180_000);

  it('moves a stopped VM from h1 to h2 when asked on h3: its disk data goes with it, h1 keeps nothing, the claim names h2', async () => {
    const [h1, h2, h3] = h as [SimHost, SimHost, SimHost];
    // A marker on its disk, written while it runs, flushed before it stops.
    const shell = await SerialShell.whenReady(instanceDirOn(h1, 'o1'), 120_000);
    // 12 MiB of random data after it, so that the copy takes long enough to be cut short below.
    await shell.run('printf moved-offline-marker > /dev/vda && dd if=/dev/urandom of=/dev/vda bs=1M count=12 seek=1 2>/dev/null; sync', 120_000);
    shell.close();
    await ok(h1, ['stop', '--force', 'o1']);
    const uuid = (await listOn(h1)).find((i) => i.name === 'o1')!.uuid;

    const started = Date.now();
    const out = await ok(h3, ['move', 'o1', '--to', 'h2']);
    console.log(`offline move h1 -> h2 (asked on h3): ${Date.now() - started} ms wall: ${out.trim()}`);
    expect(out).toMatch(/^Moved o1 from h1 to h2 in \d+\.\d s, offline \(\d+ MiB of disks copied\)\n$/);

    expect(existsSync(instanceDirOn(h1, 'o1'))).toBe(false);
    expect(localRecord(h1, 'o1')).toBeUndefined();
    expect(etcdGet<Claim>(h1, '/virtnode/claims/o1')?.host).toBe('h2');
    expect(instanceDirs(h2).filter((f) => f.includes('.part'))).toEqual([]);
    for (const x of h) {
      const o1 = (await listOn(x)).find((i) => i.name === 'o1');
      expect([o1?.host, o1?.state, o1?.uuid]).toEqual(['h2', 'stopped', uuid]);
    }

    // It starts on h2, and the marker is on its disk.
    await ok(h3, ['start', 'o1']);
    expect(qemuPidsUnder(h2.home)).toHaveLength(1);
    expect(qemuPidsUnder(h1.home)).toEqual([]);
    const there = await SerialShell.whenReady(instanceDirOn(h2, 'o1'), 120_000);
    try {
      const read = await there.run('head -c 20 /dev/vda; echo');
      expect(read.output).toContain('moved-offline-marker');
    } finally {
      there.close();
    }
    await ok(h2, ['stop', '--force', 'o1']);
  }, 300_000);

  it('a linked clone of an image the target lacks: only the overlay is copied, the target fetches the image by digest and rebases onto it', async () => {
    const [h1, h2, h3] = h as [SimHost, SimHost, SimHost];
    const raw = join(work, 'base.raw');
    execFileSync('dd', ['if=/dev/urandom', `of=${raw}`, 'bs=1M', 'count=8', 'status=none']);
    const file = join(work, 'base.qcow2');
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, file]);
    await ok(h1, ['image', 'import', file, '--name', 'base']);
    const [image] = JSON.parse(await ok(h1, ['image', 'ls', '--format', 'json'])) as Array<{ name: string; sha256: string }>;
    expect(JSON.parse(await ok(h2, ['image', 'ls', '--format', 'json']))).toEqual([]);
    // It boots through the firmware, which finds nothing: enough for a disk to move.
    await ok(h1, ['launch', 'base', '--name', 'o2', ...LAUNCH, '--target', 'h1']);
    await ok(h1, ['stop', '--force', 'o2']);

    const out = await ok(h3, ['move', 'o2', '--to', 'h2']);
    console.log(`offline move of a linked clone whose image h2 fetched: ${out.trim()}`);
    // The overlay only (under 1 MiB), not the 8 MiB base.
    expect(out).toMatch(/^Moved o2 from h1 to h2 in \d+\.\d s, offline \(0 MiB of disks copied\)\n$/);
    const there = JSON.parse(await ok(h2, ['image', 'ls', '--format', 'json'])) as Array<{ name: string; sha256: string; path?: string }>;
    expect(there.map((i) => [i.name, i.sha256])).toEqual([['base', image!.sha256]]);
    const disk = readdirSync(instanceDirOn(h2, 'o2')).find((f) => f.endsWith('.qcow2'))!;
    const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', '-U', join(instanceDirOn(h2, 'o2'), disk)], { encoding: 'utf8' })) as { 'backing-filename'?: string };
    expect(info['backing-filename']?.startsWith(h2.home)).toBe(true);
    expect(existsSync(instanceDirOn(h1, 'o2'))).toBe(false);
    expect(etcdGet<Claim>(h1, '/virtnode/claims/o2')?.host).toBe('h2');
    await ok(h2, ['delete', '--force', 'o2']);
    for (const x of [h1, h2]) await ok(x, ['image', 'rm', 'base']);
  }, 300_000);

  it("a warm launch's chain (image ← warm layer ← overlay): one overlay of the image goes with the warm layer folded in, the source's files unchanged, and it arrives cold", async () => {
    const [h1, h2, h3] = h as [SimHost, SimHost, SimHost];
    const raw = join(work, 'wbase.raw');
    execFileSync('dd', ['if=/dev/urandom', `of=${raw}`, 'bs=1M', 'count=32', 'status=none']);
    const file = join(work, 'wbase.qcow2');
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, file]);
    await ok(h1, ['image', 'import', file, '--name', 'wbase']);
    await ok(h1, ['launch', 'wbase', '--name', 'o3', ...LAUNCH, '--target', 'h1']);
    await ok(h1, ['stop', '--force', 'o3']);
    // Made as a warm launch leaves it: its disk over a layer with data of its own (the template's saved disk) over
    // the image, writes of its own over part of that layer's, and a warm runtime record.
    const rec = localRecord(h1, 'o3') as Instance;
    const disk = rec.spec.disks[0]!.path;
    const warm = join(work, 'warm-disk.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', rec.spec.image!.path, '-F', 'qcow2', warm]);
    // 24 MiB in the layer, so that the copy takes long enough to be cut short below.
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x5a ${1 * MIB} ${24 * MIB}`, warm]);
    execFileSync('qemu-img', ['rebase', '-q', '-f', 'qcow2', '-u', '-b', warm, '-F', 'qcow2', disk]);
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x3c ${2 * MIB} ${1 * MIB}`, disk]);
    const db = openDb(statePaths(h1.home).db);
    try {
      new InstanceRepository(db).updateSpec('o3', { ...rec.spec, runtime: { accel: 'tcg', qemuVersion: '7.2.22', warm: { machine: 'pc-q35-7.2', vmgenid: crypto.randomUUID() } } });
    } finally {
      db.close();
    }
    const expected = join(work, 'o3-expected.raw');
    execFileSync('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', disk, expected]);
    const sums = () => [sha256(warm), sha256(disk)];
    const before = sums();

    // A target (h3, asked on the owner) whose daemon dies mid-copy: the source keeps its files as they were and no
    // folded copy.
    const failed = h1.cli(['move', 'o3', '--to', 'h3'], { timeoutMs: 180_000 });
    const deadline = Date.now() + 60_000;
    let killed = false;
    while (!killed && Date.now() < deadline) {
      if (existsSync(instanceDirOn(h3, 'o3'))) {
        await h3.stopDaemon('SIGKILL');
        killed = true;
      } else await new Promise((r) => setTimeout(r, 5));
    }
    expect(killed).toBe(true);
    const r = await failed;
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^error: the move of o3 to h3 failed while copying; o3 stays on h1, unchanged: /m);
    expect(sums()).toEqual(before);
    expect(readdirSync(instanceDirOn(h1, 'o3')).filter((f) => f.startsWith('moving-'))).toEqual([]);
    expect((localRecord(h1, 'o3') as Instance).spec.runtime?.warm).toBeDefined();
    expect(etcdGet<Claim>(h1, '/virtnode/claims/o3')?.host).toBe('h1');
    await h3.startDaemon();
    await eventually(async () => ((await statusOn(h1)).hosts.find((x) => x.name === 'h3')?.state === 'online' ? true : undefined), 30_000, 'h3 online again');
    await eventually(() => (existsSync(instanceDirOn(h3, 'o3')) ? undefined : true), 30_000, 'nothing of o3 left on h3');

    const out = await ok(h3, ['move', 'o3', '--to', 'h2']);
    console.log(`offline move of a warm-launch-like chain: ${out.trim()}`);
    expect(out).toMatch(/^Moved o3 from h1 to h2 in \d+\.\d s, offline \(\d+ MiB of disks copied\)\n$/);
    const moved = localRecord(h2, 'o3') as Instance;
    expect(moved.spec.runtime?.warm).toBeUndefined();
    const placed = moved.spec.disks[0]!.path;
    const chain = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', '-U', '--backing-chain', placed], { encoding: 'utf8' })) as Array<{ filename: string }>;
    expect(chain.map((l) => l.filename)).toEqual([placed, moved.spec.image!.path]);
    expect(moved.spec.image!.path.startsWith(h2.home)).toBe(true);
    // It reads as it did on h1 (qemu-img compare exits non-zero otherwise).
    execFileSync('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', '-U', expected, placed]);
    expect(sha256(warm)).toBe(before[0]);
    expect(existsSync(instanceDirOn(h1, 'o3'))).toBe(false);
    expect(readdirSync(instanceDirOn(h2, 'o3')).filter((f) => f.includes('moving') || f.includes('.part'))).toEqual([]);
    await ok(h2, ['delete', '--force', 'o3']);
    for (const x of [h1, h2]) await ok(x, ['image', 'rm', 'wbase']);
  }, 300_000);

  it('a target whose daemon dies mid-copy: the source keeps the instance and its claim, the target no partial files once back', async () => {
    const [h1, h2, h3] = h as [SimHost, SimHost, SimHost];
    const move = h3.cli(['move', 'o1', '--to', 'h1'], { timeoutMs: 180_000 });
    // Kill h1's daemon (the target) as soon as its incoming directory appears.
    const deadline = Date.now() + 60_000;
    let killed = false;
    while (!killed && Date.now() < deadline) {
      if (existsSync(instanceDirOn(h1, 'o1'))) {
        await h1.stopDaemon('SIGKILL');
        killed = true;
      } else await new Promise((r) => setTimeout(r, 5));
    }
    expect(killed).toBe(true);
    const r = await move;
    console.log(`failed offline move: exit ${r.code}: ${r.stderr.trim()}`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^error: the move of o1 to h1 failed while copying; o1 stays on h2, unchanged: /m);
    // The killed target left its incoming directory behind (the partial copy)...
    expect(existsSync(instanceDirOn(h1, 'o1'))).toBe(true);
    // The source still has it, stopped, with its disk; its claim is unchanged.
    expect(localRecord(h2, 'o1')).toMatchObject({ name: 'o1', state: 'stopped' });
    expect(existsSync(instanceDirOn(h2, 'o1'))).toBe(true);
    expect(etcdGet<Claim>(h2, '/virtnode/claims/o1')?.host).toBe('h2');
    // ...which is gone once the target is back.
    await h1.startDaemon();
    await eventually(async () => ((await statusOn(h2)).hosts.find((x) => x.name === 'h1')?.state === 'online' ? true : undefined), 30_000, 'h1 online again');
    await eventually(() => (existsSync(instanceDirOn(h1, 'o1')) ? undefined : true), 30_000, 'nothing of o1 left on h1');
    expect(localRecord(h1, 'o1')).toBeUndefined();
    // And the instance still starts where it was.
    await ok(h2, ['start', 'o1']);
    expect(qemuPidsUnder(h2.home)).toHaveLength(1);
    await ok(h2, ['delete', '--force', 'o1']);
    expect(h.flatMap((x) => qemuPidsUnder(x.home))).toEqual([]);
  }, 300_000);
});
