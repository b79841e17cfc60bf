import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/exec/run.ts';
import { cliChecks } from '../helpers/cli-checks.ts';
import { killQemusUnder, virtnode, type CliResult } from '../helpers/cli.ts';
import { sha256, TestHttpServer } from '../helpers/http-server.ts';
import { expectImageClean, internalTags } from '../helpers/snapshots.ts';
import { testGuest } from '../helpers/test-guest.ts';

const guest = testGuest();
const bootArgs = ['--memory', '128M', '--kernel', guest.kernel, '--initrd', guest.initrd, '--cmdline', guest.cmdline];
const MiB = 1024 * 1024;
/** The state directory's filesystem: a tmpfs this test mounts, small enough to fill in a moment. */
const FS_BYTES = 192 * MiB;
/**
 * "Space given back": the filesystem's used bytes after a failed operation, against before it. What may differ
 * is the database's WAL and -shm files (SQLite keeps them between commands) and directories made on first use.
 */
const TOLERANCE_BYTES = 192 * 1024;

interface VolumeJson {
  name: string;
  path: string;
  format: string;
}

/**
 * Each operation runs out of space part-way (the rest of the filesystem is taken by a filler file first) and
 * must: exit NO_SPACE (15) with one line naming what failed and where to free space (no stack trace, no
 * INTERNAL), corrupt nothing (images pass qemu-img check, the database passes integrity_check and lists what was
 * there, the instance made before still starts), give the space back (no partial or temporary files), and
 * succeed once space is freed.
 */
