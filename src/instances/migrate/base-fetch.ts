import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { VirtnodeError } from '../../lib/errors.ts';
import type { BaseImage } from './protocol.ts';

async function sha256Of(path: string, signal: AbortSignal | undefined): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, signal === undefined ? {} : { signal })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * A base fetcher for hosts that can read the source's file directly (one machine, or a shared mount): the base
 * is kept in `storeDir` under its digest, copied there once and verified. The cluster replaces it with a fetch
 * from the peer host by digest.
 */
export function copyingBaseFetcher(storeDir: string) {
  return async (base: BaseImage, options: { signal?: AbortSignal } = {}): Promise<{ path: string; fetchedNow: boolean }> => {
    if (!/^[0-9a-f]{64}$/.test(base.sha256)) throw new VirtnodeError('INVALID', `base.sha256: "${base.sha256}" is not a sha256 digest`, { field: 'base.sha256' });
    const path = join(storeDir, `${base.sha256}.${base.format}`);
    if (existsSync(path)) return { path, fetchedNow: false };
    mkdirSync(storeDir, { recursive: true, mode: 0o700 });
    const partial = `${path}.partial`;
    try {
      await copyFile(base.sourcePath, partial);
      const digest = await sha256Of(partial, options.signal);
      if (digest !== base.sha256) {
        throw new VirtnodeError('INVALID', `base.sha256: ${base.sourcePath} has digest ${digest}, not ${base.sha256}`, { field: 'base.sha256' });
      }
      renameSync(partial, path);
    } finally {
      rmSync(partial, { force: true });
    }
    return { path, fetchedNow: true };
  };
}
