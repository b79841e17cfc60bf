import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../exec/run.ts';
import { VirtnodeError } from '../lib/errors.ts';
import { acquireFileLock } from '../lib/file-lock.ts';
import { unmountAllUnder } from './build/mounts.ts';

/**
 * An image's root filesystem, unpacked once for system containers and shared read-only by all of them (each gets
 * an overlayfs upper directory of its own). Unprivileged containers need the tree owned by their uid range
 * (overlayfs cannot be idmapped), so there is one tree per (image, first host uid): `shift` 0 is the image's own
 * ownership, for privileged containers.
 */
export interface RootfsSource {
  path: string;
  sha256: string;
  format: 'qcow2' | 'raw';
}

const UNPACK_TIMEOUT_MS = 30 * 60_000;
const LOCK_WAIT_MS = 30 * 60_000;
const SECTOR = 512;
/** Ids mapped into an unprivileged container (uid and gid 0-65535). */
export const ID_RANGE = 65536;

export function rootfsDir(imagesDir: string, sha256: string, shift: number): string {
  return join(imagesDir, 'rootfs', `${sha256}-u${shift}`);
}

/** The first Linux partition of an MBR disk as [offset, size] in bytes; undefined: no partition table (a bare filesystem). */
export function linuxPartition(mbr: Buffer): { offset: number; size: number } | undefined {
  if (mbr.length < SECTOR || mbr[510] !== 0x55 || mbr[511] !== 0xaa) return undefined;
  for (let i = 0; i < 4; i++) {
    const entry = 446 + i * 16;
    const type = mbr[entry + 4];
    const start = mbr.readUInt32LE(entry + 8);
    const sectors = mbr.readUInt32LE(entry + 12);
    if (type === 0x83 && sectors > 0) return { offset: start * SECTOR, size: sectors * SECTOR };
  }
  return undefined;
}

/** tar's --owner-map/--group-map lines: id N becomes shift+N for the whole container range. */
function idMap(shift: number): string {
  const lines: string[] = [];
  for (let id = 0; id < ID_RANGE; id++) lines.push(`+${id} +${shift + id}`);
  return `${lines.join('\n')}\n`;
}

/**
 * The unpacked tree of `image` for containers whose root is host uid `shift`, made on first use: the image is
 * converted to a sparse raw file, its root partition loop-mounted read-only, and copied out through tar (with
 * the ids shifted, setuid bits and extended attributes kept). Parallel first launches wait for one unpacking.
 */
export async function ensureRootfs(imagesDir: string, image: RootfsSource, shift: number, options: { signal?: AbortSignal } = {}): Promise<string> {
  const target = rootfsDir(imagesDir, image.sha256, shift);
  if (existsSync(target)) return target;
  const parent = join(imagesDir, 'rootfs');
  mkdirSync(parent, { recursive: true, mode: 0o711 });
  const release = await acquireFileLock(join(parent, `${image.sha256}-u${shift}.lock`), {
    waitMs: LOCK_WAIT_MS,
    ...(options.signal ? { signal: options.signal } : {}),
    busy: () => new VirtnodeError('BUSY', `the root filesystem of image ${image.sha256.slice(0, 12)} is being unpacked by another process`),
  });
  const work = join(parent, `.unpack-${image.sha256}-u${shift}-${process.pid}`);
  try {
    if (existsSync(target)) return target;
    rmSync(work, { recursive: true, force: true });
    mkdirSync(join(work, 'mnt'), { recursive: true, mode: 0o700 });
    mkdirSync(join(work, 'tree'), { mode: 0o755 });
    const raw = join(work, 'disk.raw');
    const timing = { timeoutMs: UNPACK_TIMEOUT_MS, ...(options.signal ? { signal: options.signal } : {}) };
    await run(['qemu-img', 'convert', '-f', image.format, '-O', 'raw', image.path, raw], timing);
    const partition = readPartition(raw);
    const loop = partition === undefined ? 'ro,loop' : `ro,loop,offset=${partition.offset},sizelimit=${partition.size}`;
    await run(['mount', '-o', loop, raw, join(work, 'mnt')], timing);
    const archive = join(work, 'tree.tar');
    try {
      const mapArgs: string[] = [];
      if (shift !== 0) {
        writeFileSync(join(work, 'ids.map'), idMap(shift));
        mapArgs.push(`--owner-map=${join(work, 'ids.map')}`, `--group-map=${join(work, 'ids.map')}`);
      }
      await run(['tar', '-C', join(work, 'mnt'), '--numeric-owner', '--xattrs', '--acls', ...mapArgs, '-cf', archive, '.'], timing);
    } finally {
      await unmountAllUnder(join(work, 'mnt'));
    }
    rmSync(raw, { force: true });
    await run(['tar', '-C', join(work, 'tree'), '--numeric-owner', '--xattrs', '--acls', '-xpf', archive], timing);
    rmSync(archive, { force: true });
    renameSync(join(work, 'tree'), target);
    return target;
  } finally {
    await unmountAllUnder(join(work, 'mnt')).catch(() => {});
    rmSync(work, { recursive: true, force: true });
    await release();
  }
}

function readPartition(raw: string): { offset: number; size: number } | undefined {
  const fd = openSync(raw, 'r');
  try {
    const mbr = Buffer.alloc(SECTOR);
    readSync(fd, mbr, 0, SECTOR, 0);
    return linuxPartition(mbr);
  } finally {
    closeSync(fd);
  }
}

const RETIRED_PREFIX = '.retired-';

/**
 * Takes every unpacked tree of an image out of use (with the image file: no container uses it any more): each is
 * renamed aside at once, and deleted by `deleteRetiredRootfs`, which does not hold up the caller's process (a tree
 * is tens of thousands of files).
 */
export function retireRootfs(imagesDir: string, sha256: string): void {
  const parent = join(imagesDir, 'rootfs');
  if (!existsSync(parent)) return;
  for (const entry of readdirSync(parent)) {
    if (entry.startsWith(`${sha256}-u`) && !entry.endsWith('.lock')) renameSync(join(parent, entry), join(parent, `${RETIRED_PREFIX}${entry}-${randomUUID()}`));
  }
}

/** Deletes the retired trees, including any that a process stopped before it could delete them. */
export async function deleteRetiredRootfs(imagesDir: string): Promise<void> {
  const parent = join(imagesDir, 'rootfs');
  const entries = await readdir(parent).catch(() => [] as string[]);
  await Promise.all(entries.filter((e) => e.startsWith(RETIRED_PREFIX)).map((e) => rm(join(parent, e), { recursive: true, force: true })));
}
