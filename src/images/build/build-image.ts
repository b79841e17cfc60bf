import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rename, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run, type RunOptions, type RunResult } from '../../exec/run.ts';
import { VirtnodeError } from '../../lib/errors.ts';
import { Reverter } from '../../lib/reverter.ts';
import { configureRoot, sealRoot } from './configure.ts';
import { killProcessesRootedUnder, unmountAllUnder } from './mounts.ts';
import { guestProgramsDigest } from './one-process-cloud-init.ts';
import { DEFAULT_DEBIAN_MIRROR, RECIPES, isImageName, type ImageName, type ImageRecipe } from './recipes.ts';

/** Bumped whenever the builder's output changes for the same recipe; part of the recipe key. */
export const BUILDER_VERSION = 4;

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
export const DEFAULT_IMAGE_SIZE_BYTES = 4 * GIB;
const MIN_IMAGE_SIZE_BYTES = 1 * GIB;
/** The root partition starts at 1 MiB (sector 2048): room for the MBR and aligned for any disk. */
export const PARTITION_OFFSET_BYTES = 1 * MIB;
const MBR_BOOT_CODE_BYTES = 440;
const SYSLINUX_MBR_PATHS = ['/usr/lib/syslinux/mbr/mbr.bin', '/usr/lib/SYSLINUX/mbr.bin', '/usr/share/syslinux/mbr.bin'];

const DEBOOTSTRAP_TIMEOUT_MS = 30 * 60_000;
const DISK_TOOL_TIMEOUT_MS = 10 * 60_000;
const SHORT_TOOL_TIMEOUT_MS = 60_000;

const PACKAGE_NAME = /^[a-z0-9][a-z0-9+.-]+$/;

export type BuildPhase =
  | 'cached'
  | 'download'
  | 'bootstrap'
  | 'configure'
  | 'seal'
  | 'filesystem'
  | 'disk'
  | 'bootloader'
  | 'convert'
  | 'checksum'
  | 'done';

export interface BuildImageOptions {
  /** Where the finished image goes (`<name>-<key>.qcow2` plus a `.json` record). */
  outDir: string;
  /** Debootstrap package tarballs are kept here so rebuilds download nothing. */
  cacheDir: string;
  /** Virtual disk size; default 4 GiB, at least 1 GiB, a whole number of MiB. */
  sizeBytes?: number;
  extraPackages?: readonly string[];
  mirror?: string;
  onProgress?: (phase: BuildPhase, detail?: string) => void;
  signal?: AbortSignal;
}

export interface BuiltImage {
  path: string;
  sha256: string;
  /** Virtual size of the disk. */
  sizeBytes: number;
  recipeKey: string;
  cached: boolean;
}

interface ImageRecord {
  name: ImageName;
  recipeKey: string;
  sha256: string;
  sizeBytes: number;
  builderVersion: number;
  kernel: string;
  createdAt: string;
  buildMs: number;
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export async function sha256File(path: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  const stream = createReadStream(path, signal === undefined ? {} : { signal });
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function packagesFor(recipe: ImageRecipe, extra: readonly string[]): string[] {
  return [...new Set([...recipe.packages, ...extra])].sort();
}

/** The recipe key: the same recipe, packages, builder version and size always give the same image name. */
export function recipeKey(name: ImageName, options: { sizeBytes?: number; extraPackages?: readonly string[]; mirror?: string } = {}): string {
  const recipe = RECIPES[name];
  return sha256Hex(
    JSON.stringify({
      builderVersion: BUILDER_VERSION,
      recipe,
      packages: packagesFor(recipe, options.extraPackages ?? []),
      mirror: options.mirror ?? DEFAULT_DEBIAN_MIRROR,
      sizeBytes: options.sizeBytes ?? DEFAULT_IMAGE_SIZE_BYTES,
      // The programs copied into the image: a change to them is a new image.
      ...(recipe.oneProcessCloudInit ? { guestPrograms: guestProgramsDigest() } : {}),
    }),
  );
}

export function imageFileName(name: ImageName, key: string): string {
  return `${name}-${key.slice(0, 16)}.qcow2`;
}

function opts(timeoutMs: number, signal: AbortSignal | undefined, extra: Omit<RunOptions, 'timeoutMs' | 'signal'> = {}): RunOptions {
  return signal === undefined ? { ...extra, timeoutMs } : { ...extra, timeoutMs, signal };
}

async function fileExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function readRecord(path: string): Promise<ImageRecord | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as ImageRecord;
  } catch {
    return undefined;
  }
}

