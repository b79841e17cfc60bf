import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { decompress, defaultImageName, detectCompression } from './files.ts';

describe('defaultImageName', () => {
  it.each([
    ['debian-12-genericcloud-amd64.qcow2', 'debian-12-genericcloud-amd64'],
    ['/path/to/Ubuntu_24.04.img.xz', 'ubuntu-24-04'],
    ['disk.raw.gz', 'disk'],
    ['--weird--.qcow2', 'weird'],
    ['...', ''],
    [`${'x'.repeat(70)}.qcow2`, 'x'.repeat(63)],
  ])('%s → %s', (file, name) => {
    expect(defaultImageName(file)).toBe(name);
  });
});

describe('detectCompression', () => {
  const dir = mkdtempSync(join(tmpdir(), 'virtnode-detect-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('goes by the first bytes, whatever the name says', () => {
    const xz = join(dir, 'a.qcow2');
    writeFileSync(xz, Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1, 2, 3]));
    const gz = join(dir, 'b.img');
    writeFileSync(gz, gzipSync('hello'));
    const plain = join(dir, 'c.xz');
    writeFileSync(plain, 'QFI\xfb not compressed');
    const tiny = join(dir, 'd');
    writeFileSync(tiny, Buffer.from([0xfd]));
    return Promise.all([detectCompression(xz), detectCompression(gz), detectCompression(plain), detectCompression(tiny)]).then((r) =>
      expect(r).toEqual(['xz', 'gzip', undefined, undefined]),
    );
  });
});

describe('decompress: a small file that expands without end does not fill the disk', () => {
  const dir = mkdtempSync(join(tmpdir(), 'virtnode-bomb-'));
  afterAll(() => {
    delete process.env['VIRTNODE_MAX_IMAGE_BYTES'];
    rmSync(dir, { recursive: true, force: true });
  });

  it.each(['gzip', 'xz'] as const)('%s: stops past the limit, naming it; a file under it decompresses', async (compression) => {
    const zeros = join(dir, `zeros-${compression}`);
    writeFileSync(zeros, Buffer.alloc(8 * 1024 * 1024)); // 8 MiB of zeros: a few KiB compressed
    const packed = `${zeros}.${compression === 'gzip' ? 'gz' : 'xz'}`;
    if (compression === 'gzip') writeFileSync(packed, gzipSync(readFileSync(zeros)));
    else execFileSync('xz', ['-k', '-T1', zeros]);
    const scratch = (name: string) => {
      const d = join(dir, `${compression}-${name}`);
      mkdirSync(d);
      return d;
    };
    process.env['VIRTNODE_MAX_IMAGE_BYTES'] = String(1024 * 1024);
    const refused = await decompress(packed, compression, scratch('over')).then(
      () => 'decompressed',
      (e: Error) => e.message,
    );
    expect(refused).toMatch(/^it decompresses to (more than 1 MiB|8 MiB), over the largest image virtnode takes \(1 MiB, VIRTNODE_MAX_IMAGE_BYTES\)$/);
    process.env['VIRTNODE_MAX_IMAGE_BYTES'] = String(16 * 1024 * 1024);
    const ok = await decompress(packed, compression, scratch('under'));
    expect(statSync(ok.path).size).toBe(8 * 1024 * 1024);
  });
});
