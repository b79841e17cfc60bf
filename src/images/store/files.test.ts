import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultImageName, detectCompression } from './files.ts';

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