function validate(name: string, sizeBytes: number, extra: readonly string[]): asserts name is ImageName {
  if (!isImageName(name)) throw new VirtnodeError('INVALID', `unknown image recipe ${name}`, { field: 'name', hint: 'known: debian-12' });
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes < MIN_IMAGE_SIZE_BYTES || sizeBytes % MIB !== 0) {
    throw new VirtnodeError('INVALID', `image size must be a whole number of MiB, at least 1 GiB (got ${sizeBytes})`, {
      field: 'sizeBytes',
    });
  }
  for (const p of extra) {
    if (!PACKAGE_NAME.test(p)) throw new VirtnodeError('INVALID', `not a Debian package name: ${JSON.stringify(p)}`, { field: 'extraPackages' });
  }
}

/**
 * Builds a bootable, sealed cloud image: debootstrap (from a cached package tarball when there is one), configure,
 * seal, ext4 filesystem from the tree (`mkfs.ext4 -d`), MBR disk with the filesystem at 1 MiB, EXTLINUX and
 * syslinux's MBR boot code, then qcow2. Cached by recipe key: a second call with the same inputs returns the
 * existing image at once. Needs root (debootstrap, chroot, loop devices).
 */
/** The checks buildImage makes before its first side effect, for callers that answer bad input before starting it. */
export function validateBuild(name: string, sizeBytes: number, extra: readonly string[]): void {
  validate(name, sizeBytes, extra);
}

