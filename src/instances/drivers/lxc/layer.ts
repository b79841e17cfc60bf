/**
 * A container's writable layer: its overlay's upper directory (everything the container wrote) and the work
 * directory overlayfs needs beside it, on the same filesystem. The one module that knows where they are.
 *
 * - Without a disk size they are plain directories in the instance directory (`upper`, `work`).
 * - With one (`launch --container --disk-size 2G`) they live in a sparse ext4 image of that size, `disk.ext4`,
 *   loop-mounted at `disk` (`disk/upper`, `disk/work`): a full layer is ENOSPC inside the container, never a full
 *   host. The mount stays while the instance exists; `ensureLayer` mounts it again when it is gone (after a host
 *   reboot), and `releaseLayer` unmounts it and detaches its loop device before the directory is removed.
 *
 * Every caller that reads or writes the upper directory (launch's seed, start, snapshots, revert, clones,
 * templates) asks `ensureLayer` for it.
 */
import { chownSync, closeSync, existsSync, ftruncateSync, mkdirSync, openSync, renameSync, rmSync, statfsSync } from 'node:fs';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../../exec/run.ts';
import { unmountAllUnder } from '../../../images/build/mounts.ts';
import { invalid, VirtnodeError } from '../../../lib/errors.ts';
import { failpoint } from '../../../lib/failpoint.ts';
import { formatSize, MIB } from '../../../lib/units.ts';
import type { ContainerSpec } from '../../model.ts';
import { copyUpper } from './upper.ts';

/** Below this a Debian container cannot boot and run cloud-init (ext4 itself takes about 15% of a small image). */
export const MIN_LAYER_BYTES = 128 * MIB;
const TOOL_TIMEOUT_MS = 120_000;
const LOOP_SETTLE_MS = 5_000;

export interface LayerDirs {
  upper: string;
  work: string;
}

type LayerSpec = Pick<ContainerSpec, 'diskSizeBytes'>;

function imageFiles(dir: string, suffix = ''): { image: string; mount: string } {
  return { image: join(dir, `disk${suffix}.ext4`), mount: join(dir, `disk${suffix}`) };
}

function dirsIn(root: string): LayerDirs {
  // LXC's overlay backend takes the work directory beside the upper one, named `work`.
  return { upper: join(root, 'upper'), work: join(root, 'work') };
}

/** Where the layer's directories are (mounted or not). */
export function layerDirs(dir: string, spec: LayerSpec): LayerDirs {
  return dirsIn(spec.diskSizeBytes === undefined ? dir : imageFiles(dir).mount);
}

/** A disk size not too small for a container (checked without the host). */
export function assertLayerMinimum(field: string, sizeBytes: number): void {
  if (sizeBytes < MIN_LAYER_BYTES) {
    throw invalid(field, `${formatSize(sizeBytes)} is too small for a container's writable layer`, `give at least ${formatSize(MIN_LAYER_BYTES)} (e.g. 1G)`);
  }
}

/** A disk size the instances' filesystem can hold, or an error naming the field. Checked before anything is made. */
export function assertLayerSize(field: string, sizeBytes: number, instancesDir: string, currentBytes = 0): void {
  assertLayerMinimum(field, sizeBytes);
  const stats = statfsSync(instancesDir);
  const free = stats.bavail * stats.bsize;
  if (sizeBytes - currentBytes > free) {
    const most = currentBytes + free;
    throw invalid(field, `${formatSize(sizeBytes)} needs more than the ${formatSize(free)} free on the filesystem of ${instancesDir}`, `give at most ${formatSize(most)}, or free space first`);
  }
}

async function isMounted(point: string): Promise<boolean> {
  return mountPointsUnder(await readFile('/proc/self/mountinfo', 'utf8'), point).includes(point);
}

function makeOwnedDirs(dirs: LayerDirs, owner: number): void {
  for (const d of [dirs.upper, dirs.work]) {
    mkdirSync(d, { mode: 0o755, recursive: true });
    chownSync(d, owner, owner);
  }
}

/** An empty sparse ext4 image of `sizeBytes`, mounted at `files.mount`. */
async function makeImage(files: { image: string; mount: string }, sizeBytes: number, signal?: AbortSignal): Promise<void> {
  const fd = openSync(files.image, 'wx', 0o600);
  try {
    ftruncateSync(fd, sizeBytes);
  } finally {
    closeSync(fd);
  }
  // No reserved blocks: the whole size is the container's. -F: it is a file, not a block device.
  await run(['mkfs.ext4', '-q', '-F', '-m', '0', '-L', 'virtnode-layer', files.image], { timeoutMs: TOOL_TIMEOUT_MS, ...(signal ? { signal } : {}) });
  await mountImage(files);
}

