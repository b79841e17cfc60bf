import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { imageInfo } from './img.ts';

describe('imageInfo (real qemu-img)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'virtnode-img-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a raw disk as raw when told so, even when its guest wrote a qcow2 header naming a host file into it', async () => {
    // What a guest can do to its raw disk: the bytes of a qcow2 image with a backing file of its choosing.
    const disk = join(dir, 'disk.raw');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', '/etc/hostname', disk, '1M']);
    expect(await imageInfo(disk)).toMatchObject({ format: 'qcow2', backingFile: '/etc/hostname' }); // probed: fooled
    const told = await imageInfo(disk, { format: 'raw' });
    expect(told.format).toBe('raw');
    expect(told.backingFile).toBeUndefined();
  });
});
