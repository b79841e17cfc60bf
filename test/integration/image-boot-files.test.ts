/**
 * The image store reads an image's own kernel, initramfs and command line out of its EXTLINUX root filesystem at
 * import (qemu-img + debugfs, nothing mounted), so launches can boot them directly; other images get none and
 * keep booting through their firmware. Small made-up disks: an MBR with an ext4 partition at 1 MiB, or a bare ext4.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/exec/run.ts';
import { bootFilesDir, isImageKernel } from '../../src/images/boot/extract.ts';
import { ImageStore } from '../../src/images/store/index.ts';
import { statePaths } from '../../src/lib/paths.ts';
import { openDb, type Db } from '../../src/store/db.ts';
import { launchSource } from '../../src/templates/launch-source.ts';

const MIB = 1024 * 1024;
const FS_BYTES = 16 * MIB;

/** A stand-in for a bzImage: what extraction checks is the boot protocol's "HdrS" at 0x202. */
function fakeKernel(fill: number): Buffer {
  const b = Buffer.alloc(8192, fill);
  b.write('HdrS', 0x202, 'latin1');
  return b;
}

async function ext4From(tree: string, out: string): Promise<void> {
  await writeFile(out, '');
  await truncate(out, FS_BYTES);
  await run(['mkfs.ext4', '-q', '-F', '-d', tree, out], { timeoutMs: 60_000 });
}

/** An MBR disk (Linux partition at 1 MiB) holding `tree`, as qcow2. */
async function mbrDisk(dir: string, tree: string, name: string): Promise<string> {
  const fs = join(dir, `${name}.ext4`);
  await ext4From(tree, fs);
  const raw = join(dir, `${name}.raw`);
  await writeFile(raw, '');
  await truncate(raw, MIB + FS_BYTES);
  await run(['sfdisk', '--no-reread', '--no-tell-kernel', raw], { timeoutMs: 30_000, input: `label: dos\nunit: sectors\n\nstart=2048, size=${FS_BYTES / 512}, type=83\n` });
  await run(['dd', `if=${fs}`, `of=${raw}`, 'bs=1M', 'seek=1', 'conv=notrunc', 'status=none'], { timeoutMs: 30_000 });
  const qcow2 = join(dir, `${name}.qcow2`);
  await run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', raw, qcow2], { timeoutMs: 30_000 });
  return qcow2;
}

