import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempHome, virtnode } from '../helpers/cli.ts';

interface VolumeJson {
  name: string;
  pool: string;
  path: string;
  format: string;
  virtualSize: number;
  allocation: number;
  attachedTo?: string;
}

describe('pools and volumes from the CLI (qemu-img, no guest)', () => {
  const { home, cleanup } = tempHome('virtnode-volumes-');
  const outside = join(home, 'outside');
  afterAll(cleanup);

  const ok = async (args: string[]) => {
    const r = await virtnode(home, args);
    expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };
  const volumes = async () => JSON.parse(await ok(['volume', 'ls', '--format', 'json'])) as VolumeJson[];
  const poolNames = async () => (JSON.parse(await ok(['pool', 'ls', '--format', 'json'])) as Array<{ name: string; path: string; volumes: number }>).map((p) => [p.name, p.path, p.volumes]);
  const qemuImgInfo = (path: string) => JSON.parse(execFileSync('qemu-img', ['info', '--output=json', path], { encoding: 'utf8' })) as { format: string; 'virtual-size': number };

  it('has a default pool on first use, with filesystem numbers from statfs', async () => {
    const pools = JSON.parse(await ok(['pool', 'ls', '--format', 'json'])) as Array<{ name: string; path: string; capacity: number; allocation: number; available: number }>;
    expect(pools.map((p) => p.name)).toEqual(['default']);
    expect(pools[0]!.path).toBe(join(home, 'pools', 'default'));
    expect(existsSync(pools[0]!.path)).toBe(true);
    expect(pools[0]!.capacity).toBeGreaterThan(pools[0]!.available);
    expect(pools[0]!.allocation).toBeGreaterThan(0);
    expect(await ok(['pool', 'ls'])).toContain('FS columns are of the filesystem holding the pool');
  });

  it('creates, resizes, converts, checks, exports, imports and removes volumes', async () => {
    expect(await ok(['volume', 'create', 'data', '--size', '64M'])).toContain('Created volume data (qcow2, 64 MiB)');
    const path = join(home, 'pools', 'default', 'data.qcow2');
    expect(qemuImgInfo(path)).toMatchObject({ format: 'qcow2', 'virtual-size': 64 * 2 ** 20 });

    expect(await ok(['volume', 'resize', 'data', '--size', '128M'])).toContain('from 64 MiB to 128 MiB');
    expect(qemuImgInfo(path)['virtual-size']).toBe(128 * 2 ** 20);
    const shrink = await virtnode(home, ['volume', 'resize', 'data', '--size', '32M']);
    expect(shrink.code).toBe(2);
    expect(shrink.stderr).toContain('--size: 32 MiB is smaller than volume data (128 MiB)');
    expect(shrink.stderr).toContain('--allow-shrink');
    expect(qemuImgInfo(path)['virtual-size']).toBe(128 * 2 ** 20);
    expect(await ok(['volume', 'resize', 'data', '--size', '96M', '--allow-shrink'])).toContain('to 96 MiB');

    const check = JSON.parse(await ok(['volume', 'check', 'data', '--format', 'json'])) as { clean: boolean; corruptions: number };
    expect(check).toMatchObject({ clean: true, corruptions: 0 });
    expect(await ok(['volume', 'check', 'data'])).toContain('no errors found');

    expect(await ok(['volume', 'convert', 'data', '--format', 'raw'])).toContain('Converted volume data to raw');
    expect(existsSync(path)).toBe(false);
    expect(qemuImgInfo(join(home, 'pools', 'default', 'data.raw'))).toMatchObject({ format: 'raw', 'virtual-size': 96 * 2 ** 20 });
    const same = await virtnode(home, ['volume', 'convert', 'data', '--format', 'raw']);
    expect(same.code).toBe(2);
    expect(same.stderr).toContain('already raw');
    await ok(['volume', 'convert', 'data', '--format', 'qcow2']);

    const info = JSON.parse(await ok(['volume', 'info', 'data', '--format', 'json'])) as { chain: Array<{ path: string; format: string }>; virtualSize: number };
    expect(info.virtualSize).toBe(96 * 2 ** 20);
    expect(info.chain.map((l) => l.format)).toEqual(['qcow2']);

    const exported = join(home, 'data-export.raw');
    expect(await ok(['volume', 'export', 'data', exported, '--format', 'raw'])).toContain(`to ${exported} (raw)`);
    expect(qemuImgInfo(exported).format).toBe('raw');
    const again = await virtnode(home, ['volume', 'export', 'data', exported]);
    expect(again.code).toBe(4);
    expect(again.stderr).toContain('already exists');

    await ok(['volume', 'import', exported, '--name', 'copy']);
    const listed = await volumes();
    expect(listed.map((v) => [v.name, v.format, v.virtualSize])).toEqual([
      ['copy', 'raw', 96 * 2 ** 20],
      ['data', 'qcow2', 96 * 2 ** 20],
    ]);
    await ok(['volume', 'rm', 'copy']);
    expect(existsSync(join(home, 'pools', 'default', 'copy.raw'))).toBe(false);
  });

  it('a preallocated raw volume takes its space at once', async () => {
    await ok(['volume', 'create', 'full', '--size', '16M', '--format', 'raw', '--preallocate']);
    const v = (await volumes()).find((x) => x.name === 'full')!;
    expect(v.allocation).toBeGreaterThanOrEqual(16 * 2 ** 20);
    await ok(['volume', 'rm', 'full']);
  });

  it('pools: create on an existing directory, info, rm refused while it holds volumes', async () => {
    mkdirSync(outside);
    await ok(['pool', 'create', 'fast', '--path', outside]);
    await ok(['volume', 'create', 'onfast', '--size', '1M', '--pool', 'fast']);
    expect(existsSync(join(outside, 'onfast.qcow2'))).toBe(true);
    const info = JSON.parse(await ok(['pool', 'info', 'fast', '--format', 'json'])) as { volumeNames: string[]; path: string };
    expect(info).toMatchObject({ volumeNames: ['onfast'], path: outside });
    const refused = await virtnode(home, ['pool', 'rm', 'fast']);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain('pool fast holds 1 volume(s): onfast');
    await ok(['volume', 'rm', 'onfast']);
    await ok(['pool', 'rm', 'fast']);
    expect(existsSync(outside)).toBe(true); // the directory is the user's
  });

  it('bad input is refused with the field named, and changes nothing', async () => {
    const before = { files: readdirSync(join(home, 'pools', 'default')).sort(), volumes: await volumes(), pools: await poolNames() };
    const cases: Array<[string[], number, string]> = [
      [['volume', 'create', 'x', '--size', '10X'], 2, '--size: "10X" is not a size'],
      [['volume', 'create', 'x', '--size', '-1G'], 2, '--size'],
      [['volume', 'create', 'x', '--size', '1000'], 2, 'not a multiple of 512'],
      [['volume', 'create', 'x', '--size', '0'], 2, '--size'],
      [['volume', 'create', 'Bad_Name', '--size', '1G'], 2, 'name: "Bad_Name" is not a valid name'],
      [['volume', 'create', '../x', '--size', '1G'], 2, 'is not a valid name'],
      [['volume', 'create', 'x', '--size', '1G', '--format', 'vmdk'], 2, '--format: "vmdk" is not a disk format'],
      [['volume', 'create', 'x', '--size', '1G', '--pool', 'nope'], 3, 'pool nope does not exist'],
      [['volume', 'create', 'data', '--size', '1G'], 4, 'volume data already exists'],
      [['volume', 'resize', 'data', '--size', 'big'], 2, '--size'],
      [['volume', 'resize', 'nope', '--size', '1G'], 3, 'volume nope does not exist'],
      [['volume', 'rm', 'nope'], 3, 'volume nope does not exist'],
      [['volume', 'import', join(home, 'missing.img')], 2, 'is not an existing file'],
      [['pool', 'create', 'p', '--path', 'relative/dir'], 2, '--path: "relative/dir" is not an absolute path'],
      [['pool', 'create', 'p', '--path', `${outside}/../outside`], 2, 'contains ".."'],
      [['pool', 'create', 'p', '--path', join(home, 'no-such-dir')], 2, 'is not an existing directory'],
      [['pool', 'create', 'p', '--path', join(home, 'instances')], 2, "inside virtnode's instances directory"],
      [['pool', 'create', 'Bad!', '--path', outside], 2, 'is not a valid name'],
      [['pool', 'info', 'nope'], 3, 'pool nope does not exist'],
    ];
    for (const [args, code, message] of cases) {
      const r = await virtnode(home, args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(code);
      expect(r.stderr, args.join(' ')).toContain(message);
    }
    expect(readdirSync(join(home, 'pools', 'default')).sort()).toEqual(before.files);
    expect(await volumes()).toEqual(before.volumes);
    expect(await poolNames()).toEqual(before.pools);
    expect(existsSync(join(home, 'x.qcow2'))).toBe(false);
  });

  it('an interrupted volume create leaves nothing behind', async () => {
    const crashed = await virtnode(home, ['volume', 'create', 'ghost', '--size', '1M'], { env: { VIRTNODE_FAILPOINT: 'volume.after-file' } });
    expect(crashed.signal).toBe('SIGKILL');
    expect(existsSync(join(home, 'pools', 'default', 'ghost.qcow2'))).toBe(true);
    const report = await ok(['reconcile']);
    expect(report).toContain('volume ghost: removed after an interrupted create');
    expect(existsSync(join(home, 'pools', 'default', 'ghost.qcow2'))).toBe(false);
    expect((await volumes()).map((v) => v.name)).not.toContain('ghost');
    rmSync(join(home, 'data-export.raw'), { force: true });
  });

  it('exports what a raw volume holds, never a host file its guest named in a fake qcow2 header, and never through a planted link', async () => {
    const secret = join(home, 'host-secret');
    writeFileSync(secret, 'HOST-SECRET-CONTENT'.repeat(100));
    await ok(['volume', 'create', 'guestraw', '--size', '1M', '--format', 'raw']);
    // What a guest can write on its raw disk: a qcow2 header whose backing file is a file of the host.
    const header = join(home, 'header.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', secret, '-F', 'raw', header, '1M']);
    const disk = openSync(join(home, 'pools', 'default', 'guestraw.raw'), 'r+');
    writeSync(disk, readFileSync(header), 0, statSync(header).size, 0);
    closeSync(disk);

    // Nor does its info follow that header: one raw link, no backing file.
    const info = await ok(['volume', 'info', 'guestraw', '--format', 'json']);
    expect(info).not.toContain('host-secret');
    expect((JSON.parse(info) as { chain: Array<{ format: string }> }).chain.map((l) => l.format)).toEqual(['raw']);

    const out = join(home, 'guestraw-export.raw');
    const victim = join(home, 'victim');
    writeFileSync(victim, 'untouched');
    symlinkSync(victim, join(home, '.guestraw-export.raw.partial')); // the temporary name exports once used
    await ok(['volume', 'export', 'guestraw', out, '--format', 'raw']);
    const exported = readFileSync(out);
    expect(exported.subarray(0, 4).toString('latin1')).toBe('QFI\xfb'); // the bytes of the volume, header and all
    expect(exported.length).toBe(1024 * 1024);
    expect(exported.includes('HOST-SECRET-CONTENT')).toBe(false);
    expect(readFileSync(victim, 'utf8')).toBe('untouched');
    expect(readdirSync(home).filter((f) => f.startsWith('.guestraw-export.raw.') && !f.endsWith('.partial'))).toEqual([]); // no scratch left
    await ok(['volume', 'rm', 'guestraw']);
    for (const f of [out, header, secret, victim, join(home, '.guestraw-export.raw.partial')]) rmSync(f, { force: true });
  });
});
