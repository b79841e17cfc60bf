/**
 * How a live move sends an instance's own disks (defaultTransfers), on real qcow2 chains made by qemu-img: a linked
 * clone of its image travels as an overlay over the target's copy of the image; a warm launch's disk (an overlay
 * on the template's saved disk, itself an overlay on the template) is mirrored whole live, and refused offline.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultTransfers } from '../../src/instances/migrate/move-instance.ts';
import type { Instance } from '../../src/instances/model.ts';
import { createImage } from '../../src/qemu/img.ts';

const dir = mkdtempSync(join(tmpdir(), 'virtnode-transfers-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const instanceWith = (diskPath: string, imagePath: string) =>
  ({ name: 'x', spec: { disks: [{ id: 'disk0', path: diskPath, format: 'qcow2', owned: true }], image: { name: 'tpl', sha256: 'a'.repeat(64), path: imagePath } } }) as unknown as Instance;

describe("a live move's transfers of an instance's own disks", () => {
  it('a linked clone of the image: an overlay over the base; a warm launch disk: whole when live, refused offline', async () => {
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
    await expect(defaultTransfers(instanceWith(warmLaunched, image))).rejects.toMatchObject({ code: 'HOST_UNSUPPORTED', field: 'disks' });
    // Any other chain is refused live too.
    const other = join(dir, 'other.qcow2');
    await createImage(other, { format: 'qcow2', sizeBytes: 64 * 1024 * 1024 });
    const onOther = join(dir, 'on-other.qcow2');
    await createImage(onOther, { format: 'qcow2', backing: { path: other, format: 'qcow2' } });
    await expect(defaultTransfers(instanceWith(onOther, image), {}, { live: true })).rejects.toMatchObject({ code: 'HOST_UNSUPPORTED', field: 'disks' });
  });
});