export async function buildImage(name: string, options: BuildImageOptions): Promise<BuiltImage> {
  const sizeBytes = options.sizeBytes ?? DEFAULT_IMAGE_SIZE_BYTES;
  const extra = options.extraPackages ?? [];
  const mirror = options.mirror ?? DEFAULT_DEBIAN_MIRROR;
  validate(name, sizeBytes, extra);
  const { signal, onProgress } = options;
  const progress = (phase: BuildPhase, detail?: string): void => {
    if (onProgress !== undefined) detail === undefined ? onProgress(phase) : onProgress(phase, detail);
  };
  const recipe = RECIPES[name];
  const key = recipeKey(name, { sizeBytes, extraPackages: extra, mirror });
  const finalPath = join(options.outDir, imageFileName(name, key));
  const recordPath = finalPath.replace(/\.qcow2$/, '.json');

  const record = await readRecord(recordPath);
  if (record !== undefined && record.recipeKey === key && (await fileExists(finalPath))) {
    progress('cached', finalPath);
    return { path: finalPath, sha256: record.sha256, sizeBytes: record.sizeBytes, recipeKey: key, cached: true };
  }

  if (process.getuid?.() !== 0) {
    throw new VirtnodeError('PERMISSION', 'building an image needs root (debootstrap, chroot, loop devices)', {
      hint: 'run the build as root, e.g. sudo ./scripts/build-image.sh',
    });
  }
  signal?.throwIfAborted();
  const started = Date.now();
  await mkdir(options.outDir, { recursive: true });
  await mkdir(options.cacheDir, { recursive: true });
  const work = await mkdtemp(join(options.outDir, `.build-${name}-`));
  const reverter = new Reverter();
  reverter.add('remove the build directory', async () => {
    await killProcessesRootedUnder(work);
    await unmountAllUnder(work); // throws rather than let rm reach a host bind mount
    await rm(work, { recursive: true, force: true });
  });
  try {
    const packages = packagesFor(recipe, extra);
    const tarball = await ensurePackageTarball(recipe, packages, mirror, options.cacheDir, work, progress, signal);

    progress('bootstrap', recipe.suite);
    const root = join(work, 'root');
    await mkdir(root, { mode: 0o755 });
    await debootstrap(recipe, packages, `--unpack-tarball=${tarball}`, root, mirror, signal).catch(async (error: unknown) => {
      throw await withDebootstrapLog(error, root);
    });
    await unmountAllUnder(root);

    progress('configure');
    const kernel = await configureRoot(root, recipe, signal === undefined ? {} : { signal });
    await unmountAllUnder(root);
    progress('seal');
    await sealRoot(root);

    progress('filesystem');
    const fsBytes = sizeBytes - PARTITION_OFFSET_BYTES;
    const fsImage = join(work, 'root.ext4');
    await writeFile(fsImage, '');
    await truncate(fsImage, fsBytes);
    await run(
      ['mkfs.ext4', '-q', '-F', '-d', root, '-L', 'root', '-O', '^64bit,^metadata_csum', '-E', 'root_owner=0:0', fsImage],
      opts(DISK_TOOL_TIMEOUT_MS, signal),
    );
    await rm(root, { recursive: true, force: true });

    progress('disk');
    const raw = join(work, 'disk.raw');
    await writeFile(raw, '');
    await truncate(raw, sizeBytes);
    const startSector = PARTITION_OFFSET_BYTES / 512;
    await run(['sfdisk', '--no-reread', '--no-tell-kernel', raw], opts(SHORT_TOOL_TIMEOUT_MS, signal, {
      input: `label: dos\nunit: sectors\n\nstart=${startSector}, size=${fsBytes / 512}, type=83, bootable\n`,
    }));
    await run(
      ['dd', `if=${fsImage}`, `of=${raw}`, 'bs=1M', `seek=${PARTITION_OFFSET_BYTES / MIB}`, 'conv=notrunc,sparse', 'status=none'],
      opts(DISK_TOOL_TIMEOUT_MS, signal),
    );
    await rm(fsImage, { force: true });

    progress('bootloader', 'extlinux');
    await installExtlinux(raw, fsBytes, join(work, 'mnt'), signal);
    await writeMbr(raw);

    progress('convert', 'qcow2');
    const qcow2 = join(work, 'disk.qcow2');
    await run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', raw, qcow2], opts(DISK_TOOL_TIMEOUT_MS, signal));
    await rm(raw, { force: true });

    progress('checksum');
    const sha256 = await sha256File(qcow2, signal);
    const built: ImageRecord = {
      name,
      recipeKey: key,
      sha256,
      sizeBytes,
      builderVersion: BUILDER_VERSION,
      kernel: kernel.version,
      createdAt: new Date().toISOString(),
      buildMs: Date.now() - started,
    };
    await rename(qcow2, finalPath);
    await writeFile(`${recordPath}.tmp`, `${JSON.stringify(built, null, 2)}\n`);
    await rename(`${recordPath}.tmp`, recordPath);
    await reverter.revert(); // the build directory goes either way
    progress('done', finalPath);
    return { path: finalPath, sha256, sizeBytes, recipeKey: key, cached: false };
  } catch (error) {
    const failures = await reverter.revert();
    if (failures.length > 0 && error instanceof Error) {
      error.message += ` (cleanup failed: ${failures.map((f) => `${f.what}: ${String(f.error)}`).join('; ')})`;
    }
    throw error;
  }
}

/** Runs debootstrap on the recipe's suite and packages; `tarballOption` is `--make-tarball=…` or `--unpack-tarball=…`. */
function debootstrap(
  recipe: ImageRecipe,
  packages: readonly string[],
  tarballOption: string,
  target: string,
  mirror: string,
  signal: AbortSignal | undefined,
): Promise<RunResult> {
  const argv = ['debootstrap', `--variant=${recipe.variant}`, `--include=${packages.join(',')}`, tarballOption, recipe.suite, target, mirror];
  return run(argv, opts(DEBOOTSTRAP_TIMEOUT_MS, signal));
}

