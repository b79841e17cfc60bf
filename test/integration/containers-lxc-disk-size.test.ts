/**
 * `launch --container --disk-size`: the container's writable layer is a loop-mounted ext4 image of that size, so a
 * container that fills it gets ENOSPC (it and the host stay up) and `df` inside shows the size. Snapshots, revert,
 * clones and a template's clones (their own image of the same size), growing a stopped one's layer and a start after the mount is gone (a host reboot) go through it; a
 * launch that crashed with its image mounted is repaired; delete leaves no loop device, mount or file; bad sizes
 * are refused naming the field, with nothing made.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempHome, virtnode } from '../helpers/cli.ts';
import { type ContainerFootprint, containerFootprint } from '../helpers/container-footprint.ts';
import { debianImage } from '../helpers/debian-image.ts';

const LAUNCH_TIMEOUT_MS = 600_000;
const NAMES = ['ds-a', 'ds-b', 'ds-c', 'ds-crash', 'ds-bad'];
const SIZE_BYTES = 256 * 1024 * 1024;

/** Loop devices whose backing file lies under `dir`. */
function loopsUnder(dir: string): string[] {
  const out = execFileSync('losetup', ['--list', '--json', '--output', 'NAME,BACK-FILE'], { encoding: 'utf8' });
  if (out.trim() === '') return [];
  return ((JSON.parse(out) as { loopdevices?: Array<{ name: string; 'back-file': string | null }> }).loopdevices ?? [])
    .filter((d) => d['back-file']?.startsWith(`${dir}/`) === true)
    .map((d) => `${d.name} ${d['back-file']}`);
}

function allocatedBytes(file: string): number {
  return statSync(file).blocks * 512;
}

function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((p) => p.startsWith(`${dir}/`));
}