describe('a full state directory: clear errors, nothing corrupt, space given back (tmpfs, tiny guest)', { timeout: 600_000 }, () => {
  const mnt = mkdtempSync(join(tmpdir(), 'virtnode-full-'));
  const home = join(mnt, 'home');
  const pool = join(home, 'pools', 'default');
  const filler = join(mnt, 'filler');
  const outDir = join(mnt, 'out');
  const fixtures = mkdtempSync(join(tmpdir(), 'virtnode-full-fixtures-'));
  let mounted = false;
  /** `defined` until its first start, then `stopped` between the tests that start it. */
  let vmState = 'defined';
  let server: TestHttpServer | undefined;
  const { ok } = cliChecks(home);

  beforeAll(async () => {
    await run(['mount', '-t', 'tmpfs', '-o', `size=${FS_BYTES},mode=0700`, 'tmpfs', mnt], { timeoutMs: 10_000 });
    mounted = true;
    mkdirSync(home, { mode: 0o700 });
    mkdirSync(outDir);
    server = await TestHttpServer.start();
  });

  afterAll(async () => {
    await server?.close();
    killQemusUnder(home);
    if (mounted) {
      // QEMUs killed just now may still hold files for a moment; a lazy unmount never leaves the mount behind.
      await run(['umount', mnt], { timeoutMs: 10_000 }).catch(() => run(['umount', '-l', mnt], { timeoutMs: 10_000 }));
    }
    rmSync(mnt, { recursive: true, force: true });
    rmSync(fixtures, { recursive: true, force: true });
  });

  const used = (): number => {
    const fs = statfsSync(mnt);
    return (fs.blocks - fs.bfree) * fs.bsize;
  };
  const free = (): number => statfsSync(mnt).bfree * statfsSync(mnt).bsize;
  /** Takes all free space but `leaveBytes` with one file. */
  const fill = async (leaveBytes: number): Promise<void> => {
    const take = free() - leaveBytes;
    expect(take, `only ${free()} bytes free`).toBeGreaterThan(0);
    await run(['fallocate', '-l', String(take), filler], { timeoutMs: 10_000 });
  };
  const unfill = () => rmSync(filler, { force: true });
  /** A failed operation, and everything that must hold after it once the filler is gone. */
  const expectFull = (r: CliResult, what: string, dir: string): void => {
    expect(r.code, `${r.stdout}${r.stderr}`).toBe(15);
    expect(r.stderr).toContain(`error: ${what}`);
    expect(r.stderr).toContain(`no space left on the filesystem of ${dir}`);
    expect(r.stderr).toContain(`hint: free space in ${dir}`);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(r.stderr).not.toContain('--debug');
  };
  const expectSpaceBack = (before: number): void => {
    expect(Math.abs(used() - before), `used ${used()} bytes, ${before} before`).toBeLessThanOrEqual(TOLERANCE_BYTES);
  };
  /** Hidden files (partials, scratch directories, temporaries) anywhere under `dir`. */
  const leftovers = (dir: string): string[] => {
    if (!existsSync(dir)) return [];
    return readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && /(^\.|\.partial$|\.tmp$)/.test(e.name) && !e.name.endsWith('.lock'))
      .map((e) => join(e.parentPath, e.name));
  };
  const volumes = async () => (JSON.parse(await ok(['volume', 'ls', '--format', 'json'])) as VolumeJson[]).map((v) => v.name).sort();
  const images = async () => (JSON.parse(await ok(['image', 'ls', '--format', 'json'])) as Array<{ name: string }>).map((i) => i.name).sort();
  const instances = async () => (JSON.parse(await ok(['list', '--format', 'json'])) as Array<{ name: string; state: string }>).map((i) => `${i.name}:${i.state}`).sort();
  const dbIntegrity = (): string => {
    const db = new DatabaseSync(join(home, 'virtnode.db'), { readOnly: true });
    try {
      return (db.prepare('PRAGMA integrity_check').get() as { integrity_check: string }).integrity_check;
    } finally {
      db.close();
    }
  };
  /** What was there before every failure, all of it checked after each one. */
  const expectNothingCorrupt = async (): Promise<void> => {
    expect(dbIntegrity()).toBe('ok');
    expect(await volumes()).toEqual(['keep']);
    expect(await images()).toEqual(['base']);
    expect(await instances()).toEqual([`vm:${vmState}`]);
    expectImageClean(join(pool, 'keep.qcow2'));
    expectImageClean(join(home, 'instances', 'vm', 'disk0.qcow2'));
    expect(leftovers(home)).toEqual([]);
    expect(readdirSync(outDir)).toEqual([]);
  };
  /** A qcow2 outside the small filesystem with `mib` MiB of data in it. */
  const dataImage = async (name: string, mib: number, pattern: number): Promise<string> => {
    const path = join(fixtures, name);
    await run(['qemu-img', 'create', '-q', '-f', 'qcow2', path, `${Math.max(64, mib * 2)}M`], { timeoutMs: 30_000 });
    await run(['qemu-io', '-f', 'qcow2', '-c', `write -P ${pattern} 0 ${mib}M`, path], { timeoutMs: 60_000 });
    return path;
  };

  it('sets up what must survive: a volume with data, an image, a stopped instance with a disk', async () => {
    await ok(['volume', 'import', await dataImage('keep.qcow2', 16, 0x11), '--name', 'keep']);
    await ok(['image', 'import', await dataImage('base.qcow2', 1, 0x22), '--name', 'base']);
    // 4 TiB virtual: an L1 table of 64 KiB, which an internal snapshot copies (the file stays small).
    await ok(['create', 'vm', ...bootArgs, '--disk-size', '4T']);
    await expectNothingCorrupt();
  });

  it('volume create --preallocate', async () => {
    const before = used();
    await fill(8 * MiB);
    const r = await virtnode(home, ['volume', 'create', 'big', '--size', '32M', '--preallocate']);
    unfill();
    expectFull(r, 'create volume big', pool);
    expect(existsSync(join(pool, 'big.qcow2'))).toBe(false);
    expectSpaceBack(before);
    await expectNothingCorrupt();
    await ok(['volume', 'create', 'big', '--size', '32M', '--preallocate']);
    await ok(['volume', 'rm', 'big']);
    expectSpaceBack(before);
  });

  it('volume import of a file larger than the space left', async () => {
    const source = await dataImage('import.qcow2', 24, 0x33);
    const before = used();
    await fill(8 * MiB);
    const r = await virtnode(home, ['volume', 'import', source, '--name', 'imported']);
    unfill();
    expectFull(r, `import ${source} as volume imported`, pool);
    expect(readdirSync(pool).sort()).toEqual(['keep.qcow2']);
    expectSpaceBack(before);
    await expectNothingCorrupt();
    await ok(['volume', 'import', source, '--name', 'imported']);
    expectImageClean(join(pool, 'imported.qcow2'));
    await ok(['volume', 'rm', 'imported']);
    expectSpaceBack(before);
  });

  it('volume export to the full filesystem', async () => {
    const target = join(outDir, 'keep.raw');
    const before = used();
    await fill(4 * MiB);
    const r = await virtnode(home, ['volume', 'export', 'keep', target, '--format', 'raw']);
    unfill();
    expectFull(r, `export volume keep to ${target}`, outDir);
    expect(readdirSync(outDir)).toEqual([]); // neither the target nor the private scratch directory
    expectSpaceBack(before);
    await expectNothingCorrupt();
    await ok(['volume', 'export', 'keep', target, '--format', 'raw']);
    expect(statSync(target).size).toBe(64 * MiB);
    rmSync(target);
    expectSpaceBack(before);
  });

  it('image pull of a download whose size the server does not say (no early space check can refuse it)', async () => {
    const body = readFileSync(await dataImage('pulled.qcow2', 24, 0x44));
    server!.serve('/img/pulled.qcow2', { body, lengthUnknown: true });
    const url = server!.url('/img/pulled.qcow2');
    const imagesDir = join(home, 'images');
    const before = used();
    await fill(8 * MiB);
    const r = await virtnode(home, ['image', 'pull', url, '--sha256', sha256(body)]);
    unfill();
    expectFull(r, `download of ${url} stopped after`, join(imagesDir, '.partial'));
    expect(readdirSync(join(imagesDir, '.partial'))).toEqual([]); // not kept for a resume: the space is wanted back
    expectSpaceBack(before);
    await expectNothingCorrupt();
    expect(await ok(['image', 'pull', url, '--sha256', sha256(body)])).toContain('Pulled image pulled');
    await ok(['image', 'rm', 'pulled']);
    expectSpaceBack(before);
  });

  it('create of an instance with a disk; the instance made before still starts', async () => {
    const before = used();
    await fill(100 * 1024); // less than an empty qcow2 of 64 MiB (192 KiB)
    const r = await virtnode(home, ['create', 'vm2', ...bootArgs, '--disk-size', '64M']);
    unfill();
    expectFull(r, 'create instance vm2', join(home, 'instances'));
    expect(readdirSync(join(home, 'instances'))).toEqual(['vm']);
    expectSpaceBack(before);
    await expectNothingCorrupt();
    await ok(['create', 'vm2', ...bootArgs, '--disk-size', '64M', '--start']);
    await ok(['start', 'vm']);
    expect(await instances()).toEqual(['vm2:running', 'vm:running']);
    await ok(['delete', '--force', 'vm2']);
    await ok(['stop', '--force', 'vm']);
    vmState = 'stopped';
    expectSpaceBack(before);
  });

  it('snapshot create: internal (qemu-img, stopped) and external', async () => {
    const disk = join(home, 'instances', 'vm', 'disk0.qcow2');
    const before = used();
    await fill(48 * 1024); // room for the database's writes, not for the copy of the L1 table
    const internal = await virtnode(home, ['snapshot', 'create', 'vm', 'full-int']);
    unfill();
    expectFull(internal, 'snapshot full-int of vm', join(home, 'instances', 'vm'));
    expect(internalTags(disk)).toEqual([]);
    expect(await ok(['snapshot', 'ls', 'vm'])).toBe('Instance vm has no snapshots\n');
    expectSpaceBack(before);
    await expectNothingCorrupt();

    const overlays = join(home, 'instances', 'vm', 'overlays');
    await fill(100 * 1024);
    const external = await virtnode(home, ['snapshot', 'create', 'vm', 'full-ext', '--external']);
    unfill();
    expectFull(external, 'snapshot full-ext of vm', overlays);
    expect(existsSync(overlays) ? readdirSync(overlays) : []).toEqual([]);
    expect(await ok(['snapshot', 'ls', 'vm'])).toBe('Instance vm has no snapshots\n');
    expectSpaceBack(before);
    await expectNothingCorrupt();

    await ok(['snapshot', 'create', 'vm', 'int']);
    expect(internalTags(disk)).toEqual(['int']);
    await ok(['snapshot', 'rm', 'vm', 'int']);
    await ok(['snapshot', 'create', 'vm', 'ext', '--external']);
    await ok(['snapshot', 'rm', 'vm', 'ext']);
    expect(await ok(['snapshot', 'ls', 'vm'])).toBe('Instance vm has no snapshots\n');
    expectImageClean(disk);
  });

  it('snapshot with memory of a running instance: QEMU fails writing the state; the guest keeps running', async () => {
    const disk = join(home, 'instances', 'vm', 'disk0.qcow2');
    await ok(['start', 'vm']);
    const sizeBefore = statSync(disk).size;
    const before = used();
    await fill(4 * MiB); // less than the guest's memory state
    const r = await virtnode(home, ['snapshot', 'create', 'vm', 'mem']);
    unfill();
    expectFull(r, 'snapshot mem of vm', join(home, 'instances', 'vm'));
    expect(await instances()).toEqual(['vm:running']);
    expect(await ok(['snapshot', 'ls', 'vm'])).toBe('Instance vm has no snapshots\n');
    expect(internalTags(disk)).toEqual([]);
    expectImageClean(disk, { inUse: true });
    // QEMU frees the state's clusters inside the qcow2 file, but the file keeps its grown length while QEMU holds
    // it (the disks are opened without discard): only the disk file may have grown.
    expect(used() - before).toBeLessThanOrEqual(statSync(disk).size - sizeBefore + TOLERANCE_BYTES);
    await ok(['snapshot', 'create', 'vm', 'mem']);
    await ok(['snapshot', 'rm', 'vm', 'mem']);
    await ok(['stop', '--force', 'vm']);
    expectImageClean(disk);
  });

  it('a database write on a completely full disk: NO_SPACE, and the database is consistent after', async () => {
    await fill(0);
    const r = await virtnode(home, ['volume', 'create', 'tiny', '--size', '1M']);
    unfill();
    expect(r.code, r.stderr).toBe(15);
    expect(r.stderr).toMatch(/no space left on the filesystem of /);
    expect(r.stderr).toMatch(/^hint: free space in /m);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(existsSync(join(pool, 'tiny.qcow2'))).toBe(false);
    await expectNothingCorrupt();
    await ok(['volume', 'create', 'tiny', '--size', '1M']);
    await ok(['volume', 'rm', 'tiny']);
  });
});