async function mountImage(files: { image: string; mount: string }): Promise<void> {
  mkdirSync(files.mount, { recursive: true, mode: 0o755 });
  // `-o loop` sets the loop device's autoclear flag: unmounting detaches it.
  await run(['mount', '-t', 'ext4', '-o', 'loop,noatime', files.image, files.mount], { timeoutMs: TOOL_TIMEOUT_MS });
}

/**
 * Makes the empty layer of a new container (owned by the container's root) and returns its directories. With a
 * reverter, its undo is registered (the image unmounted before the directory is removed).
 */
export async function createLayer(dir: string, spec: LayerSpec, owner: number, options: { signal?: AbortSignal; reverter?: { add(what: string, undo: () => Promise<void>): void } } = {}): Promise<LayerDirs> {
  if (spec.diskSizeBytes !== undefined) {
    options.reverter?.add('unmount the writable layer', () => releaseLayer(dir));
    await makeImage(imageFiles(dir), spec.diskSizeBytes, options.signal);
  }
  const dirs = layerDirs(dir, spec);
  makeOwnedDirs(dirs, owner);
  return dirs;
}

/** The layer's directories, its image mounted first if it is not (idempotent; after a host reboot the mount is gone). */
export async function ensureLayer(dir: string, spec: LayerSpec): Promise<LayerDirs> {
  if (spec.diskSizeBytes !== undefined) {
    const files = imageFiles(dir);
    if (!existsSync(files.image)) {
      throw new VirtnodeError('INVALID_STATE', `the writable layer of ${dir} (${files.image}) is gone`, { hint: 'delete the container and launch a new one' });
    }
    if (!(await isMounted(files.mount))) await mountImage(files);
  }
  return layerDirs(dir, spec);
}

/** Loop devices whose backing file is at or below `dir`. */
async function loopsUnder(dir: string): Promise<string[]> {
  const { stdout } = await run(['losetup', '--list', '--json', '--output', 'NAME,BACK-FILE'], { timeoutMs: TOOL_TIMEOUT_MS });
  if (stdout.trim() === '') return [];
  const devices = (JSON.parse(stdout) as { loopdevices?: Array<{ name: string; 'back-file': string | null }> }).loopdevices ?? [];
  const prefix = `${dir}/`;
  return devices.filter((d) => d['back-file']?.replace(/ \(deleted\)$/, '').startsWith(prefix) === true).map((d) => d.name);
}

/**
 * Mount points at or below `dir` in mount namespaces other than ours, one process of each. Whoever makes a mount
 * namespace (`unshare -m`, a service's private /tmp) while an image is mounted gets a copy of that mount, and a
 * private copy does not follow our unmount: it keeps the filesystem and its loop device alive until it goes.
 */
async function foreignMounts(dir: string): Promise<Array<{ pid: string; points: string[] }>> {
  const seen = new Set([await readlink('/proc/self/ns/mnt')]);
  const found: Array<{ pid: string; points: string[] }> = [];
  for (const pid of (await readdir('/proc')).filter((e) => /^\d+$/.test(e))) {
    const ns = await readlink(`/proc/${pid}/ns/mnt`).catch(() => undefined);
    if (ns === undefined || seen.has(ns)) continue;
    seen.add(ns);
    const text = await readFile(`/proc/${pid}/mountinfo`, 'utf8').catch(() => '');
    const points = mountPointsUnder(text, dir);
    if (points.length > 0) found.push({ pid, points });
  }
  return found;
}

