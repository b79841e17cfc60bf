import { existsSync, mkdirSync, readdirSync, realpathSync, statfsSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { invalid, VirtnodeError } from '../lib/errors.ts';
import { validateName } from '../lib/names.ts';
import type { Pool, PoolType } from '../store/storage.ts';
import { NfsExport, nfsUrl, parseNfsSource } from '../nfs/client.ts';
import type { StorageService } from './service.ts';

export const POOL_TYPES: readonly PoolType[] = ['dir', 'shared-dir', 'nfs'];

/** Pools whose disks other hosts can open too (the cluster may restart their instances elsewhere). */
export function isSharedPool(pool: Pool): boolean {
  return pool.type !== 'dir';
}

export const DEFAULT_POOL = 'default';

/** The default pool's directory: inside the state directory, made on first use. */
export function defaultPoolPath(storage: StorageService): string {
  return join(storage.paths.root, 'pools', DEFAULT_POOL);
}

/** Every pool operation starts here, so the default pool exists whenever pools are looked at. */
export function ensureDefaultPool(storage: StorageService): void {
  if (storage.repo.pool(DEFAULT_POOL) !== undefined) return;
  const path = defaultPoolPath(storage);
  mkdirSync(path, { recursive: true, mode: 0o700 });
  try {
    storage.repo.insertPool(DEFAULT_POOL, path);
  } catch (e) {
    if (storage.repo.pool(DEFAULT_POOL) === undefined) throw e; // else another process made it just now
  }
}

export function mustGetPool(storage: StorageService, name: string): Pool {
  ensureDefaultPool(storage);
  const pool = storage.repo.pool(name);
  if (pool === undefined) {
    throw new VirtnodeError('NOT_FOUND', `pool ${name} does not exist`, { field: '--pool', hint: 'see `virtnode pool ls` for the pools there are' });
  }
  return pool;
}

/** An absolute path to an existing directory, without `..`, outside the instances directory. */
export function validatePoolPath(storage: StorageService, text: string): string {
  if (text === '' || !isAbsolute(text)) throw invalid('--path', `"${text}" is not an absolute path`, 'give the full path of an existing directory, e.g. /srv/vm-disks');
  if (text.split('/').includes('..')) throw invalid('--path', `"${text}" contains ".."`, 'give the directory without ".." components');
  if (!existsSync(text) || !statSync(text).isDirectory()) throw invalid('--path', `${text} is not an existing directory`, `create it first: mkdir -p ${text}`);
  const real = realpathSync(text);
  const instances = realpathSync(storage.paths.instances);
  if (real === instances || real.startsWith(`${instances}/`)) {
    throw invalid('--path', `${text} is inside virtnode's instances directory`, 'choose a directory of its own');
  }
  return real;
}

export interface CreatePoolRequest {
  name: string;
  type?: string;
  path?: string;
  source?: string;
}

/**
 * dir and shared-dir: an existing directory (`path`); nfs: an export (`source` SERVER:/EXPORT) that answers a
 * MOUNT call from here. Everything is checked before the pool is recorded.
 */
export async function createPool(storage: StorageService, request: CreatePoolRequest, options: { signal?: AbortSignal } = {}): Promise<Pool> {
  const name = validateName('name', request.name);
  const type = (request.type ?? 'dir') as PoolType;
  if (!POOL_TYPES.includes(type)) throw invalid('--type', `"${request.type}" is not a pool type`, `use one of: ${POOL_TYPES.join(', ')}`);
  ensureDefaultPool(storage);
  let location: string;
  let source: string | undefined;
  if (type === 'nfs') {
    if (request.path !== undefined) throw invalid('--path', 'is for dir and shared-dir pools', 'an nfs pool takes --source SERVER:/EXPORT');
    if (request.source === undefined) throw invalid('--source', 'is required for an nfs pool', 'e.g. --source 192.0.2.10:/srv/vm-disks');
    const parsed = parseNfsSource('--source', request.source);
    await NfsExport.open(parsed, '--source', options);
    source = `${parsed.server}:${parsed.export}`;
    location = nfsUrl(parsed, '').replace(/\/$/, '');
  } else {
    if (request.source !== undefined) throw invalid('--source', `is for nfs pools, not ${type}`, `a ${type} pool takes --path DIR`);
    if (request.path === undefined) throw invalid('--path', `is required for a ${type} pool`, 'e.g. --path /srv/vm-disks');
    location = validatePoolPath(storage, request.path);
  }
  if (storage.repo.pool(name) !== undefined) throw new VirtnodeError('CONFLICT', `pool ${name} already exists`, { field: 'name', hint: 'choose another name' });
  const field = type === 'nfs' ? '--source' : '--path';
  const same = storage.repo.pools().find((p) => p.path === location);
  if (same !== undefined) throw new VirtnodeError('CONFLICT', `${field}: ${source ?? location} is already pool ${same.name}`, { field });
  storage.repo.insertPool(name, location, { type, ...(source === undefined ? {} : { source }) });
  return storage.repo.pool(name)!;
}

export interface PoolUsage extends Pool {
  /** Of the filesystem holding the pool (statfs): its size, what is used on it (by anything), what is free. */
  capacity: number;
  allocation: number;
  available: number;
  volumes: number;
  /** Bytes the pool's volumes take on the host. */
  volumeAllocation: number;
  /** Why the sizes are unknown (server unreachable, directory not mounted). */
  problem?: string;
}

async function nfsUsage(pool: Pool, volumePaths: Set<string>): Promise<{ capacity: number; allocation: number; available: number; volumeAllocation: number; otherFiles: number }> {
  const share = await NfsExport.open(parseNfsSource('source', pool.source!), 'source');
  const [space, entries] = await Promise.all([share.capacity(), share.list()]);
  let volumeAllocation = 0;
  let otherFiles = 0;
  for (const e of entries) {
    if (volumePaths.has(`${pool.path}/${e.name}`)) volumeAllocation += e.used;
    else otherFiles++;
  }
  return { capacity: space.total, allocation: space.total - space.free, available: space.available, volumeAllocation, otherFiles };
}

function dirUsage(pool: Pool, volumePaths: Set<string>): { capacity: number; allocation: number; available: number; volumeAllocation: number; otherFiles: number } {
  const fs = statfsSync(pool.path, { bigint: false });
  let volumeAllocation = 0;
  for (const path of volumePaths) {
    try {
      volumeAllocation += statSync(path).blocks * 512;
    } catch {
      /* missing file: shown by volume ls */
    }
  }
  const otherFiles = readdirSync(pool.path).filter((f) => !volumePaths.has(join(pool.path, f))).length;
  return { capacity: fs.blocks * fs.bsize, allocation: (fs.blocks - fs.bfree) * fs.bsize, available: fs.bavail * fs.bsize, volumeAllocation, otherFiles };
}

export async function poolUsage(storage: StorageService, pool: Pool): Promise<PoolUsage & { otherFiles: number }> {
  const volumes = storage.repo.volumes(pool.name);
  const paths = new Set(volumes.map((v) => v.path));
  try {
    const usage = pool.type === 'nfs' ? await nfsUsage(pool, paths) : dirUsage(pool, paths);
    return { ...pool, ...usage, volumes: volumes.length };
  } catch (e) {
    // One unreachable server (or unmounted shared directory) must not hide the other pools.
    const problem = e instanceof Error ? e.message : String(e);
    return { ...pool, capacity: 0, allocation: 0, available: 0, volumeAllocation: 0, otherFiles: 0, volumes: volumes.length, problem };
  }
}

export async function listPools(storage: StorageService): Promise<PoolUsage[]> {
  ensureDefaultPool(storage);
  return Promise.all(storage.repo.pools().map(async (p) => {
    const { otherFiles: _, ...usage } = await poolUsage(storage, p);
    return usage;
  }));
}

export async function poolInfo(storage: StorageService, name: string): Promise<PoolUsage & { volumeNames: string[]; otherFiles: number }> {
  const pool = mustGetPool(storage, validateName('name', name));
  const volumes = storage.repo.volumes(name);
  return { ...(await poolUsage(storage, pool)), volumeNames: volumes.map((v) => v.name) };
}

/** Forgets a pool; its directory stays as it is. Refused while it holds volumes. */
export function removePool(storage: StorageService, name: string): void {
  mustGetPool(storage, validateName('name', name));
  const volumes = storage.repo.volumes(name);
  if (volumes.length > 0) {
    throw new VirtnodeError('CONFLICT', `pool ${name} holds ${volumes.length} volume(s): ${volumes.map((v) => v.name).join(', ')}`, {
      hint: 'remove them first with `virtnode volume rm NAME`',
    });
  }
  storage.repo.deletePool(name);
}