describe('boot files read out of images at import', () => {
  let root = '';
  let db: Db;
  let store: ImageStore;
  let withExtlinux = '';
  let bareFs = '';
  let noLoader = '';
  let notLinux = '';

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'virtnode-boot-files-'));
    const tree = join(root, 'tree');
    await mkdir(join(tree, 'boot/extlinux'), { recursive: true });
    await writeFile(join(tree, 'boot/vmlinuz-6.1.0-test'), fakeKernel(0x11));
    await writeFile(join(tree, 'boot/initrd.img-6.1.0-test'), Buffer.alloc(4096, 0x22));
    await writeFile(
      join(tree, 'boot/extlinux/extlinux.conf'),
      'DEFAULT linux\nLABEL linux\n  LINUX /boot/vmlinuz-6.1.0-test\n  INITRD /boot/initrd.img-6.1.0-test\n  APPEND root=LABEL=root ro net.ifnames=0\n',
    );
    withExtlinux = await mbrDisk(root, tree, 'extlinux');

    // A bare filesystem (no partition table), raw: read in place, kernel without initrd.
    const bare = join(root, 'bare-tree');
    await mkdir(bare);
    await writeFile(join(bare, 'vmlinuz'), fakeKernel(0x33));
    await writeFile(join(bare, 'extlinux.conf'), 'LABEL only\nKERNEL vmlinuz\nAPPEND root=/dev/vda console=ttyS0\n');
    bareFs = join(root, 'bare.raw');
    await ext4From(bare, bareFs);

    const empty = join(root, 'empty-tree');
    await mkdir(join(empty, 'boot'), { recursive: true });
    await writeFile(join(empty, 'boot/vmlinuz'), fakeKernel(0x44));
    noLoader = await mbrDisk(root, empty, 'noloader');

    // The configuration names a file that is no kernel.
    const wrong = join(root, 'wrong-tree');
    await mkdir(join(wrong, 'boot/extlinux'), { recursive: true });
    await writeFile(join(wrong, 'boot/vmlinuz'), Buffer.alloc(8192, 0x55));
    await writeFile(join(wrong, 'boot/extlinux/extlinux.conf'), 'LABEL a\nLINUX /boot/vmlinuz\nAPPEND root=/dev/vda1\n');
    notLinux = await mbrDisk(root, wrong, 'notlinux');

    const paths = statePaths(join(root, 'state'));
    db = openDb(paths.db);
    store = new ImageStore(paths, db);
  }, 120_000);

  afterAll(async () => {
    db?.close();
    if (root !== '') await rm(root, { recursive: true, force: true });
  });

  it("stores the EXTLINUX entry's kernel, initramfs and command line (with the serial console) next to the image", async () => {
    const { image } = await store.import(withExtlinux, { name: 'cloud' });
    const resolved = store.resolve('cloud');
    const dir = bootFilesDir(store.dir, image.sha256);
    expect(resolved.boot).toEqual({ kernel: join(dir, 'vmlinuz'), initrd: join(dir, 'initrd.img'), cmdline: 'root=LABEL=root ro net.ifnames=0 console=ttyS0,115200n8 virtnode.cloud_init=one_process' });
    expect(readFileSync(resolved.boot!.kernel)).toEqual(fakeKernel(0x11));
    expect(readFileSync(resolved.boot!.initrd!)).toEqual(Buffer.alloc(4096, 0x22));
    // launch boots it directly, as the image's own kernel (a container would ignore it).
    const source = await launchSource({ repos: { templates: { get: () => undefined } }, paths: statePaths(join(root, 'state')), db } as never)('cloud');
    expect(source.ownKernel).toEqual(resolved.boot);
    expect(source.boot).toBeUndefined();
    expect(isImageKernel(store.dir, resolved.boot!.kernel)).toBe(true);
    expect(isImageKernel(store.dir, join(root, 'vmlinuz'))).toBe(false);
    expect(readdirNames(join(store.dir, '.tmp'))).toEqual([]);
  });

  it("a template whose source booted its image's kernel passes it on as optional; a user's kernel stays the template's boot", async () => {
    const imageKernel = store.resolve('cloud').boot!;
    const userKernel = { kernel: join(root, 'vmlinuz'), cmdline: 'console=ttyS0' };
    const template = (boot: object) => ({ name: 'golden', sha256: 'f'.repeat(64), diskPath: join(root, 'golden.qcow2'), format: 'qcow2', defaults: { boot } });
    const core = (boot: object) => ({ repos: { templates: { get: (n: string) => (n === 'golden' ? template(boot) : undefined) } }, paths: statePaths(join(root, 'state')), db }) as never;
    const fromImageKernel = await launchSource(core(imageKernel))('golden');
    expect([fromImageKernel.ownKernel, fromImageKernel.boot]).toEqual([imageKernel, undefined]);
    const fromUserKernel = await launchSource(core(userKernel))('golden');
    expect([fromUserKernel.ownKernel, fromUserKernel.boot]).toEqual([undefined, userKernel]);
  });

  it('a second name for the same content shares the boot files; they go with the file, not with a name', async () => {
    const { image } = await store.import(withExtlinux, { name: 'cloud-too' });
    const dir = bootFilesDir(store.dir, image.sha256);
    expect(store.resolve('cloud-too').boot?.kernel).toBe(join(dir, 'vmlinuz'));
    const usersOf = () => [];
    expect(store.remove('cloud', { usersOf }).fileDeleted).toBe(false);
    expect(existsSync(dir)).toBe(true);
    expect(store.remove('cloud-too', { usersOf }).fileDeleted).toBe(true);
    expect(existsSync(dir)).toBe(false);
  });

  it('reads a bare filesystem in place: a relative kernel path, no initramfs', async () => {
    const { image } = await store.import(bareFs, { name: 'bare' });
    const dir = bootFilesDir(store.dir, image.sha256);
    expect(store.resolve('bare').boot).toEqual({ kernel: join(dir, 'vmlinuz'), cmdline: 'root=/dev/vda console=ttyS0 virtnode.cloud_init=one_process' });
  });

  it('images without an EXTLINUX entry, or whose entry names no Linux kernel, get none and boot through their firmware', async () => {
    for (const [name, file] of [['noloader', noLoader], ['notlinux', notLinux]] as const) {
      const { image } = await store.import(file, { name });
      expect(store.resolve(name).boot, name).toBeUndefined();
      expect(existsSync(bootFilesDir(store.dir, image.sha256)), name).toBe(false);
    }
    expect(readdirNames(join(store.dir, '.tmp'))).toEqual([]);
  });
});

function readdirNames(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}