/** The mount points of a mountinfo text at or below `dir`, deepest first. */
export function mountPointsUnder(mountinfo: string, dir: string): string[] {
  const points = mountinfo
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => p !== undefined)
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8))))
    .filter((p) => p === dir || p.startsWith(`${dir}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/**
 * Unmounts everything at or below `dir`: here, and the copies other mount namespaces took of it (a lazy unmount
 * inside each; only paths under `dir`, which are virtnode's own).
 */
async function unmountEverywhere(dir: string): Promise<void> {
  await unmountAllUnder(dir);
  for (const { pid, points } of await foreignMounts(dir)) {
    for (const point of points) await run(['nsenter', `--mount=/proc/${pid}/ns/mnt`, '--', 'umount', '-l', point], { timeoutMs: TOOL_TIMEOUT_MS }).catch(() => {});
  }
}

/**
 * Unmounts whatever is mounted under an instance directory and detaches the loop devices of its images, so that
 * the directory can be removed without reaching into a mounted filesystem. A no-op for plain layers.
 */
export async function releaseLayer(dir: string): Promise<void> {
  await unmountEverywhere(dir);
  // Autoclear detaches at unmount; a device left by a crash between losetup and mount is detached here. A
  // container's mount namespace may hold the filesystem for a moment after its init is gone.
  const deadline = Date.now() + LOOP_SETTLE_MS;
  for (;;) {
    const loops = await loopsUnder(dir);
    if (loops.length === 0) return;
    for (const loop of loops) await run(['losetup', '-d', loop], { timeoutMs: TOOL_TIMEOUT_MS }).catch(() => {});
    if (Date.now() > deadline) {
      const left = await loopsUnder(dir);
      if (left.length > 0) throw new VirtnodeError('COMMAND_FAILED', `loop devices of ${dir} are still attached: ${left.join(', ')}`, { hint: 'see losetup -a; stop what holds them and delete again' });
      return;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * The layer becomes an exact copy of `from` (a snapshot's directory). Crash-safe: the copy is made beside the
 * current layer (`upper.new`, or a new image `disk.new.ext4`) and swapped in by renames; repairLayer finishes or
 * undoes a swap a crash interrupted. A new image rather than a second copy inside the old one: a full layer has
 * no room for two.
 */
export async function replaceLayer(dir: string, spec: LayerSpec, owner: number, from: string, options: { signal?: AbortSignal } = {}): Promise<void> {
  const signal = options.signal ? { signal: options.signal } : {};
  if (spec.diskSizeBytes === undefined) {
    const { upper } = layerDirs(dir, spec);
    rmSync(`${upper}.new`, { recursive: true, force: true });
    await copyUpper(from, `${upper}.new`, signal);
    failpoint('revert.after-overlay');
    renameSync(upper, `${upper}.old`);
    renameSync(`${upper}.new`, upper);
    rmSync(`${upper}.old`, { recursive: true, force: true });
    return;
  }
  const current = imageFiles(dir);
  const next = imageFiles(dir, '.new');
  await dropImage(next);
  await makeImage(next, spec.diskSizeBytes, options.signal);
  const dirs = dirsIn(next.mount);
  makeOwnedDirs(dirs, owner);
  await copyUpper(from, dirs.upper, signal);
  await unmountEverywhere(next.mount);
  rmSync(next.mount, { recursive: true, force: true });
  failpoint('revert.after-overlay');
  await unmountEverywhere(current.mount);
  renameSync(current.image, `${current.image}.old`);
  renameSync(next.image, current.image);
  rmSync(`${current.image}.old`, { force: true });
  await ensureLayer(dir, spec);
}

/**
 * A stopped container's layer grown to `sizeBytes` (never shrunk): the image unmounted, made longer (sparse),
 * checked (e2fsck, which resize2fs asks for) and its filesystem grown with resize2fs, then mounted again.
 */
export async function growLayer(dir: string, spec: LayerSpec, sizeBytes: number, field: string, instancesDir: string): Promise<void> {
  const current = spec.diskSizeBytes;
  if (current === undefined) {
    throw invalid(field, 'this container was launched without --disk-size: its files are a plain directory with no size to grow', 'launch a new container with --disk-size, or clone it from a template of one');
  }
  if (sizeBytes < current) throw invalid(field, `${formatSize(sizeBytes)} is less than its ${formatSize(current)}: a container's layer only grows`, `give more than ${formatSize(current)}`);
  if (sizeBytes === current) return;
  assertLayerSize(field, sizeBytes, instancesDir, current);
  const files = imageFiles(dir);
  await unmountEverywhere(files.mount);
  const fd = openSync(files.image, 'r+');
  try {
    ftruncateSync(fd, sizeBytes);
  } finally {
    closeSync(fd);
  }
  // e2fsck exits 1 when it fixed something (nothing is expected on a cleanly unmounted image).
  await run(['e2fsck', '-f', '-p', files.image], { timeoutMs: TOOL_TIMEOUT_MS, okCodes: [0, 1] });
  await run(['resize2fs', files.image], { timeoutMs: TOOL_TIMEOUT_MS });
  await ensureLayer(dir, { diskSizeBytes: sizeBytes });
}

async function dropImage(files: { image: string; mount: string }): Promise<void> {
  await unmountEverywhere(files.mount);
  rmSync(files.mount, { recursive: true, force: true });
  rmSync(files.image, { force: true });
}

/** What an interrupted replaceLayer left: a swap put back (the old layer) and half-made copies removed. */
export async function repairLayer(dir: string, spec: LayerSpec): Promise<string[]> {
  const repaired: string[] = [];
  const leftovers: string[] = [];
  if (spec.diskSizeBytes === undefined) {
    const { upper } = layerDirs(dir, spec);
    if (!existsSync(upper) && existsSync(`${upper}.old`)) renameSync(`${upper}.old`, upper);
    leftovers.push(`${upper}.new`, `${upper}.old`);
  } else {
    const current = imageFiles(dir);
    const next = imageFiles(dir, '.new');
    if (!existsSync(current.image) && existsSync(`${current.image}.old`)) renameSync(`${current.image}.old`, current.image);
    await unmountEverywhere(next.mount);
    leftovers.push(next.mount, next.image, `${current.image}.old`);
  }
  for (const leftover of leftovers) {
    if (existsSync(leftover)) {
      rmSync(leftover, { recursive: true, force: true });
      repaired.push(`removed ${leftover}, left by an interrupted revert`);
    }
  }
  return repaired;
}
