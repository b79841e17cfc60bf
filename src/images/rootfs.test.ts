import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deleteRetiredRootfs, linuxPartition, retireRootfs, rootfsDir } from './rootfs.ts';

function mbr(entries: Array<{ type: number; start: number; sectors: number }>, signature = true): Buffer {
  const b = Buffer.alloc(512);
  entries.forEach((e, i) => {
    const at = 446 + i * 16;
    b[at + 4] = e.type;
    b.writeUInt32LE(e.start, at + 8);
    b.writeUInt32LE(e.sectors, at + 12);
  });
  if (signature) {
    b[510] = 0x55;
    b[511] = 0xaa;
  }
  return b;
}

describe('root filesystem of an image', () => {
  it('finds the first Linux partition of an MBR disk', () => {
    expect(linuxPartition(mbr([{ type: 0x83, start: 2048, sectors: 8386560 }]))).toEqual({ offset: 1048576, size: 8386560 * 512 });
    expect(linuxPartition(mbr([{ type: 0xef, start: 2048, sectors: 100 }, { type: 0x83, start: 4096, sectors: 10 }]))).toEqual({ offset: 4096 * 512, size: 5120 });
  });

  it('takes a disk without a partition table (or without a Linux partition) as a bare filesystem', () => {
    expect(linuxPartition(mbr([{ type: 0x83, start: 2048, sectors: 10 }], false))).toBeUndefined();
    expect(linuxPartition(mbr([{ type: 0x07, start: 2048, sectors: 10 }]))).toBeUndefined();
  });

  it('keeps one tree per image and id shift', () => {
    expect(rootfsDir('/s/images', 'ab12', 100000)).toBe('/s/images/rootfs/ab12-u100000');
    expect(rootfsDir('/s/images', 'ab12', 0)).toBe('/s/images/rootfs/ab12-u0');
  });
});

describe('retireRootfs and deleteRetiredRootfs', () => {
  it('take the trees of that image out of use at once, then delete them; other images keep theirs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'virtnode-rootfs-'));
    try {
      for (const tree of [rootfsDir(dir, 'aa', 0), rootfsDir(dir, 'aa', 100000), rootfsDir(dir, 'bb', 100000)]) mkdirSync(join(tree, 'etc'), { recursive: true });
      writeFileSync(join(dir, 'rootfs', 'aa-u100000.lock'), '');
      retireRootfs(dir, 'aa');
      expect(existsSync(rootfsDir(dir, 'aa', 0))).toBe(false);
      expect(existsSync(rootfsDir(dir, 'aa', 100000))).toBe(false);
      expect(readdirSync(join(dir, 'rootfs')).filter((e) => e.startsWith('.retired-aa-u'))).toHaveLength(2);
      await deleteRetiredRootfs(dir);
      expect(readdirSync(join(dir, 'rootfs')).sort()).toEqual(['aa-u100000.lock', 'bb-u100000']);
      expect(existsSync(rootfsDir(dir, 'bb', 100000))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
