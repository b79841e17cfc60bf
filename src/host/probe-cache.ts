import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../lib/fs-atomic.ts';

/** Small JSON files under the cache directory. A missing or unreadable file is a cache miss, never an error. */
export async function readCache<T>(cacheDir: string, file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(join(cacheDir, file), 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** Best effort: a cache that cannot be written (read-only directory, a concurrent writer) only costs speed. */
export async function writeCache(cacheDir: string, file: string, value: unknown): Promise<boolean> {
  try {
    await mkdir(cacheDir, { recursive: true });
    writeFileAtomic(join(cacheDir, file), `${JSON.stringify(value, null, 2)}\n`);
    return true;
  } catch {
    return false;
  }
}
