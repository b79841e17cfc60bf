import { existsSync, linkSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import type { DiskFormat, Instance } from '../instances/model.ts';
import { invalid, VirtnodeError } from '../lib/errors.ts';
import { failpoint } from '../lib/failpoint.ts';
import { mapNoSpace, mapNoSpaceSync, named } from '../lib/no-space.ts';
import { makeScratchDir } from '../lib/scratch.ts';
import { validateName } from '../lib/names.ts';
import { within } from '../lib/paths.ts';
import { formatSize, parseSize } from '../lib/units.ts';
import type { Pool, Volume } from '../store/storage.ts';
import { mustGetPool, DEFAULT_POOL } from './pools.ts';
import { backingChain, type ChainLink, checkImage, type CheckResult, convertImage, type CopyProgress, createVolumeImage, imageLink, resizeImage } from './qemu-img.ts';
import { damagedImageError, imageDamage } from '../qemu/img.ts';
import { blockResize } from '../qmp/commands.ts';
import { diskNode } from './qmp-block.ts';
import { fileExists, isNfsPath, removeFile } from '../nfs/files.ts';
import { isLive, type StorageService } from './service.ts';

const FORMATS: readonly DiskFormat[] = ['qcow2', 'raw'];

export function parseFormat(field: string, text: string | undefined, fallback: DiskFormat): DiskFormat {
  if (text === undefined) return fallback;
  if (!FORMATS.includes(text as DiskFormat)) throw invalid(field, `"${text}" is not a disk format`, 'use qcow2 or raw');
  return text as DiskFormat;
}

/** A disk size: K/M/G/T (binary), a whole number of 512-byte sectors. */
export function parseDiskSize(field: string, text: string): number {
  if (!/^\s*\d+(\.\d+)?\s*([KMGT](i?B)?|B)?\s*$/i.test(text)) {
    throw invalid(field, `"${text}" is not a size`, 'use a number with a unit: 512M, 10G, 1T (K, M, G, T; binary)');
  }
  const bytes = parseSize(field, text);
  if (bytes % 512 !== 0) throw invalid(field, `"${text}" is ${bytes} bytes, not a multiple of 512`, 'use whole K, M, G or T');
  return bytes;
}

function volumePath(pool: Pool, name: string, format: DiskFormat): string {
  return pool.type === 'nfs' ? `${pool.path}/${name}.${format}` : within(pool.path, `${name}.${format}`);
}

/** Convert renames a finished copy into place, which only a local or mounted directory offers. */
function assertDirectoryPool(pool: Pool, operation: string): void {
  if (pool.type === 'nfs') {
    throw new VirtnodeError('INVALID_STATE', `cannot ${operation} in nfs pool ${pool.name}`, { hint: 'export the volume to a file, then import it in the other format' });
  }
}

export function mustGetVolume(storage: StorageService, name: string): Volume {
  validateName('volume', name);
  const volume = storage.repo.volume(name);
  if (volume === undefined || volume.state === 'creating') {
    throw new VirtnodeError('NOT_FOUND', `volume ${name} does not exist`, { field: 'volume', hint: 'see `virtnode volume ls` for the volumes there are' });
  }
  return volume;
}

async function assertNewVolume(storage: StorageService, name: string, path: string): Promise<void> {
  if (storage.repo.volume(name) !== undefined) throw new VirtnodeError('CONFLICT', `volume ${name} already exists`, { field: 'name', hint: 'choose another name' });
  if (await fileExists(path)) {
    throw new VirtnodeError('CONFLICT', `${path} already exists and is no volume of virtnode`, { field: 'name', hint: 'choose another name, or import it: virtnode volume import FILE' });
  }
}

/**
 * Records the volume as `creating`, makes its file with `make`, then marks it ready; a failure undoes both. A
 * full disk is NO_SPACE naming `what` and the pool's directory.
 */
async function makeVolume(storage: StorageService, what: string, name: string, pool: string, path: string, format: DiskFormat, make: () => Promise<void>): Promise<Volume> {
  const underLock = async () => {
    await assertNewVolume(storage, name, path);
    storage.repo.insertVolume({ name, pool, path, format, state: 'creating' });
    try {
      await make();
      failpoint('volume.after-file');
      storage.repo.updateVolume(name, { state: 'ready' });
    } catch (e) {
      await removeFile(path).catch(() => {}); // first: on a full disk, the record's delete needs the space back
      storage.repo.deleteVolume(name);
      throw e;
    }
    return storage.repo.volume(name)!;
  };
  return mapNoSpace(what, dirname(path), () => storage.withVolumeLock(name, 'create', { lockWaitMs: 0 }, underLock));
}

export interface CreateVolumeRequest {
  name: string;
  size: string | undefined;
  format?: string;
  preallocate?: boolean;
  pool?: string;
}

export async function createVolume(storage: StorageService, request: CreateVolumeRequest): Promise<Volume> {
  const name = validateName('name', request.name);
  if (request.size === undefined) throw invalid('--size', 'is required', 'e.g. --size 10G');
  const sizeBytes = parseDiskSize('--size', request.size);
  const format = parseFormat('--format', request.format, 'qcow2');
  const pool = mustGetPool(storage, request.pool ?? DEFAULT_POOL);
  if (request.preallocate === true && pool.type === 'nfs') {
    throw invalid('--preallocate', `QEMU's NFS client cannot preallocate (pool ${pool.name} is nfs)`, 'create it without --preallocate');
  }
  const path = volumePath(pool, name, format);
  return makeVolume(storage, `create volume ${name}`, name, pool.name, path, format, () => createVolumeImage(path, { format, sizeBytes, preallocate: request.preallocate === true }));
}

export interface VolumeView extends Volume {
  virtualSize: number | undefined;
  allocation: number | undefined;
  /** Instance using it as a disk. */
  attachedTo: string | undefined;
  /** Present state lives in an overlay on the volume (an external snapshot of that instance). */
  overlay: string | undefined;
  problem: string | undefined;
}

async function view(storage: StorageService, volume: Volume): Promise<VolumeView> {
  const user = storage.attachedTo(volume.name);
  const disk = user?.spec.disks.find((d) => d.volume === volume.name);
  const base: VolumeView = {
    ...volume,
    virtualSize: undefined,
    allocation: undefined,
    attachedTo: user?.name,
    overlay: disk !== undefined && disk.path !== volume.path ? disk.path : undefined,
    problem: undefined,
  };
  try {
    const link = await imageLink(volume.path, { format: volume.format });
    return { ...base, virtualSize: link.virtualSize, allocation: link.allocation };
  } catch (e) {
    return { ...base, problem: isNfsPath(volume.path) || existsSync(volume.path) ? `unreadable: ${e instanceof Error ? e.message : String(e)}` : 'file missing' };
  }
}

/** An instance's own disk (made by create/launch in its directory); not a volume, shown by `volume ls --all`. */
export interface InstanceDiskView {
  instance: string;
  id: string;
  path: string;
  format: string;
  virtualSize: number | undefined;
  allocation: number | undefined;
}

export async function listVolumes(storage: StorageService, options: { pool?: string } = {}): Promise<VolumeView[]> {
  if (options.pool !== undefined) mustGetPool(storage, validateName('--pool', options.pool));
  else mustGetPool(storage, DEFAULT_POOL);
  const volumes = storage.repo.volumes(options.pool).filter((v) => v.state !== 'creating');
  return Promise.all(volumes.map((v) => view(storage, v)));
}

export async function listInstanceDisks(storage: StorageService): Promise<InstanceDiskView[]> {
  const out: InstanceDiskView[] = [];
  for (const instance of storage.instances.repo.list()) {
    for (const disk of instance.spec.disks) {
      if (disk.volume !== undefined) continue;
      let link: ChainLink | undefined;
      try {
        link = await imageLink(disk.path, { format: disk.format });
      } catch {
        link = undefined;
      }
      out.push({ instance: instance.name, id: disk.id, path: disk.path, format: disk.format, virtualSize: link?.virtualSize, allocation: link?.allocation });
    }
  }
  return out;
}

export async function volumeInfo(storage: StorageService, name: string): Promise<VolumeView & { chain: ChainLink[]; activeChain: ChainLink[] | undefined }> {
  const volume = mustGetVolume(storage, name);
  const v = await view(storage, volume);
  const chain = await backingChain(volume.path, { format: volume.format });
  const activeChain = v.overlay === undefined ? undefined : await backingChain(v.overlay, { format: 'qcow2' }); // virtnode's own overlay
  return { ...v, chain, activeChain };
}

/** A volume's instance and disk id, if it is attached; refuses when snapshot overlays sit on it. */
function attachment(storage: StorageService, volume: Volume, operation: string): { instance: Instance; diskId: string } | undefined {
  const user = storage.attachedTo(volume.name);
  if (user === undefined) return undefined;
  const disk = user.spec.disks.find((d) => d.volume === volume.name)!;
  if (disk.path !== volume.path) {
    throw new VirtnodeError('INVALID_STATE', `cannot ${operation} volume ${volume.name}: instance ${user.name} writes it through an external snapshot overlay (${disk.path})`, {
      hint: `delete ${user.name}'s external snapshots first (virtnode snapshot rm ${user.name} SNAP), which merges the overlay back`,
    });
  }
  return { instance: user, diskId: disk.id };
}

export interface ResizeResult {
  volume: Volume;
  from: number;
  to: number;
  live: boolean;
}

export async function resizeVolume(storage: StorageService, name: string, sizeText: string, options: { allowShrink?: boolean } = {}): Promise<ResizeResult> {
  const sizeBytes = parseDiskSize('--size', sizeText);
  const volume = mustGetVolume(storage, name);
  const att = attachment(storage, volume, 'resize');
  const resizeUnder = async (): Promise<ResizeResult> => {
    const current = await imageLink(volume.path);
    if (sizeBytes < current.virtualSize && !options.allowShrink) {
      throw invalid('--size', `${formatSize(sizeBytes)} is smaller than volume ${name} (${formatSize(current.virtualSize)}): shrinking cuts off the data at the end`, 'shrink the filesystem inside first, then repeat with --allow-shrink');
    }
    const instance = att === undefined ? undefined : await storage.instance(att.instance.name);
    if (instance !== undefined && isLive(instance)) {
      if (sizeBytes < current.virtualSize) throw new VirtnodeError('INVALID_STATE', `cannot shrink volume ${name} while ${instance.name} runs`, { hint: `stop ${instance.name} first` });
      await storage.withQmp(instance, async (qmp) => {
        const node = await diskNode(qmp, att!.diskId);
        if (node === undefined) throw new VirtnodeError('INTERNAL', `QEMU of ${instance.name} has no device for disk ${att!.diskId}`);
        await blockResize(qmp, { 'node-name': node.node, size: sizeBytes });
      });
      return { volume, from: current.virtualSize, to: sizeBytes, live: true };
    }
    if (sizeBytes !== current.virtualSize) await resizeImage(volume.path, volume.format, sizeBytes, { shrink: sizeBytes < current.virtualSize });
    return { volume, from: current.virtualSize, to: sizeBytes, live: false };
  };
  return att === undefined
    ? storage.withVolumeLock(name, 'resize', {}, resizeUnder)
    : storage.instances.withLock(att.instance.name, 'volume resize', {}, () => storage.withVolumeLock(name, 'resize', {}, resizeUnder));
}

function assertDetached(storage: StorageService, volume: Volume, operation: string): void {
  const user = storage.attachedTo(volume.name);
  if (user !== undefined) {
    throw new VirtnodeError('CONFLICT', `cannot ${operation} volume ${volume.name}: it is attached to instance ${user.name}`, {
      hint: `detach it first: virtnode disk detach ${user.name} ${volume.name}`,
    });
  }
}

/** The checks of convertVolume before it changes anything (the API answers them at once). */
export function checkConvert(storage: StorageService, name: string, formatText: string | undefined): { volume: Volume; format: DiskFormat; pool: Pool } {
  if (formatText === undefined) throw invalid('--format', 'is required', 'use qcow2 or raw');
  const format = parseFormat('--format', formatText, 'qcow2');
  const volume = mustGetVolume(storage, name);
  assertDetached(storage, volume, 'convert');
  if (volume.format === format) throw invalid('--format', `volume ${name} is already ${format}`);
  const pool = mustGetPool(storage, volume.pool);
  assertDirectoryPool(pool, 'convert a volume');
  return { volume, format, pool };
}

/** Copies (convert, import, export) can be cancelled and report the bytes copied. */
export interface CopyOptions {
  signal?: AbortSignal;
  onProgress?: CopyProgress;
}

/** Rewrites the volume in another format (copy, then swap the files); refused while attached. */
export async function convertVolume(storage: StorageService, name: string, formatText: string | undefined, options: CopyOptions = {}): Promise<Volume> {
  const { volume, format, pool } = checkConvert(storage, name, formatText);
  return storage.withVolumeLock(name, 'convert', options, async () => {
    assertDetached(storage, volume, 'convert');
    const target = volumePath(pool, name, format);
    if (existsSync(target)) throw new VirtnodeError('CONFLICT', `${target} already exists`, { hint: 'move it away first' });
    const partial = within(pool.path, `.${name}.${format}.partial`);
    try {
      await convertImage(volume.path, partial, format, { ...options, sourceFormat: volume.format });
      renameSync(partial, target);
    } catch (e) {
      rmSync(partial, { force: true });
      throw named(e, `convert volume ${name}`, pool.path);
    }
    storage.repo.updateVolume(name, { path: target, format });
    rmSync(volume.path, { force: true });
    return storage.repo.volume(name)!;
  });
}

export async function checkVolume(storage: StorageService, name: string): Promise<CheckResult> {
  const volume = mustGetVolume(storage, name);
  return checkImage(volume.path, volume.format);
}

/** The checks of importVolume before it reads the file with qemu-img (the API answers them at once). */
export function checkImport(storage: StorageService, file: string, request: { name?: string; pool?: string; format?: string }) {
  const source = resolve(file);
  if (!existsSync(source) || !statSync(source).isFile()) throw invalid('FILE', `${file} is not an existing file`);
  const name = validateName('--name', request.name ?? basename(source, extname(source)));
  const requested = request.format === undefined ? undefined : parseFormat('--format', request.format, 'qcow2');
  const pool = mustGetPool(storage, request.pool ?? DEFAULT_POOL);
  return { source, name, requested, pool };
}

/**
 * Copies an image file (any format qemu-img reads, backing chain flattened) into a new volume. A file that
 * `qemu-img check` finds damaged is refused before anything is made; leaked clusters alone are accepted.
 */
export async function importVolume(
  storage: StorageService,
  file: string,
  request: { name?: string; pool?: string; format?: string },
  options: CopyOptions = {},
): Promise<Volume> {
  const { source, name, requested, pool } = checkImport(storage, file, request);
  let link: ChainLink;
  try {
    link = await imageLink(source);
  } catch (e) {
    throw new VirtnodeError('INVALID', `FILE: ${file} is not an image qemu-img can read`, { field: 'FILE', cause: e });
  }
  const damage = await imageDamage(source, link.format, options.signal === undefined ? {} : { signal: options.signal });
  if (damage !== undefined) throw damagedImageError('FILE', file, link.format, damage);
  const format: DiskFormat = requested ?? (link.format === 'raw' ? 'raw' : 'qcow2');
  const path = volumePath(pool, name, format);
  return makeVolume(storage, `import ${file} as volume ${name}`, name, pool.name, path, format, () => convertImage(source, path, format, { ...options, sourceFormat: link.format }));
}

/** The checks of exportVolume before it takes the volume's lock (the API answers them at once). */
export function checkExport(storage: StorageService, name: string, file: string, request: { format?: string } = {}): { volume: Volume; format: DiskFormat; target: string } {
  const volume = mustGetVolume(storage, name);
  const format = parseFormat('--format', request.format, volume.format);
  const target = resolve(file);
  if (existsSync(target)) throw new VirtnodeError('CONFLICT', `FILE: ${file} already exists`, { field: 'FILE', hint: 'choose a new file name; export never overwrites' });
  if (!existsSync(dirname(target))) throw invalid('FILE', `the directory ${dirname(target)} does not exist`);
  return { volume, format, target };
}

/** Copies a volume out to a new file (never overwrites); refused while a running instance writes it. */
export async function exportVolume(
  storage: StorageService,
  name: string,
  file: string,
  request: { format?: string } = {},
  options: CopyOptions = {},
): Promise<{ path: string; format: DiskFormat }> {
  const { volume, format, target } = checkExport(storage, name, file, request);
  return storage.withVolumeLock(name, 'export', options, async () => {
    const user = storage.attachedTo(name);
    if (user !== undefined && isLive(await storage.instance(user.name))) {
      throw new VirtnodeError('INVALID_STATE', `cannot export volume ${name} while instance ${user.name} runs and writes it`, {
        hint: `stop ${user.name} first, or detach the volume`,
      });
    }
    const disk = user?.spec.disks.find((d) => d.volume === name);
    // The present state: through the overlay of an external snapshot, if there is one. Its format is always
    // told: probed, a raw volume whose guest wrote a qcow2 header naming a backing file would export a host file.
    const source = disk === undefined ? { path: volume.path, format: volume.format } : { path: disk.path, format: disk.format };
    // Written in a private directory beside the target, then linked to the target's name: link() never follows
    // a link planted there and fails if the name was taken meanwhile.
    // Recorded in the state directory, so the reconcile after a crash removes it.
    const scratch = mapNoSpaceSync(`export volume ${name} to ${target}`, dirname(target), () => makeScratchDir(storage.paths.root, dirname(target), `.${basename(target)}.`));
    try {
      failpoint('export.after-scratch');
      const partial = join(scratch.path, 'export');
      await mapNoSpace(`export volume ${name} to ${target}`, dirname(target), () => convertImage(source.path, partial, format, { ...options, sourceFormat: source.format }));
      failpoint('export.after-copy');
      try {
        linkSync(partial, target);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new VirtnodeError('CONFLICT', `FILE: ${file} already exists`, { field: 'FILE', hint: 'choose a new file name; export never overwrites' });
        throw e;
      }
      failpoint('export.after-link');
    } finally {
      scratch.remove();
    }
    return { path: target, format };
  });
}

export async function removeVolume(storage: StorageService, name: string): Promise<void> {
  const volume = mustGetVolume(storage, name);
  assertDetached(storage, volume, 'remove');
  await storage.withVolumeLock(name, 'remove', {}, async () => {
    assertDetached(storage, volume, 'remove');
    storage.repo.updateVolume(name, { state: 'deleting' });
    await removeFile(volume.path);
    storage.repo.deleteVolume(name);
  });
}

/** Volumes left `creating`/`deleting` by a crashed process: the half-made file and record go. */
export function repairVolumes(storage: StorageService, ownerAlive: (lockName: string) => boolean): string[] {
  const repaired: string[] = [];
  for (const v of storage.repo.volumes()) {
    if (v.state === 'ready' || ownerAlive(`volume/${v.name}`)) continue;
    // The repair is synchronous; a half-made file on an NFS export is named for the administrator instead.
    if (!isNfsPath(v.path)) rmSync(v.path, { force: true });
    storage.repo.deleteVolume(v.name);
    const left = isNfsPath(v.path) ? ` (its file ${v.path} may remain)` : '';
    repaired.push(`volume ${v.name}: removed after an interrupted ${v.state === 'creating' ? 'create' : 'remove'}${left}`);
  }
  return repaired;
}