describe('containers with a disk size', { timeout: 1_200_000 }, () => {
  const { home, cleanup } = tempHome('virtnode-lxc-disk-');
  const instances = join(home, 'instances');
  let before: ContainerFootprint;

  const run = async (args: string[], code = 0, timeoutMs = 300_000, env?: Record<string, string>) => {
    const r = await virtnode(home, args, { timeoutMs, ...(env === undefined ? {} : { env }) });
    expect(r.code, `virtnode ${args.join(' ')}\n${r.stdout}\n${r.stderr}`).toBe(code);
    return r;
  };
  const inside = async (name: string, script: string) => {
    const r = await virtnode(home, ['exec', name, '--', 'sh', '-c', script], { timeoutMs: 300_000 });
    return { code: r.code, out: `${r.stdout}${r.stderr}` };
  };
  const state = async (name: string) => (JSON.parse((await run(['info', name, '--format', 'json'])).stdout) as { state: string }).state;
  /** The size of the container's root filesystem as df inside sees it. */
  const dfSize = async (name: string) => {
    const df = await inside(name, 'df -B1 --output=size / | tail -1');
    expect(df.code, df.out).toBe(0);
    return Number(df.out.trim());
  };

  beforeAll(async () => {
    before = containerFootprint(home, NAMES);
    await run(['image', 'import', debianImage(), '--name', 'debian-12'], 0, 300_000);
  }, 400_000);

  afterAll(async () => {
    for (const name of NAMES) await virtnode(home, ['delete', '--force', name]).catch(() => {});
    await virtnode(home, ['template', 'rm', 'ds-tmpl']).catch(() => {});
    await virtnode(home, ['network', 'rm', 'default']).catch(() => {});
    // Never remove a tree that still has a filesystem mounted in it (a failed test's).
    for (const point of mountsUnder(home).reverse()) execFileSync('umount', ['-l', point]);
    for (const loop of loopsUnder(home)) execFileSync('losetup', ['-d', loop.split(' ')[0]!]);
    cleanup();
  });

  it('refuses a size too small, larger than the free space, or not a size, naming the field, with nothing made', async () => {
    for (const [size, message] of [
      ['1M', "--disk-size: 1 MiB is too small for a container's writable layer"],
      ['100T', `--disk-size: 100 TiB needs more than the`],
      ['lots', '--disk-size: "lots" is not a size'],
    ] as const) {
      const r = await virtnode(home, ['launch', 'debian-12', '--container', '--name', 'ds-bad', '--disk-size', size], { timeoutMs: 120_000 });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(message);
    }
    expect(existsSync(join(instances, 'ds-bad'))).toBe(false);
    expect((await run(['list'])).stdout).not.toContain('ds-bad');
    expect((await run(['network', 'ls'])).stdout).not.toContain('default');
    expect(loopsUnder(home)).toEqual([]);
  });

  it('stops writes at the size with ENOSPC; the container and the host stay up; df shows the size', async () => {
    const launched = await run(['launch', 'debian-12', '--container', '--name', 'ds-a', '--memory', '256M', '--disk-size', '256M', '--timeout', '500'], 0, LAUNCH_TIMEOUT_MS);
    expect(launched.stdout + launched.stderr).toContain('256 MiB ext4 image');
    expect(existsSync(join(instances, 'ds-a', 'disk.ext4'))).toBe(true);
    expect(mountsUnder(home)).toContain(join(instances, 'ds-a', 'disk'));
    expect(loopsUnder(home)).toHaveLength(1);
    const size = await dfSize('ds-a');
    // ext4's own metadata takes some of it.
    expect(size).toBeGreaterThan(SIZE_BYTES * 0.8);
    expect(size).toBeLessThanOrEqual(SIZE_BYTES);
    await inside('ds-a', 'echo before > /root/state');
    const filled = await inside('ds-a', 'dd if=/dev/zero of=/root/big bs=1M count=400 conv=fsync');
    expect(filled.code).not.toBe(0);
    expect(filled.out).toContain('No space left on device');
    // The host gave the container at most the image's size: the sparse image's allocated blocks, not the host's
    // free space, which other test files change at the same time.
    expect(allocatedBytes(join(instances, 'ds-a', 'disk.ext4'))).toBeLessThanOrEqual(SIZE_BYTES);
    expect(await state('ds-a')).toBe('running');
    const alive = await inside('ds-a', 'rm /root/big && echo still-here && cat /root/state');
    expect(alive).toEqual({ code: 0, out: 'still-here\nbefore\n' });
  });

  it('snapshots and reverts a sized container (its layer swapped for a new image of the same size)', async () => {
    await run(['snapshot', 'create', 'ds-a', 's1']);
    await inside('ds-a', 'echo after > /root/state; touch /root/new-file');
    await run(['snapshot', 'revert', 'ds-a', 's1'], 0, 180_000);
    expect(await state('ds-a')).toBe('running');
    const back = await inside('ds-a', 'cat /root/state; test -e /root/new-file && echo still-there || echo gone');
    expect(back.out).toBe('before\ngone\n');
    expect(await dfSize('ds-a')).toBeGreaterThan(SIZE_BYTES * 0.8);
    expect(readdirSync(join(instances, 'ds-a')).filter((e) => e.startsWith('disk')).sort()).toEqual(['disk', 'disk.ext4']);
    expect(loopsUnder(home)).toHaveLength(1);
  });

  it('clones it into an image of its own of the same size', async () => {
    await run(['stop', 'ds-a', '--timeout', '60'], 0, 120_000);
    await run(['clone', 'ds-a', 'ds-b'], 0, 300_000);
    expect(existsSync(join(instances, 'ds-b', 'disk.ext4'))).toBe(true);
    await run(['start', 'ds-b'], 0, 120_000);
    const seen = await inside('ds-b', 'cloud-init status --wait >/dev/null; hostname; cat /root/state');
    expect(seen.out).toBe('ds-b\nbefore\n');
    expect(await dfSize('ds-b')).toBeGreaterThan(SIZE_BYTES * 0.8);
    // Its writes are its own: the source's layer does not see them.
    await inside('ds-b', 'echo clone > /root/state');
    await run(['start', 'ds-a'], 0, 120_000);
    expect((await inside('ds-a', 'cat /root/state')).out).toBe('before\n');
    expect(loopsUnder(home)).toHaveLength(2);
  });

  it('grows the layer of a stopped container (set disk=SIZE), never shrinks it', async () => {
    const running = await virtnode(home, ['set', 'ds-a', 'disk=384M']);
    expect(running.code).not.toBe(0);
    expect(running.stderr).toContain('cannot grow the disk of ds-a: it is running');
    await run(['stop', 'ds-a', '--timeout', '60'], 0, 120_000);
    const shrink = await virtnode(home, ['set', 'ds-a', 'disk=200M']);
    expect(shrink.code).toBe(2);
    expect(shrink.stderr).toContain("disk: 200 MiB is less than its 256 MiB: a container's layer only grows");
    const grown = await run(['set', 'ds-a', 'disk=384M'], 0, 180_000);
    expect(grown.stdout).toContain('disk grown to 384M');
    await run(['start', 'ds-a'], 0, 120_000);
    const size = await dfSize('ds-a');
    expect(size).toBeGreaterThan(SIZE_BYTES);
    expect(size).toBeLessThanOrEqual(384 * 1024 * 1024);
    expect((await inside('ds-a', 'cat /root/state')).out).toBe('before\n');
  });

  it('mounts its image again at start when the mount is gone (as after a host reboot)', async () => {
    await run(['stop', 'ds-b', '--timeout', '60'], 0, 120_000);
    execFileSync('umount', [join(instances, 'ds-b', 'disk')]);
    expect(mountsUnder(home)).not.toContain(join(instances, 'ds-b', 'disk'));
    await run(['start', 'ds-b'], 0, 120_000);
    expect((await inside('ds-b', 'cat /root/state')).out).toBe('clone\n');
  });

  it('makes a template of it whose clones have layers of the same size', async () => {
    await run(['template', 'create', 'ds-b', 'ds-tmpl'], 0, 300_000);
    // The template consumed ds-b: its image is unmounted, detached and gone.
    expect(existsSync(join(instances, 'ds-b'))).toBe(false);
    expect(loopsUnder(home).filter((l) => l.includes('/ds-b/'))).toEqual([]);
    await run(['clone', 'ds-tmpl', 'ds-c'], 0, 300_000);
    expect(existsSync(join(instances, 'ds-c', 'disk.ext4'))).toBe(true);
    await run(['start', 'ds-c'], 0, 120_000);
    const seen = await inside('ds-c', 'cloud-init status --wait >/dev/null; hostname; cat /root/state');
    expect(seen.out).toBe('ds-c\nclone\n');
    expect(await dfSize('ds-c')).toBeGreaterThan(SIZE_BYTES * 0.8);
    await run(['template', 'rm', 'ds-tmpl']);
  });

  it('repairs a launch that crashed with its image mounted: no loop device or mount left', async () => {
    const crashed = await virtnode(home, ['launch', 'debian-12', '--container', '--name', 'ds-crash', '--disk-size', '256M', '--no-wait'], {
      env: { VIRTNODE_FAILPOINT: 'launch.after-seed' },
      timeoutMs: 300_000,
    });
    expect(crashed.signal ?? crashed.code, crashed.stderr).not.toBe(0);
    expect(mountsUnder(home)).toContain(join(instances, 'ds-crash', 'disk'));
    const list = await run(['list', '--format', 'json']);
    expect((JSON.parse(list.stdout) as Array<{ name: string }>).map((i) => i.name)).not.toContain('ds-crash');
    expect(existsSync(join(instances, 'ds-crash'))).toBe(false);
    expect(mountsUnder(home).filter((p) => p.includes('ds-crash'))).toEqual([]);
    expect(loopsUnder(home).filter((l) => l.includes('ds-crash'))).toEqual([]);
  });

  it('deletes without a trace: no loop device, mount, image or directory', async () => {
    await run(['delete', '--force', 'ds-a'], 0, 120_000);
    await run(['delete', '--force', 'ds-c'], 0, 120_000);
    await run(['network', 'rm', 'default']);
    for (const name of NAMES) expect(existsSync(join(instances, name))).toBe(false);
    expect(loopsUnder(home)).toEqual([]);
    expect(mountsUnder(home)).toEqual([]);
    expect(containerFootprint(home, NAMES)).toEqual(before);
  });
});