/** qcow2 header fields (big-endian) at their offsets in the file. */
function qcow2Header(path: string): { l1Offset: number; refcountTableOffset: number } {
  const header = readFileSync(path).subarray(0, 72);
  return { l1Offset: Number(header.readBigUInt64BE(40)), refcountTableOffset: Number(header.readBigUInt64BE(48)) };
}

function writeAt(path: string, offset: number, bytes: Buffer): void {
  execFileSync('dd', [`of=${path}`, 'bs=1', `seek=${offset}`, 'conv=notrunc', 'status=none'], { input: bytes });
}

describe('import of a damaged qcow2 is refused after qemu-img check', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'virtnode-damaged-'));
  const home = join(dir, 'home');
  const { ok } = cliChecks(home);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const sound = async (name: string): Promise<string> => {
    const path = join(dir, name);
    await run(['qemu-img', 'create', '-q', '-f', 'qcow2', path, '16M'], { timeoutMs: 30_000 });
    await run(['qemu-io', '-f', 'qcow2', '-c', 'write -P 0x5a 0 1M', path], { timeoutMs: 30_000 });
    return path;
  };
  const nothingLeft = async (): Promise<void> => {
    expect(JSON.parse(await ok(['volume', 'ls', '--format', 'json']))).toEqual([]);
    expect(JSON.parse(await ok(['image', 'ls', '--format', 'json']))).toEqual([]);
    expect(readdirSync(join(home, 'pools', 'default'))).toEqual([]);
    const images = join(home, 'images');
    expect(existsSync(images) ? readdirSync(images, { recursive: true }).filter((f) => !String(f).startsWith('.')) : []).toEqual([]);
    expect(existsSync(join(images, '.tmp')) ? readdirSync(join(images, '.tmp')) : []).toEqual([]);
  };
  const refusedBoth = async (file: string, finding: RegExp): Promise<void> => {
    for (const args of [['volume', 'import', file, '--name', 'bad'], ['image', 'import', file, '--name', 'bad']]) {
      const r = await virtnode(home, args);
      expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(2);
      expect(r.stderr).toContain(`error: FILE: ${file} is a damaged qcow2 image: qemu-img check found`);
      expect(r.stderr).toMatch(finding);
      expect(r.stderr).toContain('hint: nothing was imported');
      await nothingLeft();
    }
  };

  it('an L1 table entry with reserved bits set', async () => {
    const file = await sound('bad-l1.qcow2');
    writeAt(file, qcow2Header(file).l1Offset, Buffer.from('8000000000012345', 'hex'));
    await refusedBoth(file, /corruptions? \(ERROR .*L1 entry/);
  });

  it('a refcount table pointing nowhere', async () => {
    const file = await sound('bad-refcount.qcow2');
    writeAt(file, qcow2Header(file).refcountTableOffset, Buffer.alloc(8));
    await refusedBoth(file, /corruptions? \(ERROR/);
  });

  it('a truncated file', async () => {
    const file = await sound('truncated.qcow2');
    execFileSync('truncate', ['-s', '400000', file]);
    await refusedBoth(file, /corruptions? \(ERROR/);
  });

  it('leaked clusters only (qemu-img check exit 3) are accepted: the copy does not carry them', async () => {
    const file = await sound('leaky.qcow2');
    // The first L2 entry cleared: its data cluster is still counted but referenced by nothing, a leak and
    // nothing worse (the guest reads zeros there).
    const l2 = Number(readFileSync(file).readBigUInt64BE(qcow2Header(file).l1Offset) & 0x00fffffffffffe00n);
    writeAt(file, l2, Buffer.alloc(8));
    const check = await run(['qemu-img', 'check', file], { okCodes: [3], timeoutMs: 30_000 });
    expect(check.stdout).toContain('1 leaked clusters');
    await ok(['volume', 'import', file, '--name', 'leaky']);
    expectImageClean(join(home, 'pools', 'default', 'leaky.qcow2'));
    await ok(['image', 'import', file, '--name', 'leaky']);
    await ok(['volume', 'rm', 'leaky']);
    await ok(['image', 'rm', 'leaky']);
  });
});
