import { existsSync, mkdirSync, readdirSync, realpathSync, statfsSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { invalid, VirtnodeError } from '../lib/errors.ts';
import { validateName } from '../lib/ids.ts';
import type { Pool } from '../store/storage.ts';
import type { StorageService } from './service.ts';

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

export function createPool(storage: StorageService, name: string, path: string): Pool {
  validateName('name', name);
  ensureDefaultPool(storage);
  const real = validatePoolPath(storage, path);
  if (storage.repo.pool(name) !== undefined) throw new VirtnodeError('CONFLICT', `pool ${name} already exists`, { field: 'name', hint: 'choose another name' });
  const same = storage.repo.pools().find((p) => p.path === real);
  if (same !== undefined) throw new VirtnodeError('CONFLICT', `--path: ${real} is already pool ${same.name}`, { field: '--path' });
  storage.repo.insertPool(name, real);
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
}

export function poolUsage(storage: StorageService, pool: Pool): PoolUsage {
  const fs = statfsSync(pool.path, { bigint: false });
  const volumes = storage.repo.volumes(pool.name);
  let volumeAllocation = 0;
  for (const v of volumes) {
    try {
      volumeAllocation += statSync(v.path).blocks * 512;
    } catch {
      /* missing file: shown by volume ls */
    }
  }
  return {
    ...pool,
    capacity: fs.blocks * fs.bsize,
    allocation: (fs.blocks - fs.bfree) * fs.bsize,
    available: fs.bavail * fs.bsize,
    volumes: volumes.length,
    volumeAllocation,
  };
}

export function listPools(storage: StorageService): PoolUsage[] {
  ensureDefaultPool(storage);
  return storage.repo.pools().map((p) => poolUsage(storage, p));
}

export function poolInfo(storage: StorageService, name: string): PoolUsage & { volumeNames: string[]; otherFiles: number } {
  const pool = mustGetPool(storage, validateName('name', name));
  const volumes = storage.repo.volumes(name);
  const known = new Set(volumes.map((v) => v.path));
  const otherFiles = readdirSync(pool.path).filter((f) => !known.has(join(pool.path, f))).length;
  return { ...poolUsage(storage, pool), volumeNames: volumes.map((v) => v.name), otherFiles };
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
