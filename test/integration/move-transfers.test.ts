/**
 * How a live move sends an instance's own disks (defaultTransfers), on real qcow2 chains made by qemu-img: a linked
 * clone of its image travels as an overlay over the target's copy of the image; a warm launch's disk (an overlay
 * on the template's saved disk, itself an overlay on the template) is mirrored whole live, and offline travels as
 * one overlay of the template with the warm layer folded in.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultTransfers } from '../../src/instances/migrate/move-instance.ts';
import type { Instance } from '../../src/instances/model.ts';
import { run } from '../../src/exec/run.ts';
import { foldOnto } from '../../src/instances/migrate/offline-chain.ts';
import { createImage } from '../../src/qemu/img.ts';
import { backingChain, rebaseImage } from '../../src/storage/qemu-img.ts';

const dir = mkdtempSync(join(tmpdir(), 'virtnode-transfers-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const instanceWith = (diskPath: string, imagePath: string) =>
  ({ name: 'x', spec: { disks: [{ id: 'disk0', path: diskPath, format: 'qcow2', owned: true }], image: { name: 'tpl', sha256: 'a'.repeat(64), path: imagePath } } }) as unknown as Instance;

describe("a live move's transfers of an instance's own disks", () => {
  it('a linked clone of the image: an overlay over the base; a warm launch disk: whole when live, offline an overlay of the base with the warm layer to fold', async () => {
    const image = join(dir, 'template.qcow2');
    const warm = join(dir, 'warm-disk.qcow2');
    const cold = join(dir, 'cold-disk0.qcow2');
    const warmLaunched = join(dir, 'warm-disk0.qcow2');
    await createImage(image, { format: 'qcow2', sizeBytes: 64 * 1024 * 1024 });
    await createImage(warm, { format: 'qcow2', backing: { path: image, format: 'qcow2' } });
    await createImage(cold, { format: 'qcow2', backing: { path: image, format: 'qcow2' } });
    await createImage(warmLaunched, { format: 'qcow2', backing: { path: warm, format: 'qcow2' } });

    expect(await defaultTransfers(instanceWith(cold, image), {}, { live: true })).toEqual({ disk0: { kind: 'copy', base: { sha256: 'a'.repeat(64), format: 'qcow2', sourcePath: image } } });
    expect(await defaultTransfers(instanceWith(warmLaunched, image), {}, { live: true })).toEqual({ disk0: { kind: 'copy' } });
    // Offline: one overlay of the image, the warm layer folded in.
    expect(await defaultTransfers(instanceWith(warmLaunched, image))).toEqual({ disk0: { kind: 'copy', base: { sha256: 'a'.repeat(64), format: 'qcow2', sourcePath: image }, fold: [warm] } });
    // Any other chain is refused live too.
    const other = join(dir, 'other.qcow2');
    await createImage(other, { format: 'qcow2', sizeBytes: 64 * 1024 * 1024 });
    const onOther = join(dir, 'on-other.qcow2');
    await createImage(onOther, { format: 'qcow2', backing: { path: other, format: 'qcow2' } });
    await expect(defaultTransfers(instanceWith(onOther, image), {}, { live: true })).rejects.toMatchObject({ code: 'HOST_UNSUPPORTED', field: 'disks' });
    await expect(defaultTransfers(instanceWith(onOther, image))).rejects.toMatchObject({ code: 'HOST_UNSUPPORTED', field: 'disks' });
    // An overlay of a raw file that is not the image: refused naming the disk, not a qemu-img error.
    const rawOther = join(dir, 'other.raw');
    await createImage(rawOther, { format: 'raw', sizeBytes: 64 * 1024 * 1024 });
    const onRaw = join(dir, 'on-raw.qcow2');
    await createImage(onRaw, { format: 'qcow2', backing: { path: rawOther, format: 'raw' } });
    await expect(defaultTransfers(instanceWith(onRaw, image))).rejects.toMatchObject({ code: 'HOST_UNSUPPORTED', field: 'disks', message: expect.stringContaining(`disk disk0 is an overlay of ${rawOther}`) });
  });
});

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const MIB = 1024 * 1024;
/** Writes `count` MiB of `byte` at `offsetMiB` into the image (its top layer). */
const writeAt = (path: string, byte: number, offsetMiB: number, count = 1) =>
  run(['qemu-io', '-f', 'qcow2', '-c', `write -P ${byte} ${offsetMiB * MIB} ${count * MIB}`, path], { timeoutMs: 30_000 });

describe("an offline move's transfer of a warm launch's disk (base ← warm layer ← instance overlay)", () => {
  it('sends one overlay of the base with the warm layer folded in: the target reads the same data over its own base, the source is unchanged', async () => {
    const src = join(dir, 'src');
    const dst = join(dir, 'dst');
    mkdirSync(src);
    mkdirSync(dst);
    const base = join(src, 'template.qcow2');
    const warm = join(src, 'warm-disk.qcow2');
    const disk = join(src, 'disk0.qcow2');
    await createImage(base, { format: 'qcow2', sizeBytes: 64 * MIB });
    await writeAt(base, 0x11, 0, 4); // the template's data: MiB 0-3
    await createImage(warm, { format: 'qcow2', backing: { path: base, format: 'qcow2' } });
    await writeAt(warm, 0x22, 2, 4); // the warm boot's writes: MiB 2-5, over part of the template's
    await createImage(disk, { format: 'qcow2', backing: { path: warm, format: 'qcow2' } });
    await writeAt(disk, 0x33, 5, 2); // the instance's own: MiB 5-6, over part of the warm layer's
    const before = [base, warm, disk].map(sha256);

    const transfers = await defaultTransfers(instanceWith(disk, base));
    const t = transfers.disk0!;
    expect(t).toMatchObject({ kind: 'copy', base: { sourcePath: base }, fold: [warm] });
    if (t.kind !== 'copy' || t.base === undefined) throw new Error('not an overlay');
    // The source's side: the folded overlay, a new file.
    const sent = join(src, 'moving-disk0.qcow2');
    await foldOnto(disk, { path: t.base.sourcePath, format: t.base.format }, sent);
    // The target's side: its own copy of the base, the file received, rebased onto that copy (as offline moves do).
    const targetBase = join(dst, 'base.qcow2');
    const placed = join(dst, 'disk0.qcow2');
    copyFileSync(base, targetBase);
    copyFileSync(sent, placed);
    rmSync(sent);
    await rebaseImage(placed, { path: targetBase, format: 'qcow2' }, { safe: false });

    const chain = await backingChain(placed, { format: 'qcow2' });
    expect(chain.map((l) => l.path)).toEqual([placed, targetBase]);
    await run(['qemu-img', 'compare', '-f', 'qcow2', '-F', 'qcow2', disk, placed], { timeoutMs: 60_000 });
    // The overlay holds what differs from the base only (the warm layer's 4 MiB and the instance's, not the template's).
    expect(chain[0]!.allocation).toBeLessThan(16 * MIB);
    expect([base, warm, disk].map(sha256)).toEqual(before);
    // A target whose data differed would be caught: the comparison is not vacuous.
    await writeAt(placed, 0x44, 3);
    await expect(run(['qemu-img', 'compare', '-f', 'qcow2', '-F', 'qcow2', disk, placed], { timeoutMs: 60_000 })).rejects.toThrow();
  });
});