/** debootstrap's own messages say only "see debootstrap.log": attach the log's error lines before it is deleted. */
async function withDebootstrapLog(error: unknown, root: string): Promise<unknown> {
  const log = await readFile(join(root, 'debootstrap/debootstrap.log'), 'utf8').catch(() => '');
  const lines = log
    .split('\n')
    .filter((l) => /error|not installed|depends on|failed/i.test(l))
    .slice(-12);
  if (lines.length > 0 && error instanceof Error) error.message += `\ndebootstrap.log:\n${lines.join('\n')}`;
  return error;
}

/** A debootstrap `--make-tarball` of the recipe's packages, keyed by suite, mirror and package list. */
async function ensurePackageTarball(
  recipe: ImageRecipe,
  packages: readonly string[],
  mirror: string,
  cacheDir: string,
  work: string,
  progress: (phase: BuildPhase, detail?: string) => void,
  signal: AbortSignal | undefined,
): Promise<string> {
  const tarKey = sha256Hex(JSON.stringify({ suite: recipe.suite, variant: recipe.variant, mirror, packages })).slice(0, 16);
  const tarball = join(cacheDir, `debootstrap-${recipe.suite}-${tarKey}.tgz`);
  if (await fileExists(tarball)) return tarball;
  progress('download', mirror);
  const partial = join(work, 'packages.tgz');
  await debootstrap(recipe, packages, `--make-tarball=${partial}`, join(work, 'download'), mirror, signal);
  await rename(partial, tarball).catch(async () => {
    // outDir and cacheDir may be on different filesystems
    await run(['cp', partial, `${tarball}.tmp`], opts(DISK_TOOL_TIMEOUT_MS, signal));
    await rename(`${tarball}.tmp`, tarball);
  });
  return tarball;
}

/** Loop-mounts the partition (losetup -o: no partition device nodes needed) and installs EXTLINUX in /boot/extlinux. */
async function installExtlinux(raw: string, fsBytes: number, mnt: string, signal: AbortSignal | undefined): Promise<void> {
  await mkdir(mnt, { recursive: true });
  const steps = new Reverter();
  try {
    const { stdout } = await run(
      ['losetup', '--find', '--show', '--offset', String(PARTITION_OFFSET_BYTES), '--sizelimit', String(fsBytes), raw],
      opts(SHORT_TOOL_TIMEOUT_MS, signal),
    );
    const loop = stdout.trim();
    if (!loop.startsWith('/dev/loop')) throw new VirtnodeError('INTERNAL', `losetup printed ${JSON.stringify(stdout)}`);
    steps.add(`detach ${loop}`, async () => {
      await run(['losetup', '-d', loop], { timeoutMs: SHORT_TOOL_TIMEOUT_MS });
    });
    await run(['mount', '-t', 'ext4', loop, mnt], opts(SHORT_TOOL_TIMEOUT_MS, signal));
    steps.add(`unmount ${mnt}`, () => unmountAllUnder(mnt));
    await run(['extlinux', '--install', join(mnt, 'boot/extlinux')], opts(SHORT_TOOL_TIMEOUT_MS, signal));
  } finally {
    const failures = await steps.revert();
    if (failures.length > 0) {
      throw new VirtnodeError('INTERNAL', `cleanup after extlinux failed: ${failures.map((f) => `${f.what}: ${String(f.error)}`).join('; ')}`);
    }
  }
}

/** syslinux's MBR boot code into the first 440 bytes (the partition table after it is left alone). */
async function writeMbr(raw: string): Promise<void> {
  let code: Buffer | undefined;
  for (const p of SYSLINUX_MBR_PATHS) {
    code = await readFile(p).catch(() => undefined);
    if (code !== undefined) break;
  }
  if (code === undefined) {
    throw new VirtnodeError('MISSING_PROGRAM', 'syslinux mbr.bin not found', { hint: 'install it with: apt-get install syslinux-common' });
  }
  if (code.length > MBR_BOOT_CODE_BYTES) code = code.subarray(0, MBR_BOOT_CODE_BYTES);
  const fh = await open(raw, 'r+');
  try {
    await fh.write(code, 0, code.length, 0);
  } finally {
    await fh.close();
  }
}
