import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/exec/run.ts';
import { openDb } from '../../src/store/db.ts';
import { InstanceRepository } from '../../src/store/instances.ts';
import { tempHome, virtnode, virtnodeOnTerminal } from '../helpers/cli.ts';
import { createTestImages, sha256 } from '../helpers/http-server.ts';
import type { TestImages } from '../helpers/http-server.ts';

interface ImageJson {
  name: string;
  format: string;
  sha256: string;
  virtualSize: number;
  fileSize: number;
  path: string;
  source: string;
  sourceSha256: string;
  verifiedBy: string | null;
}

const MIB = 1024 * 1024;

describe('virtnode image import / ls / info / rm', () => {
  const { home, cleanup } = tempHome('virtnode-image-store-');
  const imagesDir = join(home, 'images');
  let fixtures = '';
  let images: TestImages;
  let qcow2Sha = '';
  let raw = '';
  let withBacking = '';
  let vmdk = '';
  let disguisedXz = '';
  let gz = '';
  let brokenXz = '';

  const list = async (): Promise<ImageJson[]> => {
    const r = await virtnode(home, ['image', 'ls', '--format', 'json']);
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout) as ImageJson[];
  };
  const storedFiles = () => (existsSync(imagesDir) ? readdirSync(imagesDir).filter((f) => !f.startsWith('.')).sort() : []);
  const scratchLeft = () => [join(imagesDir, '.tmp'), join(imagesDir, '.partial')].flatMap((d) => (existsSync(d) ? readdirSync(d) : []));

  beforeAll(async () => {
    fixtures = await mkdtemp(join(tmpdir(), 'virtnode-image-fixtures-'));
    images = await createTestImages(fixtures);
    qcow2Sha = sha256(readFileSync(images.qcow2));
    raw = join(fixtures, 'disk.raw');
    writeFileSync(raw, Buffer.alloc(2 * MIB, 0x42));
    withBacking = join(fixtures, 'overlay.qcow2');
    await run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', images.qcow2, '-F', 'qcow2', withBacking], { timeoutMs: 30_000 });
    vmdk = join(fixtures, 'disk.vmdk');
    await run(['qemu-img', 'create', '-q', '-f', 'vmdk', vmdk, '16M'], { timeoutMs: 30_000 });
    disguisedXz = join(fixtures, 'disguised.img');
    copyFileSync(images.qcow2Xz, disguisedXz);
    await run(['gzip', '-k', '-f', images.qcow2], { timeoutMs: 30_000 });
    gz = `${images.qcow2}.gz`;
    brokenXz = join(fixtures, 'broken.qcow2.xz');
    const xz = readFileSync(images.qcow2Xz);
    writeFileSync(brokenXz, Buffer.concat([xz.subarray(0, 64), Buffer.alloc(4096, 0x11)]));
  });

  afterAll(async () => {
    cleanup();
    if (fixtures !== '') await rm(fixtures, { recursive: true, force: true });
  });

  it('imports a qcow2 under the name taken from the file, content-addressed and read-only', async () => {
    const r = await virtnode(home, ['image', 'import', images.qcow2]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Imported image test \\(qcow2, 64 MiB virtual, .* sha256 ${qcow2Sha}\\)\\n$`));
    const [image] = await list();
    expect(image).toMatchObject({ name: 'test', format: 'qcow2', sha256: qcow2Sha, virtualSize: 64 * MIB, source: images.qcow2, sourceSha256: qcow2Sha, verifiedBy: null });
    expect(image!.path).toBe(join(imagesDir, `${qcow2Sha}.qcow2`));
    expect(sha256(readFileSync(image!.path))).toBe(qcow2Sha);
    expect(statSync(image!.path).mode & 0o777).toBe(0o444);
    expect(image!.fileSize).toBe(statSync(images.qcow2).size);
    expect(scratchLeft()).toEqual([]);
  });

  it('imports a raw image with --name, clearing scratch space a killed import left behind', async () => {
    const stale = join(imagesDir, '.tmp', 'import-999999999-1-abcdef');
    mkdirSync(stale);
    writeFileSync(join(stale, 'image'), 'half a copy');
    const r = await virtnode(home, ['image', 'import', raw, '--name', 'disk']);
    expect(existsSync(stale)).toBe(false);
    expect(r.code).toBe(0);
    const disk = (await list()).find((i) => i.name === 'disk');
    expect(disk).toMatchObject({ format: 'raw', virtualSize: 2 * MIB, fileSize: 2 * MIB, sha256: sha256(readFileSync(raw)) });
    expect(disk!.path).toBe(join(imagesDir, `${disk!.sha256}.raw`));
  });

  it('decompresses an .xz first and stores the same content only once', async () => {
    const r = await virtnode(home, ['image', 'import', images.qcow2Xz, '--name', 'from-xz']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Imported image from-xz .*same content as image test, stored once/);
    const image = (await list()).find((i) => i.name === 'from-xz');
    expect(image).toMatchObject({ format: 'qcow2', sha256: qcow2Sha, sourceSha256: sha256(readFileSync(images.qcow2Xz)) });
    expect(storedFiles().filter((f) => f.startsWith(qcow2Sha))).toEqual([`${qcow2Sha}.qcow2`]);
    expect(scratchLeft()).toEqual([]);
    expect(existsSync(images.qcow2Xz)).toBe(true); // the user's file is left alone
  });

  it('recognises compression by its magic bytes, not the file name (xz named .img, gzip)', async () => {
    expect((await virtnode(home, ['image', 'import', disguisedXz])).code).toBe(0);
    expect((await virtnode(home, ['image', 'import', gz, '--name', 'from-gz'])).code).toBe(0);
    const all = await list();
    expect(all.find((i) => i.name === 'disguised')).toMatchObject({ format: 'qcow2', sha256: qcow2Sha });
    expect(all.find((i) => i.name === 'from-gz')).toMatchObject({ format: 'qcow2', sha256: qcow2Sha });
    expect(storedFiles()).toHaveLength(2); // the qcow2 content and the raw one
  });

  it('on a terminal an import shows its progress on one redrawn line (elsewhere it stays quiet)', async () => {
    const r = await virtnodeOnTerminal(home, ['image', 'import', images.qcow2Xz, '--name', 'on-a-tty']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/\r\x1b\[KImporting 100% {2}\[#{24}\] {2}576 KiB \/ 576 KiB {2}.* {2}done\r?\nImported image on-a-tty /);
    expect((await virtnode(home, ['image', 'rm', 'on-a-tty'])).code).toBe(0);
  });

  it('importing the same content under the same name again changes nothing', async () => {
    const before = await list();
    const r = await virtnode(home, ['image', 'import', images.qcow2]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Image test already holds this content/);
    expect(await list()).toEqual(before);
  });

  describe('bad input is refused with a clear error and changes nothing', () => {
    const cases: Array<[string, () => string[], number, RegExp]> = [
      ['an invalid name', () => ['image', 'import', images.qcow2, '--name', 'Bad_Name'], 2, /^error: --name: "Bad_Name" is not a valid name\nhint: use 1-63 lowercase/],
      ['a missing file', () => ['image', 'import', '/nonexistent/disk.qcow2'], 2, /^error: FILE: \/nonexistent\/disk.qcow2 does not exist or is not a readable file\n/],
      ['an unsupported format', () => ['image', 'import', vmdk], 2, /^error: FILE: .*disk\.vmdk is a vmdk image; only qcow2 and raw images can be stored\nhint: convert it first/],
      ['a qcow2 with a backing file', () => ['image', 'import', withBacking], 2, /^error: FILE: .*overlay\.qcow2 is a qcow2 image with a backing file \(.*test\.qcow2\); stored images must be self-contained/],
      ['a corrupt xz', () => ['image', 'import', brokenXz], 2, /^error: FILE: .*broken\.qcow2\.xz looks xz-compressed but cannot be decompressed/],
      ['a name taken by other content', () => ['image', 'import', raw, '--name', 'test'], 4, /^error: image test already exists\nhint: choose another name with --name/],
      ['info of an unknown image', () => ['image', 'info', 'ghost'], 3, /^error: image ghost does not exist\nhint: see `virtnode image ls`/],
      ['rm of an unknown image', () => ['image', 'rm', 'ghost'], 3, /^error: image ghost does not exist/],
      ['an unknown output format', () => ['image', 'ls', '--format', 'xml'], 2, /^error: --format: "xml" is not valid/],
    ];

    it.each(cases)('%s', async (_what, args, exitCode, message) => {
      const before = { list: await list(), files: storedFiles() };
      const r = await virtnode(home, args());
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n').length).toBeLessThanOrEqual(2);
      expect(r.code).toBe(exitCode);
      expect(r.stdout).toBe('');
      expect({ list: await list(), files: storedFiles() }).toEqual(before);
      expect(scratchLeft()).toEqual([]);
    });
  });

  it('lists images as a table and shows one in detail (table and json)', async () => {
    const table = await virtnode(home, ['image', 'ls']);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+FORMAT\s+VIRTUAL\s+SIZE\s+SHA256\s+SOURCE$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual(['disguised', 'disk', 'from-gz', 'from-xz', 'test']);
    expect(table.stdout).toMatch(new RegExp(`^test\\s+qcow2\\s+64 MiB\\s+\\S+ KiB\\s+${qcow2Sha.slice(0, 12)}\\s+${images.qcow2}$`, 'm'));

    const info = await virtnode(home, ['image', 'info', 'from-xz']);
    expect(info.code).toBe(0);
    expect(info.stdout).toMatch(/^Name:\s+from-xz$/m);
    expect(info.stdout).toMatch(/^Format:\s+qcow2$/m);
    expect(info.stdout).toMatch(/^Virtual size:\s+64 MiB \(67108864 bytes\)$/m);
    expect(info.stdout).toMatch(new RegExp(`^SHA256:\\s+${qcow2Sha}$`, 'm'));
    expect(info.stdout).toMatch(new RegExp(`^Path:\\s+${join(imagesDir, qcow2Sha)}\\.qcow2$`, 'm'));
    expect(info.stdout).toMatch(/^Source SHA256:\s+[0-9a-f]{64}$/m);

    const json = await virtnode(home, ['image', 'info', 'disk', '--format', 'json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ name: 'disk', format: 'raw', virtualSize: 2 * MIB, source: raw });
  });

  it('rm is refused while an instance uses the image, names it, and goes ahead with --force', async () => {
    const image = (await list()).find((i) => i.name === 'disk')!;
    const db = openDb(join(home, 'virtnode.db'));
    try {
      new InstanceRepository(db).insert({
        name: 'user-vm',
        type: 'vm',
        uuid: '6f1c1e0a-0000-4000-8000-000000000001',
        smbiosUuid: '6f1c1e0a-0000-4000-8000-000000000002',
        state: 'stopped',
        stateReason: undefined,
        spec: { cpus: 1, memoryMiB: 128, accel: 'tcg', disks: [], image: { name: 'disk', sha256: image.sha256, path: image.path } } as never,
        nics: [],
      });
    } finally {
      db.close();
    }
    const refused = await virtnode(home, ['image', 'rm', 'disk']);
    expect(refused.stderr).toMatch(/^error: image disk is used by instance user-vm\nhint: delete those instances first, or .* --force/);
    expect(refused.code).toBe(4);
    expect((await list()).map((i) => i.name)).toContain('disk');

    const forced = await virtnode(home, ['image', 'rm', 'disk', '--force']);
    expect(forced.code).toBe(0);
    expect(forced.stdout).toBe('Removed image disk (its file stays: used by instance user-vm)\n');
    expect((await list()).map((i) => i.name)).not.toContain('disk');
    expect(existsSync(image.path)).toBe(true); // the instance's backing file is never pulled from under it
  });

  it('rm deletes the file only with the last name that uses it', async () => {
    const path = join(imagesDir, `${qcow2Sha}.qcow2`);
    for (const name of ['test', 'from-xz', 'from-gz']) {
      const r = await virtnode(home, ['image', 'rm', name]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^Removed image ${name} \\(its file stays: same content as image .*disguised`));
      expect(existsSync(path)).toBe(true);
    }
    const last = await virtnode(home, ['image', 'rm', 'disguised']);
    expect(last.stdout).toBe('Removed image disguised\n');
    expect(existsSync(path)).toBe(false);
    expect(await list()).toEqual([]);
  });
});
